/* Writes: insert, update and delete, each one statement that returns the
 * old and/or new row, and then, after COMMIT, one DEL of every key the change
 * makes wrong: the row and its lease, the unique lookups and lists of the old
 * and new values, and the targets of the entity's `on ... invalidate` rules. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void inval_add(memop_inval *v, memop_entity *owner, const memop_key *key)
{
    for (size_t i = 0; i < v->n; i++) /* old and new values are often equal */
        if (v->keys[i].len == key->len && memcmp(v->keys[i].s, key->s, key->len) == 0)
            return;
    if (v->n + 2 > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        memop_key *k = realloc(v->keys, cap * sizeof *k);
        if (k)
            v->keys = k;
        memop_entity **o = k ? realloc(v->owners, cap * sizeof *o) : NULL;
        if (!k || !o) {
            v->failed = true;
            return;
        }
        v->owners = o;
        v->cap = cap;
    }
    v->keys[v->n] = *key;
    v->owners[v->n++] = owner;
    memop_key_lease(key, &v->keys[v->n]);
    v->owners[v->n++] = owner;
}

void memop_inval_free(memop_inval *v)
{
    free(v->keys);
    free(v->owners);
    memset(v, 0, sizeof *v);
}

static bool field_null(const memo_field_desc *f, const void *row)
{
    const char *p = (const char *)row + f->offset;
    if (f->type == MEMO_TEXT || f->type == MEMO_JSON)
        return *(char *const *)p == NULL;
    return (f->flags & MEMO_FIELD_NULLABLE) && *(const bool *)((const char *)row + f->null_offset);
}

/* The key of `kd` (of entity `owner`) for the value of field f in row. */
static void add_key_of(memo_repo *repo, memop_inval *v, memop_entity *owner,
                       const memo_key_desc *kd, const memo_field_desc *f, const void *row)
{
    if (!row || field_null(f, row))
        return; /* NULL is in no lookup and no list */
    memop_key k;
    memop_key_of(repo, owner->desc, kd, f, (const char *)row + f->offset, &k);
    inval_add(v, owner, &k);
}

static bool same_value(const memo_field_desc *f, const void *a, const void *b)
{
    memo_entity_desc one = {.nfields = 1, .fields = f};
    return memop_row_equal(&one, a, b);
}

/* Every key a change from `old` to `new` (either may be NULL) invalidates. */
static memo_status collect(memo_repo *repo, memop_entity *e, unsigned event, const void *old,
                          const void *new, memop_inval *v)
{
    const memo_entity_desc *d = e->desc;
    const memo_field_desc *pk = &d->fields[d->pk];
    const void *any = new ? new : old;

    /* The row: its value (a negative entry, for an insert) and lease. */
    add_key_of(repo, v, e, &d->row.key, pk, any);

    for (unsigned u = 0; u < d->nuniques; u++) {
        const memo_field_desc *f = &d->fields[d->uniques[u].field];
        if (old && new && same_value(f, old, new))
            continue; /* the lookup still points at the same row */
        add_key_of(repo, v, e, &d->uniques[u].key, f, old);
        add_key_of(repo, v, e, &d->uniques[u].key, f, new);
    }
    for (unsigned l = 0; l < d->nlists; l++) {
        const memo_list_desc *ld = &d->lists[l];
        const memo_field_desc *g = &d->fields[ld->group], *o = &d->fields[ld->order];
        /* membership and order depend on the group and order fields only */
        if (old && new && same_value(g, old, new) && same_value(o, old, new))
            continue;
        add_key_of(repo, v, e, &ld->key, g, old);
        add_key_of(repo, v, e, &ld->key, g, new);
    }
    for (unsigned i = 0; i < d->nrules; i++) {
        const memo_rule_desc *r = &d->rules[i];
        if (!(r->events & event))
            continue;
        memop_entity *target;
        memo_status st = memop_entity_get(repo, r->target, &target);
        if (st != MEMO_OK)
            return st;
        const memo_key_desc *kd =
            r->list < 0 ? &r->target->row.key : &r->target->lists[r->list].key;
        add_key_of(repo, v, target, kd, &d->fields[r->field], old);
        add_key_of(repo, v, target, kd, &d->fields[r->field], new);
    }
    return v->failed ? memop_fail(repo, MEMO_ERR_NOMEM, "out of memory") : MEMO_OK;
}

/* Sends the DEL and counts the value keys under the entity owning each. */
void memop_inval_send(memo_repo *repo, memop_inval *v)
{
    for (size_t i = 0; i < v->n; i += 2)
        MEMOP_INC(v->owners[i]->stats.invalidations);
    memop_redis_invalidate(repo, v->owners, v->keys, v->n);
}

