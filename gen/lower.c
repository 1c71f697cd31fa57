/* The lowering step: checked AST -> descriptor model (see lower.h). The one
 * place that decides defaults, key layouts, tags, fingerprints and the row
 * layout; memoc prints what it decides and the memo tool runs on it. */
#include "lower.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "names.h"
#include "sha256.h"

/* ----------------------------------------------------------------- types */

const char *model_type_name(memo_type t)
{
    switch (t) {
    case MEMO_INT32:
        return "int32";
    case MEMO_INT64:
        return "int64";
    case MEMO_FLOAT64:
        return "float64";
    case MEMO_BOOL:
        return "bool";
    case MEMO_TEXT:
        return "text";
    case MEMO_TIMESTAMP:
        return "timestamp";
    case MEMO_JSON:
        return "json";
    }
    return "?";
}

const char *model_c_type(memo_type t)
{
    switch (t) {
    case MEMO_INT32:
        return "int32_t";
    case MEMO_INT64:
    case MEMO_TIMESTAMP:
        return "int64_t";
    case MEMO_FLOAT64:
        return "double";
    case MEMO_BOOL:
        return "bool";
    case MEMO_TEXT:
    case MEMO_JSON:
        return "char *";
    }
    return "?";
}

const char *model_c_key_type(memo_type t)
{
    return t == MEMO_TEXT ? "const char *" : model_c_type(t);
}

/* The checker has resolved every type: AST_T_UNKNOWN cannot reach here. */
static memo_type type_of(ast_type t)
{
    switch (t) {
    case AST_T_INT32:
        return MEMO_INT32;
    case AST_T_INT64:
        return MEMO_INT64;
    case AST_T_FLOAT64:
        return MEMO_FLOAT64;
    case AST_T_BOOL:
        return MEMO_BOOL;
    case AST_T_TEXT:
        return MEMO_TEXT;
    case AST_T_TIMESTAMP:
        return MEMO_TIMESTAMP;
    case AST_T_JSON:
    case AST_T_UNKNOWN:
        break;
    }
    return MEMO_JSON;
}

static bool is_pointer(memo_type t)
{
    return t == MEMO_TEXT || t == MEMO_JSON;
}

/* ------------------------------------------------------------ ownership */

static void *own(model *m, void *p)
{
    if (m->nowned == m->capowned) {
        m->capowned = m->capowned ? 2 * m->capowned : 64;
        m->owned = realloc(m->owned, m->capowned * sizeof *m->owned);
        if (!m->owned) {
            fputs("memoc: out of memory\n", stderr);
            exit(2);
        }
    }
    m->owned[m->nowned++] = p;
    return p;
}

static char *own_str(model *m, const char *s)
{
    return own(m, xstrdup(s));
}

