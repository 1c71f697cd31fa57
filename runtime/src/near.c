/* The near cache: rows kept in the process for entities declared with
 * `near N [ttl D]`, kept coherent by Redis itself (server-assisted client
 * side caching).
 *
 * Storage. Each near cache is split in shards (a power of two), each with
 * its own mutex, hash table and S3-FIFO queues (Yang et al., SOSP 2023): a
 * new row enters a small FIFO (a tenth of the shard); one that is hit
 * while there moves to the main FIFO when it reaches the tail, the others
 * leave and their hash is remembered in a ghost table, so that a row asked
 * for again soon after enters the main FIFO directly; the main FIFO gives
 * a row with hits another round (CLOCK-like) before it evicts it. A scan
 * of many rows read once only ever passes through the small FIFO, so the
 * hot rows in the main one survive it, which plain LRU or CLOCK do not.
 * A hit takes one shard's mutex (no lock is global) and allocates only the
 * caller's strings: the row is stored decoded, its strings packed behind
 * it.
 *
 * Coherence. One connection per repository (the subscriber) runs
 * CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <each near
 * entity's row keys> and SUBSCRIBEs to __redis__:invalidate: Redis then
 * sends it the name of every key of those prefixes that anyone modifies
 * (a write's DEL, a fill, an expiry, an eviction) and nil for a FLUSHALL
 * or FLUSHDB. BCAST needs no tracking state per read nor any command on
 * the pooled connections, and the one connection both asks and listens:
 * lose it and both are gone together, never a tracking that redirects to
 * nobody. Rows enter the near cache only from a Redis hit, and only while
 * the subscriber is live.
 *
 * Why a row cannot enter after its invalidation (the fill race). Each
 * shard has sequence numbers, bumped under its mutex: one per slot (keys
 * hash to slots, several times more slots than entries) by every drop of a
 * key of the slot (an invalidation message, a write of this process), and
 * the shard's epoch by every flush. A reader takes both numbers before it
 * asks Redis (memop_near_get) and may insert what Redis answered only if
 * they are unchanged (memop_near_put, under the same mutex); slots keep
 * other keys' messages, a fill's above all, from refusing it. If Redis sent the value
 * before a write's DEL, the DEL's message is sent after it; the subscriber handles the
 * message either before the insert (the number moved: the insert is refused) or after it
 * (the entry is dropped). If Redis ran the read after the DEL, the value is the new one.
 * A lost subscriber connection, a ping it does not answer in time, the breaker opening
 * and a flush message clear every near cache and bump every number, so no read begun
 * before them inserts after.
 *
 * How stale a near hit can be: by the time from a write's DEL reaching
 * Redis to its message reaching this process (docs/guarantees.md), and a
 * write of this process drops its own keys before it returns. With Redis
 * unreachable from the subscriber, at most PING_EVERY_MS + the command
 * time-out, then everything is flushed; and never older than its ttl. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* How often the subscriber pings an idle connection, to find a frozen or
 * vanished Redis (an answer is due within command_timeout_ms). */
#define PING_EVERY_MS 200
/* The most unparsed bytes the subscriber keeps (one message's worth). */
#define MAX_PENDING_BYTES (16u << 20)

typedef struct near_entry {
    struct near_entry *hnext;       /* hash chain */
    struct near_entry *prev, *next; /* its FIFO */
    uint64_t hash;
    uint64_t expires_us;
    size_t bytes; /* counted against the shard's budget */
    uint8_t freq; /* hits, 0..3 */
    bool in_main; /* which FIFO */
    bool absent;  /* a negative entry: the row does not exist */
    uint32_t keylen;
    void *row;  /* the decoded row, its strings packed after it */
    char key[]; /* keylen bytes and a NUL, then the row */
} near_entry;

typedef struct near_fifo {
    near_entry *head, *tail; /* in at the head, out at the tail */
    size_t n;
} near_fifo;

