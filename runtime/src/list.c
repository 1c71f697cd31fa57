/* Lists: the cached, ordered primary keys of the rows of a group, whose
 * rows are then read by the batch path. The list holds up to limit + 1
 * keys: the one past the limit is not read, it says the list is cut
 * (memo_rows.more), and is as fresh as the others (any change of the
 * group's membership or order deletes the list). A list that is longer or
 * names rows of another group is corrupt. */
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

/* The primary key in the first columns of result row r (binary), one per
 * key field, into key (a key value; its strings libpq's, valid while its
 * result is). */
static bool pk_of(const memo_entity_desc *d, const PGresult *res, int r, void *key)
{
    for (unsigned k = 0; k < d->npk; k++) {
        const memo_field_desc *pk = &d->fields[d->pks[k]];
        char *out = (char *)key + d->pk_offsets[k];
        const char *v = PQgetvalue(res, r, (int)k);
        int len = PQgetlength(res, r, (int)k);
        if (pk->type == MEMO_TEXT) {
            *(char **)(void *)out = (char *)v; /* libpq's binary text ends in NUL */
            continue;
        }
        if ((pk->type != MEMO_INT64 || len != 8) && (pk->type != MEMO_INT32 || len != 4))
            return false;
        uint64_t x = 0;
        for (int i = 0; i < len; i++)
            x = x << 8 | (unsigned char)v[i];
        if (len == 4)
            *(int32_t *)(void *)out = (int32_t)(uint32_t)x;
        else
            *(int64_t *)(void *)out = (int64_t)x;
    }
    return true;
}

/* A list is the JSON array of its rows' primary keys, in order. */
static memo_status load_list(memo_repo *repo, memop_entity *e, void *vctx,
                             memop_buf *value, uint64_t *ttl)
{
    list_ctx *ctx = vctx;
    const memo_entity_desc *d = e->desc;
    PGresult *res;
    memo_status st =
        memop_query_one_key(repo, ctx->tx, e, ctx->stmt, ctx->group, ctx->key, &res);
    if (st != MEMO_OK)
        return st;
    memop_buf_puts(value, "[");
    for (int r = 0; r < PQntuples(res) && st == MEMO_OK; r++) {
        _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
        if (!pk_of(d, res, r, key)) {
            st = memop_fail(repo, MEMO_ERR_SCHEMA, "list %s of %s: unexpected key column",
                            ctx->list->name, e->desc->table);
            break;
        }
        if (r > 0)
            memop_buf_puts(value, ",");
        if (memop_pk_encode(d, key, value) != MEMO_OK)
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    PQclear(res);
    memop_buf_puts(value, "]");
    if (st != MEMO_OK)
        return st;
    *ttl = memop_ttl_ms(ctx->list->ttl_ms, ctx->list->jitter_pct);
    return value->failed ? MEMO_ERR_NOMEM : MEMO_OK;
}

static void free_keys(const memo_entity_desc *d, void *keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++)
        memop_pk_free(d, (char *)keys + i * d->key_size);
    free(keys);
}

/* Rows of out that are not of the group (a cached row changing group while
 * read) are left out. */
static void keep_group(const memo_entity_desc *d, const memo_field_desc *g,
                       const void *key, memo_rows *out)
{
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
    out->len = kept;
    if (kept == 0) {
        free(out->items);
        out->items = NULL;
    }
}

