/* Writes: insert, update and delete, each one statement that returns the
 * old and/or new row (the fields invalidation needs), and then, after
 * COMMIT, one DEL of every key the change makes wrong (invalidate.c). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Non-nullable strings must be there, of the fields written (bits of mask,
 * UINT64_MAX for all): SQL would say NOT NULL less clearly. */
static memo_status check_row(memo_repo *repo, const memo_entity_desc *d, const void *row,
                             uint64_t mask)
{
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if (((mask >> i) & 1) && (f->type == MEMO_TEXT || f->type == MEMO_JSON) &&
            !(f->flags & MEMO_FIELD_NULLABLE) &&
            !*(char *const *)((const char *)row + f->offset))
            return memop_fail(repo, MEMO_ERR_ARG,
                              "%s.%s: field %s is NULL but not nullable", d->schema,
                              d->name, f->name);
    }
    return MEMO_OK;
}

/* After COMMIT: a transaction keeps the keys for its own COMMIT, a single
 * statement (which committed on its own) sends them now. The write
 * succeeded either way: keys that could not be collected become a drop of
 * the entities concerned (invalidate.c). event 0: the statement wrote but
 * its rows could not be read (out of memory, or not what the descriptor
 * says), so the entity and its rules' targets are dropped whole; st is
 * returned as it is. */
static memo_status settle(memo_repo *repo, memo_tx *tx, memop_entity *e, unsigned event,
                          const void *old, const void *new, memo_status st)
{
    atomic_fetch_add(&repo->write_seq, 1);
    memop_inval local = {0}, *v = tx ? &tx->inval : &local;
    if (event)
        memop_inval_collect(repo, e, event, old, new, v);
    else
        memop_inval_unknown(e, v);
    if (!tx) {
        memop_inval_send(repo, v);
        memop_inval_free(v);
    }
    return st;
}

