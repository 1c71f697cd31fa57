/* blog.h: structs, descriptors, and one documented prototype per operation,
 * printed from the model (lower.h). What a write invalidates is described
 * from the same descriptor fields the runtime reads to invalidate. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "names.h"

/* "blog:{user:<id>}:9f2c1ab0", for the comments. */
static char *key_text(const emitter *em, const memo_key_desc *k, const char *value)
{
    const char *s = em->m->schema.name;
    size_t n = strlen(s) + strlen(k->head) + strlen(value) + strlen(k->tail) + 32;
    char *t = xmalloc(n);
    snprintf(t, n, "%s:{%s<%s>%s}:%s", s, k->head, value, k->tail, k->tag);
    return t;
}

/* snprintf into out, upper-cased: the macros the header defines. */
static void upper_printf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void upper_printf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* The header's include guard, <SCHEMA>_MEMO_H. */
static void guard_name(char *out, size_t size, const char *schema)
{
    upper_printf(out, size, "%.100s_MEMO_H", schema);
}

/* The bit macros of update_fields, <SCHEMA>_<ENTITY>_<FIELD> upper-cased:
 * bad[k][i] when that name would be defined twice (user.role_id and
 * user_role.id), name a field (a struct member or a parameter), or be
 * memo.h's. Those are left out, and the header says how to write the bit:
 * schemas that compiled before the macros existed still compile. */
typedef struct field_bits {
    bool **bad;  /* [entity][field] */
    bool *flags; /* what they point into */
} field_bits;

static void field_bits_find(const model *m, field_bits *fb)
{
    char guard[128];
    guard_name(guard, sizeof guard, m->schema.name);
    size_t total = 0;
    for (size_t k = 0; k < m->n; k++)
        total += m->entities[k].desc.nfields;
    char **names = xcalloc(total + 1, sizeof *names);
    bool *flags = xcalloc(total + 1, sizeof *flags);
    fb->bad = xcalloc(m->n + 1, sizeof *fb->bad);
    fb->flags = flags;
    name_map macros = {0};
    size_t at = 0;
    for (size_t k = 0; k < m->n; k++) {
        const lowered_entity *me = &m->entities[k];
        fb->bad[k] = flags + at;
        for (unsigned i = 0; i < me->desc.nfields; i++, at++) {
            char name[512];
            upper_printf(name, sizeof name, "%s_%s", me->c_name, me->desc.fields[i].name);
            names[at] = xstrdup(name);
            bool *prev = name_map_add(&macros, NULL, names[at], &flags[at]);
            if (prev)
                *prev = flags[at] = true;
            if (strncmp(name, "MEMO_", 5) == 0 || strcmp(name, guard) == 0)
                flags[at] = true;
        }
    }
    for (size_t k = 0; k < m->n; k++) {
        const lowered_entity *me = &m->entities[k];
        for (unsigned i = 0; i < me->desc.nfields; i++) {
            char flag[128];
            snprintf(flag, sizeof flag, "%s_is_null", me->desc.fields[i].name);
            bool *hit = name_map_get(&macros, NULL, me->desc.fields[i].name);
            if (hit)
                *hit = true;
            if ((hit = name_map_get(&macros, NULL, flag)))
                *hit = true;
        }
    }
    name_map_free(&macros);
    for (size_t i = 0; i < total; i++)
        free(names[i]);
    free(names);
}

static void field_bits_free(field_bits *fb)
{
    free(fb->flags);
    free(fb->bad);
}