memo_status memo_list(memo_repo *repo, const memo_entity_desc *d, unsigned l,
                      const void *key, memo_rows *out)
{
    if (!repo || !d || !out || l >= d->nlists)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_list: bad argument")
                    : MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = memop_rows_start(repo, d, out, &e);
    if (st != MEMO_OK)
        return st;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
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
        /* more keys than the list's limit and one is as corrupt as no list */
        if (!memop_pk_array_decode(d, r.value.s, r.value.len, (size_t)ld->limit + 1,
                                   &keys, &n)) {
            if (!cached) {
                st = memop_fail(repo, MEMO_ERR_DB, "list %s: cannot read its keys",
                                ld->name);
                break;
            }
            memop_discard(repo, e, NULL, &k, 1, "not a list of at most `limit` + 1 keys");
            if (!r.healed) {
                r.healed = true;
                continue;
            }
            r.value.len = 0; /* back at once: the database's list, not cached */
            if ((st = load_list(repo, e, &ctx, &r.value, &(uint64_t){0})) != MEMO_OK)
                break;
            cached = false;
            if (!memop_pk_array_decode(d, r.value.s, r.value.len, SIZE_MAX, &keys, &n)) {
                st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                break;
            }
        }
        bool rows_hit, more = n > ld->limit;
        st = memop_many(repo, e, keys, more ? ld->limit : n, out, &rows_hit, false);
        out->more = more;
        free_keys(d, keys, n);
        hit = !r.missed && rows_hit;
        if (st != MEMO_OK)
            break;
        /* A cached list names rows of its group: one that names another
         * group's rows is stale (a write is deleting it right now) or
         * forged. Drop it and ask again; a row that moved meanwhile is left
         * out. */
        size_t found = out->len;
        keep_group(d, g, key, out);
        if (out->len != found && cached && !r.healed) {
            memo_rows_clear(d, out);
            memop_discard(repo, e, NULL, &k, 1, "names rows of another group");
            r.healed = true;
            continue;
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
    out->more = false;
    if (l >= d->nlists)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_list: no list %u", l);
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
    if ((st = memop_check_key(tx->repo, g, key)) != MEMO_OK)
        return st;
    list_ctx ctx = {tx, ld, MEMOP_SQL_LIST(d, l), g, key};
    memop_buf value = {0};
    uint64_t ttl;
    if ((st = load_list(tx->repo, e, &ctx, &value, &ttl)) == MEMO_OK) {
        void *keys = NULL;
        size_t n = 0;
        if (!memop_pk_array_decode(d, value.s, value.len, SIZE_MAX, &keys, &n)) {
            st = memop_fail(tx->repo, MEMO_ERR_NOMEM, "out of memory");
        } else {
            bool more = n > ld->limit;
            st = memop_tx_many(tx, e, keys, more ? ld->limit : n, out);
            out->more = more;
        }
        free_keys(d, keys, n);
    }
    memop_buf_free(&value);
    return st;
}

/* ----------------------------------------------------------------- counts */

/* A list's count: how many rows the group has, past the limit too, cached
 * beside the list (its key and ":n") and deleted with it whenever the
 * group's membership changes. The value is the number in decimal. */
static memo_status load_count(memo_repo *repo, memop_entity *e, void *vctx,
                              memop_buf *value, uint64_t *ttl)
{
    list_ctx *ctx = vctx;
    PGresult *res;
    memo_status st =
        memop_query_one_key(repo, ctx->tx, e, ctx->stmt, ctx->group, ctx->key, &res);
    if (st != MEMO_OK)
        return st;
    int64_t n = 0;
    if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 8) {
        const unsigned char *v = (const unsigned char *)PQgetvalue(res, 0, 0);
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x = x << 8 | v[i];
        n = (int64_t)x;
    } else {
        st =
            memop_fail(repo, MEMO_ERR_SCHEMA, "count of list %s of %s: unexpected result",
                       ctx->list->name, e->desc->table);
    }
    PQclear(res);
    if (st != MEMO_OK)
        return st;
    char text[21];
    memop_buf_append(value, text, memop_i64_text(n, text));
    if (ttl)
        *ttl = memop_ttl_ms(ctx->list->ttl_ms, ctx->list->jitter_pct);
    return value->failed ? MEMO_ERR_NOMEM : MEMO_OK;
}

/* A count read back: decimal digits, at most 18 of them (no table holds
 * more rows), else corrupt. */