/* The rows a write read back, freed. */
static void free_rows(const memo_entity_desc *d, void *old, void *new)
{
    memo_row_clear(d, old);
    memo_row_clear(d, new);
    free(old);
    free(new);
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

/* A text field of the primary key must be given: a NULL would silently
 * match no row. */
static memo_status check_row_key(memo_repo *repo, const memo_entity_desc *d,
                                 const void *row, const char *what)
{
    for (unsigned k = 0; k < d->npk; k++) {
        const memo_field_desc *f = &d->fields[d->pks[k]];
        if (f->type == MEMO_TEXT &&
            !*(const char *const *)((const char *)row + f->offset))
            return memop_fail(repo, MEMO_ERR_ARG, "%s: %s.%s: NULL primary key %s", what,
                              d->schema, d->name, f->name);
    }
    return MEMO_OK;
}

static void finish(memop_entity *e, enum memop_op op, uint64_t t0)
{
    uint64_t us = memop_now_us() - t0;
    MEMOP_INC(e->stats.ops[op]);
    memop_hist_add(&e->stats.op_latency[op], us);
}

/* The version field of row, or NULL if the entity has none. */
static int64_t *version_of(const memop_entity *e, void *row)
{
    return e->version < 0 ? NULL
                          : (int64_t *)((char *)row + e->desc->fields[e->version].offset);
}

/* The caller's row gets the version the write gave the stored one. */
static void set_version(const memop_entity *e, void *row, int64_t v)
{
    int64_t *p = version_of(e, row);
    if (p)
        *p = v;
}

static memo_status insert(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                          void *row)
{
    memop_entity *e;
    memo_status st = begin(repo, d, row, &e, "memo_insert");
    if (st != MEMO_OK || (st = check_row(repo, d, row, UINT64_MAX)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    const memo_field_desc *pk = &d->fields[d->pk];
    char *pkp = (char *)row + pk->offset;
    /* a zero integer key (of one field) is the database's to assign */
    bool assign = d->npk == 1 && ((pk->type == MEMO_INT64 && *(int64_t *)pkp == 0) ||
                                  (pk->type == MEMO_INT32 && *(int32_t *)pkp == 0));
    if ((st = check_row_key(repo, d, row, "memo_insert")) != MEMO_OK)
        return st;
    memop_params ps;
    ps.n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if ((int)i == e->version)
            memop_param_int64(&ps, 1); /* a version starts at 1 */
        else if (!(assign && i == d->pk))
            memop_param_field(&ps, &d->fields[i], row);
    PGresult *res = NULL;
    st = memop_db_run(repo, tx, e, assign ? MEMOP_SQL_INSERT_AUTO : MEMOP_SQL_INSERT, &ps,
                      &res);
    void *new = NULL;
    if (st != MEMO_OK)
        goto out;
    new = calloc(1, d->size);
    if (!new) {
        st = settle(repo, tx, e, 0, NULL, NULL,
                    memop_fail(repo, MEMO_ERR_NOMEM, "out of memory"));
        goto out;
    }
    if (PQntuples(res) != 1 ||
        memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, 0, new) != MEMO_OK) {
        st = settle(repo, tx, e, 0, NULL, NULL, memop_schema_mismatch(repo, e, NULL));
        goto out;
    }
    if (assign)
        memcpy(pkp, (char *)new + pk->offset,
               pk->type == MEMO_INT32 ? sizeof(int32_t) : sizeof(int64_t));
    set_version(e, row, 1);
    st = settle(repo, tx, e, MEMO_ON_INSERT, NULL, new, MEMO_OK);
out:
    PQclear(res);
    memo_row_clear(d, new);
    free(new);
    finish(e, MEMOP_OP_INSERT, t0);
    return st;
}

/* What update and upsert check first, and their parameters: every field of
 * the row, in field order, its key given; with a mask (update_fields), the
 * fields outside it as NULLs (the statement keeps the stored values), then
 * the mask. The key and a version are always given (they select the row). */
static memo_status row_write(memo_repo *repo, const memo_entity_desc *d, const void *row,
                             const uint64_t *mask, const char *what, memop_entity **e,
                             memop_params *ps)
{
    memo_status st = begin(repo, d, row, e, what);
    uint64_t writes = mask ? *mask : UINT64_MAX;
    if (st != MEMO_OK || (st = check_row(repo, d, row, writes)) != MEMO_OK)
        return st;
    if ((st = check_row_key(repo, d, row, what)) != MEMO_OK)
        return st;
    ps->n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if (((writes >> i) & 1) || (d->fields[i].flags & MEMO_FIELD_PK) ||
            (int)i == (*e)->version)
            memop_param_field(ps, &d->fields[i], row);
        else
            memop_param_null(ps);
    if (mask)
        memop_param_int64(ps, (int64_t)*mask);
    return MEMO_OK;
}

/* After a write of a versioned row changed nothing: whether the row is
 * there (found), and its version. */
static memo_status stored_version(memo_repo *repo, memo_tx *tx, memop_entity *e,
                                  const void *row, bool *found, int64_t *version)
{
    const memo_entity_desc *d = e->desc;
    _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
    memop_pk_of_row(d, row, key);
    PGresult *res = NULL;
    memo_status st = memop_query_pk(repo, tx, e, MEMOP_SQL_SELECT, key, &res);
    *found = false;
    if (st == MEMO_OK && PQntuples(res) > 0) {
        void *stored = calloc(1, d->size);
        if (!stored)
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        else if ((st = memop_result_row(d, res, 0, 0, stored)) != MEMO_OK)
            st = st == MEMO_ERR_NOMEM ? memop_fail(repo, st, "out of memory")
                                      : memop_schema_mismatch(repo, e, NULL);
        else {
            *found = true;
            *version = *version_of(e, stored);
        }
        memo_row_clear(d, stored);
        free(stored);
    }
    PQclear(res);
    return st;
}

static memo_status version_conflict(memo_repo *repo, const memop_entity *e, void *row,
                                    int64_t stored, const char *what)
{
    return memop_fail(repo, MEMO_CONFLICT,
                      "%s: %s.%s has version %" PRId64 ", not %" PRId64
                      " (another write changed it since it was read): nothing written",
                      what, e->desc->schema, e->desc->name, stored, *version_of(e, row));
}

/* The old row's key fields (in columns 0..k, when with_old) and the new
 * row's (k..2k) of result row 0, into rows allocated here. */
static memo_status old_and_new(memo_repo *repo, memop_entity *e, const PGresult *res,
                               bool with_old, void **old, void **new)
{
    const memo_entity_desc *d = e->desc;
    *old = calloc(1, d->size);
    *new = calloc(1, d->size);
    if (!*old || !*new)
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    int k = (int)e->nkeyfields;
    if ((with_old && memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, 0,
                                         *old) != MEMO_OK) ||
        memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, k, *new) != MEMO_OK)
        return memop_schema_mismatch(repo, e, NULL);
    return MEMO_OK;
}

/* A full update, or (mask given) of some fields. A versioned row is written
 * only at the version the caller read; then the stored and the caller's
 * version are one more. */