static char *own_printf(model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *own_printf(model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = own(m, xmalloc((size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* -------------------------------------------------------- fingerprints */

/* The shape a cached value depends on: the table, and each field's name,
 * type and nullability. The runtime's JSON encoding version is part of it,
 * so a new encoding never reads old values either. Hashed text, so the
 * exact bytes are a compatibility promise: changing them renames every key. */
static char *fingerprint(model *m, const memo_entity_desc *d)
{
    size_t n = strlen("memo-shape-v1\ntable \nkey\n") + strlen(d->table);
    for (unsigned i = 0; i < d->nfields; i++)
        n += 2 * strlen(d->fields[i].name) + 42;
    char *text = xmalloc(n + 1);
    size_t len = (size_t)snprintf(text, n + 1, "memo-shape-v1\ntable %s\n", d->table);
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        len += (size_t)snprintf(text + len, n + 1 - len, "field %s %s%s%s\n", f->name,
                                model_type_name(f->type),
                                f->flags & MEMO_FIELD_NULLABLE ? " nullable" : "",
                                f->flags & MEMO_FIELD_PK ? " pk" : "");
    }
    if (d->npk > 1) { /* the order of a composite key's fields is its shape */
        len += (size_t)snprintf(text + len, n + 1 - len, "key");
        for (unsigned k = 0; k < d->npk; k++)
            len += (size_t)snprintf(text + len, n + 1 - len, " %s",
                                    d->fields[d->pks[k]].name);
        len += (size_t)snprintf(text + len, n + 1 - len, "\n");
    }
    char *fp = own(m, xmalloc(17));
    memop_sha256_hex(text, len, fp, 16);
    free(text);
    return fp;
}

/* A lookup's tag: the entity's fingerprint and what the lookup is (printf
 * format). Hashed text, like the fingerprint's. v2: a key holds its own
 * lease (memo 0.3), so no key is shared with a memo that keeps leases in
 * keys of their own, whose fills the other's writes would not refuse. */
static void set_tag(model *m, const memo_entity_desc *d, memo_key_desc *k,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_tag(model *m, const memo_entity_desc *d, memo_key_desc *k,
                    const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t n = strlen(d->fingerprint) + strlen(what) + sizeof "memo-key-v2  ";
    char *text = xmalloc(n);
    snprintf(text, n, "memo-key-v2 %s %s", d->fingerprint, what);
    char *tag = own(m, xmalloc(9));
    memop_sha256_hex(text, strlen(text), tag, 8);
    free(text);
    k->tag = tag;
}

/* Splits a key template at its one {placeholder} (the checker made sure
 * there is exactly one, naming the lookup's field). */
static void set_template(model *m, memo_key_desc *k, const char *t)
{
    const char *open = strchr(t, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    if (!open || !close) {
        k->head = own_str(m, t);
        k->tail = own_str(m, "");
        return;
    }
    k->head = own(m, xstrndup(t, (size_t)(open - t)));
    k->tail = own_str(m, close + 1);
}

/* --------------------------------------------------------------- layout */

/* The generated struct's layout, as a C compiler gives it (see lower.h). */
static void layout(lowered_entity *me)
{
    memo_field_desc *fields = (memo_field_desc *)me->desc.fields;
    size_t off = 0, most = 1;
    for (unsigned i = 0; i < me->desc.nfields; i++) {
        size_t sz, al;
        switch (fields[i].type) {
        case MEMO_INT32:
            sz = sizeof(int32_t);
            al = alignof(int32_t);
            break;
        case MEMO_BOOL:
            sz = sizeof(bool);
            al = alignof(bool);
            break;
        case MEMO_FLOAT64:
            sz = sizeof(double);
            al = alignof(double);
            break;
        case MEMO_TEXT:
        case MEMO_JSON:
            sz = sizeof(char *);
            al = alignof(char *);
            break;
        case MEMO_INT64:
        case MEMO_TIMESTAMP:
        default:
            sz = sizeof(int64_t);
            al = alignof(int64_t);
            break;
        }
        off = (off + al - 1) / al * al;
        most = al > most ? al : most;
        fields[i].offset = off;
        off += sz;
        if (me->fields[i].null_flag) {
            off = (off + alignof(bool) - 1) / alignof(bool) * alignof(bool);
            fields[i].null_offset = off;
            off += sizeof(bool);
        }
    }
    me->desc.size = (off + most - 1) / most * most;
}

/* -------------------------------------------------------------- entities */

typedef struct lowering {
    model *m;
    const ast_schema *s;
    name_map index; /* (ast_entity *, "") -> its lowered_entity */
} lowering;

static size_t index_of(const lowering *lw, const ast_entity *e)
{
    return (size_t)((lowered_entity *)name_map_get(&lw->index, e, "") - lw->m->entities);
}

static unsigned field_index(const ast_entity *e, const ast_field *f)
{
    return (unsigned)(f - e->fields.v);
}

/* `cache [FIELD] ... ttl D [jitter P%] [negative D]`: what is not written is
 * 0, which the runtime reads as the repository's default. */
static void lower_lookup(const ast_cache *c, memo_lookup_desc *out)
{
    out->ttl_ms = c->ttl.value;
    out->negative_ttl_ms = c->negative.set ? c->negative.value : 0;
    out->jitter_pct = c->jitter.set ? (unsigned)c->jitter.value : 0;
    out->near_entries = c->near.set ? (uint32_t)c->near.value : 0;
    out->near_ttl_ms = c->near_ttl.set ? c->near_ttl.value : 0;
}

static void lower_fields(const lowering *lw, const ast_entity *e, lowered_entity *me)
{
    model *m = lw->m;
    memo_field_desc *fields = own(m, xcalloc(e->fields.n, sizeof *fields));
    me->fields = own(m, xcalloc(e->fields.n, sizeof *me->fields));
    for (size_t i = 0; i < e->fields.n; i++) {
        const ast_field *f = &e->fields.v[i];
        fields[i].name = own_str(m, f->name.text);
        fields[i].type = type_of(f->type);
        fields[i].flags = (f->flags & AST_F_PRIMARY ? MEMO_FIELD_PK : 0) |
                          (f->flags & AST_F_UNIQUE ? MEMO_FIELD_UNIQUE : 0) |
                          (f->flags & AST_F_NULLABLE ? MEMO_FIELD_NULLABLE : 0) |
                          (f->flags & AST_F_VERSION ? MEMO_FIELD_VERSION : 0);
        me->fields[i].null_flag =
            (fields[i].flags & MEMO_FIELD_NULLABLE) && !is_pointer(fields[i].type);
        me->fields[i].ref = f->ref ? (long)index_of(lw, f->ref) : -1;
    }
    me->desc.fields = fields;
    me->desc.nfields = (unsigned)e->fields.n;
    layout(me);
}

/* The primary key's fields and where each is in a key value: one field is
 * a value of its C type (offset 0); several, a struct of them in key order
 * (NAME_ENTITY_key), laid out as the C compiler does (the generated
 * descriptor takes offsetof, this is for the memo tool). */
static void lower_key(model *m, const ast_entity *e, lowered_entity *me)
{
    memo_entity_desc *d = &me->desc;
    unsigned *pks = own(m, xcalloc(e->npk + 1, sizeof *pks));
    size_t *offsets = own(m, xcalloc(e->npk + 1, sizeof *offsets));
    size_t off = 0, most = 1;
    for (size_t k = 0; k < e->npk; k++) {
        pks[k] = field_index(e, e->pks[k]);
        memo_type t = d->fields[pks[k]].type;
        size_t sz = t == MEMO_INT32  ? sizeof(int32_t)
                    : t == MEMO_TEXT ? sizeof(const char *)
                                     : sizeof(int64_t);
        size_t al = t == MEMO_INT32  ? alignof(int32_t)
                    : t == MEMO_TEXT ? alignof(const char *)
                                     : alignof(int64_t);
        off = (off + al - 1) / al * al;
        offsets[k] = off;
        off += sz;
        if (al > most)
            most = al;
        ((memo_field_desc *)d->fields)[pks[k]].flags |= MEMO_FIELD_PK;
    }
    d->npk = (unsigned)e->npk;
    d->pks = pks;
    d->pk_offsets = offsets;
    d->key_size = (off + most - 1) / most * most;
}

static void lower_entity(const lowering *lw, const ast_entity *e, lowered_entity *me)
{
    model *m = lw->m;
    memo_entity_desc *d = &me->desc;
    d->abi = MEMO_ABI;
    d->schema = m->schema.name;
    d->name = own_str(m, e->name.text);
    d->table = own_str(m, e->table.text ? e->table.text : e->name.text);
    me->c_name = own_printf(m, "%s_%s", lw->s->name, e->name.text);
    lower_fields(lw, e, me);
    d->pk = field_index(e, e->pk);
    lower_key(m, e, me);
    d->fingerprint = fingerprint(m, d);

    /* The row, by primary key: always there, `cache` line or not. */
    d->row.field = d->pk;
    d->row.key.head = own_printf(m, "%s:", e->name.text);
    d->row.key.tail = own_str(m, "");
    set_tag(m, d, &d->row.key, "row");

    memo_lookup_desc *uniques = own(m, xcalloc(e->caches.n + 1, sizeof *uniques));
    for (size_t i = 0; i < e->caches.n; i++) {
        const ast_cache *c = &e->caches.v[i];
        memo_lookup_desc *u;
        if (c->resolved == e->pk) {
            u = &d->row;
        } else {
            u = &uniques[d->nuniques++];
            u->field = field_index(e, c->resolved);
            u->key.head = own_printf(m, "%s:%s=", e->name.text, c->resolved->name.text);
            u->key.tail = own_str(m, "");
            set_tag(m, d, &u->key, "unique %s", c->resolved->name.text);
        }
        if (c->key.text)
            set_template(m, &u->key, c->key.text);
        lower_lookup(c, u);
    }
    d->uniques = uniques;

    memo_list_desc *lists = own(m, xcalloc(e->lists.n + 1, sizeof *lists));
    for (size_t i = 0; i < e->lists.n; i++) {
        const ast_list *l = &e->lists.v[i];
        memo_list_desc *ld = &lists[i];
        ld->name = own_str(m, l->name.text);
        ld->group = field_index(e, l->group_field);
        ld->order = field_index(e, l->order_field);
        ld->descending = l->desc;
        ld->limit = (uint32_t)(l->limit.set ? l->limit.value : MEMOC_LIST_LIMIT);
        ld->ttl_ms = l->ttl.value;
        ld->jitter_pct = l->jitter.set ? (unsigned)l->jitter.value : 0;
        ld->key.head = own_printf(m, "%s:%s=", e->name.text, l->name.text);
        ld->key.tail = own_str(m, "");
        /* the limit as written (0: none), as keys have always been tagged;
         * "more": the value holds the key past the limit (0.3) */
        set_tag(m, d, &ld->key, "list %s group %s order %s %s limit %llu more",
                l->name.text, l->group_field->name.text, l->order_field->name.text,
                l->desc ? "desc" : "asc",
                (unsigned long long)(l->limit.set ? l->limit.value : 0));
    }
    d->lists = lists;
    d->nlists = (unsigned)e->lists.n;
}

/* Rules point at other entities: lowered once all of them exist. */
static void lower_rules(const lowering *lw, const ast_entity *e, lowered_entity *me)
{
    model *m = lw->m;
    memo_rule_desc *rules = own(m, xcalloc(e->rules.n + 1, sizeof *rules));
    for (size_t i = 0; i < e->rules.n; i++) {
        const ast_rule *r = &e->rules.v[i];
        rules[i].events = (r->events & AST_ON_INSERT ? MEMO_ON_INSERT : 0) |
                          (r->events & AST_ON_UPDATE ? MEMO_ON_UPDATE : 0) |
                          (r->events & AST_ON_DELETE ? MEMO_ON_DELETE : 0);
        rules[i].field = field_index(e, r->resolved);
        unsigned *fields = own(m, xcalloc(1 + r->more.n, sizeof *fields));
        fields[0] = rules[i].field;
        for (size_t k = 0; k < r->more.n; k++)
            fields[k + 1] = field_index(e, r->more_resolved[k]);
        rules[i].nfields = (unsigned)(1 + r->more.n);
        rules[i].fields = fields;
        rules[i].target = &m->entities[index_of(lw, r->target_entity)].desc;
        rules[i].list =
            r->target_list ? (int)(r->target_list - r->target_entity->lists.v) : -1;
    }
    me->desc.rules = rules;
    me->desc.nrules = (unsigned)e->rules.n;
}

model *model_build(const ast_schema *s)
{
    model *m = xcalloc(1, sizeof *m);
    m->n = s->entities.n;
    m->entities = xcalloc(m->n + 1, sizeof *m->entities);
    const memo_entity_desc **pointers = own(m, xcalloc(m->n + 1, sizeof *pointers));
    m->schema.abi = MEMO_ABI;
    m->schema.name = own_str(m, s->name);
    m->schema.entities = pointers;
    m->schema.nentities = (unsigned)m->n;

    /* The AST keeps no entity indexes, and a search per reference would make
     * lowering quadratic: a map from (entity, "") to its lowered_entity. */
    lowering lw = {m, s, {0}};
    for (size_t k = 0; k < m->n; k++)
        name_map_add(&lw.index, s->entities.v[k], "", &m->entities[k]);

    for (size_t k = 0; k < m->n; k++) {
        lower_entity(&lw, s->entities.v[k], &m->entities[k]);
        pointers[k] = &m->entities[k].desc;
    }
    for (size_t k = 0; k < m->n; k++)
        lower_rules(&lw, s->entities.v[k], &m->entities[k]);
    name_map_free(&lw.index);
    return m;
}

const memo_schema_desc *model_schema(const model *m)
{
    return &m->schema;
}

const memo_entity_desc *model_entity(const model *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->entities[i].desc.name, name) == 0)
            return &m->entities[i].desc;
    return NULL;
}

_Static_assert(offsetof(lowered_entity, desc) == 0, "a descriptor is its lowered_entity");

size_t model_index(const model *m, const memo_entity_desc *d)
{
    return (size_t)((const lowered_entity *)(const void *)d - m->entities);
}

void model_free(model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->entities);
    free(m);
}
