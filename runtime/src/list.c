/* Lists: the cached, ordered primary keys of the rows of a group, at most
 * `limit` of them, whose rows are then read by the batch path; a list that
 * is longer or names rows of another group is corrupt. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

typedef struct list_ctx {
    memo_tx *tx;
    const memo_list_desc *list;
    unsigned stmt;
    const memo_field_desc *group;
    const void *key;
} list_ctx;

/* A list is the JSON array of its rows' primary keys, in order. */
static memo_status load_list(memo_repo *repo, memop_entity *e, void *vctx,
                             memop_buf *value, uint64_t *ttl)
{
    list_ctx *ctx = vctx;
    const memo_field_desc *pk = &e->desc->fields[e->desc->pk];
    PGresult *res;
    memo_status st =
        memop_query_one_key(repo, ctx->tx, e, ctx->stmt, ctx->group, ctx->key, &res);
    if (st != MEMO_OK)
        return st;
    memop_buf_puts(value, "[");
    for (int r = 0; r < PQntuples(res) && st == MEMO_OK; r++) {
        union {
            int32_t i32;
            int64_t i64;
            char *text;
        } key = {0};
        const char *v = PQgetvalue(res, r, 0);
        int len = PQgetlength(res, r, 0);
        if (pk->type == MEMO_TEXT) {
            key.text = (char *)v; /* libpq's binary text is NUL-terminated */
        } else if ((pk->type == MEMO_INT64 && len == 8) ||
                   (pk->type == MEMO_INT32 && len == 4)) {
            uint64_t x = 0;
            for (int i = 0; i < len; i++)
                x = x << 8 | (unsigned char)v[i];
            if (len == 4)
                key.i32 = (int32_t)(uint32_t)x;
            else
                key.i64 = (int64_t)x;
        } else {
            st = memop_fail(repo, MEMO_ERR_SCHEMA, "list %s of %s: unexpected key column",
                            ctx->list->name, e->desc->table);
            break;
        }
        if (r > 0)
            memop_buf_puts(value, ",");
        if (memop_pk_encode(pk, &key, value) != MEMO_OK)
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    PQclear(res);
    memop_buf_puts(value, "]");
    if (st != MEMO_OK)
        return st;
    *ttl = memop_ttl_ms(ctx->list->ttl_ms, ctx->list->jitter_pct);
    return value->failed ? MEMO_ERR_NOMEM : MEMO_OK;
}

static void free_keys(const memo_field_desc *pk, void *keys, size_t n)
{
    if (keys && pk->type == MEMO_TEXT)
        for (size_t i = 0; i < n; i++)
            free(((char **)keys)[i]);
    free(keys);
}

memo_status memo_list(memo_repo *repo, const memo_entity_desc *d, unsigned l,
                      const void *key, memo_rows *out)
{
    if (!repo || !d || !out || l >= d->nlists)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_list: bad argument")
                    : MEMO_ERR_ARG;
    out->items = NULL;
    out->len = 0;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
    const memo_field_desc *pk = &d->fields[d->pk];
    if ((st = memop_check_key(repo, g, key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    memop_key k;
    memop_key_of(repo, d, &ld->key, g, key, &k);

    list_ctx ctx = {NULL, ld, MEMOP_SQL_LIST(d, l), g, key};
    MEMOP_READ(r, repo, e, &k, load_list, &ctx);
    bool hit = false;
    for (;;) {
        enum memop_outcome o = memop_cached_read(&r);
        if (o == MEMOP_FAILED) {
            st = r.st;
            break;
        }
        void *keys = NULL;
        size_t n = 0;
        bool cached = o == MEMOP_HIT || o == MEMOP_NEG_HIT;
        /* more keys than the list's limit is as corrupt as no list at all */
        if (!memop_pk_array_decode(pk, r.value.s, r.value.len, ld->limit, &keys, &n)) {
            if (!cached) {
                st = memop_fail(repo, MEMO_ERR_DB, "list %s: cannot read its keys",
                                ld->name);
                break;
            }
            memop_discard(repo, e, NULL, &k, 1, "not a list of at most `limit` keys");
            if (!r.healed) {
                r.healed = true;
                continue;
            }
            r.value.len = 0; /* back at once: the database's list, not cached */
            if ((st = load_list(repo, e, &ctx, &r.value, &(uint64_t){0})) != MEMO_OK)
                break;
            cached = false;
            if (!memop_pk_array_decode(pk, r.value.s, r.value.len, SIZE_MAX, &keys, &n)) {
                st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                break;
            }
        }
        bool rows_hit;
        st = memop_many(repo, e, keys, n, out, &rows_hit);
        free_keys(pk, keys, n);
        hit = !r.missed && rows_hit;
        if (st != MEMO_OK)
            break;
        /* A cached list names rows of its group: one that names another
         * group's rows is stale (a write is deleting it right now) or
         * forged. Drop it and ask again; a row that moved meanwhile is left
         * out. */
        size_t kept = 0;
        for (size_t i = 0; i < out->len; i++) {
            char *row = (char *)out->items + i * d->size;
            if (!memop_row_has(g, row, key)) {
                memo_row_clear(d, row);
                continue;
            }
            if (kept != i) {
                memcpy((char *)out->items + kept * d->size, row, d->size);
                memset(row, 0, d->size);
            }
            kept++;
        }
        if (kept != out->len && cached && !r.healed) {
            memo_rows_clear(d, out);
            memop_discard(repo, e, NULL, &k, 1, "names rows of another group");
            r.healed = true;
            continue;
        }
        out->len = kept;
        if (kept == 0) {
            free(out->items);
            out->items = NULL;
        }
        break;
    }
    memop_read_free(&r);
    memop_record(e, MEMOP_OP_LIST, t0, hit);
    return st;
}

memo_status memo_tx_list(memo_tx *tx, const memo_entity_desc *d, unsigned l,
                         const void *key, memo_rows *out)
{
    memop_entity *e;
    memo_status st = memop_tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    out->items = NULL;
    out->len = 0;
    if (l >= d->nlists)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_list: no list %u", l);
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group], *pk = &d->fields[d->pk];
    if ((st = memop_check_key(tx->repo, g, key)) != MEMO_OK)
        return st;
    list_ctx ctx = {tx, ld, MEMOP_SQL_LIST(d, l), g, key};
    memop_buf value = {0};
    uint64_t ttl;
    if ((st = load_list(tx->repo, e, &ctx, &value, &ttl)) == MEMO_OK) {
        void *keys = NULL;
        size_t n = 0;
        if (!memop_pk_array_decode(pk, value.s, value.len, SIZE_MAX, &keys, &n))
            st = memop_fail(tx->repo, MEMO_ERR_NOMEM, "out of memory");
        else
            st = memop_tx_many(tx, e, keys, n, out);
        free_keys(pk, keys, n);
    }
    memop_buf_free(&value);
    return st;
}