typedef struct near_shard {
    _Alignas(64) pthread_mutex_t lock;
    uint64_t epoch; /* bumped by flushes */
    uint32_t *seqs; /* bumped by drops of a key of the slot */
    size_t seqmask;
    near_entry **buckets;
    size_t mask; /* buckets - 1 */
    near_fifo small, main;
    size_t cap_small; /* the small FIFO's share of the shard */
    uint64_t *ghost;  /* hashes of rows evicted from the small FIFO */
    size_t nghost;
} near_shard;

typedef struct memop_near {
    near_shard *shards;
    size_t nshards; /* a power of two */
    uint64_t ttl_us, negative_ttl_us;
    size_t max_entries, max_bytes; /* the bounds, over all shards */
    memop_key before, after;       /* a row key is before + part + after */
    _Atomic bool live;             /* the subscriber tracks this entity's keys */
    memop_stats *stats;            /* the entity's: near_entries, near_bytes */
} memop_near;

/* ------------------------------------------------------------ hashing */

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static uint64_t hash_key(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ mix(w)) * 0x100000001b3ULL;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    return mix(h ^ w);
}

/* --------------------------------------------------------------- FIFOs */

static void fifo_push(near_fifo *q, near_entry *x)
{
    x->prev = NULL;
    x->next = q->head;
    if (q->head)
        q->head->prev = x;
    else
        q->tail = x;
    q->head = x;
    q->n++;
}

static void fifo_remove(near_fifo *q, near_entry *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        q->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        q->tail = x->prev;
    q->n--;
}

/* -------------------------------------------------------------- shards */

static near_entry **slot_of(near_shard *s, uint64_t hash, const char *key, size_t len)
{
    near_entry **p = &s->buckets[(hash >> 8) & s->mask];
    while (*p && !((*p)->hash == hash && (*p)->keylen == len &&
                   memcmp((*p)->key, key, len) == 0))
        p = &(*p)->hnext;
    return p;
}

/* Unlinks and frees x. */
static void remove_entry(memop_near *n, near_shard *s, near_entry *x)
{
    near_entry **p = slot_of(s, x->hash, x->key, x->keylen);
    if (*p == x)
        *p = x->hnext;
    fifo_remove(x->in_main ? &s->main : &s->small, x);
    atomic_fetch_sub_explicit(&n->stats->near_entries, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&n->stats->near_bytes, x->bytes, memory_order_relaxed);
    free(x);
}

/* Evicts one entry, S3-FIFO's way. False when the shard is empty. */
static bool evict_one(memop_near *n, near_shard *s)
{
    for (;;) {
        if (s->small.n > 0 && (s->small.n > s->cap_small || s->main.n == 0)) {
            near_entry *t = s->small.tail;
            if (t->freq > 0) { /* hit while new: it stays, in the main FIFO */
                fifo_remove(&s->small, t);
                t->freq = 0;
                t->in_main = true;
                fifo_push(&s->main, t);
                continue;
            }
            s->ghost[(t->hash >> 16) % s->nghost] = t->hash;
            remove_entry(n, s, t);
            return true;
        }
        near_entry *t = s->main.tail;
        if (!t)
            return false;
        if (t->freq > 0) { /* another round */
            fifo_remove(&s->main, t);
            t->freq--;
            fifo_push(&s->main, t);
            continue;
        }
        remove_entry(n, s, t);
        return true;
    }
}

static void clear_shard(memop_near *n, near_shard *s)
{
    while (s->small.tail)
        remove_entry(n, s, s->small.tail);
    while (s->main.tail)
        remove_entry(n, s, s->main.tail);
}

