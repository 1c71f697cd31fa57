/* blog.c: the lowered descriptors printed as constant tables, and wrappers
 * that hand them to the runtime. No behaviour lives only here, and no value
 * is computed here: each comes from the model (lower.c). */
#include <stdio.h>

#include "emit.h"

static const char *type_macro(memo_type t)
{
    switch (t) {
    case MEMO_INT32:
        return "MEMO_INT32";
    case MEMO_INT64:
        return "MEMO_INT64";
    case MEMO_FLOAT64:
        return "MEMO_FLOAT64";
    case MEMO_BOOL:
        return "MEMO_BOOL";
    case MEMO_TEXT:
        return "MEMO_TEXT";
    case MEMO_TIMESTAMP:
        return "MEMO_TIMESTAMP";
    case MEMO_JSON:
        return "MEMO_JSON";
    }
    return "0";
}

/* A flag and its macro's name. */
typedef struct flag_name {
    unsigned bit;
    const char *name;
} flag_name;

static const flag_name field_flags[] = {{MEMO_FIELD_PK, "MEMO_FIELD_PK"},
                                        {MEMO_FIELD_UNIQUE, "MEMO_FIELD_UNIQUE"},
                                        {MEMO_FIELD_NULLABLE, "MEMO_FIELD_NULLABLE"},
                                        {MEMO_FIELD_VERSION, "MEMO_FIELD_VERSION"},
                                        {0, NULL}};
static const flag_name rule_events[] = {{MEMO_ON_INSERT, "MEMO_ON_INSERT"},
                                        {MEMO_ON_UPDATE, "MEMO_ON_UPDATE"},
                                        {MEMO_ON_DELETE, "MEMO_ON_DELETE"},
                                        {0, NULL}};

/* The macros of the set flags joined by " | ", or "0". */
static void bits(char *out, size_t size, unsigned flags, const flag_name *names)
{
    size_t len = 0;
    for (; names->name; names++)
        if (flags & names->bit)
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " | " : "",
                                    names->name);
    if (!len)
        snprintf(out, size, "0");
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

static void emit_key(emitter *em, const memo_key_desc *k, const char *suffix)
{
    char head[256], tail[256];
    literal(head, sizeof head, k->head);
    literal(tail, sizeof tail, k->tail);
    emit_line(em, ".key = {%s, %s, \"%s\"}%s", head, tail, k->tag, suffix);
}

/* The TTL lines of a lookup. A row lookup with no `cache` line has a zero
 * TTL (checked TTLs are positive), which the comment explains. */
static void emit_ttls(emitter *em, const memo_lookup_desc *l)
{
    if (l->ttl_ms == 0 && l->negative_ttl_ms == 0 && l->jitter_pct == 0) {
        emit_line(em, ".ttl_ms = 0, /* no `cache` line: the repository's default */");
        return;
    }
    emit_line(em, ".ttl_ms = %llu,", (unsigned long long)l->ttl_ms);
    emit_line(em, ".negative_ttl_ms = %llu,", (unsigned long long)l->negative_ttl_ms);
    emit_line(em, ".jitter_pct = %u,", l->jitter_pct);
    if (l->near_entries)
        emit_line(em, ".near_entries = %u, .near_ttl_ms = %llu,",
                  (unsigned)l->near_entries, (unsigned long long)l->near_ttl_ms);
}