static bool count_value(const char *s, size_t len, int64_t *n)
{
    if (len == 0 || len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *n = v;
    return true;
}

static memo_status count_args(memo_repo *repo, const memo_entity_desc *d, unsigned l,
                              const void *key, int64_t *n, memop_entity **e)
{
    if (!repo || !d || !n || l >= d->nlists)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_list_count: bad argument")
                    : MEMO_ERR_ARG;
    *n = 0;
    memo_status st = memop_entity_get(repo, d, e);
    if (st != MEMO_OK)
        return st;
    return memop_check_key(repo, &d->fields[d->lists[l].group], key);
}

memo_status memo_list_count(memo_repo *repo, const memo_entity_desc *d, unsigned l,
                            const void *key, int64_t *n)
{
    memop_entity *e;
    memo_status st = count_args(repo, d, l, key, n, &e);
    if (st != MEMO_OK)
        return st;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
    uint64_t t0 = memop_now_us();
    memop_key lk, k;
    memop_key_of(repo, d, &ld->key, g, key, &lk);
    memop_key_count(&lk, &k);
    list_ctx ctx = {NULL, ld, MEMOP_SQL_COUNT(d, l), g, key};
    MEMOP_READ(r, repo, e, &k, load_count, &ctx);
    for (;;) {
        enum memop_outcome o = memop_cached_read(&r);
        if (o == MEMOP_FAILED) {
            st = r.st;
        } else if (!count_value(r.value.s, r.value.len, n)) {
            if (o != MEMOP_HIT && o != MEMOP_NEG_HIT) {
                st = memop_fail(repo, MEMO_ERR_DB, "count of list %s: unreadable",
                                ld->name);
            } else {
                memop_discard(repo, e, NULL, &k, 1, "not a count");
                if (!r.healed) {
                    r.healed = true;
                    continue;
                }
                r.value.len = 0; /* back at once: the database's count, not cached */
                st = load_count(repo, e, &ctx, &r.value, NULL);
                if (st == MEMO_OK && !count_value(r.value.s, r.value.len, n))
                    st = memop_fail(repo, MEMO_ERR_DB, "count of list %s: unreadable",
                                    ld->name);
            }
        }
        break;
    }
    bool hit = !r.missed;
    memop_read_free(&r);
    memop_record(e, MEMOP_OP_LIST, t0, hit);
    return st;
}

memo_status memo_tx_list_count(memo_tx *tx, const memo_entity_desc *d, unsigned l,
                               const void *key, int64_t *n)
{
    if (!tx)
        return MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = count_args(tx->repo, d, l, key, n, &e);
    if (st != MEMO_OK)
        return st;
    const memo_list_desc *ld = &d->lists[l];
    list_ctx ctx = {tx, ld, MEMOP_SQL_COUNT(d, l), &d->fields[ld->group], key};
    memop_buf value = {0};
    if ((st = load_count(tx->repo, e, &ctx, &value, NULL)) == MEMO_OK &&
        !count_value(value.s, value.len, n))
        st = memop_fail(tx->repo, MEMO_ERR_DB, "count of list %s: unreadable", ld->name);
    memop_buf_free(&value);
    return st;
}

/* ------------------------------------------------------------------ pages */

/* One page: its keys from PostgreSQL (one more, for out->more), its rows
 * by the batch path. */
static memo_status page(memo_repo *repo, memo_tx *tx, memop_entity *e, unsigned l,
                        unsigned stmt, const void *key, const memop_params *ps, size_t n,
                        memo_rows *out, bool *all_hit)
{
    const memo_entity_desc *d = e->desc;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
    PGresult *res;
    memo_status st = memop_db_run(repo, tx, e, stmt, ps, &res);
    if (st != MEMO_OK)
        return st;
    size_t rows = (size_t)PQntuples(res), take = rows > n ? n : rows;
    size_t width = memop_pk_width(d);
    char *keys = take ? calloc(take, width) : NULL;
    if (take && !keys)
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < take && st == MEMO_OK; r++) {
        if (!pk_of(d, res, (int)r, keys + r * width)) /* (text: libpq's, while res is) */
            st = memop_fail(repo, MEMO_ERR_SCHEMA, "list %s of %s: unexpected key column",
                            ld->name, d->table);
    }
    if (st == MEMO_OK && take > 0)
        st = tx ? memop_tx_many(tx, e, keys, take, out)
                : memop_many(repo, e, keys, take, out, all_hit, false);
    free(keys);
    PQclear(res);
    if (st == MEMO_OK) {
        keep_group(d, g, key, out);
        out->more = rows > n;
    }
    return st;
}