static size_t pow2_at_least(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

memo_status memop_near_new(memo_repo *repo, memop_entity *e)
{
    const memo_entity_desc *d = e->desc;
    size_t entries = d->row.near_entries;
    if (entries == 0 || (repo->cfg.flags & MEMO_NEAR_OFF))
        return MEMO_OK;
    memop_near *n = calloc(1, sizeof *n);
    if (!n)
        return MEMO_ERR_NOMEM;
    n->stats = &e->stats;
    n->max_entries = entries;
    n->max_bytes = repo->cfg.near_max_bytes;
    /* about 32 rows a shard or more, at most 64 shards */
    size_t want = entries / 32;
    n->nshards = want >= 64 ? 64 : want < 1 ? 1 : pow2_at_least(want + 1) / 2;
    n->shards = calloc(n->nshards, sizeof *n->shards);
    if (!n->shards) {
        free(n);
        return MEMO_ERR_NOMEM;
    }
    size_t per = (entries + n->nshards - 1) / n->nshards;
    for (size_t i = 0; i < n->nshards; i++)
        pthread_mutex_init(&n->shards[i].lock, NULL); /* memop_near_free destroys all */
    for (size_t i = 0; i < n->nshards; i++) {
        near_shard *s = &n->shards[i];
        s->cap_small = per / 10 ? per / 10 : 1;
        s->mask = pow2_at_least(per) - 1;
        s->nghost = per;
        s->seqmask = pow2_at_least(per * 4 > 64 ? per * 4 : 64) - 1;
        s->buckets = calloc(s->mask + 1, sizeof *s->buckets);
        s->ghost = calloc(s->nghost, sizeof *s->ghost);
        s->seqs = calloc(s->seqmask + 1, sizeof *s->seqs);
        if (!s->buckets || !s->ghost || !s->seqs) {
            e->near = n;
            memop_near_free(e);
            return MEMO_ERR_NOMEM;
        }
    }
    uint64_t ttl = d->row.near_ttl_ms ? d->row.near_ttl_ms
                   : d->row.ttl_ms    ? d->row.ttl_ms
                                      : (uint64_t)repo->cfg.default_ttl_ms;
    uint64_t neg = d->row.negative_ttl_ms ? d->row.negative_ttl_ms
                                          : (uint64_t)repo->cfg.negative_ttl_ms;
    n->ttl_us = ttl * 1000u;
    n->negative_ttl_us = (neg < ttl ? neg : ttl) * 1000u;
    memop_key_around(repo, d, &d->row.key, &n->before, &n->after);
    e->near = n;
    return MEMO_OK;
}

void memop_near_free(memop_entity *e)
{
    memop_near *n = e->near;
    if (!n)
        return;
    for (size_t i = 0; i < n->nshards; i++) {
        near_shard *s = &n->shards[i];
        if (s->buckets)
            clear_shard(n, s);
        free(s->buckets);
        free(s->ghost);
        free(s->seqs);
        pthread_mutex_destroy(&s->lock);
    }
    free(n->shards);
    free(n);
    e->near = NULL;
}

/* ---------------------------------------------------------- hit and put */

static size_t load(_Atomic uint64_t *v)
{
    return (size_t)atomic_load_explicit(v, memory_order_relaxed);
}

static near_shard *shard_of(memop_near *n, uint64_t hash)
{
    return &n->shards[hash & (n->nshards - 1)];
}

/* The key's sequence slot (bits the shard and bucket do not use). */
static uint32_t *seq_of(near_shard *s, uint64_t hash)
{
    return &s->seqs[(hash >> 40) & s->seqmask];
}

bool memop_near_get(memop_entity *e, const memop_key *k, void *out, memo_status *st,
                    memop_near_ticket *t)
{
    memop_near *n = e->near;
    t->valid = false;
    if (!atomic_load_explicit(&n->live, memory_order_relaxed))
        return false;
    t->hash = hash_key(k->s, k->len);
    near_shard *s = shard_of(n, t->hash);
    pthread_mutex_lock(&s->lock);
    /* again under the lock: disable_all stores false before it bumps this
     * shard's epoch, so a ticket taken here after that is never valid, and
     * one taken before is refused by the epoch */
    if (!atomic_load_explicit(&n->live, memory_order_relaxed)) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    t->epoch = s->epoch;
    t->seq = *seq_of(s, t->hash);
    t->valid = true;
    near_entry *x = *slot_of(s, t->hash, k->s, k->len);
    if (!x) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    if (memop_now_us() >= x->expires_us) {
        remove_entry(n, s, x);
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    if (x->freq < 3)
        x->freq++;
    *st = x->absent ? MEMO_NOT_FOUND : memop_row_copy(e->desc, x->row, out);
    pthread_mutex_unlock(&s->lock);
    if (*st == MEMO_ERR_NOMEM) { /* the caller reads Redis instead */
        t->valid = false;
        return false;
    }
    MEMOP_INC(e->stats.near_hits);
    return true;
}

/* The bytes of a row's strings. */
static size_t strings_size(const memo_entity_desc *d, const void *row)
{
    size_t n = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        const char *s = memop_field_is_text(f->type)
                            ? *(char *const *)MEMOP_FIELD_CPTR(row, f)
                            : NULL;
        if (s)
            n += strlen(s) + 1;
    }
    return n;
}

/* An entry holding key and row (NULL: absent), its strings packed. */
static near_entry *entry_new(const memo_entity_desc *d, const memop_key *k,
                             const void *row)
{
    size_t at = (sizeof(near_entry) + k->len + 1 + 15) & ~(size_t)15;
    size_t size = at + (row ? d->size + strings_size(d, row) : 0);
    near_entry *x = malloc(size);
    if (!x)
        return NULL;
    memset(x, 0, sizeof *x);
    x->bytes = size;
    x->keylen = (uint32_t)k->len;
    memcpy(x->key, k->s, k->len + 1);
    x->absent = row == NULL;
    if (!row)
        return x;
    x->row = (char *)x + at;
    memcpy(x->row, row, d->size);
    char *p = (char *)x->row + d->size;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if (!memop_field_is_text(f->type))
            continue;
        char **to = (char **)MEMOP_FIELD_PTR(x->row, f);
        if (!*to)
            continue;
        size_t len = strlen(*to) + 1;
        memcpy(p, *to, len);
        *to = p;
        p += len;
    }
    return x;
}