static void emit_struct(emitter *em, const lowered_entity *me, const bool *bad)
{
    const memo_entity_desc *d = &me->desc;
    const char *c = me->c_name;
    emit_line(em, "/* entity %s, table %s */", d->name, d->table);
    emit_line(em, "typedef struct %s {", c);
    em->indent++;
    /* Member comments start in one column. */
    int width = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        int w = (int)(strlen(model_c_type(f->type)) + strlen(f->name) + 2);
        if (me->fields[i].null_flag) {
            int wn = (int)strlen(f->name) + 14; /* "bool x_is_null;" */
            if (wn > w)
                w = wn;
        }
        if (w > width)
            width = w;
    }
    /* The members in field order, each nullable scalar's flag after it: the
     * layout lower.c computes for the memo tool (the model test checks). */
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        const char *t = model_c_type(f->type);
        const char *sep = t[strlen(t) - 1] == '*' ? "" : " ";
        char note[160] = "";
        size_t len = 0;
        if (f->flags & MEMO_FIELD_PK)
            len += (size_t)snprintf(note + len, sizeof note - len, ", primary key");
        if (f->flags & MEMO_FIELD_UNIQUE)
            len += (size_t)snprintf(note + len, sizeof note - len, ", unique");
        if (f->flags & MEMO_FIELD_VERSION)
            len += (size_t)snprintf(note + len, sizeof note - len, ", version");
        if (f->flags & MEMO_FIELD_NULLABLE)
            len += (size_t)snprintf(note + len, sizeof note - len, ", nullable%s",
                                    me->fields[i].null_flag ? "" : " (NULL)");
        if (me->fields[i].ref >= 0)
            len += (size_t)snprintf(note + len, sizeof note - len, ", references %s",
                                    em->m->entities[me->fields[i].ref].desc.name);
        if (f->type == MEMO_TIMESTAMP)
            snprintf(note + len, sizeof note - len, ", microseconds since 1970 UTC");
        else if (f->type == MEMO_JSON)
            snprintf(note + len, sizeof note - len, ", JSON text");
        char decl[256];
        snprintf(decl, sizeof decl, "%s%s%s;", t, sep, f->name);
        emit_line(em, "%-*s /* %s%s */", width, decl, model_type_name(f->type), note);
        if (me->fields[i].null_flag) {
            snprintf(decl, sizeof decl, "bool %s_is_null;", f->name);
            emit_line(em, "%-*s /* true: %s is SQL NULL */", width, decl, f->name);
        }
    }
    em->indent--;
    emit_line(em, "} %s;", c);
    emit_blank(em);
    emit_line(em, "typedef struct %s_list {", c);
    emit_line(em, "    %s *items;", c);
    emit_line(em, "    size_t len;");
    emit_line(em, "    bool more; /* a list or a page: more rows follow */");
    emit_line(em, "} %s_list;", c);
    emit_blank(em);
    if (d->npk > 1) {
        emit_line(em, "/* The primary key of a %s: _get and _delete take its fields,",
                  d->name);
        emit_line(em, " * _get_many an array of it. */");
        emit_line(em, "typedef struct %s_key {", c);
        for (unsigned k = 0; k < d->npk; k++) {
            const memo_field_desc *f = &d->fields[d->pks[k]];
            const char *t = model_c_key_type(f->type);
            emit_line(em, "    %s%s%s;", t, t[strlen(t) - 1] == '*' ? "" : " ", f->name);
        }
        emit_line(em, "} %s_key;", c);
        emit_blank(em);
    }
    /* a bit per field, for update_fields: the field's index */
    emit_line(em, "/* Fields of %s_update_fields()' mask: one bit each, ORed. */", c);
    for (unsigned i = 0; i < d->nfields; i++) {
        char name[512];
        upper_printf(name, sizeof name, "%s_%s", c, d->fields[i].name);
        if (bad[i])
            emit_line(em,
                      "/* %s is not defined (another field's bit, a field or the "
                      "guard has the name): (UINT64_C(1) << %u) */",
                      name, i);
        else
            emit_line(em, "#define %s (UINT64_C(1) << %u)", name, i);
    }
    emit_blank(em);
}

/* ---------------------------------------------------------- invalidation */

/* What a write invalidates, for its comment. The runtime decides it in
 * memop_inval_collect (runtime/src/invalidate.c) from these descriptor
 * fields; this says the same, case for case, so change the two together:
 *   the row key (a value or a lease);
 *   each unique lookup whose value changed: the keys of the old and the new
 *     value;
 *   each list: the keys of the old and the new group when the group or
 *     the order field changed, and their counts when the group changed;
 *   each rule of the write's event: the target's key of the old and the
 *     new value of the rule's field (a list's with its count);
 * a NULL value is in no lookup and no list, so it has no key. */

/* The values a write has: an insert's new row, a delete's old one, or
 * both for an update. */
