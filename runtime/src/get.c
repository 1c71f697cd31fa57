/* Reads of one row: get by primary key and get_by a unique lookup (the
 * lookup holds the primary key; a miss reads the row and fills the lookup),
 * their loaders, the checks that a value belongs to its key, and their
 * transaction variants (which read the database only). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ------------------------------------------------------------- loaders */

/* Runs a statement with one key parameter. */
memo_status memop_query_one_key(memo_repo *repo, memo_tx *tx, memop_entity *e,
                                unsigned stmt, const memo_field_desc *f, const void *key,
                                PGresult **res)
{
    memop_params ps;
    ps.n = 0;
    memop_param_key(&ps, f, key);
    return memop_db_run(repo, tx, e, stmt, &ps, res);
}

memo_status memop_query_pk(memo_repo *repo, memo_tx *tx, memop_entity *e, unsigned stmt,
                           const void *key, PGresult **res)
{
    memop_params ps;
    ps.n = 0;
    memop_param_pk(&ps, e->desc, key);
    return memop_db_run(repo, tx, e, stmt, &ps, res);
}

typedef struct row_ctx {
    memo_tx *tx;
    unsigned stmt;
    const memo_field_desc *field;
    const void *key;
    const memo_lookup_desc *lookup;
    void *row; /* filled on MEMOP_LOADED and found */
    bool found;
} row_ctx;

/* A row by a key field: the value is the row, or null. */
static memo_status load_row(memo_repo *repo, memop_entity *e, void *vctx,
                            memop_buf *value, uint64_t *ttl)
{
    row_ctx *ctx = vctx;
    PGresult *res;
    /* by the primary key (all its fields), or by one unique field */
    memo_status st = ctx->stmt == MEMOP_SQL_SELECT
                         ? memop_query_pk(repo, ctx->tx, e, ctx->stmt, ctx->key, &res)
                         : memop_query_one_key(repo, ctx->tx, e, ctx->stmt, ctx->field,
                                               ctx->key, &res);
    if (st != MEMO_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        ctx->found = false;
        if (value) {
            memop_buf_puts(value, memop_null_value);
            *ttl = memop_negative_ttl(repo, ctx->lookup);
        }
        return MEMO_NOT_FOUND;
    }
    st = memop_result_row(e->desc, res, 0, 0, ctx->row);
    PQclear(res);
    if (st == MEMO_ERR_SCHEMA)
        return memop_schema_mismatch(repo, e, NULL);
    if (st != MEMO_OK)
        return memop_fail(repo, st, "out of memory");
    ctx->found = true;
    if (!value)
        return MEMO_OK; /* a transaction's read: nothing to cache */
    st = memop_row_encode(e->desc, ctx->row, value);
    if (st != MEMO_OK) {
        memo_row_clear(e->desc, ctx->row);
        ctx->found = false;
        return memop_fail(repo, st, "cannot encode a row of %s", e->desc->table);
    }
    *ttl = memop_row_ttl(repo, ctx->lookup);
    return MEMO_OK;
}

/* ----------------------------------------------------------- validation */

memo_status memop_check_key(memo_repo *repo, const memo_field_desc *f, const void *key)
{
    if (!key || (f->type == MEMO_TEXT && !*(const char *const *)key))
        return memop_fail(repo, MEMO_ERR_ARG, "%s: NULL key", f->name);
    return MEMO_OK;
}

memo_status memop_check_pk(memo_repo *repo, const memo_entity_desc *d, const void *key)
{
    if (!key)
        return memop_fail(repo, MEMO_ERR_ARG, "%s: NULL key", d->fields[d->pk].name);
    for (unsigned k = 0; k < d->npk; k++) {
        const memo_field_desc *f = &d->fields[d->pks[k]];
        memo_status st = memop_check_key(repo, f, (const char *)key + d->pk_offsets[k]);
        if (st != MEMO_OK)
            return st;
    }
    return MEMO_OK;
}

/* Field f of a row holds the key value: a value read from Redis must be the
 * one its key names, or it is corrupt (copied under another key by a bug or
 * by someone else). */