/* Non-nullable strings must be there: SQL would say NOT NULL less clearly. */
static memo_status check_row(memo_repo *repo, const memo_entity_desc *d, const void *row)
{
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if ((f->type == MEMO_TEXT || f->type == MEMO_JSON) &&
            !(f->flags & MEMO_FIELD_NULLABLE) &&
            !*(char *const *)((const char *)row + f->offset))
            return memop_fail(repo, MEMO_ERR_ARG, "%s.%s: field %s is NULL but not nullable",
                              d->schema, d->name, f->name);
    }
    return MEMO_OK;
}

/* After COMMIT: a transaction keeps the keys for its own COMMIT, a single
 * statement (which committed on its own) sends them now. */
static memo_status settle(memo_repo *repo, memo_tx *tx, memop_entity *e, unsigned event,
                          const void *old, const void *new)
{
    atomic_fetch_add(&repo->write_seq, 1);
    if (tx)
        return collect(repo, e, event, old, new, &tx->inval);
    memop_inval v = {0};
    memo_status st = collect(repo, e, event, old, new, &v);
    if (st == MEMO_OK)
        memop_inval_send(repo, &v);
    memop_inval_free(&v);
    return st;
}

static memo_status begin(memo_repo *repo, const memo_entity_desc *d, const void *arg,
                         memop_entity **e, const char *what)
{
    if (!repo)
        return MEMO_ERR_ARG;
    if (!d || !arg)
        return memop_fail(repo, MEMO_ERR_ARG, "%s: NULL argument", what);
    return memop_entity_get(repo, d, e);
}

/* A text primary key must be given: a NULL would silently match no row. */
static bool missing_text_key(const memo_field_desc *pk, const void *value)
{
    return pk->type == MEMO_TEXT && !*(const char *const *)value;
}

static void finish(memop_entity *e, enum memop_op op, uint64_t t0)
{
    uint64_t us = memop_now_us() - t0;
    MEMOP_INC(e->stats.ops[op]);
    memop_hist_add(&e->stats.op_latency[op], us);
}

static memo_status insert(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d, void *row)
{
    memop_entity *e;
    memo_status st = begin(repo, d, row, &e, "memo_insert");
    if (st != MEMO_OK || (st = check_row(repo, d, row)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    const memo_field_desc *pk = &d->fields[d->pk];
    char *pkp = (char *)row + pk->offset;
    /* a zero integer key is the database's to assign */
    bool assign = (pk->type == MEMO_INT64 && *(int64_t *)pkp == 0) ||
                  (pk->type == MEMO_INT32 && *(int32_t *)pkp == 0);
    if (missing_text_key(pk, pkp))
        return memop_fail(repo, MEMO_ERR_ARG, "%s.%s: a text primary key must be given",
                          d->schema, d->name);
    memop_params ps;
    ps.n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if (!(assign && i == d->pk))
            memop_param_field(&ps, &d->fields[i], row);
    PGresult *res = NULL;
    st = memop_db_run(repo, tx, e, assign ? MEMOP_SQL_INSERT_AUTO : MEMOP_SQL_INSERT, &ps, &res);
    void *new = NULL;
    if (st != MEMO_OK)
        goto out;
    new = calloc(1, d->size);
    if (!new) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (PQntuples(res) != 1 ||
        memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, 0, new) != MEMO_OK) {
        st = memop_fail(repo, MEMO_ERR_SCHEMA, "insert into %s: unexpected result; apply "
                                                "the schema's .sql file",
                        d->table);
        goto out;
    }
    if (assign)
        memcpy(pkp, (char *)new + pk->offset,
               pk->type == MEMO_INT32 ? sizeof(int32_t) : sizeof(int64_t));
    st = settle(repo, tx, e, MEMO_ON_INSERT, NULL, new);
out:
    PQclear(res);
    memo_row_clear(d, new);
    free(new);
    finish(e, MEMOP_OP_INSERT, t0);
    return st;
}

static memo_status update(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                          const void *row)
{
    memop_entity *e;
    memo_status st = begin(repo, d, row, &e, "memo_update");
    if (st != MEMO_OK || (st = check_row(repo, d, row)) != MEMO_OK)
        return st;
    const memo_field_desc *pk = &d->fields[d->pk];
    if (missing_text_key(pk, (const char *)row + pk->offset))
        return memop_fail(repo, MEMO_ERR_ARG, "memo_update: NULL primary key");
    uint64_t t0 = memop_now_us();
    memop_params ps;
    ps.n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        memop_param_field(&ps, &d->fields[i], row);
    PGresult *res = NULL;
    void *old = NULL, *new = NULL;
    st = memop_db_run(repo, tx, e, MEMOP_SQL_UPDATE, &ps, &res);
    if (st != MEMO_OK)
        goto out;
    if (PQntuples(res) == 0) {
        st = MEMO_NOT_FOUND;
        goto out;
    }
    old = calloc(1, d->size);
    new = calloc(1, d->size);
    if (!old || !new) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, 0, old) != MEMO_OK ||
        memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, (int)e->nkeyfields, new) !=
            MEMO_OK) {
        st = memop_fail(repo, MEMO_ERR_SCHEMA, "update of %s: unexpected result; apply the "
                                                "schema's .sql file",
                        d->table);
        goto out;
    }
    st = settle(repo, tx, e, MEMO_ON_UPDATE, old, new);
