/* blog.c: constant descriptor tables, and wrappers that hand them to the
 * runtime. No behaviour lives only here. */
#include <stdlib.h>
#include <string.h>

#include "emit.h"


static const char *memo_type_name(ast_type t)
{
    switch (t) {
    case AST_T_INT32:
        return "MEMO_INT32";
    case AST_T_INT64:
        return "MEMO_INT64";
    case AST_T_FLOAT64:
        return "MEMO_FLOAT64";
    case AST_T_BOOL:
        return "MEMO_BOOL";
    case AST_T_TEXT:
        return "MEMO_TEXT";
    case AST_T_TIMESTAMP:
        return "MEMO_TIMESTAMP";
    case AST_T_JSON:
        return "MEMO_JSON";
    case AST_T_UNKNOWN:
        break;
    }
    return "0";
}

/* A C string literal; templates and names hold no characters that need
 * escaping, but keep the emitter honest anyway. */
static void literal(char *out, size_t size, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    for (; *s && n + 4 < size; s++) {
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '"';
    out[n] = '\0';
}

static void emit_key(emitter *em, const key_parts *k, const char *suffix)
{
    char head[256], tail[256];
    literal(head, sizeof head, k->head);
    literal(tail, sizeof tail, k->tail);
    emit_line(em, ".key = {%s, %s, \"%s\"}%s", head, tail, k->tag, suffix);
}

static void emit_tables(emitter *em, const ast_entity *e)
{
    const char *s = em->s->name, *n = e->name.text;

    emit_line(em, "static const memo_field_desc %s_%s_fields[] = {", s, n);
    em->indent++;
    for (size_t i = 0; i < e->fields.n; i++) {
        const ast_field *f = &e->fields.v[i];
        char flags[96] = "";
        size_t len = 0;
        if (f->flags & AST_F_PRIMARY)
            len += (size_t)snprintf(flags + len, sizeof flags - len, "%sMEMO_FIELD_PK",
                                    len ? " | " : "");
        if (f->flags & AST_F_UNIQUE)
            len += (size_t)snprintf(flags + len, sizeof flags - len, "%sMEMO_FIELD_UNIQUE",
                                    len ? " | " : "");
        if (f->flags & AST_F_NULLABLE)
            len += (size_t)snprintf(flags + len, sizeof flags - len, "%sMEMO_FIELD_NULLABLE",
                                    len ? " | " : "");
        if (!len)
            snprintf(flags, sizeof flags, "0");
        bool null_flag =
            (f->flags & AST_F_NULLABLE) && f->type != AST_T_TEXT && f->type != AST_T_JSON;
        if (null_flag)
            emit_line(em, "{\"%s\", %s, %s, offsetof(%s_%s, %s), offsetof(%s_%s, %s_is_null)},",
                      f->name.text, memo_type_name(f->type), flags, s, n, f->name.text, s, n,
                      f->name.text);
        else
            emit_line(em, "{\"%s\", %s, %s, offsetof(%s_%s, %s), 0},", f->name.text,
                      memo_type_name(f->type), flags, s, n, f->name.text);
    }
    em->indent--;
    emit_line(em, "};");
    emit_blank(em);

    size_t nuniques = 0;
    for (size_t i = 0; i < e->caches.n; i++)
        if (e->caches.v[i].resolved != e->pk)
            nuniques++;
    if (nuniques) {
        emit_line(em, "static const memo_lookup_desc %s_%s_uniques[] = {", s, n);
        em->indent++;
        for (size_t i = 0; i < e->caches.n; i++) {
            const ast_cache *c = &e->caches.v[i];
            if (c->resolved == e->pk)
                continue;
            key_parts k;
            unique_key(e, c, &k);
            emit_line(em, "{");
            em->indent++;
            emit_line(em, ".field = %zu, /* %s */", field_index(e, c->resolved),
                      c->resolved->name.text);
            emit_key(em, &k, ",");
            emit_line(em, ".ttl_ms = %llu,", (unsigned long long)c->ttl.value);
            emit_line(em, ".negative_ttl_ms = %llu,",
                      (unsigned long long)(c->negative.set ? c->negative.value : 0));
            emit_line(em, ".jitter_pct = %llu,",
                      (unsigned long long)(c->jitter.set ? c->jitter.value : 0));
            em->indent--;
            emit_line(em, "},");
            key_parts_free(&k);
        }
        em->indent--;
        emit_line(em, "};");
        emit_blank(em);
    }

    if (e->lists.n) {
        emit_line(em, "static const memo_list_desc %s_%s_lists[] = {", s, n);
        em->indent++;
        for (size_t i = 0; i < e->lists.n; i++) {
            const ast_list *l = &e->lists.v[i];
            key_parts k;
            list_key(e, l, &k);
            emit_line(em, "{");
            em->indent++;
            emit_line(em, ".name = \"%s\",", l->name.text);
            emit_line(em, ".group = %zu, /* %s */", field_index(e, l->group_field),
                      l->group_field->name.text);
            emit_line(em, ".order = %zu, /* %s */", field_index(e, l->order_field),
                      l->order_field->name.text);
            emit_line(em, ".descending = %s,", l->desc ? "true" : "false");
            emit_line(em, ".limit = %llu,",
                      (unsigned long long)(l->limit.set ? l->limit.value : MEMOC_DEFAULT_LIST_LIMIT));
            emit_line(em, ".ttl_ms = %llu,", (unsigned long long)l->ttl.value);
            emit_line(em, ".jitter_pct = %llu,",
                      (unsigned long long)(l->jitter.set ? l->jitter.value : 0));
            emit_key(em, &k, ",");
            em->indent--;
            emit_line(em, "},");
            key_parts_free(&k);
        }
        em->indent--;
        emit_line(em, "};");
        emit_blank(em);
    }

    if (e->rules.n) {
        emit_line(em, "static const memo_rule_desc %s_%s_rules[] = {", s, n);
        em->indent++;
        for (size_t i = 0; i < e->rules.n; i++) {
            const ast_rule *r = &e->rules.v[i];
            char events[96] = "";
            size_t len = 0;
            if (r->events & AST_ON_INSERT)
                len += (size_t)snprintf(events + len, sizeof events - len, "MEMO_ON_INSERT");
            if (r->events & AST_ON_UPDATE)
                len += (size_t)snprintf(events + len, sizeof events - len, "%sMEMO_ON_UPDATE",
                                        len ? " | " : "");
            if (r->events & AST_ON_DELETE)
                snprintf(events + len, sizeof events - len, "%sMEMO_ON_DELETE",
                         len ? " | " : "");
            int list = -1;
            if (r->target_list)
                list = (int)(r->target_list - r->target_entity->lists.v);
            emit_line(em, "{%s, %zu, &%s_%s_desc, %d}, /* %s(%s)%s%s */", events,
                      field_index(e, r->resolved), s, r->target_entity->name.text, list,
                      r->target.text, r->field.text, r->list.text ? " list " : "",
                      r->list.text ? r->list.text : "");
        }
        em->indent--;
        emit_line(em, "};");
        emit_blank(em);
    }

    key_parts rk;
    row_key(e, &rk);
    size_t pc = pk_cache_index(e);
    const ast_cache *c = pc == (size_t)-1 ? NULL : &e->caches.v[pc];
    char fp[17];
    entity_fingerprint(e, fp);
    emit_line(em, "const memo_entity_desc %s_%s_desc = {", s, n);
    em->indent++;
    emit_line(em, ".abi = MEMO_ABI,");
    emit_line(em, ".schema = \"%s\",", s);
    emit_line(em, ".name = \"%s\",", n);
    emit_line(em, ".table = \"%s\",", table_of(e));
    emit_line(em, ".size = sizeof(%s_%s),", s, n);
    emit_line(em, ".fields = %s_%s_fields,", s, n);
    emit_line(em, ".nfields = %zu,", e->fields.n);
    emit_line(em, ".pk = %zu, /* %s */", field_index(e, e->pk), e->pk->name.text);
    emit_line(em, ".row = {");
    em->indent++;
    emit_line(em, ".field = %zu,", field_index(e, e->pk));
    emit_key(em, &rk, ",");
    if (c) {
        emit_line(em, ".ttl_ms = %llu,", (unsigned long long)c->ttl.value);
        emit_line(em, ".negative_ttl_ms = %llu,",
                  (unsigned long long)(c->negative.set ? c->negative.value : 0));
        emit_line(em, ".jitter_pct = %llu,",
                  (unsigned long long)(c->jitter.set ? c->jitter.value : 0));
    } else {
        emit_line(em, ".ttl_ms = 0, /* no `cache` line: the repository's default */");
    }
    em->indent--;
    emit_line(em, "},");
    if (nuniques) {
        emit_line(em, ".uniques = %s_%s_uniques,", s, n);
        emit_line(em, ".nuniques = %zu,", nuniques);
    }
    if (e->lists.n) {
        emit_line(em, ".lists = %s_%s_lists,", s, n);
        emit_line(em, ".nlists = %zu,", e->lists.n);
    }
    if (e->rules.n) {
        emit_line(em, ".rules = %s_%s_rules,", s, n);
        emit_line(em, ".nrules = %zu,", e->rules.n);
    }
    emit_line(em, ".fingerprint = \"%s\",", fp);
    em->indent--;
    emit_line(em, "};");
    emit_blank(em);
    key_parts_free(&rk);
}

/* The wrappers of one face: each only hands the descriptor to the runtime. */
/* The body of a call that returns rows: the runtime fills a memo_rows and
 * the caller's typed list takes them. A NULL list goes to the runtime as
 * NULL, which refuses it as it refuses every NULL argument. `call` is the
 * runtime call up to its last argument. */
static void emit_rows_body(emitter *em, const char *call)
{
    emit_line(em, "{");
    emit_line(em, "    memo_rows rows = {0};");
    emit_line(em, "    memo_status st = %s, out ? &rows : NULL);", call);
    emit_line(em, "    if (out) {");
    emit_line(em, "        out->items = rows.items;");
    emit_line(em, "        out->len = rows.len;");
    emit_line(em, "    }");
    emit_line(em, "    return st;");
    emit_line(em, "}");
    emit_blank(em);
}

static void emit_calls(emitter *em, const ast_entity *e, const variant *v)
{
    const char *s = em->s->name, *n = e->name.text, *a = v->arg, *rt = v->runtime;
    const ast_field *pk = e->pk;
    char sig[1024];

    sig_get(sig, sizeof sig, em, e, v);
    emit_line(em, "%s", sig);
    emit_line(em, "{");
    emit_line(em, "    return %sget(%s, &%s_%s_desc, &%s, out);", rt, a, s, n, pk->name.text);
    emit_line(em, "}");
    emit_blank(em);

    unsigned u = 0;
    for (size_t i = 0; i < e->caches.n; i++) {
        const ast_cache *c = &e->caches.v[i];
        if (c->resolved == pk)
            continue;
        sig_get_by(sig, sizeof sig, em, e, c->resolved, v);
        emit_line(em, "%s", sig);
        emit_line(em, "{");
        emit_line(em, "    return %sget_by(%s, &%s_%s_desc, %u, &%s, out);", rt, a, s, n, u++,
                  c->resolved->name.text);
        emit_line(em, "}");
        emit_blank(em);
    }

    for (size_t i = 0; i < e->lists.n; i++) {
        const ast_list *l = &e->lists.v[i];
        sig_list(sig, sizeof sig, em, e, l, v);
        emit_line(em, "%s", sig);
        char call[512];
        snprintf(call, sizeof call, "%slist(%s, &%s_%s_desc, %zu, &%s", rt, a, s, n, i,
                 l->group_field->name.text);
        emit_rows_body(em, call);
    }

    sig_get_many(sig, sizeof sig, em, e, v);
    emit_line(em, "%s", sig);
    char call[512];
    snprintf(call, sizeof call, "%sget_many(%s, &%s_%s_desc, %ss, n", rt, a, s, n,
             pk->name.text);
    emit_rows_body(em, call);

    sig_insert(sig, sizeof sig, em, e, v);
    emit_line(em, "%s", sig);
    emit_line(em, "{");
    emit_line(em, "    return %sinsert(%s, &%s_%s_desc, row);", rt, a, s, n);
    emit_line(em, "}");
    emit_blank(em);
    sig_update(sig, sizeof sig, em, e, v);
    emit_line(em, "%s", sig);
    emit_line(em, "{");
    emit_line(em, "    return %supdate(%s, &%s_%s_desc, row);", rt, a, s, n);
    emit_line(em, "}");
    emit_blank(em);
    sig_delete(sig, sizeof sig, em, e, v);
    emit_line(em, "%s", sig);
    emit_line(em, "{");
    emit_line(em, "    return %sdelete(%s, &%s_%s_desc, &%s);", rt, a, s, n, pk->name.text);
    emit_line(em, "}");
    emit_blank(em);
}

static void emit_wrappers(emitter *em, const ast_entity *e)
{
    const char *s = em->s->name, *n = e->name.text;
    emit_line(em, "/* ---- %s ---- */", n);
    emit_blank(em);
    emit_calls(em, e, &variant_repo);
    emit_calls(em, e, &variant_tx);
    emit_line(em, "void %s_%s_clear(%s_%s *row)", s, n, s, n);
    emit_line(em, "{");
    emit_line(em, "    memo_row_clear(&%s_%s_desc, row);", s, n);
    emit_line(em, "}");
    emit_blank(em);
    emit_line(em, "void %s_%s_list_clear(%s_%s_list *list)", s, n, s, n);
    emit_line(em, "{");
    emit_line(em, "    if (!list)");
    emit_line(em, "        return;");
    emit_line(em, "    memo_rows rows = {list->items, list->len};");
    emit_line(em, "    memo_rows_clear(&%s_%s_desc, &rows);", s, n);
    emit_line(em, "    list->items = NULL;");
    emit_line(em, "    list->len = 0;");
    emit_line(em, "}");
    emit_blank(em);
}

void emit_source(emitter *em)
{
    const ast_schema *sc = em->s;
    const char *s = sc->name;
    emit_generated_by(em, "/*", "*/");
    emit_line(em, "#include \"%s.h\"", s);
    emit_blank(em);
    emit_line(em, "/* ============================================================ descriptors */");
    emit_blank(em);
    for (size_t i = 0; i < sc->entities.n; i++)
        emit_tables(em, sc->entities.v[i]);
    emit_line(em, "static const memo_entity_desc *const %s_entities[] = {", s);
    for (size_t i = 0; i < sc->entities.n; i++)
        emit_line(em, "    &%s_%s_desc,", s, sc->entities.v[i]->name.text);
    emit_line(em, "};");
    emit_blank(em);
    emit_line(em, "const memo_schema_desc %s_schema_desc = {", s);
    emit_line(em, "    .abi = MEMO_ABI,");
    emit_line(em, "    .name = \"%s\",", s);
    emit_line(em, "    .entities = %s_entities,", s);
    emit_line(em, "    .nentities = %zu,", sc->entities.n);
    emit_line(em, "};");
    emit_blank(em);
    emit_line(em, "/* ============================================================== functions */");
    emit_blank(em);
    for (size_t i = 0; i < sc->entities.n; i++)
        emit_wrappers(em, sc->entities.v[i]);
}