static void emit_tables(emitter *em, const lowered_entity *me)
{
    const memo_entity_desc *d = &me->desc;
    const char *c = me->c_name;

    emit_line(em, "static const memo_field_desc %s_fields[] = {", c);
    em->indent++;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        char flags[96];
        bits(flags, sizeof flags, f->flags, field_flags);
        /* offsets are the compiler's, from the struct the header declares */
        if (me->fields[i].null_flag)
            emit_line(em, "{\"%s\", %s, %s, offsetof(%s, %s), offsetof(%s, %s_is_null)},",
                      f->name, type_macro(f->type), flags, c, f->name, c, f->name);
        else
            emit_line(em, "{\"%s\", %s, %s, offsetof(%s, %s), 0},", f->name,
                      type_macro(f->type), flags, c, f->name);
    }
    em->indent--;
    emit_line(em, "};");
    emit_blank(em);
    if (d->nuniques) {
        emit_line(em, "static const memo_lookup_desc %s_uniques[] = {", c);
        em->indent++;
        for (unsigned i = 0; i < d->nuniques; i++) {
            const memo_lookup_desc *u = &d->uniques[i];
            emit_line(em, "{");
            em->indent++;
            emit_line(em, ".field = %u, /* %s */", u->field, d->fields[u->field].name);
            emit_key(em, &u->key, ",");
            emit_ttls(em, u);
            em->indent--;
            emit_line(em, "},");
        }
        em->indent--;
        emit_line(em, "};");
        emit_blank(em);
    }

    if (d->nlists) {
        emit_line(em, "static const memo_list_desc %s_lists[] = {", c);
        em->indent++;
        for (unsigned i = 0; i < d->nlists; i++) {
            const memo_list_desc *l = &d->lists[i];
            emit_line(em, "{");
            em->indent++;
            emit_line(em, ".name = \"%s\",", l->name);
            emit_line(em, ".group = %u, /* %s */", l->group, d->fields[l->group].name);
            emit_line(em, ".order = %u, /* %s */", l->order, d->fields[l->order].name);
            emit_line(em, ".descending = %s,", l->descending ? "true" : "false");
            emit_line(em, ".limit = %lu,", (unsigned long)l->limit);
            emit_line(em, ".ttl_ms = %llu,", (unsigned long long)l->ttl_ms);
            emit_line(em, ".jitter_pct = %u,", l->jitter_pct);
            emit_key(em, &l->key, ",");
            em->indent--;
            emit_line(em, "},");
        }
        em->indent--;
        emit_line(em, "};");
        emit_blank(em);
    }

    if (d->nrules) {
        emit_line(em, "static const memo_rule_desc %s_rules[] = {", c);
        em->indent++;
        for (unsigned i = 0; i < d->nrules; i++) {
            const memo_rule_desc *r = &d->rules[i];
            const lowered_entity *t = &em->m->entities[model_index(em->m, r->target)];
            char events[96];
            bits(events, sizeof events, r->events, rule_events);
            /* the comment restates the rule: "user(author_id)",
             * "page(space) list in_space" */
            char fields[8 * 12] = "", names[8 * 70] = "";
            for (unsigned k = 0, a = 0, b = 0; k < r->nfields; k++) {
                a += (unsigned)snprintf(fields + a, sizeof fields - a, "%s%u",
                                        k ? ", " : "", r->fields[k]);
                b += (unsigned)snprintf(names + b, sizeof names - b, "%s%s",
                                        k ? ", " : "", d->fields[r->fields[k]].name);
            }
            emit_line(
                em,
                "{%s, %u, %u, (const unsigned[]){%s}, &%s_desc, %d}, /* %s(%s)%s%s */",
                events, r->field, r->nfields, fields, t->c_name, r->list, t->desc.name,
                names, r->list >= 0 ? " list " : "",
                r->list >= 0 ? t->desc.lists[r->list].name : "");
        }
        em->indent--;
        emit_line(em, "};");
        emit_blank(em);
    }

    emit_line(em, "const memo_entity_desc %s_desc = {", c);
    em->indent++;
    emit_line(em, ".abi = MEMO_ABI,");
    emit_line(em, ".schema = \"%s\",", d->schema);
    emit_line(em, ".name = \"%s\",", d->name);
    emit_line(em, ".table = \"%s\",", d->table);
    emit_line(em, ".size = sizeof(%s),", c);
    emit_line(em, ".fields = %s_fields,", c);
    emit_line(em, ".nfields = %u,", d->nfields);
    emit_line(em, ".pk = %u, /* %s */", d->pk, d->fields[d->pk].name);
    /* the primary key's fields, and where each is in a key value (compound
     * literals: no names of their own to clash) */
    char pks[MEMO_MAX_FIELDS * 4 + 8] = "", offsets[8 * 200] = "";
    for (unsigned k = 0, a = 0, b = 0; k < d->npk; k++) {
        a +=
            (unsigned)snprintf(pks + a, sizeof pks - a, "%s%u", k ? ", " : "", d->pks[k]);
        if (d->npk > 1) /* the compiler's layout of the key struct */
            b += (unsigned)snprintf(offsets + b, sizeof offsets - b,
                                    "%soffsetof(%s_key, %s)", k ? ", " : "", c,
                                    d->fields[d->pks[k]].name);
        else
            b += (unsigned)snprintf(offsets + b, sizeof offsets - b, "0");
    }
    emit_line(em, ".npk = %u,", d->npk);
    emit_line(em, ".pks = (const unsigned[]){%s},", pks);
    emit_line(em, ".pk_offsets = (const size_t[]){%s},", offsets);
    if (d->npk > 1)
        emit_line(em, ".key_size = sizeof(%s_key),", c);
    else
        emit_line(em, ".key_size = sizeof(%s),", model_c_type(d->fields[d->pk].type));
    emit_line(em, ".row = {");
    em->indent++;
    emit_line(em, ".field = %u,", d->row.field);
    emit_key(em, &d->row.key, ",");
    emit_ttls(em, &d->row);
    em->indent--;
    emit_line(em, "},");
    if (d->nuniques) {
        emit_line(em, ".uniques = %s_uniques,", c);
        emit_line(em, ".nuniques = %u,", d->nuniques);
    }
    if (d->nlists) {
        emit_line(em, ".lists = %s_lists,", c);
        emit_line(em, ".nlists = %u,", d->nlists);
    }
    if (d->nrules) {
        emit_line(em, ".rules = %s_rules,", c);
        emit_line(em, ".nrules = %u,", d->nrules);
    }
    emit_line(em, ".fingerprint = \"%s\",", d->fingerprint);
    em->indent--;
    emit_line(em, "};");
    emit_blank(em);
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
    emit_line(em, "        out->more = rows.more;");
    emit_line(em, "    }");
    emit_line(em, "    return st;");
    emit_line(em, "}");
    emit_blank(em);
}