bool memop_row_has(const memo_field_desc *f, const void *row, const void *key)
{
    const char *p = (const char *)row + f->offset;
    if ((f->flags & MEMO_FIELD_NULLABLE) && f->type != MEMO_TEXT &&
        f->type != MEMO_JSON && *(const bool *)((const char *)row + f->null_offset))
        return false;
    return memop_key_equal(f, p, key);
}

/* ------------------------------------------------------------------ get */

/* near: the near cache may answer, and keeps what Redis answers (get's
 * reads; get_by's read of the row it looked up does without: a copy from
 * before another process changed the row would fail its check of the
 * lookup, which is not corrupt). */
static memo_status get_row(memo_repo *repo, memop_entity *e, const void *key, void *out,
                           bool *hit, bool near)
{
    const memo_entity_desc *d = e->desc;
    memop_key k;
    memop_key_row(repo, d, key, &k);
    memo_status st = MEMO_OK;
    memop_near_ticket ticket = {0};
    near = near && e->near;
    if (near && memop_near_get(e, &k, out, &st, &ticket)) {
        *hit = true;
        return st;
    }

    row_ctx ctx = {NULL, MEMOP_SQL_SELECT, &d->fields[d->pk], key, &d->row, out, false};
    MEMOP_READ(r, repo, e, &k, load_row, &ctx);
    for (;;) {
        enum memop_outcome o = memop_cached_read(&r);
        *hit = !r.missed;
        if (o == MEMOP_NEG_HIT) {
            st = MEMO_NOT_FOUND;
            if (near && r.from_redis)
                memop_near_put(e, &k, NULL, &ticket);
        } else if (o == MEMOP_LOADED || o == MEMOP_FAILED) {
            st = r.st;
        } else {
            char why[128] = "another row's value";
            st = memop_row_decode(d, r.value.s, r.value.len, out, why, sizeof why);
            if (st == MEMO_OK && !memop_row_has_pk(d, out, key)) {
                memo_row_clear(d, out);
                st = MEMO_ERR_ARG;
            }
            if (st != MEMO_OK) {
                /* corrupt: count it, drop it, and read again (then from
                 * PostgreSQL, which refills it) */
                memop_discard(repo, e, NULL, &k, 1, why);
                if (!r.healed) {
                    r.healed = true;
                    continue;
                }
                r.value.len = 0;
                st = load_row(repo, e, &ctx, &r.value, &(uint64_t){0});
            } else if (near && r.from_redis) {
                /* what Redis holds: not a value this call filled (the
                 * message its SET causes would drop it again), nor one
                 * another thread read from PostgreSQL and shared (Redis
                 * may not hold it: no message would ever drop it) */
                memop_near_put(e, &k, out, &ticket);
            }
        }
        break;
    }
    memop_read_free(&r);
    return st;
}

