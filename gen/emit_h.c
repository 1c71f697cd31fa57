/* blog.h: structs, descriptors, and one documented prototype per operation. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

/* "blog:{user:<id>}:9f2c1ab0", for the comments. */
static char *key_text(const emitter *em, const key_parts *k, const char *value)
{
    size_t n = strlen(em->s->name) + strlen(k->head) + strlen(value) + strlen(k->tail) + 32;
    char *s = xmalloc(n);
    snprintf(s, n, "%s:{%s<%s>%s}:%s", em->s->name, k->head, value, k->tail, k->tag);
    return s;
}

static void emit_struct(emitter *em, const ast_entity *e)
{
    const char *s = em->s->name, *n = e->name.text;
    emit_line(em, "/* entity %s, table %s */", n, table_of(e));
    emit_line(em, "typedef struct %s_%s {", s, n);
    em->indent++;
    /* Member comments start in one column. */
    int width = 0;
    for (size_t i = 0; i < e->fields.n; i++) {
        const ast_field *f = &e->fields.v[i];
        int w = (int)(strlen(c_type(f->type)) + strlen(f->name.text) + 2);
        if ((f->flags & AST_F_NULLABLE) && f->type != AST_T_TEXT && f->type != AST_T_JSON) {
            int wn = (int)strlen(f->name.text) + 14; /* "bool x_is_null;" */
            if (wn > w)
                w = wn;
        }
        if (w > width)
            width = w;
    }
    for (size_t i = 0; i < e->fields.n; i++) {
        const ast_field *f = &e->fields.v[i];
        const char *t = c_type(f->type);
        const char *sep = t[strlen(t) - 1] == '*' ? "" : " ";
        char note[160] = "";
        size_t len = 0;
        if (f->flags & AST_F_PRIMARY)
            len += (size_t)snprintf(note + len, sizeof note - len, ", primary key");
        if (f->flags & AST_F_UNIQUE)
            len += (size_t)snprintf(note + len, sizeof note - len, ", unique");
        if (f->flags & AST_F_NULLABLE)
            len += (size_t)snprintf(note + len, sizeof note - len, ", nullable%s",
                                    f->type == AST_T_TEXT || f->type == AST_T_JSON
                                        ? " (NULL)"
                                        : "");
        if (f->ref)
            len += (size_t)snprintf(note + len, sizeof note - len, ", references %s",
                                    f->ref->name.text);
        if (f->type == AST_T_TIMESTAMP)
            snprintf(note + len, sizeof note - len, ", microseconds since 1970 UTC");
        else if (f->type == AST_T_JSON)
            snprintf(note + len, sizeof note - len, ", JSON text");
        char decl[256];
        snprintf(decl, sizeof decl, "%s%s%s;", t, sep, f->name.text);
        emit_line(em, "%-*s /* %s%s */", width, decl, ast_type_name(f->type), note);
        if ((f->flags & AST_F_NULLABLE) && f->type != AST_T_TEXT && f->type != AST_T_JSON) {
            snprintf(decl, sizeof decl, "bool %s_is_null;", f->name.text);
            emit_line(em, "%-*s /* true: %s is SQL NULL */", width, decl, f->name.text);
        }
    }
    em->indent--;
    emit_line(em, "} %s_%s;", s, n);
    emit_blank(em);
    emit_line(em, "typedef struct %s_%s_list {", s, n);
    emit_line(em, "    %s_%s *items;", s, n);
    emit_line(em, "    size_t len;");
    emit_line(em, "} %s_%s_list;", s, n);
    emit_blank(em);
}

