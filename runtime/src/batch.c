/* The batch path, for get_many and the rows of lists: one MGET; for the
 * misses one pipeline of the LEASE script (the corrupt deleted and asked again),
 * one query, one pipeline of fills. It is the engine's longest job, kept in
 * one file because its phases share the batch's state arrays. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* A batch of keys: their parts, keys, what the cache said, and the rows. */
typedef struct batch {
    size_t n;
    const void *keys; /* the caller's, width bytes each */
    size_t width;
    char (*parts)[MEMOP_KEY_PART_MAX + 1];
    size_t *plens;
    memop_key *keys_r;               /* their Redis keys */
    unsigned char *state;            /* enum below */
    bool *found;                     /* a row is in rows[i] */
    bool *bad;                       /* Redis held a corrupt value: to delete */
    char (*tokens)[MEMOP_LEASE_MAX]; /* the leases of B_OURS positions */
    void *rows;                      /* n row structs */
    uint64_t drop_gen; /* the entity's drop generation when the batch began */
} batch;

enum { B_HIT, B_NONE, B_MISS, B_OURS };

static void batch_free(batch *b, const memo_entity_desc *d)
{
    if (b->rows)
        for (size_t i = 0; i < b->n; i++)
            memo_row_clear(d, (char *)b->rows + i * d->size);
    free(b->parts);
    free(b->plens);
    free(b->keys_r);
    free(b->state);
    free(b->found);
    free(b->bad);
    free(b->tokens);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

static memo_status batch_init(memo_repo *repo, memop_entity *e, const void *keys,
                              size_t n, batch *b)
{
    const memo_entity_desc *d = e->desc;
    memset(b, 0, sizeof *b);
    size_t m = n ? n : 1;
    b->n = n;
    b->keys = keys;
    b->width = memop_pk_width(d);
    b->parts = malloc(m * sizeof *b->parts);
    b->plens = malloc(m * sizeof *b->plens);
    b->keys_r = malloc(m * sizeof *b->keys_r);
    b->state = calloc(m, 1);
    b->found = calloc(m, sizeof *b->found);
    b->bad = calloc(m, sizeof *b->bad);
    b->rows = calloc(m, d->size);
    if (!b->parts || !b->plens || !b->keys_r || !b->state || !b->found || !b->bad ||
        !b->rows) {
        batch_free(b, d);
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    /* every key is <before><part><after>: the two built once */
    memop_key before, after;
    memop_key_around(repo, d, &d->row.key, &before, &after);
    for (size_t i = 0; i < n; i++) {
        const void *key = (const char *)keys + i * b->width;
        memo_status st = memop_check_pk(repo, d, key);
        if (st != MEMO_OK) {
            batch_free(b, d);
            return st;
        }
        size_t pl = b->plens[i] = memop_pk_part(d, key, b->parts[i]);
        memop_key *k = &b->keys_r[i];
        if (before.len + pl + after.len < MEMOP_KEY_MAX) { /* (it always is) */
            memcpy(k->s, before.s, before.len);
            memcpy(k->s + before.len, b->parts[i], pl);
            memcpy(k->s + before.len + pl, after.s, after.len + 1);
            k->len = before.len + pl + after.len;
        } else {
            memop_key_build(repo, d, &d->row.key, b->parts[i], pl, k);
        }
        b->state[i] = B_MISS;
    }
    return MEMO_OK;
}

/* Builds the text array literal {1,2,3} or {"a","b"} of field k of the
 * missed keys' values. */
static void pk_array(memop_buf *out, const memo_entity_desc *d, unsigned k,
                     const void *keys, batch *b)
{
    const memo_field_desc *pk = &d->fields[d->pks[k]];
    memop_buf_puts(out, "{");
    bool first = true;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_MISS && b->state[i] != B_OURS)
            continue;
        if (!first)
            memop_buf_puts(out, ",");
        first = false;
        const char *v = (const char *)keys + i * b->width + d->pk_offsets[k];
        if (pk->type == MEMO_INT32) {
            memop_buf_printf(out, "%" PRId32, *(const int32_t *)(const void *)v);
        } else if (pk->type == MEMO_INT64) {
            memop_buf_printf(out, "%" PRId64, *(const int64_t *)(const void *)v);
        } else {
            const char *s = *(const char *const *)(const void *)v;
            memop_buf_puts(out, "\"");
            for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                    memop_buf_puts(out, "\\");
                memop_buf_append(out, s, 1);
            }
            memop_buf_puts(out, "\"");
        }
    }
    memop_buf_puts(out, "}");
}