static const char *values_of(unsigned event)
{
    return event == MEMO_ON_UPDATE ? "the old and the new" : "its";
}

/* Adds f's name to the " or "-joined list in names (size bytes) if f is
 * nullable and not there yet: the fields whose NULL has no key. */
static void note_nullable(char *names, size_t size, const memo_field_desc *f)
{
    if (!(f->flags & MEMO_FIELD_NULLABLE))
        return;
    size_t n = strlen(f->name);
    for (const char *p = names; (p = strstr(p, f->name)) != NULL; p += n)
        if ((p == names || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return;
    size_t len = strlen(names);
    snprintf(names + len, size - len, "%s%s", len ? " or " : "", f->name);
}

static void describe_invalidation(emitter *em, const lowered_entity *me, unsigned event)
{
    const memo_entity_desc *d = &me->desc;
    const char *pk = d->npk > 1 ? "key" : d->fields[d->pk].name;
    char nullable[MEMO_MAX_FIELDS * 68] = ""; /* names of at most 63 bytes, " or " */
    emit_line(em, " * After COMMIT, one pipeline deletes (a key holding a lease too):");
    if (event == MEMO_ON_INSERT)
        emit_line(em, " *   the row of the new %s (a negative entry),", pk);
    else
        emit_line(em, " *   the row,");

    for (unsigned i = 0; i < d->nuniques; i++) {
        const memo_field_desc *f = &d->fields[d->uniques[i].field];
        note_nullable(nullable, sizeof nullable, f);
        if (event == MEMO_ON_UPDATE)
            emit_line(em, " *   the %s lookup of the old and the new %s, if %s changed,",
                      f->name, f->name, f->name);
        else
            emit_line(em, " *   the %s lookup of its %s%s,", f->name, f->name,
                      event == MEMO_ON_INSERT ? " (a negative entry)" : "");
    }

    for (unsigned i = 0; i < d->nlists; i++) {
        const memo_list_desc *l = &d->lists[i];
        const memo_field_desc *g = &d->fields[l->group], *o = &d->fields[l->order];
        note_nullable(nullable, sizeof nullable, g);
        bool gk = g->flags & MEMO_FIELD_PK, ok = o->flags & MEMO_FIELD_PK;
        if (event == MEMO_ON_UPDATE && gk && (ok || l->order == l->group))
            continue; /* an update keeps the key: nothing of the list moves */
        if (event != MEMO_ON_UPDATE)
            emit_line(em, " *   %s_%s() and its count, of its %s,", me->c_name, l->name,
                      g->name);
        else if (gk)
            emit_line(em, " *   %s_%s() of its %s, if %s changed,", me->c_name, l->name,
                      g->name, o->name);
        else if (l->order == l->group || (d->fields[l->order].flags & MEMO_FIELD_PK))
            /* an update keeps the primary key: only the group can move */
            emit_line(
                em,
                " *   %s_%s() and its count, of the old and the new %s, if %s changed,",
                me->c_name, l->name, g->name, g->name);
        else
            emit_line(em,
                      " *   %s_%s() of the old and the new %s, if %s or %s changed (and"
                      " its count, if %s did),",
                      me->c_name, l->name, g->name, g->name, o->name, g->name);
    }

    for (unsigned i = 0; i < d->nrules; i++) {
        const memo_rule_desc *r = &d->rules[i];
        if (!(r->events & event))
            continue;
        const lowered_entity *t = &em->m->entities[model_index(em->m, r->target)];
        const memo_field_desc *f = &d->fields[r->field];
        note_nullable(nullable, sizeof nullable, f);
        if (r->list >= 0)
            emit_line(em, " *   %s_%s() and its count, of %s %s (rule),", t->c_name,
                      t->desc.lists[r->list].name, values_of(event), f->name);
        else {
            char names[8 * 70] = "";
            for (unsigned k = 0, n = 0; k < r->nfields; k++)
                n += (unsigned)snprintf(names + n, sizeof names - n, "%s%s",
                                        k ? ", " : "", d->fields[r->fields[k]].name);
            emit_line(em, " *   the %s row of %s %s (rule),", t->desc.name,
                      values_of(event), names);
        }
    }
    if (!nullable[0]) {
        emit_line(em, " * so no reader sees the old values once this returns. */");
        return;
    }
    emit_line(em, " * so no reader sees the old values once this returns.");
    emit_line(em, " * A NULL %s is in no lookup or list, so it has no key to delete. */",
              nullable);
}

/* -------------------------------------------------------------- prototypes */

static void emit_prototypes(emitter *em, const lowered_entity *me)
{
    const memo_entity_desc *d = &me->desc;
    const char *c = me->c_name;
    const memo_field_desc *pk = &d->fields[d->pk];
    const variant *v = &variant_repo;
    char sig[1024];
    /* the key's name(s): "id", or "org_id, user_id" */
    char pkn[8 * 70] = "", keyv[8 * 72] = "";
    for (unsigned k = 0, a = 0, b = 0; k < d->npk; k++) {
        const char *n = d->fields[d->pks[k]].name;
        a += (unsigned)snprintf(pkn + a, sizeof pkn - a, "%s%s", k ? ", " : "", n);
        b += (unsigned)snprintf(keyv + b, sizeof keyv - b, "%s%s", k ? ">,<" : "", n);
    }
    char *rkey = key_text(em, &d->row.key, keyv);
    /* "ids", or "keys"; "row->id", or "the row's key" */
    char pks[80], rowkey[600];
    if (d->npk > 1) {
        snprintf(pks, sizeof pks, "keys");
        snprintf(rowkey, sizeof rowkey, "the key (%s) of row", pkn);
    } else {
        snprintf(pks, sizeof pks, "%.70ss", pkn);
        snprintf(rowkey, sizeof rowkey, "row->%s", pkn);
    }

    emit_line(em, "/* ---- %s ---- */", d->name);
    emit_blank(em);
    emit_line(em, "/* Reads the %s with this %s: key %s,", d->name, pkn, rkey);
    emit_line(em, " * else table %s. MEMO_NOT_FOUND if there is none (remembered too).",
              d->table);
    if (d->row.near_entries) {
        /* `near N [ttl D]` */
        char age[64] = "";
        if (d->row.near_ttl_ms)
            snprintf(age, sizeof age, " (each %llu ms at most)",
                     (unsigned long long)d->row.near_ttl_ms);
        emit_line(em, " * Near-cached: up to %u rows are kept in this process%s,",
                  (unsigned)d->row.near_entries, age);
        emit_line(em, " * dropped as soon as Redis says any process changed them;");
        emit_line(em, " * this process's own writes drop theirs before they return.");
    }
    emit_line(em, " * Fills *out; the caller frees it with %s_clear(). */", c);
    sig_get(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    for (unsigned i = 0; i < d->nuniques; i++) {
        const memo_field_desc *f = &d->fields[d->uniques[i].field];
        char *key = key_text(em, &d->uniques[i].key, f->name);
        emit_line(em, "/* Reads the %s with this %s: key %s", d->name, f->name, key);
        emit_line(em,
                  " * holds its %s, then as %s_get(). MEMO_NOT_FOUND if none has it. */",
                  pkn, c);
        sig_get_by(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
        emit_blank(em);
        free(key);
    }

    for (unsigned i = 0; i < d->nlists; i++) {
        const memo_list_desc *l = &d->lists[i];
        const memo_field_desc *g = &d->fields[l->group];
        char *key = key_text(em, &l->key, g->name);
        emit_line(em, "/* The %ss with this %s, by %s%s, at most %lu: key", d->name,
                  g->name, d->fields[l->order].name, l->descending ? " descending" : "",
                  (unsigned long)l->limit);
        emit_line(em, " * %s holds their %s (and one more,", key, pks);
        emit_line(
            em, " * which sets out->more when more rows match), the rows are read as by");
        emit_line(em,
                  " * %s_get_many(). Overwrites *out; free it with %s_list_clear(). */",
                  c, c);
        sig_list(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
        emit_blank(em);
        emit_line(em,
                  "/* How many %ss have this %s, past the limit too: cached in the key",
                  d->name, g->name);
        emit_line(em,
                  " * above and \":n\", deleted with the list when a write moves a row");
        emit_line(em, " * into or out of the group. Sets *n. */");
        sig_list_count(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
        emit_blank(em);
        emit_line(em,
                  "/* The next page: the n (1 to 10000) %ss with this %s after *last in",
                  d->name, g->name);
        emit_line(em,
                  " * the order above, read from PostgreSQL (keyset pagination: no row");
        emit_line(em,
                  " * twice, none skipped), the rows as by %s_get_many(); out->more says",
                  c);
        emit_line(em, " * whether others follow. Overwrites *out. */");
        sig_list_after(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
        emit_blank(em);
        free(key);
    }

    emit_line(em,
              "/* Reads the rows of n %s at once: one MGET, one query for the misses.",
              pks);
    if (d->row.near_entries)
        emit_line(em,
                  " * Rows in the near cache come from it (the MGET asks for the rest).");
    emit_line(em, " * Found rows only, in the order asked. Overwrites *out. */");
    sig_get_many(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    const memo_field_desc *ver = NULL, *other = pk;
    for (unsigned i = 0; i < d->nfields; i++) {
        if (d->fields[i].flags & MEMO_FIELD_VERSION)
            ver = &d->fields[i];
        else if (other == pk && i != d->pk)
            other = &d->fields[i];
    }
    emit_line(em,
              "/* Inserts row into table %s. MEMO_CONFLICT if a unique value is taken.",
              d->table);
    if (pk->type != MEMO_TEXT && d->npk == 1)
        emit_line(em,
                  " * A zero %s is assigned by the database and written back to row->%s.",
                  pkn, pkn);
    if (ver)
        emit_line(em, " * The stored %s and row->%s are set to 1.", ver->name, ver->name);
    describe_invalidation(em, me, MEMO_ON_INSERT);
    sig_insert(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em,
              "/* Updates the row with %s. MEMO_NOT_FOUND if none, MEMO_CONFLICT if a",
              rowkey);
    emit_line(em, " * unique value is taken%s", ver ? "," : ".");
    if (ver) {
        emit_line(em, " * or if the stored %s is not row->%s (another write changed the",
                  ver->name, ver->name);
        emit_line(em, " * row since it was read: nothing is written). Then the stored %s",
                  ver->name);
        emit_line(em, " * and row->%s are one more.", ver->name);
    }
    describe_invalidation(em, me, MEMO_ON_UPDATE);
    sig_update(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* As %s_update(), writing only the fields whose bits are in mask", c);
    char uc[256];
    upper_printf(uc, sizeof uc, "%s", c);
    emit_line(em, " * (the %s_<FIELD> macros above, ORed); the others keep their", uc);
    emit_line(em,
              " * stored values, whatever row holds. Only what the written fields move");
    if (other == pk)
        emit_line(em, " * is invalidated. No field here but the key%s: every mask is",
                  ver ? " and the version" : "");
    else
        emit_line(em,
                  " * is invalidated. A mask with no field to write, or with bits past");
    emit_line(em, " * the fields, is MEMO_ERR_ARG. */");
    sig_update_fields(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Inserts row, or updates the row with %s if there is one: one",
              rowkey);
    emit_line(em,
              " * statement (INSERT ... ON CONFLICT (%s) DO UPDATE). The key is written",
              pkn);
    if (d->npk == 1 && pk->type != MEMO_TEXT)
        emit_line(em,
                  " * as given, 0 too (unlike _insert), and moves no identity sequence.");
    else
        emit_line(em, " * as given.");
    emit_line(em, " * MEMO_CONFLICT if another unique value is taken.");
    if (ver)
        emit_line(em, " * %s: 1 for an insert, compared as by _update otherwise.",
                  ver->name);
    emit_line(em, " * Invalidates as the insert or the update it was (above). */");
    sig_upsert(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Deletes the row with this %s. MEMO_NOT_FOUND if none.", pkn);
    describe_invalidation(em, me, MEMO_ON_DELETE);
    sig_delete(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    /* the same calls inside a transaction */
    emit_line(em,
              "/* The calls above inside a transaction (memo_begin): reads go to the");
    emit_line(em, " * database and see the transaction's writes; invalidations wait for");
    emit_line(em, " * memo_commit() and are dropped by memo_rollback(). */");
    v = &variant_tx;
    sig_get(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    for (unsigned i = 0; i < d->nuniques; i++) {
        sig_get_by(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
    }
    for (unsigned i = 0; i < d->nlists; i++) {
        sig_list(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
        sig_list_count(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
        sig_list_after(sig, sizeof sig, me, i, v);
        emit_line(em, "%s;", sig);
    }
    sig_get_many(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    sig_insert(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    sig_update(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    sig_update_fields(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    sig_upsert(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    sig_delete(sig, sizeof sig, me, v);
    emit_line(em, "%s;", sig);
    emit_blank(em);

    emit_line(em, "/* Frees the strings the %s owns and zeroes it. NULL is allowed. */",
              d->name);
    emit_line(em, "void %s_clear(%s *row);", c, c);
    emit_line(
        em, "/* Clears every row, frees the array, zeroes the list. NULL is allowed. */");
    emit_line(em, "void %s_list_clear(%s_list *list);", c, c);
    emit_blank(em);
    free(rkey);
}

void emit_header(emitter *em)
{
    const model *m = em->m;
    const char *s = m->schema.name;
    char guard[128];
    guard_name(guard, sizeof guard, s);

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
    emit_line(em,
              "#error \"%s.h was generated for another memo ABI: regenerate it with this "
              "memoc\"",
              s);
    emit_line(em, "#endif");
    emit_blank(em);
    emit_line(em, "#ifdef __cplusplus");
    emit_line(em, "extern \"C\" {");
    emit_line(em, "#endif");
    emit_blank(em);
    emit_line(
        em,
        "/* ================================================================ structs */");
    emit_blank(em);
    emit_line(
        em,
        "/* Text and json members are owned by the struct: malloc'd by the calls that");
    emit_line(
        em, " * fill it, freed by its _clear(). Rows given to the writes are only read");
    emit_line(em,
              " * (an insert writes back an assigned primary key, and every write of an");
    emit_line(em, " * entity with a version field the new version). */");
    emit_blank(em);
    field_bits fb;
    field_bits_find(m, &fb);
    for (size_t k = 0; k < m->n; k++)
        emit_struct(em, &m->entities[k], fb.bad[k]);
    field_bits_free(&fb);
    emit_line(
        em,
        "/* ============================================================ descriptors */");
    emit_blank(em);
    for (size_t k = 0; k < m->n; k++)
        emit_line(em, "extern const memo_entity_desc %s_desc;", m->entities[k].c_name);
    emit_line(em, "extern const memo_schema_desc %s_schema_desc;", s);
    emit_blank(em);
    /* what memo watch needs of the database, and why */
    emit_line(em,
              "/* Writes made outside memo: `memo watch` follows the publication memo_%s",
              s);
    emit_line(em, " * (%s.sql creates it). It invalidates an update from the row's old",
              s);
    emit_line(em,
              " * values too, which PostgreSQL logs only under REPLICA IDENTITY FULL;");
    emit_line(em, " * %s.sql sets it on the tables that need it:", s);
    bool any = false;
    for (size_t k = 0; k < m->n; k++) {
        const memo_entity_desc *e = &m->entities[k].desc;
        char why[1024];
        if (old_values_needed(e, why, sizeof why)) {
            emit_line(em, " *   %s: old %s", e->table, why);
            any = true;
        }
    }
    if (!any)
        emit_line(em, " *   none: every key of this schema is a primary key.");
    emit_line(em,
              " * The others log their primary key, which is all their keys need. */");
    emit_blank(em);
    emit_line(
        em,
        "/* ============================================================== functions */");
    emit_blank(em);
    emit_line(em,
              "/* Every function may be called from any thread sharing the repository.");
    emit_line(
        em,
        " * Failures return a negative memo_status; memo_last_error(repo) says more. */");
    emit_blank(em);
    for (size_t k = 0; k < m->n; k++)
        emit_prototypes(em, &m->entities[k]);
    emit_line(em, "#ifdef __cplusplus");
    emit_line(em, "}");
    emit_line(em, "#endif");
    emit_blank(em);
    emit_line(em, "#endif");
}