static void emit_calls(emitter *em, const lowered_entity *me, const variant *v)
{
    const memo_entity_desc *d = &me->desc;
    const char *c = me->c_name, *a = v->arg, *rt = v->runtime;
    const char *pk = d->fields[d->pk].name;
    char sig[1024], call[512];

    /* the key value: the key's one field, or a key struct of the parameters
     * (a compound literal: no name of its own to clash with a field's) */
    char keyarg[1400];
    if (d->npk > 1) {
        size_t len = (size_t)snprintf(keyarg, sizeof keyarg, "(%s_key){", c);
        for (unsigned k = 0; k < d->npk && len < sizeof keyarg; k++)
            len += (size_t)snprintf(keyarg + len, sizeof keyarg - len, "%s%s",
                                    k ? ", " : "", d->fields[d->pks[k]].name);
        snprintf(keyarg + len, sizeof keyarg - len, "}");
    } else {
        snprintf(keyarg, sizeof keyarg, "%s", pk);
    }

    sig_get(sig, sizeof sig, me, v);
    emit_line(em, "%s", sig);
    emit_line(em, "{");
    emit_line(em, "    return %sget(%s, &%s_desc, &%s, out);", rt, a, c, keyarg);
    emit_line(em, "}");
    emit_blank(em);

    for (unsigned u = 0; u < d->nuniques; u++) {
        sig_get_by(sig, sizeof sig, me, u, v);
        emit_line(em, "%s", sig);
        emit_line(em, "{");
        emit_line(em, "    return %sget_by(%s, &%s_desc, %u, &%s, out);", rt, a, c, u,
                  d->fields[d->uniques[u].field].name);
        emit_line(em, "}");
        emit_blank(em);
    }

    for (unsigned i = 0; i < d->nlists; i++) {
        sig_list(sig, sizeof sig, me, i, v);
        emit_line(em, "%s", sig);
        snprintf(call, sizeof call, "%slist(%s, &%s_desc, %u, &%s", rt, a, c, i,
                 d->fields[d->lists[i].group].name);
        emit_rows_body(em, call);
        sig_list_count(sig, sizeof sig, me, i, v);
        emit_line(em, "%s", sig);
        emit_line(em, "{");
        emit_line(em, "    return %slist_count(%s, &%s_desc, %u, &%s, %s);", rt, a, c, i,
                  d->fields[d->lists[i].group].name, list_param(me, i, "n", "count"));
        emit_line(em, "}");
        emit_blank(em);
        sig_list_after(sig, sizeof sig, me, i, v);
        emit_line(em, "%s", sig);
        snprintf(call, sizeof call, "%slist_after(%s, &%s_desc, %u, &%s, %s, %s", rt, a,
                 c, i, d->fields[d->lists[i].group].name,
                 list_param(me, i, "last", "after"), list_param(me, i, "n", "count"));
        emit_rows_body(em, call);
    }

    sig_get_many(sig, sizeof sig, me, v);
    emit_line(em, "%s", sig);
    snprintf(call, sizeof call, "%sget_many(%s, &%s_desc, %ss, n", rt, a, c,
             d->npk > 1 ? "key" : pk);
    emit_rows_body(em, call);

    /* the writes of a row: each hands it to the runtime call of its name,
     * which writes back into the row only a key assigned and a version */
    static const struct {
        void (*sig)(char *, size_t, const lowered_entity *, const variant *);
        const char *call, *args;
        bool keeps; /* the row is const when the entity has no version */
    } writes[] = {{sig_insert, "insert", "", false},
                  {sig_update, "update", "", true},
                  {sig_update_fields, "update_fields", ", mask", true},
                  {sig_upsert, "upsert", "", true}};
    bool versioned = entity_versioned(d);
    for (size_t w = 0; w < sizeof writes / sizeof writes[0]; w++) {
        writes[w].sig(sig, sizeof sig, me, v);
        emit_line(em, "%s", sig);
        emit_line(em, "{");
        emit_line(em, "    return %s%s(%s, &%s_desc, %srow%s);", rt, writes[w].call, a, c,
                  writes[w].keeps && !versioned ? "(void *)" : "", writes[w].args);
        emit_line(em, "}");
        emit_blank(em);
    }
    sig_delete(sig, sizeof sig, me, v);
    emit_line(em, "%s", sig);
    emit_line(em, "{");
    emit_line(em, "    return %sdelete(%s, &%s_desc, &%s);", rt, a, c, keyarg);
    emit_line(em, "}");
    emit_blank(em);
}