/* What a write to e invalidates, for its comment. */
static void describe_invalidation(emitter *em, const ast_entity *e, unsigned event)
{
    const char *s = em->s->name;
    emit_line(em, " * After COMMIT, one pipeline deletes:");
    if (event == AST_ON_INSERT)
        emit_line(em, " *   the negative entries of the new %s,", e->pk->name.text);
    else
        emit_line(em, " *   the row's value and lease,");
    for (size_t i = 0; i < e->caches.n; i++) {
        const ast_cache *c = &e->caches.v[i];
        if (c->resolved == e->pk)
            continue;
        if (event == AST_ON_UPDATE)
            emit_line(em, " *   the %s lookup of the old and the new %s, if it changed,",
                      c->resolved->name.text, c->resolved->name.text);
        else
            emit_line(em, " *   the %s lookup of its %s,", c->resolved->name.text,
                      event == AST_ON_INSERT ? "value (a negative entry)" : "value");
    }
    for (size_t i = 0; i < e->lists.n; i++) {
        const ast_list *l = &e->lists.v[i];
        if (event != AST_ON_UPDATE)
            emit_line(em, " *   %s_%s_%s() of its %s,", s, e->name.text, l->name.text,
                      l->group.text);
        else if (l->order_field == l->group_field || l->order_field == e->pk)
            emit_line(em, " *   %s_%s_%s() of the old and new %s, if %s changed,", s,
                      e->name.text, l->name.text, l->group.text, l->group.text);
        else
            emit_line(em, " *   %s_%s_%s() of the old and new %s, if %s or %s changed,", s,
                      e->name.text, l->name.text, l->group.text, l->group.text,
                      l->order_field->name.text);
    }
    for (size_t i = 0; i < e->rules.n; i++) {
        const ast_rule *r = &e->rules.v[i];
        if (!(r->events & event))
            continue;
        const char *when = event == AST_ON_UPDATE ? "old and new " : "";
        if (r->list.text)
            emit_line(em, " *   %s_%s_%s() of the %s%s (rule),", s, r->target.text,
                      r->list.text, when, r->field.text);
        else
            emit_line(em, " *   the %s row of the %s%s (rule),", r->target.text, when,
                      r->field.text);
    }
    emit_line(em, " * so no reader sees the old values once this returns. */");
}