/* The n rows of the group after `last` in the list's order: their keys
 * from PostgreSQL (one more, for out->more), the rows by the batch path
 * (the cache, or in a transaction the database). */
static memo_status after(memo_repo *repo, memo_tx *tx, const memo_entity_desc *d,
                         unsigned l, const void *key, const void *last, size_t n,
                         memo_rows *out)
{
    if (!repo)
        return MEMO_ERR_ARG;
    if (!d || !key || !last || !out || l >= d->nlists)
        return memop_fail(repo, MEMO_ERR_ARG, "memo_list_after: bad argument");
    memop_entity *e;
    memo_status st = memop_rows_start(repo, d, out, &e);
    if (st != MEMO_OK)
        return st;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
    const memo_field_desc *o = &d->fields[ld->order];
    _Alignas(int64_t) char last_key[MEMOP_KEY_SIZE_MAX];
    memop_pk_of_row(d, last, last_key);
    if ((st = memop_check_key(repo, g, key)) != MEMO_OK ||
        (st = memop_check_pk(repo, d, last_key)) != MEMO_OK)
        return st;
    /* a NULL where the schema says not nullable would compare as unknown
     * and end the walk silently */
    if ((o->type == MEMO_TEXT || o->type == MEMO_JSON) &&
        !(o->flags & MEMO_FIELD_NULLABLE) &&
        !*(const char *const *)((const char *)last + o->offset))
        return memop_fail(repo, MEMO_ERR_ARG, "list %s: the last row's %s is NULL",
                          ld->name, o->name);
    if (n == 0 || n > 10000)
        return memop_fail(repo, MEMO_ERR_ARG, "list %s: a page of %zu rows (1 to 10000)",
                          ld->name, n);
    uint64_t t0 = memop_now_us();
    memop_params ps = {.n = 0};
    memop_param_key(&ps, g, key);
    memop_param_field(&ps, &d->fields[ld->order], last);
    memop_param_pk(&ps, d, last_key);
    const memo_field_desc count = {.name = "n", .type = MEMO_INT64};
    int64_t want = (int64_t)n + 1;
    memop_param_key(&ps, &count, &want);
    bool all_hit = false;
    unsigned stmt = (o->flags & MEMO_FIELD_NULLABLE) && memop_field_null(o, last)
                        ? MEMOP_SQL_AFTER_NULL(d, l)
                        : MEMOP_SQL_AFTER(d, l);
    /* Rows deleted or moved out of the group between the keys' query and
     * the rows' read are left out: a page can come back short. Should it
     * come back empty while others follow, the caller would have no row to
     * go on from: ask again (the query no longer sees them), a few times. */
    for (int attempt = 0; attempt < 3; attempt++) {
        st = page(repo, tx, e, l, stmt, key, &ps, n, out, &all_hit);
        if (st != MEMO_OK || out->len > 0 || !out->more)
            break;
    }
    if (!tx)
        memop_record(e, MEMOP_OP_LIST, t0, all_hit);
    return st;
}

memo_status memo_list_after(memo_repo *repo, const memo_entity_desc *d, unsigned l,
                            const void *key, const void *last, size_t n, memo_rows *out)
{
    return after(repo, NULL, d, l, key, last, n, out);
}

memo_status memo_tx_list_after(memo_tx *tx, const memo_entity_desc *d, unsigned l,
                               const void *key, const void *last, size_t n,
                               memo_rows *out)
{
    return tx ? after(tx->repo, tx, d, l, key, last, n, out) : MEMO_ERR_ARG;
}