static memo_status update(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                          void *row, const uint64_t *mask)
{
    const char *what = mask ? "memo_update_fields" : "memo_update";
    memop_entity *e;
    memop_params ps;
    memo_status st = row_write(repo, d, row, mask, what, &e, &ps);
    if (st != MEMO_OK)
        return st;
    if (mask) {
        uint64_t fields = d->nfields < 64 ? (UINT64_C(1) << d->nfields) - 1 : UINT64_MAX;
        uint64_t fixed = 0;
        for (unsigned k = 0; k < d->npk; k++)
            fixed |= UINT64_C(1) << d->pks[k];
        if (e->version >= 0)
            fixed |= UINT64_C(1) << e->version;
        if ((*mask & ~fields) || !(*mask & ~fixed))
            return memop_fail(repo, MEMO_ERR_ARG,
                              "%s: the mask 0x%" PRIx64 " %s %s.%s's fields", what, *mask,
                              (*mask & ~fields) ? "has bits past" : "writes none of",
                              d->schema, d->name);
    }
    uint64_t t0 = memop_now_us();
    PGresult *res = NULL;
    void *old = NULL, *new = NULL;
    /* Nothing updated, for a versioned row: gone, or at another version, or
     * (inserted by another between the statement and the check) at this
     * one, and then the statement runs again. */
    for (int attempt = 0;; attempt++) {
        st = memop_db_run(repo, tx, e, mask ? MEMOP_SQL_UPDATE_FIELDS : MEMOP_SQL_UPDATE,
                          &ps, &res);
        if (st != MEMO_OK || PQntuples(res) > 0)
            break;
        PQclear(res);
        res = NULL;
        bool found = false;
        int64_t stored = 0;
        st = MEMO_NOT_FOUND;
        if (e->version < 0 ||
            (st = stored_version(repo, tx, e, row, &found, &stored)) != MEMO_OK ||
            !found) {
            st = st == MEMO_OK ? MEMO_NOT_FOUND : st;
            break;
        }
        if (stored != *version_of(e, row) || attempt == 2) {
            st = version_conflict(repo, e, row, stored, what);
            break;
        }
    }
    if (st != MEMO_OK)
        goto out;
    /* the row was written (and, outside a transaction, committed) */
    if (e->version >= 0)
        set_version(e, row, *version_of(e, row) + 1);
    if ((st = old_and_new(repo, e, res, true, &old, &new)) == MEMO_OK)
        st = settle(repo, tx, e, MEMO_ON_UPDATE, old, new, MEMO_OK);
    else
        st = settle(repo, tx, e, 0, NULL, NULL, st);
out:
    PQclear(res);
    free_rows(d, old, new);
    finish(e, MEMOP_OP_UPDATE, t0);
    return st;
}

/* Insert or update in one statement; invalidates as the insert or the
 * update it was. The statement updates only a row it locked and read; a row
 * another transaction inserted between its two reads makes it return
 * nothing, and it runs again (a new snapshot, which reads that row). */
