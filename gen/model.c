#include "model.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

struct model {
    memo_schema_desc schema;
    memo_entity_desc *entities;
    const memo_entity_desc **pointers;
    size_t n;
    /* every string and array the descriptors point to */
    void **owned;
    size_t nowned, capowned;
};

static void *own(model *m, void *p)
{
    if (m->nowned == m->capowned) {
        m->capowned = m->capowned ? 2 * m->capowned : 64;
        m->owned = realloc(m->owned, m->capowned * sizeof *m->owned);
        if (!m->owned) {
            fputs("memo: out of memory\n", stderr);
            exit(2);
        }
    }
    m->owned[m->nowned++] = p;
    return p;
}

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

static void key_of(model *m, key_parts *k, memo_key_desc *out)
{
    out->head = own(m, k->head);
    out->tail = own(m, k->tail);
    out->tag = own(m, xstrdup(k->tag));
}

/* A layout like a C compiler's for the generated struct's members. */
static void layout(const ast_entity *e, memo_field_desc *fields, size_t *size)
{
    size_t off = 0;
    for (size_t i = 0; i < e->fields.n; i++) {
        const ast_field *f = &e->fields.v[i];
        memo_field_desc *d = &fields[i];
        size_t sz, al;
        switch (f->type) {
        case AST_T_INT32:
            sz = al = sizeof(int32_t);
            break;
        case AST_T_BOOL:
            sz = al = sizeof(bool);
            break;
        case AST_T_TEXT:
        case AST_T_JSON:
            sz = sizeof(char *);
            al = alignof(char *);
            break;
        default:
            sz = al = sizeof(int64_t); /* int64, timestamp, double */
        }
        off = (off + al - 1) / al * al;
        d->offset = off;
        off += sz;
        if ((f->flags & AST_F_NULLABLE) && f->type != AST_T_TEXT && f->type != AST_T_JSON)
            d->null_offset = off++;
    }
    *size = (off + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t);
}

model *model_build(const ast_schema *s)
{
    model *m = xcalloc(1, sizeof *m);
    m->n = s->entities.n;
    m->entities = xcalloc(m->n, sizeof *m->entities);
    m->pointers = xcalloc(m->n, sizeof *m->pointers);
    for (size_t k = 0; k < m->n; k++) {
        const ast_entity *e = s->entities.v[k];
        memo_entity_desc *d = &m->entities[k];
        m->pointers[k] = d;
        memo_field_desc *fields = own(m, xcalloc(e->fields.n, sizeof *fields));
        for (size_t i = 0; i < e->fields.n; i++) {
            const ast_field *f = &e->fields.v[i];
            fields[i].name = f->name.text;
            fields[i].type = type_of(f->type);
            fields[i].flags = (f->flags & AST_F_PRIMARY ? MEMO_FIELD_PK : 0) |
                              (f->flags & AST_F_UNIQUE ? MEMO_FIELD_UNIQUE : 0) |
                              (f->flags & AST_F_NULLABLE ? MEMO_FIELD_NULLABLE : 0);
        }
        layout(e, fields, &d->size);
        d->abi = MEMO_ABI;
        d->schema = s->name;
        d->name = e->name.text;
        d->table = table_of(e);
        d->fields = fields;
        d->nfields = (unsigned)e->fields.n;
        d->pk = (unsigned)field_index(e, e->pk);
        char *fp = own(m, xmalloc(17));
        entity_fingerprint(e, fp);
        d->fingerprint = fp;

        key_parts rk;
        row_key(e, &rk);
        d->row.field = d->pk;
        key_of(m, &rk, &d->row.key);
        size_t pc = pk_cache_index(e);
        if (pc != (size_t)-1) {
            const ast_cache *c = &e->caches.v[pc];
            d->row.ttl_ms = c->ttl.value;
            d->row.negative_ttl_ms = c->negative.set ? c->negative.value : 0;
            d->row.jitter_pct = c->jitter.set ? (unsigned)c->jitter.value : 0;
        }

        memo_lookup_desc *uniques = own(m, xcalloc(e->caches.n + 1, sizeof *uniques));
        for (size_t i = 0; i < e->caches.n; i++) {
            const ast_cache *c = &e->caches.v[i];
            if (c->resolved == e->pk)
                continue;
            memo_lookup_desc *u = &uniques[d->nuniques++];
            key_parts kp;
            unique_key(e, c, &kp);
            u->field = (unsigned)field_index(e, c->resolved);
            key_of(m, &kp, &u->key);
            u->ttl_ms = c->ttl.value;
            u->negative_ttl_ms = c->negative.set ? c->negative.value : 0;
            u->jitter_pct = c->jitter.set ? (unsigned)c->jitter.value : 0;
        }
        d->uniques = uniques;

        memo_list_desc *lists = own(m, xcalloc(e->lists.n + 1, sizeof *lists));
        for (size_t i = 0; i < e->lists.n; i++) {
            const ast_list *l = &e->lists.v[i];
            key_parts kp;
            list_key(e, l, &kp);
            lists[i].name = l->name.text;
            lists[i].group = (unsigned)field_index(e, l->group_field);
            lists[i].order = (unsigned)field_index(e, l->order_field);
            lists[i].descending = l->desc;
            lists[i].limit = (uint32_t)(l->limit.set ? l->limit.value : MEMOC_DEFAULT_LIST_LIMIT);
            lists[i].ttl_ms = l->ttl.value;
            lists[i].jitter_pct = l->jitter.set ? (unsigned)l->jitter.value : 0;
            key_of(m, &kp, &lists[i].key);
        }
        d->lists = lists;
        d->nlists = (unsigned)e->lists.n;
    }
    /* rules point at other entities: after all exist */
    for (size_t k = 0; k < m->n; k++) {
        const ast_entity *e = s->entities.v[k];
        memo_entity_desc *d = &m->entities[k];
        memo_rule_desc *rules = own(m, xcalloc(e->rules.n + 1, sizeof *rules));
        for (size_t i = 0; i < e->rules.n; i++) {
            const ast_rule *r = &e->rules.v[i];
            rules[i].events = (r->events & AST_ON_INSERT ? MEMO_ON_INSERT : 0) |
                              (r->events & AST_ON_UPDATE ? MEMO_ON_UPDATE : 0) |
                              (r->events & AST_ON_DELETE ? MEMO_ON_DELETE : 0);
            rules[i].field = (unsigned)field_index(e, r->resolved);
            for (size_t t = 0; t < m->n; t++)
                if (s->entities.v[t] == r->target_entity)
                    rules[i].target = &m->entities[t];
            rules[i].list =
                r->target_list ? (int)(r->target_list - r->target_entity->lists.v) : -1;
        }
        d->rules = rules;
        d->nrules = (unsigned)e->rules.n;
    }
    m->schema.abi = MEMO_ABI;
    m->schema.name = s->name;
    m->schema.entities = m->pointers;
    m->schema.nentities = (unsigned)m->n;
    return m;
}

const memo_schema_desc *model_schema(const model *m)
{
    return &m->schema;
}

const memo_entity_desc *model_entity(const model *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->entities[i].name, name) == 0)
            return &m->entities[i];
    return NULL;
}

void model_free(model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->entities);
    free(m->pointers);
    free(m);
}