memo_status memo_get(memo_repo *repo, const memo_entity_desc *d, const void *key,
                     void *out)
{
    if (!repo || !d || !out)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_get: NULL argument")
                    : MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    memset(out, 0, d->size);
    if ((st = memop_check_pk(repo, d, key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    bool hit;
    st = get_row(repo, e, key, out, &hit, true);
    memop_record(e, MEMOP_OP_GET, t0, hit);
    return st;
}

/* --------------------------------------------------------------- get_by */

/* A unique lookup's value is the primary key of its row; only the lookup is
 * filled, under its lease, which a write that changes or removes the value
 * breaks (invalidate.c). The row is cached by get's own lease when next read
 * by its key: filling it here, under the lookup's lease, would need every
 * write of the row to delete its lookups too. */
static memo_status load_unique(memo_repo *repo, memop_entity *e, void *vctx,
                               memop_buf *value, uint64_t *ttl)
{
    row_ctx *ctx = vctx;
    const memo_entity_desc *d = e->desc;
    memo_status st = load_row(repo, e, ctx, NULL, NULL);
    if (st == MEMO_NOT_FOUND) {
        memop_buf_puts(value, memop_null_value);
        *ttl = memop_negative_ttl(repo, ctx->lookup);
        return st;
    }
    if (st != MEMO_OK)
        return st;
    _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
    memop_pk_of_row(d, ctx->row, key);
    *ttl = memop_row_ttl(repo, ctx->lookup);
    return memop_pk_encode(d, key, value);
}

/* A key value decoded from a lookup (its strings malloc'd). */
typedef struct pk_value {
    _Alignas(int64_t) char b[MEMOP_KEY_SIZE_MAX];
} pk_value;

enum fast { FAST_MISS, FAST_ROW, FAST_NONE, FAST_PK };

/* A unique lookup and its row in one round trip (the GET_BY script): the
 * row (FAST_ROW, decoded into out), a negative entry (FAST_NONE), only the
 * primary key (FAST_PK: the row is to be read as by get), or nothing usable
 * (FAST_MISS: the lookup path with its lease, which also sorts out what is
 * corrupt). */
static enum fast get_by_fast(memo_repo *repo, memop_entity *e, const memo_field_desc *f,
                             const void *key, const memop_key *k, void *out, pk_value *pk)
{
    const memo_entity_desc *d = e->desc;
    memop_stats *s = &e->stats;
    if (memop_key_bypassed(repo, e, k))
        return FAST_MISS;
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return FAST_MISS;
    /* the row key around the primary key's part */
    memop_key before, after;
    memop_key_around(repo, d, &d->row.key, &before, &after);
    char max[16];
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    /* how the script builds the row key from the lookup's value: an integer
     * as it is, a JSON string escaped; a composite key it does not */
    const char *kind = d->npk > 1 ? "2" : d->fields[d->pk].type == MEMO_TEXT ? "1" : "0";
    /* on a cluster the row is in another slot, out of a script's reach: the
     * lookup alone, and the row read as by get (two round trips) */
    if (c->nctx)
        kind = "2";
    const char *argv[] = {k->s, before.s, after.s, kind, max};
    size_t lens[] = {k->len, before.len, after.len, 1, strlen(max)};
    redisReply *rep = memop_redis_script(repo, c, MEMOP_SCRIPT_GET_BY, 1, 5, argv, lens);
    enum fast result = FAST_MISS;
    if (rep && rep->type == REDIS_REPLY_ERROR &&
        memop_redis_error_kind(rep) == MEMOP_REDIS_OUTAGE)
        memop_redis_reply_failed(repo, rep, "EVALSHA (get-by)");
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        goto out;
    const redisReply *v = rep->element[0];
    if (memop_is_null_value(v->str, v->len)) {
        MEMOP_INC(s->negative_hits);
        result = FAST_NONE;
        goto out;
    }
    if (!memop_pk_decode(d, v->str, v->len, pk->b))
        goto out; /* the lookup path finds it corrupt and heals it */
    MEMOP_INC(s->hits);
    result = FAST_PK;
    if (rep->elements < 2 || rep->element[1]->type != REDIS_REPLY_STRING)
        goto out;
    const redisReply *row = rep->element[1];
    char why[128];
    if (memop_is_null_value(row->str, row->len) ||
        memop_row_decode(d, row->str, row->len, out, why, sizeof why) != MEMO_OK)
        goto out; /* a row deleted since, or corrupt: the row path sorts it out */
    if (!memop_row_has_pk(d, out, pk->b) || !memop_row_has(f, out, key)) {
        /* not the row of this lookup: the slow paths check both keys */
        memo_row_clear(d, out);
        goto out;
    }
    MEMOP_INC(s->hits);
    result = FAST_ROW;
out:
    memop_redis_release(repo, c, rep == NULL);
    return result;
}

memo_status memo_get_by(memo_repo *repo, const memo_entity_desc *d, unsigned u,
                        const void *key, void *out)
{
    if (!repo || !d || !out || u >= d->nuniques)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_get_by: bad argument")
                    : MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    memset(out, 0, d->size);
    const memo_lookup_desc *l = &d->uniques[u];
    const memo_field_desc *f = &d->fields[l->field];
    if ((st = memop_check_key(repo, f, key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    memop_key k;
    memop_key_of(repo, d, &l->key, f, key, &k);

    bool hit = false;
    pk_value pk = {0};
    row_ctx ctx = {NULL, MEMOP_SQL_UNIQUE(d, u), f, key, l, out, false};
    MEMOP_READ(r, repo, e, &k, load_unique, &ctx);
    switch (get_by_fast(repo, e, f, key, &k, out, &pk)) {
    case FAST_ROW:
        memop_pk_free(d, pk.b);
        memop_record(e, MEMOP_OP_GET_BY, t0, true);
        return MEMO_OK;
    case FAST_NONE:
        memop_record(e, MEMOP_OP_GET_BY, t0, true);
        return MEMO_NOT_FOUND;
    case FAST_PK: {
        st = get_row(repo, e, pk.b, out, &hit, false);
        memop_pk_free(d, pk.b);
        bool belongs = st == MEMO_OK && memop_row_has(f, out, key);
        if (belongs || (st != MEMO_OK && st != MEMO_NOT_FOUND)) {
            memop_record(e, MEMOP_OP_GET_BY, t0, hit);
            return st;
        }
        /* the lookup names a row that is gone or has another value: stale
         * or forged; the lookup path deletes it and asks the database */
        memo_row_clear(d, out);
        memop_discard(repo, e, NULL, &k, 1, "names a row that does not have this value");
        r.healed = true;
        break;
    }
    case FAST_MISS:
        break;
    }

    for (;;) {
        enum memop_outcome o = memop_cached_read(&r);
        hit = !r.missed;
        if (o == MEMOP_NEG_HIT) {
            st = MEMO_NOT_FOUND;
        } else if (o == MEMOP_LOADED || o == MEMOP_FAILED) {
            st = r.st;
        } else {
            /* the lookup holds the primary key of a row with this value */
            bool ok = memop_pk_decode(d, r.value.s, r.value.len, pk.b);
            bool row_hit = false;
            if (ok) {
                st = get_row(repo, e, pk.b, out, &row_hit, false);
                memop_pk_free(d, pk.b);
                ok = (st != MEMO_OK && st != MEMO_NOT_FOUND) ||
                     (st == MEMO_OK && memop_row_has(f, out, key));
                if (!ok)
                    memo_row_clear(d, out);
            }
            if (!ok) {
                memop_discard(repo, e, NULL, &k, 1,
                              "not the primary key of a row with this value");
                if (!r.healed) {
                    r.healed = true;
                    continue;
                }
                memop_buf v = {0}; /* read the database; fill nothing */
                st = load_unique(repo, e, &ctx, &v, &(uint64_t){0});
                memop_buf_free(&v);
                break;
            }
            hit = hit && row_hit;
        }
        break;
    }
    memop_read_free(&r);
    memop_record(e, MEMOP_OP_GET_BY, t0, hit);
    return st;
}

/* Reads in a transaction see its own writes: they go to the database, on the
 * transaction's connection, and fill nothing. */

memo_status memop_tx_entity(memo_tx *tx, const memo_entity_desc *d, const void *arg,
                            memop_entity **e)
{
    if (!tx)
        return MEMO_ERR_ARG;
    if (!d || !arg)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "NULL argument");
    return memop_entity_get(tx->repo, d, e);
}

memo_status memo_tx_get(memo_tx *tx, const memo_entity_desc *d, const void *key,
                        void *out)
{
    memop_entity *e;
    memo_status st = memop_tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    memset(out, 0, d->size);
    if ((st = memop_check_pk(tx->repo, d, key)) != MEMO_OK)
        return st;
    row_ctx ctx = {tx, MEMOP_SQL_SELECT, &d->fields[d->pk], key, &d->row, out, false};
    return load_row(tx->repo, e, &ctx, NULL, NULL);
}

memo_status memo_tx_get_by(memo_tx *tx, const memo_entity_desc *d, unsigned u,
                           const void *key, void *out)
{
    memop_entity *e;
    memo_status st = memop_tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    if (u >= d->nuniques)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_get_by: no lookup %u", u);
    memset(out, 0, d->size);
    const memo_field_desc *f = &d->fields[d->uniques[u].field];
    if ((st = memop_check_key(tx->repo, f, key)) != MEMO_OK)
        return st;
    row_ctx ctx = {tx, MEMOP_SQL_UNIQUE(d, u), f, key, &d->uniques[u], out, false};
    return load_row(tx->repo, e, &ctx, NULL, NULL);
}