static void emit_wrappers(emitter *em, const lowered_entity *me)
{
    const char *c = me->c_name;
    emit_line(em, "/* ---- %s ---- */", me->desc.name);
    emit_blank(em);
    emit_calls(em, me, &variant_repo);
    emit_calls(em, me, &variant_tx);
    emit_line(em, "void %s_clear(%s *row)", c, c);
    emit_line(em, "{");
    emit_line(em, "    memo_row_clear(&%s_desc, row);", c);
    emit_line(em, "}");
    emit_blank(em);
    emit_line(em, "void %s_list_clear(%s_list *list)", c, c);
    emit_line(em, "{");
    emit_line(em, "    if (!list)");
    emit_line(em, "        return;");
    emit_line(em, "    memo_rows rows = {list->items, list->len, false};");
    emit_line(em, "    memo_rows_clear(&%s_desc, &rows);", c);
    emit_line(em, "    list->items = NULL;");
    emit_line(em, "    list->len = 0;");
    emit_line(em, "    list->more = false;");
    emit_line(em, "}");
    emit_blank(em);
}

void emit_source(emitter *em)
{
    const model *m = em->m;
    const char *s = m->schema.name;
    emit_generated_by(em, "/*", "*/");
    emit_line(em, "#include \"%s.h\"", s);
    emit_blank(em);
    emit_line(
        em,
        "/* ============================================================ descriptors */");
    emit_blank(em);
    for (size_t i = 0; i < m->n; i++)
        emit_tables(em, &m->entities[i]);
    emit_line(em, "static const memo_entity_desc *const %s_entities[] = {", s);
    for (size_t i = 0; i < m->n; i++)
        emit_line(em, "    &%s_desc,", m->entities[i].c_name);
    emit_line(em, "};");
    emit_blank(em);
    emit_line(em, "const memo_schema_desc %s_schema_desc = {", s);
    emit_line(em, "    .abi = MEMO_ABI,");
    emit_line(em, "    .name = \"%s\",", s);
    emit_line(em, "    .entities = %s_entities,", s);
    emit_line(em, "    .nentities = %u,", m->schema.nentities);
    emit_line(em, "};");
    emit_blank(em);
    emit_line(
        em,
        "/* ============================================================== functions */");
    emit_blank(em);
    for (size_t i = 0; i < m->n; i++)
        emit_wrappers(em, &m->entities[i]);
}
