/* Which keys a change makes wrong: (entity, event, old row, new row) -> key
 * set, rules included. memop_inval_collect is pure (no I/O; the repository
 * only lends its key prefix), so it is tested table by table and shared by
 * every path that learns of a change. memop_inval_send is the I/O: one DEL
 * after COMMIT, and a wholesale drop of the entities whose keys could not
 * all be collected. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Adds a key (a value or a lease: deleting it breaks either). */
static void inval_add(memop_inval *v, memop_entity *owner, const memop_key *key)
{
    /* old and new values are often equal; only this change's keys are
     * compared, so that a transaction of n changes costs O(n) */
    for (size_t i = v->change; i < v->n; i++)
        if (v->keys[i].len == key->len && memcmp(v->keys[i].s, key->s, key->len) == 0)
            return;
    if (v->n + 1 > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        memop_key *k = realloc(v->keys, cap * sizeof *k);
        if (k)
            v->keys = k;
        memop_entity **o = k ? realloc(v->owners, cap * sizeof *o) : NULL;
        if (!o) {
            v->failed = true;
            return;
        }
        v->owners = o;
        v->cap = cap;
    }
    v->keys[v->n] = *key;
    v->owners[v->n++] = owner;
}

void memop_inval_free(memop_inval *v)
{
    free(v->keys);
    free(v->owners);
    memset(v, 0, sizeof *v);
}

/* The key of `kd` (of entity `owner`) for the value of field f in row;
 * with count, a list's count too. */
static void add_key_of(memo_repo *repo, memop_inval *v, memop_entity *owner,
                       const memo_key_desc *kd, const memo_field_desc *f, const void *row,
                       bool count)
{
    if (!row || memop_field_null(f, row))
        return; /* NULL is in no lookup and no list */
    memop_key k;
    memop_key_of(repo, owner->desc, kd, f, (const char *)row + f->offset, &k);
    inval_add(v, owner, &k);
    if (count) {
        memop_key n;
        memop_key_count(&k, &n);
        inval_add(v, owner, &n);
    }
}

/* The row key of a row (its value or lease). */
static void add_row_key(memo_repo *repo, memop_inval *v, memop_entity *e, const void *row)
{
    if (!row)
        return;
    _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
    memop_pk_of_row(e->desc, row, key);
    memop_key k;
    memop_key_row(repo, e->desc, key, &k);
    inval_add(v, e, &k);
}

/* The row of a rule's target with a composite key: its key value from the
 * rule's fields of this row (none when one is NULL). */
static void add_target_row(memo_repo *repo, memop_inval *v, memop_entity *target,
                           const memo_entity_desc *d, const memo_rule_desc *r,
                           const void *row)
{
    const memo_entity_desc *t = target->desc;
    if (!row || r->nfields != t->npk)
        return;
    _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
    for (unsigned k = 0; k < t->npk; k++) {
        const memo_field_desc *f = &d->fields[r->fields[k]];
        if (memop_field_null(f, row))
            return;
        memcpy(key + t->pk_offsets[k], (const char *)row + f->offset,
               f->type == MEMO_INT32  ? sizeof(int32_t)
               : f->type == MEMO_TEXT ? sizeof(char *)
                                      : sizeof(int64_t));
    }
    memop_key k;
    memop_key_row(repo, t, key, &k);
    inval_add(v, target, &k);
}

static bool same_value(const memo_field_desc *f, const void *a, const void *b)
{
    memo_entity_desc one = {.nfields = 1, .fields = f};
    return memop_row_equal(&one, a, b);
}

static void mark_drop(memop_inval *v, const memop_entity *e)
{
    v->drop[e->index / 8] |= (unsigned char)(1u << (e->index % 8));
}

void memop_inval_collect(memo_repo *repo, memop_entity *e, unsigned event,
                         const void *old, const void *new, memop_inval *v)
{
    const memo_entity_desc *d = e->desc;
    v->change = v->n;
    /* memo's writes keep the key, but a write made outside memo (memo
     * watch) may move it: then every key naming the old one is wrong */
    bool moved_key = false;
    for (unsigned k = 0; old && new &&k < d->npk; k++)
        moved_key = moved_key || !same_value(&d->fields[d->pks[k]], old, new);

    for (unsigned u = 0; u < d->nuniques; u++) {
        /* a lookup maps its value to the key: only a changed value moves it
         * (a reader fills the lookup alone, under its own lease: get.c) */
        const memo_field_desc *f = &d->fields[d->uniques[u].field];
        if (old && new && !moved_key && same_value(f, old, new))
            continue;
        const memo_key_desc *kd = &d->uniques[u].key;
        add_key_of(repo, v, e, kd, f, old, false);
        add_key_of(repo, v, e, kd, f, new, false);
    }
    /* the row: its value (a negative entry, for an insert) or lease */
    add_row_key(repo, v, e, old);
    add_row_key(repo, v, e, new);
    for (unsigned l = 0; l < d->nlists; l++) {
        const memo_list_desc *ld = &d->lists[l];
        const memo_field_desc *g = &d->fields[ld->group], *o = &d->fields[ld->order];
        /* membership and order depend on the group and order fields only */
        if (old && new && !moved_key && same_value(g, old, new) &&
            same_value(o, old, new))
            continue;
        /* the count moves with the membership only: the group */
        bool moved = !(old && new &&same_value(g, old, new));
        add_key_of(repo, v, e, &ld->key, g, old, moved);
        add_key_of(repo, v, e, &ld->key, g, new, moved);
    }
    for (unsigned i = 0; i < d->nrules; i++) {
        const memo_rule_desc *r = &d->rules[i];
        if (!(r->events & event))
            continue;
        memop_entity *target = e->targets[i];
        if (r->list < 0 && r->target->npk > 1) {
            add_target_row(repo, v, target, d, r, old);
            add_target_row(repo, v, target, d, r, new);
            continue;
        }
        const memo_key_desc *kd =
            r->list < 0 ? &r->target->row.key : &r->target->lists[r->list].key;
        add_key_of(repo, v, target, kd, &d->fields[r->field], old, r->list >= 0);
        add_key_of(repo, v, target, kd, &d->fields[r->field], new, r->list >= 0);
    }
    if (v->failed || memop_test_hooks.fail_collect)
        memop_inval_unknown(e, v); /* some keys may be missing (out of memory) */
}

void memop_inval_unknown(memop_entity *e, memop_inval *v)
{
    v->failed = true;
    mark_drop(v, e);
    for (unsigned i = 0; i < e->desc->nrules; i++)
        mark_drop(v, e->targets[i]);
}

void memop_inval_send(memo_repo *repo, memop_inval *v)
{
    for (size_t i = 0; i < v->n; i++)
        MEMOP_INC(v->owners[i]->stats.invalidations);
    memop_redis_invalidate(repo, v->owners, v->keys, v->n);
    /* this process reads its own writes: its near entries go before the
     * write returns (after the DEL, so that no read begun before it can
     * put an old value back: near.c) */
    for (size_t i = 0; i < v->n; i++)
        if (v->owners[i]->near)
            memop_near_drop(v->owners[i], &v->keys[i]);
    /* after what could be sent: the drop covers the rest, and (having begun
     * after COMMIT) every fill that read the old rows */
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++)
        if (v->drop[i / 8] & (1u << (i % 8)))
            memop_entity_drop(repo, repo->entity_list[i]);
}