static memo_status upsert(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                          void *row)
{
    memop_entity *e;
    memop_params ps;
    memo_status st = row_write(repo, d, row, NULL, "memo_upsert", &e, &ps);
    if (st != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    PGresult *res = NULL;
    void *old = NULL, *new = NULL;
    bool had = false;
    for (int attempt = 0;; attempt++) {
        if ((st = memop_db_run(repo, tx, e, MEMOP_SQL_UPSERT, &ps, &res)) != MEMO_OK)
            goto out;
        if (PQntuples(res) > 0)
            break;
        PQclear(res);
        res = NULL;
        /* a versioned row not at the caller's version is a conflict; else
         * another transaction inserted the row meanwhile (see above) */
        bool found = false;
        int64_t stored = 0;
        if (e->version >= 0 &&
            ((st = stored_version(repo, tx, e, row, &found, &stored)) != MEMO_OK ||
             (found && stored != *version_of(e, row)))) {
            if (st == MEMO_OK)
                st = version_conflict(repo, e, row, stored, "memo_upsert");
            goto out;
        }
        if (attempt == 4) {
            st = memop_fail(repo, MEMO_CONFLICT,
                            "memo_upsert: the row was inserted and deleted by others "
                            "at each of 5 attempts");
            goto out;
        }
    }
    /* the row was written (and, outside a transaction, committed) */
    int k = (int)e->nkeyfields;
    if (PQntuples(res) != 1 || PQnfields(res) != 2 * k + 1) {
        st = settle(repo, tx, e, 0, NULL, NULL, memop_schema_mismatch(repo, e, NULL));
        goto out;
    }
    /* whether there was an old row: a boolean in binary, one byte */
    had = PQgetlength(res, 0, 2 * k) == 1 && PQgetvalue(res, 0, 2 * k)[0];
    if (e->version >= 0)
        set_version(e, row, had ? *version_of(e, row) + 1 : 1);
    if ((st = old_and_new(repo, e, res, had, &old, &new)) != MEMO_OK)
        st = settle(repo, tx, e, 0, NULL, NULL, st);
    else
        st = had ? settle(repo, tx, e, MEMO_ON_UPDATE, old, new, MEMO_OK)
                 : settle(repo, tx, e, MEMO_ON_INSERT, NULL, new, MEMO_OK);
out:
    PQclear(res);
    free_rows(d, old, new);
    finish(e, had ? MEMOP_OP_UPDATE : MEMOP_OP_INSERT, t0);
    return st;
}

static memo_status delete (memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                           const void *key)
{
    memop_entity *e;
    memo_status st = begin(repo, d, key, &e, "memo_delete");
    if (st != MEMO_OK)
        return st;
    if ((st = memop_check_pk(repo, d, key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    memop_params ps;
    ps.n = 0;
    memop_param_pk(&ps, d, key);
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
        st = settle(repo, tx, e, 0, NULL, NULL,
                    memop_fail(repo, MEMO_ERR_NOMEM, "out of memory"));
        goto out;
    }
    if (memop_result_fields(d, e->keyfields, e->nkeyfields, res, 0, 0, old) != MEMO_OK) {
        st = settle(repo, tx, e, 0, NULL, NULL, memop_schema_mismatch(repo, e, NULL));
        goto out;
    }
    st = settle(repo, tx, e, MEMO_ON_DELETE, old, NULL, MEMO_OK);
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

memo_status memo_update(memo_repo *repo, const memo_entity_desc *d, void *row)
{
    return update(repo, NULL, d, row, NULL);
}

memo_status memo_update_fields(memo_repo *repo, const memo_entity_desc *d, void *row,
                               uint64_t mask)
{
    return update(repo, NULL, d, row, &mask);
}

memo_status memo_delete(memo_repo *repo, const memo_entity_desc *d, const void *key)
{
    return delete (repo, NULL, d, key);
}

memo_status memo_tx_insert(memo_tx *tx, const memo_entity_desc *d, void *row)
{
    return tx ? insert(tx->repo, tx, d, row) : MEMO_ERR_ARG;
}

memo_status memo_tx_update(memo_tx *tx, const memo_entity_desc *d, void *row)
{
    return tx ? update(tx->repo, tx, d, row, NULL) : MEMO_ERR_ARG;
}

memo_status memo_tx_update_fields(memo_tx *tx, const memo_entity_desc *d, void *row,
                                  uint64_t mask)
{
    return tx ? update(tx->repo, tx, d, row, &mask) : MEMO_ERR_ARG;
}

memo_status memo_upsert(memo_repo *repo, const memo_entity_desc *d, void *row)
{
    return upsert(repo, NULL, d, row);
}

memo_status memo_tx_upsert(memo_tx *tx, const memo_entity_desc *d, void *row)
{
    return tx ? upsert(tx->repo, tx, d, row) : MEMO_ERR_ARG;
}

memo_status memo_tx_delete(memo_tx *tx, const memo_entity_desc *d, const void *key)
{
    return tx ? delete (tx->repo, tx, d, key) : MEMO_ERR_ARG;
}

/* ------------------------------------------------------------ transactions */

memo_status memo_begin(memo_repo *repo, memo_tx **out)
{
    if (out)
        *out = NULL;
    if (!repo)
        return MEMO_ERR_ARG;
    if (!out)
        return memop_fail(repo, MEMO_ERR_ARG, "memo_begin: NULL argument");
    memo_tx *tx = calloc(1, sizeof *tx);
    if (!tx)
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    tx->repo = repo;
    memo_status st = memop_db_acquire(repo, &tx->conn);
    if (st != MEMO_OK) {
        free(tx);
        return st;
    }
    bool broken = false;
    if ((st = memop_db_simple(repo, tx->conn, "BEGIN", &broken)) != MEMO_OK) {
        memop_db_release(repo, tx->conn, true);
        free(tx);
        return st;
    }
    atomic_fetch_add(&repo->open_txs, 1);
    *out = tx;
    return MEMO_OK;
}

static void tx_free(memo_tx *tx)
{
    atomic_fetch_sub(&tx->repo->open_txs, 1);
    memop_inval_free(&tx->inval);
    free(tx);
}

memo_status memo_rollback(memo_tx *tx)
{
    if (!tx)
        return MEMO_OK;
    memo_repo *repo = tx->repo;
    bool broken = tx->broken;
    memo_status st =
        broken ? MEMO_OK : memop_db_simple(repo, tx->conn, "ROLLBACK", &broken);
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