static void emit_prototypes(emitter *em, const ast_entity *e)
{
    const char *s = em->s->name, *n = e->name.text;
    const ast_field *pk = e->pk;
    const variant *v = &variant_repo;
    char sig[1024];
    key_parts rk;
    row_key(e, &rk);
    char *rkey = key_text(em, &rk, pk->name.text);

    emit_line(em, "/* ---- %s ---- */", n);
    emit_blank(em);
    emit_line(em, "/* Reads the %s with this %s: key %s,", n, pk->name.text, rkey);
    emit_line(em, " * else table %s. MEMO_NOT_FOUND if there is none (remembered too).",
              table_of(e));
    emit_line(em, " * Fills *out; the caller frees it with %s_%s_clear(). */", s, n);
    sig_get(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    for (size_t i = 0; i < e->caches.n; i++) {
        const ast_cache *c = &e->caches.v[i];
        if (c->resolved == pk)
            continue;
        const ast_field *f = c->resolved;
        key_parts k;
        unique_key(e, c, &k);
        char *key = key_text(em, &k, f->name.text);
        emit_line(em, "/* Reads the %s with this %s: key %s", n, f->name.text, key);
        emit_line(em, " * holds its %s, then as %s_%s_get(). MEMO_NOT_FOUND if none has it. */",
                  pk->name.text, s, n);
        sig_get_by(sig, sizeof sig, em, e, f, v);
        emit_line(em, "%s;", sig);
        emit_blank(em);
        free(key);
        key_parts_free(&k);
    }

    for (size_t i = 0; i < e->lists.n; i++) {
        const ast_list *l = &e->lists.v[i];
        const ast_field *g = l->group_field;
        key_parts k;
        list_key(e, l, &k);
        char *key = key_text(em, &k, g->name.text);
        emit_line(em, "/* The %ss with this %s, by %s%s, at most %llu: key", n, g->name.text,
                  l->order_field->name.text, l->desc ? " descending" : "",
                  (unsigned long long)(l->limit.set ? l->limit.value : MEMOC_DEFAULT_LIST_LIMIT));
        emit_line(em, " * %s holds their %ss, the rows are", key, pk->name.text);
        emit_line(em, " * read as by %s_%s_get_many(). Overwrites *out; free it with", s, n);
        emit_line(em, " * %s_%s_list_clear(). */", s, n);
        sig_list(sig, sizeof sig, em, e, l, v);
        emit_line(em, "%s;", sig);
        emit_blank(em);
        free(key);
        key_parts_free(&k);
    }

    emit_line(em, "/* Reads the rows of n %ss at once: one MGET, one query for the misses.",
              pk->name.text);
    emit_line(em, " * Found rows only, in the order asked. Overwrites *out. */");
    sig_get_many(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Inserts row into table %s. MEMO_CONFLICT if a unique value is taken.",
              table_of(e));
    if (pk->type != AST_T_TEXT)
        emit_line(em, " * A zero %s is assigned by the database and written back to row->%s.",
                  pk->name.text, pk->name.text);
    describe_invalidation(em, e, AST_ON_INSERT);
    sig_insert(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Updates the row with row->%s. MEMO_NOT_FOUND if none, MEMO_CONFLICT if a",
              pk->name.text);
    emit_line(em, " * unique value is taken.");
    describe_invalidation(em, e, AST_ON_UPDATE);
    sig_update(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Deletes the row with this %s. MEMO_NOT_FOUND if none.", pk->name.text);
    describe_invalidation(em, e, AST_ON_DELETE);
    sig_delete(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    /* the same calls inside a transaction */
    emit_line(em, "/* The calls above inside a transaction (memo_begin): reads go to the");
    emit_line(em, " * database and see the transaction's writes; invalidations wait for");
    emit_line(em, " * memo_commit() and are dropped by memo_rollback(). */");
    v = &variant_tx;
    sig_get(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    for (size_t i = 0; i < e->caches.n; i++)
        if (e->caches.v[i].resolved != pk) {
            sig_get_by(sig, sizeof sig, em, e, e->caches.v[i].resolved, v);
            emit_line(em, "%s;", sig);
        }
    for (size_t i = 0; i < e->lists.n; i++) {
        sig_list(sig, sizeof sig, em, e, &e->lists.v[i], v);
        emit_line(em, "%s;", sig);
    }
    sig_get_many(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    sig_insert(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    sig_update(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    sig_delete(sig, sizeof sig, em, e, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Frees the strings the %s owns and zeroes it. NULL is allowed. */", n);
    emit_line(em, "void %s_%s_clear(%s_%s *row);", s, n, s, n);
    emit_line(em, "/* Clears every row, frees the array, zeroes the list. NULL is allowed. */");
    emit_line(em, "void %s_%s_list_clear(%s_%s_list *list);", s, n, s, n);
    emit_blank(em);
    free(rkey);
    key_parts_free(&rk);
}

void emit_header(emitter *em)
{
    const ast_schema *sc = em->s;
    const char *s = sc->name;
    char guard[128];
    size_t i = 0;
    for (; s[i] && i < sizeof guard - 8; i++)
        guard[i] = (char)toupper((unsigned char)s[i]);
    snprintf(guard + i, sizeof guard - i, "_MEMO_H");

    emit_generated_by(em, "/*", "*/");
    emit_line(em, "#ifndef %s", guard);
    emit_line(em, "#define %s", guard);
    emit_blank(em);
    emit_line(em, "#include <stdbool.h>");
    emit_line(em, "#include <stddef.h>");
    emit_line(em, "#include <stdint.h>");
    emit_blank(em);
    emit_line(em, "#include <memo/memo.h>");
    emit_blank(em);
    /* the ABI of the memo.h memoc was built with */
    emit_line(em, "#if MEMO_ABI != %d", MEMO_ABI);
    emit_line(em, "#error \"%s.h was generated for another memo ABI: regenerate it with this memoc\"",
              s);
    emit_line(em, "#endif");
    emit_blank(em);
    emit_line(em, "#ifdef __cplusplus");
    emit_line(em, "extern \"C\" {");
    emit_line(em, "#endif");
    emit_blank(em);
    emit_line(em, "/* ================================================================ structs */");
    emit_blank(em);
    emit_line(em, "/* Text and json members are owned by the struct: malloc'd by the calls that");
    emit_line(em, " * fill it, freed by its _clear(). Rows given to _insert and _update are only");
    emit_line(em, " * read (the insert writes back an assigned primary key). */");
    emit_blank(em);
    for (size_t k = 0; k < sc->entities.n; k++)
        emit_struct(em, sc->entities.v[k]);
    emit_line(em, "/* ============================================================ descriptors */");
    emit_blank(em);
    for (size_t k = 0; k < sc->entities.n; k++)
        emit_line(em, "extern const memo_entity_desc %s_%s_desc;", s, sc->entities.v[k]->name.text);
    emit_line(em, "extern const memo_schema_desc %s_schema_desc;", s);
    emit_blank(em);
    emit_line(em, "/* ============================================================== functions */");
    emit_blank(em);
    emit_line(em, "/* Every function may be called from any thread sharing the repository.");
    emit_line(em, " * Failures return a negative memo_status; memo_last_error(repo) says more. */");
    emit_blank(em);
    for (size_t k = 0; k < sc->entities.n; k++)
        emit_prototypes(em, sc->entities.v[k]);
    emit_line(em, "#ifdef __cplusplus");
    emit_line(em, "}");
    emit_line(em, "#endif");
    emit_blank(em);
    emit_line(em, "#endif");
}