void memop_near_put(memop_entity *e, const memop_key *k, const void *row,
                    const memop_near_ticket *t)
{
    memop_near *n = e->near;
    if (!t->valid)
        return;
    near_entry *x = entry_new(e->desc, k, row);
    if (!x)
        return; /* only the near cache misses out */
    x->hash = t->hash;
    near_shard *s = shard_of(n, t->hash);
    pthread_mutex_lock(&s->lock);
    /* an invalidation or a flush came after the read began: what Redis
     * answered may be older than it */
    if (s->epoch != t->epoch || *seq_of(s, t->hash) != t->seq ||
        x->bytes > n->max_bytes ||
        !atomic_load_explicit(&n->live, memory_order_relaxed)) {
        pthread_mutex_unlock(&s->lock);
        free(x);
        return;
    }
    near_entry **p = slot_of(s, x->hash, k->s, k->len);
    if (*p)
        remove_entry(n, s, *p);
    /* the bounds are the whole cache's (shards fill unevenly); the shard
     * that inserts evicts, so a shard left empty never blocks one that is
     * not, and threads inserting at once overshoot by a row a shard at most */
    uint64_t evicted = 0;
    while ((load(&n->stats->near_entries) >= n->max_entries ||
            load(&n->stats->near_bytes) + x->bytes > n->max_bytes) &&
           evict_one(n, s))
        evicted++;
    x->expires_us = memop_now_us() + (row ? n->ttl_us : n->negative_ttl_us);
    bool ghost = s->ghost[(x->hash >> 16) % s->nghost] == x->hash;
    x->in_main = ghost;
    fifo_push(ghost ? &s->main : &s->small, x);
    p = slot_of(s, x->hash, k->s, k->len); /* evictions may have moved the end */
    x->hnext = NULL;
    *p = x;
    atomic_fetch_add_explicit(&n->stats->near_entries, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n->stats->near_bytes, x->bytes, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    if (evicted)
        MEMOP_ADD(e->stats.near_evictions, evicted);
}

/* ------------------------------------------------------ drops, flushes */

/* Drops the key's entry, and refuses every insert of its shard begun
 * before now. True when there was one. */
static bool drop_key(memop_near *n, const char *key, size_t len)
{
    uint64_t h = hash_key(key, len);
    near_shard *s = shard_of(n, h);
    pthread_mutex_lock(&s->lock);
    ++*seq_of(s, h);
    near_entry *x = *slot_of(s, h, key, len);
    if (x)
        remove_entry(n, s, x);
    pthread_mutex_unlock(&s->lock);
    return x != NULL;
}

void memop_near_drop(memop_entity *e, const memop_key *k)
{
    if (e->near)
        drop_key(e->near, k->s, k->len);
}

/* Clears every shard; inserts begun before are refused. */
static void clear_all(memop_near *n)
{
    for (size_t i = 0; i < n->nshards; i++) {
        near_shard *s = &n->shards[i];
        pthread_mutex_lock(&s->lock);
        s->epoch++;
        clear_shard(n, s);
        pthread_mutex_unlock(&s->lock);
    }
}

void memop_near_clear(memop_entity *e)
{
    if (!e->near)
        return;
    clear_all(e->near);
    MEMOP_INC(e->stats.near_flushes);
}

/* A FLUSHALL or FLUSHDB: every near cache is cleared, and stays live. */
static void flush_all(memo_repo *repo)
{
    unsigned count = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < count; i++)
        memop_near_clear(repo->entity_list[i]);
}