static uint64_t hash_part(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Reads the missed rows with one query and puts each where it was asked:
 * an open-addressing table maps key parts to positions, and a key asked
 * twice gets a copy at each position. */
static memo_status load_many(memo_repo *repo, memo_tx *tx, memop_entity *e,
                             const void *keys, batch *b)
{
    const memo_entity_desc *d = e->desc;
    size_t cap = 16;
    while (cap < b->n * 2)
        cap *= 2;
    size_t *table = malloc(cap * sizeof *table);
    memop_buf arr[MEMOP_MAX_PK] = {{0}};
    memo_status st = MEMO_OK;
    PGresult *res = NULL;
    if (!table) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cap; i++)
        table[i] = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_MISS && b->state[i] != B_OURS)
            continue;
        size_t h = hash_part(b->parts[i], b->plens[i]) & (cap - 1);
        while (table[h] != SIZE_MAX)
            h = (h + 1) & (cap - 1);
        table[h] = i;
    }
    /* the keys as one array parameter per key field, in text form */
    memop_params ps = {.n = (int)d->npk};
    for (unsigned k = 0; k < d->npk; k++) {
        pk_array(&arr[k], d, k, keys, b);
        if (arr[k].failed) {
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
            goto out;
        }
        ps.values[k] = arr[k].s;
    }
    if ((st = memop_db_run(repo, tx, e, MEMOP_SQL_SELECT_MANY, &ps, &res)) != MEMO_OK)
        goto out;
    for (int r = 0; r < PQntuples(res) && st == MEMO_OK; r++) {
        /* read the row into the first position of its key... */
        size_t first = SIZE_MAX;
        char part[MEMOP_KEY_PART_MAX + 1];
        void *tmp = calloc(1, d->size);
        if (!tmp) {
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
            break;
        }
        if ((st = memop_result_row(d, res, r, 0, tmp)) != MEMO_OK) {
            free(tmp);
            st = st == MEMO_ERR_SCHEMA ? memop_schema_mismatch(repo, e, NULL)
                                       : memop_fail(repo, st, "out of memory");
            break;
        }
        _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
        memop_pk_of_row(d, tmp, key);
        size_t plen = memop_pk_part(d, key, part);
        for (size_t h = hash_part(part, plen) & (cap - 1); table[h] != SIZE_MAX;
             h = (h + 1) & (cap - 1)) {
            size_t i = table[h];
            if (b->plens[i] != plen || memcmp(b->parts[i], part, plen) != 0)
                continue;
            void *dst = (char *)b->rows + i * d->size;
            /* ...and a copy into every other position of the same key */
            if (first == SIZE_MAX) {
                memcpy(dst, tmp, d->size);
                memset(tmp, 0, d->size);
                first = i;
            } else if ((st = memop_row_copy(d, (char *)b->rows + first * d->size, dst)) !=
                       MEMO_OK) {
                memop_fail(repo, st, "out of memory");
                break;
            }
            b->found[i] = true;
        }
        memo_row_clear(d, tmp);
        free(tmp);
    }
out:
    PQclear(res);
    for (unsigned k = 0; k < d->npk; k++)
        memop_buf_free(&arr[k]);
    free(table);
    return st;
}

/* Hands the found rows to out, moved to the front in the order asked. */
static void batch_take(batch *b, const memo_entity_desc *d, memo_rows *out)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->found[i])
            continue;
        if (k != i) {
            memcpy((char *)b->rows + k * d->size, (char *)b->rows + i * d->size, d->size);
            memset((char *)b->rows + i * d->size, 0, d->size);
        }
        k++;
    }
    out->items = k ? b->rows : NULL;
    out->len = k;
    if (k == 0)
        free(b->rows);
    b->rows = NULL;
}

/* A value Redis returned for position i: a row of that key, or a negative
 * entry, or another filler's lease (it stays a miss). False when it is
 * none of these (too large, not decodable, another row's): corrupt. */