out:
    PQclear(res);
    memo_row_clear(d, old);
    memo_row_clear(d, new);
    free(old);
    free(new);
    finish(e, MEMOP_OP_UPDATE, t0);
    return st;
}

static memo_status delete(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                          const void *key)
{
    memop_entity *e;
    memo_status st = begin(repo, d, key, &e, "memo_delete");
    if (st != MEMO_OK)
        return st;
    const memo_field_desc *pk = &d->fields[d->pk];
    if (missing_text_key(pk, key))
        return memop_fail(repo, MEMO_ERR_ARG, "memo_delete: NULL key");
    uint64_t t0 = memop_now_us();
    memop_params ps;
    ps.n = 0;
    memop_param_key(&ps, pk, key);
    PGresult *res = NULL;
    void *old = NULL;
    st = memop_db_run(repo, tx, e, MEMOP_SQL_DELETE, &ps, &res);
    if (st != MEMO_OK)
        goto out;
    if (PQntuples(res) == 0) {
        st = MEMO_NOT_FOUND;
        goto out;
    }
    old = calloc(1, d->size);
    if (!old) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, 0, old) != MEMO_OK) {
        st = memop_fail(repo, MEMO_ERR_SCHEMA, "delete from %s: unexpected result; apply "
                                                "the schema's .sql file",
                        d->table);
        goto out;
    }
    st = settle(repo, tx, e, MEMO_ON_DELETE, old, NULL);
out:
    PQclear(res);
    memo_row_clear(d, old);
    free(old);
    finish(e, MEMOP_OP_DELETE, t0);
    return st;
}

memo_status memo_insert(memo_repo *repo, const memo_entity_desc *d, void *row)
{
    return insert(repo, NULL, d, row);
}

memo_status memo_update(memo_repo *repo, const memo_entity_desc *d, const void *row)
{
    return update(repo, NULL, d, row);
}

memo_status memo_delete(memo_repo *repo, const memo_entity_desc *d, const void *key)
{
    return delete(repo, NULL, d, key);
}

memo_status memo_tx_insert(memo_tx *tx, const memo_entity_desc *d, void *row)
{
    return tx ? insert(tx->repo, tx, d, row) : MEMO_ERR_ARG;
}

memo_status memo_tx_update(memo_tx *tx, const memo_entity_desc *d, const void *row)
{
    return tx ? update(tx->repo, tx, d, row) : MEMO_ERR_ARG;
}

memo_status memo_tx_delete(memo_tx *tx, const memo_entity_desc *d, const void *key)
{
    return tx ? delete(tx->repo, tx, d, key) : MEMO_ERR_ARG;
}

/* ------------------------------------------------------------ transactions */

memo_tx *memo_begin(memo_repo *repo)
{
    if (!repo)
        return NULL;
    memo_tx *tx = calloc(1, sizeof *tx);
    if (!tx) {
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return NULL;
    }
    tx->repo = repo;
    if (memop_db_acquire(repo, &tx->conn) != MEMO_OK) {
        free(tx);
        return NULL;
    }
    bool broken = false;
    if (memop_db_simple(repo, tx->conn, "BEGIN", &broken) != MEMO_OK) {
        memop_db_release(repo, tx->conn, true);
        free(tx);
        return NULL;
    }
    return tx;
}

static void tx_free(memo_tx *tx)
{
    memop_inval_free(&tx->inval);
    free(tx);
}

memo_status memo_rollback(memo_tx *tx)
{
    if (!tx)
        return MEMO_OK;
    memo_repo *repo = tx->repo;
    bool broken = tx->broken;
    memo_status st = broken ? MEMO_OK : memop_db_simple(repo, tx->conn, "ROLLBACK", &broken);
    memop_db_release(repo, tx->conn, broken || st != MEMO_OK);
    tx_free(tx);
    return st;
}

memo_status memo_commit(memo_tx *tx)
{
    if (!tx)
        return MEMO_ERR_ARG;
    memo_repo *repo = tx->repo;
    if (tx->failed) {
        memo_rollback(tx);
        return memop_fail(repo, MEMO_ERR_TX,
                          "a statement of the transaction failed: it was rolled back");
    }
    bool broken = false;
    memo_status st = memop_db_simple(repo, tx->conn, "COMMIT", &broken);
    memop_db_release(repo, tx->conn, broken || st != MEMO_OK);
    /* Only a COMMIT that PostgreSQL confirmed changes the cache. If the answer
     * was lost, the outcome is unknown: invalidate anyway, which costs a
     * miss at worst and never leaves a stale value. */
    if (st == MEMO_OK || broken)
        memop_inval_send(repo, &tx->inval);
    tx_free(tx);
    return st;
}