/* Coherence lost: every near cache stops answering at once, and every put
 * begun before is refused; cheap (a lock and an increment a shard), so any
 * thread may do it. The rows stay in memory until the subscriber clears
 * them, before it makes the caches live again. */
static void disable_all(memo_repo *repo)
{
    unsigned count = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < count; i++) {
        memop_entity *e = repo->entity_list[i];
        memop_near *n = e->near;
        if (!n || !atomic_load(&n->live))
            continue;
        atomic_store(&n->live, false);
        for (size_t s = 0; s < n->nshards; s++) {
            pthread_mutex_lock(&n->shards[s].lock);
            n->shards[s].epoch++;
            pthread_mutex_unlock(&n->shards[s].lock);
        }
        MEMOP_INC(e->stats.near_flushes);
    }
}

void memop_near_lost(memo_repo *repo)
{
    if (atomic_load(&repo->near.started)) {
        disable_all(repo);
        memop_near_wake(repo); /* to reconnect */
    }
}

/* The entity whose row keys include key, or NULL. */
static memop_entity *owner_of(memo_repo *repo, const char *key, size_t len)
{
    unsigned count = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < count; i++) {
        memop_entity *e = repo->entity_list[i];
        memop_near *n = e->near;
        if (n && len > n->before.len + n->after.len &&
            memcmp(key, n->before.s, n->before.len) == 0 &&
            memcmp(key + len - n->after.len, n->after.s, n->after.len) == 0)
            return e;
    }
    return NULL;
}

/* ---------------------------------------------------------- subscriber */

/* Builds CLIENT TRACKING on REDIRECT id BCAST PREFIX p... for the near
 * entities registered now, listing them in tracked. Redis refuses prefixes
 * that overlap: one that begins with another is left out (the shorter
 * covers it; messages are routed by the whole key anyway). */