static bool batch_value(memo_repo *repo, const memo_entity_desc *d, batch *b, size_t i,
                        const redisReply *v)
{
    if (memop_is_lease(v->str, v->len))
        return true;
    if (memop_is_null_value(v->str, v->len)) {
        b->state[i] = B_NONE;
        return true;
    }
    if (v->len > (size_t)repo->cfg.max_value_bytes)
        return false;
    void *row = (char *)b->rows + i * d->size;
    char why[128];
    if (memop_row_decode(d, v->str, v->len, row, why, sizeof why) != MEMO_OK)
        return false;
    if (!memop_row_has_pk(d, row, (const char *)b->keys + i * b->width)) {
        memo_row_clear(d, row);
        return false;
    }
    b->state[i] = B_HIT;
    b->found[i] = true;
    return true;
}

/* Deletes the corrupt values the batch found, on its own connection. */
static void batch_discard(memo_repo *repo, memop_entity *e, memop_rconn *c, batch *b)
{
    size_t n = 0, first = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++)
        if (b->bad[i]) {
            n++;
            if (first == SIZE_MAX)
                first = i;
        }
    if (n == 0)
        return;
    memop_key *keys = n == 1 ? &b->keys_r[first] : malloc(n * sizeof *keys);
    if (!keys) {
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return; /* they stay misses; a later read deletes them */
    }
    if (n > 1)
        for (size_t i = 0, k = 0; i < b->n; i++)
            if (b->bad[i])
                keys[k++] = b->keys_r[i];
    memop_discard(repo, e, c, keys, n, "not a row of its key");
    if (n > 1)
        free(keys);
    memset(b->bad, 0, b->n * sizeof *b->bad);
}

/* Takes the leases of the misses in one pipeline of LEASE. A value
 * filled since the MGET is taken as it is. A corrupt value (the wrong type,
 * too large, not its key's row) is deleted and its lease asked for once
 * more, so it is refilled now. False when the connection failed. */
static bool batch_lease(memo_repo *repo, memop_entity *e, memop_rconn *c, batch *b)
{
    const memo_entity_desc *d = e->desc;
    size_t misses = 0;
    for (size_t i = 0; i < b->n; i++)
        misses += b->state[i] == B_MISS;
    if (misses == 0)
        return true;
    memop_script_call *calls = calloc(misses, sizeof *calls);
    size_t *pos = malloc(misses * sizeof *pos);
    bool *again = calloc(b->n, sizeof *again);
    char lease_ms[16], max[16];
    snprintf(lease_ms, sizeof lease_ms, "%d", repo->cfg.lease_ms);
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    bool ok = true;
    if (!calls || !pos || !again)
        goto out; /* no leases: the misses are read without filling */
    for (int round = 0; round < 2; round++) {
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++) {
            if (b->state[i] != B_MISS || (round > 0 && !again[i]))
                continue;
            memop_make_lease(repo, b->tokens[i]);
            memop_script_call *call = &calls[k];
            memset(call, 0, sizeof *call);
            call->argv[0] = b->keys_r[i].s;
            call->lens[0] = b->keys_r[i].len;
            call->argv[1] = b->tokens[i];
            call->lens[1] = strlen(b->tokens[i]);
            call->argv[2] = lease_ms;
            call->lens[2] = strlen(lease_ms);
            call->argv[3] = max;
            call->lens[3] = strlen(max);
            call->argc = 4;
            pos[k++] = i;
        }
        if (k == 0)
            break;
        if (memop_redis_script_many(repo, c, MEMOP_SCRIPT_LEASE, 1, calls, k) != 0) {
            ok = false;
            break;
        }
        bool any = false;
        for (size_t j = 0; j < k; j++) {
            redisReply *v = calls[j].reply;
            size_t i = pos[j];
            if (v->type == REDIS_REPLY_INTEGER && v->integer == 1) {
                b->state[i] = B_OURS;
            } else if (v->type == REDIS_REPLY_INTEGER && v->integer == 2) {
                b->bad[i] = true; /* too large */
            } else if (v->type == REDIS_REPLY_STRING) {
                if (!batch_value(repo, d, b, i, v)) /* filled since the MGET, corrupt */
                    b->bad[i] = true;
            } else if (v->type == REDIS_REPLY_ERROR) {
                enum memop_redis_error kind =
                    memop_redis_reply_failed(repo, v, "EVALSHA (lease)");
                if (kind == MEMOP_REDIS_WRONGTYPE)
                    b->bad[i] = true;
                else if (kind != MEMOP_REDIS_OUTAGE)
                    MEMOP_INC(e->stats.errors);
            }
            /* 0: another filler holds it; this call reads it without filling */
            again[i] = b->bad[i];
            any |= b->bad[i];
        }
        batch_discard(repo, e, c, b);
        if (!any)
            break;
    }
