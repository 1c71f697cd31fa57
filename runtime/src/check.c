/* memo_check: what the cache holds for a row against what the database
 * holds, read-only. The question every consistency test asks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

memo_status memo_check(memo_repo *repo, const memo_entity_desc *d, const void *key,
                       void *cached, void *db, memo_check_result *res)
{
    if (!repo || !d || !key || !res)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_check: NULL argument")
                    : MEMO_ERR_ARG;
    memset(res, 0, sizeof *res);
    res->ttl_ms = -2;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    if ((st = memop_check_pk(repo, d, key)) != MEMO_OK)
        return st;
    void *c = calloc(1, d->size), *b = calloc(1, d->size);
    PGresult *pr = NULL;
    redisReply *r[2] = {NULL, NULL};
    memop_rconn *rc = NULL;
    bool broken = false;
    if (!c || !b) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }

    memop_key k;
    memop_key_row(repo, d, key, &k);
    if (!(rc = memop_redis_acquire(repo))) {
        st = MEMO_ERR_REDIS;
        goto out;
    }
    /* GET and PTTL in one round trip; the key holds a value or a lease */
    const char *get[] = {"GET", k.s}, *pttl[] = {"PTTL", k.s};
    size_t klens[] = {3, k.len}, plens[] = {4, k.len};
    memop_redis_append(rc, 2, get, klens);
    memop_redis_append(rc, 2, pttl, plens);
    if (memop_redis_exchange(repo, rc, 2, r, "GET") != 0) {
        broken = true;
        st = MEMO_ERR_REDIS;
        goto out;
    }
    if (r[0]->type == REDIS_REPLY_STRING && memop_is_lease(r[0]->str, r[0]->len)) {
        res->leased = true;
    } else if (r[0]->type == REDIS_REPLY_STRING) {
        res->cached = true;
        if (r[0]->len == 4 && memcmp(r[0]->str, memop_null_value, 4) == 0) {
            res->cached_row = false;
        } else {
            char why[128];
            res->cached_row = true;
            res->corrupt =
                memop_row_decode(d, r[0]->str, r[0]->len, c, why, sizeof why) != MEMO_OK;
        }
    }
    if (r[1]->type == REDIS_REPLY_INTEGER && !res->leased)
        res->ttl_ms = r[1]->integer;

    memop_params ps;
    ps.n = 0;
    memop_param_pk(&ps, d, key);
    if ((st = memop_db_run(repo, NULL, e, MEMOP_SQL_SELECT, &ps, &pr)) != MEMO_OK)
        goto out;
    if (PQntuples(pr) == 1) {
        if ((st = memop_result_row(d, pr, 0, 0, b)) != MEMO_OK) {
            st = memop_fail(repo, st, "table %s does not match entity %s.%s", d->table,
                            d->schema, d->name);
            goto out;
        }
        res->in_db = true;
    }
    if (!res->cached)
        res->fresh = true;
    else if (res->corrupt)
        res->fresh = false;
    else if (!res->cached_row)
        res->fresh = !res->in_db;
    else
        res->fresh = res->in_db && memop_row_equal(d, c, b);
    if (cached) {
        memcpy(cached, c, d->size);
        memset(c, 0, d->size);
    }
    if (db) {
        memcpy(db, b, d->size);
        memset(b, 0, d->size);
    }
out:
    if (rc)
        memop_redis_release(repo, rc, broken);
    PQclear(pr);
    memo_row_clear(d, c);
    memo_row_clear(d, b);
    free(c);
    free(b);
    return st;
}