static int tracking_argv(memo_repo *repo, const char *id, const char **argv, size_t *lens,
                         memop_entity **tracked, size_t *ntracked)
{
    int argc = 0;
    static const char *const head[] = {"CLIENT",   "TRACKING", "on",
                                       "REDIRECT", NULL,       "BCAST"};
    for (int i = 0; i < 6; i++) {
        argv[argc] = head[i] ? head[i] : id;
        lens[argc] = strlen(argv[argc]);
        argc++;
    }
    *ntracked = 0;
    unsigned count = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < count; i++)
        if (repo->entity_list[i]->near)
            tracked[(*ntracked)++] = repo->entity_list[i];
    for (size_t i = 0; i < *ntracked; i++) {
        const memop_key *p = &tracked[i]->near->before;
        bool covered = false;
        for (size_t j = 0; j < *ntracked && !covered; j++) {
            const memop_key *q = &tracked[j]->near->before;
            /* q covers p: shorter, or the same and listed first */
            covered = j != i && q->len <= p->len && memcmp(q->s, p->s, q->len) == 0 &&
                      (q->len < p->len || j < i);
        }
        if (!covered) {
            argv[argc] = "PREFIX";
            lens[argc++] = 6;
            argv[argc] = p->s;
            lens[argc++] = p->len;
        }
    }
    return argc;
}

static redisReply *get_reply(memop_rconn *c)
{
    redisReply *r = NULL;
    if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK)
        return NULL;
    return r;
}

/* Connects the subscriber: tracking on, subscribed. NULL on failure, with
 * the reason in why. */
static memop_rconn *subscribe(memo_repo *repo, memop_entity **tracked, size_t *ntracked,
                              char *why, size_t size)
{
    bool refused;
    memop_rconn *c = memop_rconn_new(repo, why, size, &refused);
    if (!c)
        return NULL;
    /* messages come whenever Redis sends them, so replies are not kept in
     * the connection's arena (reset between exchanges) but malloc'd and
     * freed one by one; the reader is empty after the handshake */
    redisReader *reader = redisReaderCreate();
    if (!reader) {
        snprintf(why, size, "out of memory");
        memop_rconn_free(c);
        return NULL;
    }
    redisReaderFree(c->ctx->reader);
    c->ctx->reader = reader;
    redisReply *r = NULL;
    char id[32];
    redisAppendCommand(c->ctx, "CLIENT ID");
    if (!(r = get_reply(c)) || r->type != REDIS_REPLY_INTEGER) {
        snprintf(why, size, "CLIENT ID: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->ctx->errstr);
        goto fail;
    }
    snprintf(id, sizeof id, "%lld", r->integer);
    freeReplyObject(r);
    r = NULL;
    const char *argv[6 + 2 * MEMOP_MAX_ENTITIES];
    size_t lens[6 + 2 * MEMOP_MAX_ENTITIES];
    int argc = tracking_argv(repo, id, argv, lens, tracked, ntracked);
    if (!memop_test_hooks.near_no_tracking)
        redisAppendCommandArgv(c->ctx, argc, argv, lens);
    redisAppendCommand(c->ctx, "SUBSCRIBE __redis__:invalidate");
    if (!memop_test_hooks.near_no_tracking &&
        (!(r = get_reply(c)) || r->type != REDIS_REPLY_STATUS)) {
        snprintf(why, size, "CLIENT TRACKING: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->ctx->errstr);
        goto fail;
    }
    freeReplyObject(r);
    r = NULL;
    if (!(r = get_reply(c)) || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        snprintf(why, size, "SUBSCRIBE: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->ctx->errstr);
        goto fail;
    }
    freeReplyObject(r);
    return c;
fail:
    freeReplyObject(r);
    memop_rconn_free(c);
    return NULL;
}

/* One message on the subscriber connection. False when it is not one
 * memo expects (the connection is then not trusted). */
static bool handle(memo_repo *repo, const redisReply *r, bool *pong)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "pong") == 0) {
        *pong = true;
        return true;
    }
    if (strcmp(kind, "message") != 0 || r->elements != 3)
        return false;
    const redisReply *keys = r->element[2];
    if (keys->type == REDIS_REPLY_NIL) { /* FLUSHALL, FLUSHDB */
        flush_all(repo);
        return true;
    }
    if (keys->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING)
            continue;
        memop_entity *e = owner_of(repo, k->str, k->len);
        if (e && drop_key(e->near, k->str, k->len))
            MEMOP_INC(e->stats.near_invalidations);
    }
    return true;
}