out:
    free(calls);
    free(pos);
    free(again);
    return ok;
}

/* Fills the keys this call holds leases for, in one pipeline. */
static void fill_many(memo_repo *repo, memop_entity *e, batch *b)
{
    const memo_entity_desc *d = e->desc;
    size_t count = 0;
    for (size_t i = 0; i < b->n; i++)
        count += b->state[i] == B_OURS;
    if (count == 0)
        return;
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return;
    memop_buf *values = calloc(count, sizeof *values);
    memop_script_call *calls = calloc(count, sizeof *calls);
    memop_script_call *gives = calloc(count, sizeof *gives); /* leases given back */
    size_t *pos = malloc(count * sizeof *pos);
    char(*ttls)[24] = malloc(count * sizeof *ttls);
    bool broken = false;
    if (!values || !calls || !gives || !pos || !ttls)
        goto out;
    size_t k = 0, m = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_OURS)
            continue;
        uint64_t ttl;
        memo_status st = MEMO_OK;
        if (b->found[i]) {
            st = memop_row_encode(d, (char *)b->rows + i * d->size, &values[k]);
            ttl = memop_row_ttl(repo, &d->row);
        } else {
            memop_buf_puts(&values[k], memop_null_value);
            ttl = memop_negative_ttl(repo, &d->row);
        }
        /* not encodable, or too large to read back: not cached, and its
         * lease given back so that nobody waits for it */
        if (st != MEMO_OK || values[k].failed ||
            values[k].len > (size_t)repo->cfg.max_value_bytes) {
            memop_buf_free(&values[k]);
            memop_script_call *give = &gives[m++];
            give->argv[0] = b->keys_r[i].s;
            give->lens[0] = b->keys_r[i].len;
            give->argv[1] = b->tokens[i];
            give->lens[1] = strlen(b->tokens[i]);
            give->argc = 2;
            continue;
        }
        snprintf(ttls[k], sizeof ttls[k], "%" PRIu64, ttl ? ttl : 1);
        memop_script_call *call = &calls[k];
        call->argv[0] = b->keys_r[i].s;
        call->lens[0] = b->keys_r[i].len;
        call->argv[1] = b->tokens[i];
        call->lens[1] = strlen(b->tokens[i]);
        call->argv[2] = values[k].s;
        call->lens[2] = values[k].len;
        call->argv[3] = ttls[k];
        call->lens[3] = strlen(ttls[k]);
        call->argc = 4;
        pos[k++] = i;
    }
    if (memop_redis_script_many(repo, c, MEMOP_SCRIPT_FILL, 1, calls, k) != 0 ||
        (m > 0 &&
         memop_redis_script_many(repo, c, MEMOP_SCRIPT_RELEASE, 1, gives, m) != 0)) {
        broken = true;
        goto out;
    }
    bool dropped = atomic_load(&e->drop_gen) != b->drop_gen;
    for (size_t j = 0; j < k; j++) {
        redisReply *r = calls[j].reply;
        if (r->type == REDIS_REPLY_INTEGER) {
            MEMOP_INC(*(r->integer == 1 ? &e->stats.fills : &e->stats.fill_rejects));
            if (r->integer == 1 && dropped)
                memop_undo_fill_if_dropped(repo, e, c, b->drop_gen, &b->keys_r[pos[j]],
                                           1);
        } else if (r->type == REDIS_REPLY_ERROR) {
            memop_redis_reply_failed(repo, r, "EVALSHA (fill)");
        }
    }
out:
    if (values)
        for (size_t i = 0; i < count; i++)
            memop_buf_free(&values[i]);
    free(values);
    free(calls);
    free(gives);
    free(pos);
    free(ttls);
    memop_redis_release(repo, c, broken);
}

/* Reads the batch's keys with one MGET. True when Redis answered; false
 * means do without the cache. A reply over its byte budget (some value far
 * too large) is no outage: every key goes to the lease pipeline, whose
 * script measures each value before sending it. */
static bool batch_mget(memo_repo *repo, memop_entity *e, memop_rconn **cp, batch *b)
{
    const memo_entity_desc *d = e->desc;
    memop_rconn *c = *cp;
    /* the keys still missing (the near cache may have answered others) */
    const char **argv = malloc((b->n + 1) * sizeof *argv);
    size_t *lens = malloc((b->n + 1) * sizeof *lens);
    size_t *pos = malloc((b->n ? b->n : 1) * sizeof *pos);
    redisReply *r = NULL;
    if (!argv || !lens || !pos) {
        free(argv);
        free(lens);
        free(pos);
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return false;
    }
    argv[0] = "MGET";
    lens[0] = 4;
    size_t asked = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_MISS)
            continue;
        argv[asked + 1] = b->keys_r[i].s;
        lens[asked + 1] = b->keys_r[i].len;
        pos[asked++] = i;
    }
    c->budget = memop_redis_reply_budget(repo, asked);
    r = memop_redis_command(repo, c, (int)asked + 1, argv, lens);
    free(argv);
    free(lens);
    if (!r && c->oversize) {
        free(pos);
        memop_redis_release(repo, c, true);
        *cp = memop_redis_acquire(repo);
        return *cp != NULL;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != asked) {
        free(pos);
        if (r)
            memop_redis_reply_failed(repo, r->type == REDIS_REPLY_ERROR ? r : NULL,
                                     "MGET");
        return false;
    }
    for (size_t j = 0; j < asked; j++) {
        size_t i = pos[j];
        redisReply *v = r->element[j];
        if (v->type != REDIS_REPLY_STRING)
            continue; /* a miss (MGET answers nil for a key of another type too) */
        if (!batch_value(repo, d, b, i, v))
            b->bad[i] = true;
        else if (b->state[i] != B_MISS) /* (a lease stays a miss) */
            MEMOP_INC(
                *(b->state[i] == B_NONE ? &e->stats.negative_hits : &e->stats.hits));
    }
    free(pos);
    batch_discard(repo, e, c, b);
    return true;
}

/* The batch path: one MGET; for the misses one pipeline of LEASE and
 * one query; fills for the leases taken. Rows come back in the order asked,
 * found rows only. Sets *all_hit when no key missed. */