static bool send_ping(memop_rconn *c)
{
    redisAppendCommand(c->ctx, "PING");
    int done = 0;
    while (!done)
        if (redisBufferWrite(c->ctx, &done) != REDIS_OK)
            return false;
    return true;
}

/* Waits up to ms for the wake pipe; true when woken. */
static bool nap(memo_repo *repo, int ms)
{
    struct pollfd p = {.fd = repo->near.wake[0], .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        char buf[64];
        while (read(repo->near.wake[0], buf, sizeof buf) > 0) {
        }
        return true;
    }
    return false;
}

static void say_why(memop_near_sub *sub, const char *why)
{
    pthread_mutex_lock(&sub->lock);
    snprintf(sub->why, sizeof sub->why, "%.255s", why);
    pthread_mutex_unlock(&sub->lock);
}

bool memop_near_state(memo_repo *repo, bool *up, uint64_t *connects, char *why,
                      size_t size)
{
    memop_near_sub *sub = &repo->near;
    if (!atomic_load(&sub->started))
        return false;
    *up = atomic_load(&sub->up);
    *connects = atomic_load(&sub->connects);
    pthread_mutex_lock(&sub->lock);
    snprintf(why, size, "%s", sub->why);
    pthread_mutex_unlock(&sub->lock);
    return true;
}

/* The subscriber thread: keeps one tracking connection up while the
 * breaker is closed; every near cache is live only while it is. */
static void *near_main(void *arg)
{
    memo_repo *repo = arg;
    memop_near_sub *sub = &repo->near;
    memop_rconn *c = NULL;
    memop_entity *tracked[MEMOP_MAX_ENTITIES];
    size_t ntracked = 0;
    unsigned have = 0;
    uint64_t epoch = 0, heard = 0, pinged = 0;
    int backoff = MEMOP_PROBE_INTERVAL_MS;
    const char *lost = NULL;
    char why[300];
    while (!atomic_load(&sub->stop)) {
        bool open = atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED;
        if (c && (open || atomic_load(&repo->breaker_epoch) != epoch))
            lost = "the circuit breaker opened";
        else if (c && atomic_load(&sub->want) != have)
            lost = "a near-cached entity was added";
        if (c && lost) {
            memop_rconn_free(c);
            c = NULL;
            disable_all(repo);
            /* and the memory back, here rather than on the thread that
             * tripped the breaker */
            unsigned count = atomic_load(&repo->nentities);
            for (unsigned i = 0; i < count; i++)
                if (repo->entity_list[i]->near)
                    clear_all(repo->entity_list[i]->near);
            atomic_store(&sub->up, false);
            say_why(sub, lost);
            lost = NULL;
        }
        if (!c) {
            if (open) {
                nap(repo, MEMOP_PROBE_INTERVAL_MS);
                continue;
            }
            if (atomic_load(&repo->cluster.on)) {
                /* invalidations come from each node: one subscriber per
                 * master is not built yet, so the near caches stay off */
                say_why(sub,
                        "near caches are off on a Redis Cluster (not supported yet)");
                nap(repo, 1000);
                continue;
            }
            have = atomic_load(&sub->want);
            epoch = atomic_load(&repo->breaker_epoch);
            if (!(c = subscribe(repo, tracked, &ntracked, why, sizeof why))) {
                /* refused (a permission) or down: back off, up to 5 s */
                say_why(sub, why);
                nap(repo, backoff);
                backoff = backoff < 2500 ? backoff * 2 : 5000;
                continue;
            }
            backoff = MEMOP_PROBE_INTERVAL_MS;
            /* what the caches held was not tracked while the subscriber was
             * away: emptied before they answer again */
            for (size_t i = 0; i < ntracked; i++)
                clear_all(tracked[i]->near);
            if (atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED ||
                atomic_load(&repo->breaker_epoch) != epoch) {
                memop_rconn_free(c); /* an outage began meanwhile */
                c = NULL;
                continue;
            }
            for (size_t i = 0; i < ntracked; i++)
                atomic_store(&tracked[i]->near->live, true);
            atomic_fetch_add(&sub->connects, 1);
            atomic_store(&sub->up, true);
            heard = memop_now_us();
            pinged = 0;
        }
        uint64_t now = memop_now_us();
        uint64_t due = pinged ? pinged + (uint64_t)repo->cfg.command_timeout_ms * 1000u
                              : heard + PING_EVERY_MS * 1000u;
        int wait = due > now ? (int)((due - now + 999) / 1000) : 0;
        struct pollfd p[2] = {{.fd = c->ctx->fd, .events = POLLIN},
                              {.fd = sub->wake[0], .events = POLLIN}};
        int ready = poll(p, 2, wait);
        if (ready > 0 && (p[1].revents & POLLIN))
            nap(repo, 0);
        if (ready > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (redisBufferRead(c->ctx) != REDIS_OK) {
                lost = "the subscriber connection was lost";
                continue;
            }
            /* a message is a few key names: what is not is not Redis's */
            if (c->ctx->reader->len - c->ctx->reader->pos > MAX_PENDING_BYTES) {
                lost = "the subscriber connection sent a message too large";
                continue;
            }
            heard = memop_now_us();
            redisReply *r;
            bool pong = false, bad = false;
            while (!bad && redisGetReplyFromReader(c->ctx, (void **)&r) == REDIS_OK &&
                   r) {
                bad = !handle(repo, r, &pong);
                freeReplyObject(r);
            }
            if (bad || c->ctx->err) {
                lost = "the subscriber connection sent what memo does not expect";
                continue;
            }
            if (pong)
                pinged = 0;
            continue;
        }
        now = memop_now_us();
        if (pinged && now >= pinged + (uint64_t)repo->cfg.command_timeout_ms * 1000u)
            lost = "Redis did not answer the subscriber's ping in time";
        else if (!pinged && now >= heard + PING_EVERY_MS * 1000u) {
            if (send_ping(c))
                pinged = now;
            else
                lost = "the subscriber connection was lost";
        }
    }
    memop_rconn_free(c);
    return NULL;
}

memo_status memop_near_start(memo_repo *repo)
{
    memop_near_sub *sub = &repo->near;
    if (atomic_load(&sub->started))
        return MEMO_OK;
    if (pipe(sub->wake) != 0)
        return MEMO_ERR_NOMEM;
    for (int i = 0; i < 2; i++)
        fcntl(sub->wake[i], F_SETFL, O_NONBLOCK | fcntl(sub->wake[i], F_GETFL));
    if (pthread_create(&sub->thread, NULL, near_main, repo) != 0) {
        close(sub->wake[0]);
        close(sub->wake[1]);
        return MEMO_ERR_NOMEM;
    }
    atomic_store(&sub->started, true);
    return MEMO_OK;
}

void memop_near_track(memo_repo *repo)
{
    atomic_fetch_add(&repo->near.want, 1);
    memop_near_wake(repo);
}

void memop_near_wake(memo_repo *repo)
{
    if (atomic_load(&repo->near.started) && write(repo->near.wake[1], "", 1) < 0) {
        /* full: a wake-up is already waiting */
    }
}

void memop_near_stop(memo_repo *repo)
{
    memop_near_sub *sub = &repo->near;
    if (!atomic_load(&sub->started))
        return;
    atomic_store(&sub->stop, true);
    memop_near_wake(repo);
    pthread_join(sub->thread, NULL);
    close(sub->wake[0]);
    close(sub->wake[1]);
    atomic_store(&sub->started, false);
}