memo_status memop_many(memo_repo *repo, memop_entity *e, const void *keys, size_t n,
                       memo_rows *out, bool *all_hit, bool near)
{
    const memo_entity_desc *d = e->desc;
    memop_stats *s = &e->stats;
    batch b;
    memo_status st = batch_init(repo, e, keys, n, &b);
    *all_hit = true;
    if (st != MEMO_OK || n == 0) {
        if (st == MEMO_OK)
            batch_free(&b, d);
        return st;
    }
    b.tokens = calloc(n, sizeof *b.tokens);
    if (!b.tokens) {
        batch_free(&b, d);
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    b.drop_gen = atomic_load(&e->drop_gen);

    /* the near cache first; its tickets say which Redis answers it may keep */
    memop_near_ticket *tickets = NULL;
    size_t asked = n;
    if (near && e->near && (tickets = calloc(n, sizeof *tickets))) {
        for (size_t i = 0; i < n; i++) {
            memo_status one;
            void *row = (char *)b.rows + i * d->size;
            if (!memop_near_get(e, &b.keys_r[i], row, &one, &tickets[i]))
                continue;
            b.state[i] = one == MEMO_OK ? B_HIT : B_NONE;
            b.found[i] = one == MEMO_OK;
            tickets[i].valid = false; /* nothing to put back */
            asked--;
        }
    }

    bool degraded = asked > 0;
    memop_rconn *c =
        asked == 0 || memop_entity_bypassed(e) ? NULL : memop_redis_acquire(repo);
    if (c && batch_mget(repo, e, &c, &b)) {
        degraded = false;
        size_t misses = 0;
        for (size_t i = 0; i < n; i++)
            misses += b.state[i] == B_MISS;
        MEMOP_ADD(s->misses, misses);
        *all_hit = misses == 0;
        /* what Redis answered (not what this call fills later) */
        for (size_t i = 0; tickets && i < n; i++)
            if (tickets[i].valid && (b.state[i] == B_HIT || b.state[i] == B_NONE))
                memop_near_put(e, &b.keys_r[i],
                               b.state[i] == B_HIT ? (char *)b.rows + i * d->size : NULL,
                               &tickets[i]);
    }
    free(tickets);
    bool broken = c && !degraded && !batch_lease(repo, e, c, &b);
    if (c)
        memop_redis_release(repo, c, broken || memop_rconn_broken(c));
    if (degraded) {
        MEMOP_ADD(s->misses, asked);
        MEMOP_INC(s->degraded);
        *all_hit = false;
    }

    size_t owned = 0;
    bool need_db = false;
    for (size_t i = 0; i < n; i++) {
        need_db |= b.state[i] == B_MISS || b.state[i] == B_OURS;
        owned += b.state[i] == B_OURS;
    }
    if (need_db) {
        /* the leases taken stay alive while the query runs */
        memop_key *held_keys = owned ? malloc(owned * sizeof *held_keys) : NULL;
        const char **tokens = owned ? malloc(owned * sizeof *tokens) : NULL;
        memop_lease_hold hold;
        bool held = held_keys && tokens;
        if (held) {
            for (size_t i = 0, k = 0; i < n; i++)
                if (b.state[i] == B_OURS) {
                    held_keys[k] = b.keys_r[i];
                    tokens[k++] = b.tokens[i];
                }
            memop_lease_hold_start(repo, &hold, held_keys, tokens, owned);
        }
        st = load_many(repo, NULL, e, keys, &b);
        if (held)
            memop_lease_hold_end(repo, &hold);
        free(held_keys);
        free(tokens);
        if (st == MEMO_OK) {
            fill_many(repo, e, &b);
        } else {
            for (size_t i = 0; i < n; i++) /* nobody should wait for these */
                if (b.state[i] == B_OURS)
                    memop_release_lease(repo, &b.keys_r[i], b.tokens[i]);
        }
    }
    if (st == MEMO_OK)
        batch_take(&b, d, out);
    batch_free(&b, d);
    return st;
}

memo_status memop_rows_start(memo_repo *repo, const memo_entity_desc *d, memo_rows *out,
                             memop_entity **e)
{
    out->items = NULL;
    out->len = 0;
    memo_status st = memop_entity_get(repo, d, e);
    if (st == MEMO_OK)
        out->more = false; /* (after the ABI check: older callers' rows lack it) */
    return st;
}

memo_status memo_get_many(memo_repo *repo, const memo_entity_desc *d, const void *keys,
                          size_t n, memo_rows *out)
{
    if (!repo || !d || !out || (!keys && n > 0))
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_get_many: NULL argument")
                    : MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = memop_rows_start(repo, d, out, &e);
    if (st != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    bool hit;
    st = memop_many(repo, e, keys, n, out, &hit, true);
    memop_record(e, MEMOP_OP_GET_MANY, t0, hit);
    return st;
}

memo_status memop_tx_many(memo_tx *tx, memop_entity *e, const void *keys, size_t n,
                          memo_rows *out)
{
    batch b;
    memo_status st = batch_init(tx->repo, e, keys, n, &b);
    if (st != MEMO_OK)
        return st;
    if (n > 0 && (st = load_many(tx->repo, tx, e, keys, &b)) == MEMO_OK)
        batch_take(&b, e->desc, out);
    batch_free(&b, e->desc);
    return st;
}

memo_status memo_tx_get_many(memo_tx *tx, const memo_entity_desc *d, const void *keys,
                             size_t n, memo_rows *out)
{
    memop_entity *e;
    memo_status st = memop_tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    out->items = NULL;
    out->len = 0;
    out->more = false;
    if (!keys && n > 0)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_get_many: NULL keys");
    return memop_tx_many(tx, e, keys, n, out);
}
