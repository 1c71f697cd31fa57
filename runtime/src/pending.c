/* Invalidations that could not be sent: a bounded queue kept for the
 * prober, which sends it when Redis answers (or, after a refusal, retries
 * it); over the bound, and when a write's keys could not all be collected,
 * whole entities are marked to be dropped. Also the one DEL a write sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* On a cluster, a key that cannot be queued (over the bound) whose node is
 * down: that node is marked to be emptied of memo's keys before it is used
 * again, rather than every node dropping the entity (over and over, for as
 * long as the node stays down). Under the queue's lock. */
static bool down_node_takes(memo_repo *repo, const char *key, size_t len)
{
    if (!atomic_load(&repo->cluster.on))
        return false;
    unsigned node = atomic_load(&repo->cluster.slot[memop_key_slot(key, len)]);
    if (node >= MEMOP_NODES_MAX || !atomic_load(&repo->cluster.nodes[node]->down))
        return false;
    atomic_store(&repo->cluster.nodes[node]->needs_flush, true);
    return true;
}

/* Keeps keys for later. Over the bound, the owners are flagged instead: on
 * reconnect all their keys are dropped, so nothing stale survives. */
static void pending_add(memo_repo *repo, memop_entity *const *owners,
                        const memop_key *keys, size_t n)
{
    memop_pending *q = &repo->pending;
    size_t max =
        memop_test_hooks.pending_max ? memop_test_hooks.pending_max : MEMOP_PENDING_MAX;
    /* entities to drop, after the lock (a drop empties a near cache) */
    unsigned char drop[MEMOP_MAX_ENTITIES / 8] = {0};
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < n; i++) {
        if (memop_entity_dropping(owners[i]))
            continue; /* the drop will cover this key: it happens after now */
        char *copy = NULL;
        if (q->n < max) {
            if (q->n == q->cap) {
                size_t cap = q->cap ? q->cap * 2 : 64;
                char **k = realloc(q->keys, cap * sizeof *k);
                memop_entity **o = k ? realloc(q->owners, cap * sizeof *o) : NULL;
                if (k)
                    q->keys = k;
                if (o) {
                    q->owners = o;
                    q->cap = cap;
                }
            }
            if (q->n < q->cap)
                copy = strdup(keys[i].s);
        }
        if (!copy && down_node_takes(repo, keys[i].s, keys[i].len))
            continue; /* its node is emptied before it is used again */
        if (!copy) {
            drop[owners[i]->index / 8] |= (unsigned char)(1u << (owners[i]->index % 8));
            continue;
        }
        q->keys[q->n] = copy;
        q->owners[q->n] = owners[i];
        q->n++;
        atomic_fetch_add(&owners[i]->queued, 1);
        /* by slot whether or not Redis is a cluster yet (a repository opened
         * degraded may find one): the counts must match the queue */
        atomic_fetch_add(&repo->cluster.queued[memop_key_slot(keys[i].s, keys[i].len)],
                         1);
    }
    atomic_store(&q->any, true);
    pthread_mutex_unlock(&q->lock);
    /* before the write returns, as the queued keys were */
    unsigned n_entities = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n_entities; i++)
        if (drop[i / 8] & (1u << (i % 8)))
            memop_entity_drop(repo, repo->entity_list[i]);
    memop_prober_wake(repo);
}

void memop_entity_drop(memo_repo *repo, memop_entity *e)
{
    atomic_fetch_add(&e->drop_gen, 1);
    memop_near_clear(e); /* after: no read begun before refills it */
    memop_prober_wake(repo);
}

bool memop_entity_dropping(memop_entity *e)
{
    return atomic_load(&e->drop_gen) != atomic_load(&e->dropped_gen);
}

bool memop_entity_bypassed(memop_entity *e)
{
    return atomic_load(&e->queued) != 0 || memop_entity_dropping(e);
}

bool memop_key_bypassed(memo_repo *repo, memop_entity *e, const memop_key *k)
{
    if (memop_entity_dropping(e))
        return true;
    if (atomic_load(&e->queued) == 0)
        return false;
    /* on a cluster, only the slots with queued keys: a node that is down
     * holds back its keys, not every key of the entity */
    return !atomic_load(&repo->cluster.on) ||
           atomic_load(&repo->cluster.queued[memop_key_slot(k->s, k->len)]) != 0;
}

/* A queued key can go now: on one Redis always, on a cluster when the
 * node of its slot is up. */
static bool sendable(memo_repo *repo, const char *key, int unused)
{
    (void)unused;
    if (!atomic_load(&repo->cluster.on))
        return true;
    unsigned node = atomic_load(&repo->cluster.slot[memop_key_slot(key, strlen(key))]);
    return node < MEMOP_NODES_MAX && !atomic_load(&repo->cluster.nodes[node]->down);
}

void memop_redis_invalidate(memo_repo *repo, memop_entity *const *owners,
                            const memop_key *keys, size_t n)
{
    if (n == 0)
        return;
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c) {
        pending_add(repo, owners, keys, n);
        return;
    }
    bool broken = false;
    /* kept for the prober after a failure: after an outage, or (a refusal)
     * until the permission is back; an outage opens the breaker there */
    if (memop_redis_del(repo, c, keys, n, "DEL", &broken) != 0)
        pending_add(repo, owners, keys, n);
    memop_redis_release(repo, c, broken);
}

/* The first n keys of the queue were sent: they go. Under its lock. */
static void dequeue(memo_repo *repo, memop_pending *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* after Redis took its DEL */
        atomic_fetch_sub(
            &repo->cluster.queued[memop_key_slot(q->keys[i], strlen(q->keys[i]))], 1);
        free(q->keys[i]);
        atomic_fetch_sub(&q->owners[i]->queued, 1);
    }
    if (n > 0 && n < q->n) {
        memmove(q->keys, q->keys + n, (q->n - n) * sizeof *q->keys);
        memmove(q->owners, q->owners + n, (q->n - n) * sizeof *q->owners);
    }
    q->n -= n;
}

/* Moves the queued keys for which `go` holds to the front (DELs may go in
 * any order); how many. Under the queue's lock. node: go's argument. */
static size_t to_front(memo_repo *repo, memop_pending *q,
                       bool (*go)(memo_repo *, const char *, int), int node)
{
    size_t n = 0;
    for (size_t i = 0; i < q->n; i++)
        if (go(repo, q->keys[i], node)) {
            char *k = q->keys[i];
            memop_entity *o = q->owners[i];
            q->keys[i] = q->keys[n];
            q->owners[i] = q->owners[n];
            q->keys[n] = k;
            q->owners[n++] = o;
        }
    return n;
}

/* Sends DELs of the first n queued keys, 500 a command, and drops those
 * Redis took from the queue. True when all went; *refused when Redis
 * answered but said no (not an outage). Under the queue's lock. */
static bool send_front(memo_repo *repo, memop_rconn *c, memop_pending *q, size_t n,
                       bool *refused)
{
    bool ok = true;
    *refused = false;
    size_t done = 0;
    while (done < n && ok) {
        size_t batch = n - done < 500 ? n - done : 500;
        const char *argv[501];
        argv[0] = "DEL";
        for (size_t i = 0; i < batch; i++)
            argv[i + 1] = q->keys[done + i];
        redisReply *r = memop_redis_command(repo, c, (int)batch + 1, argv, NULL);
        ok = r && r->type == REDIS_REPLY_INTEGER;
        if (ok)
            done += batch;
        else if (r)
            *refused = memop_redis_reply_failed(repo, r, "DEL (queued invalidations)") !=
                       MEMOP_REDIS_OUTAGE;
    }
    dequeue(repo, q, done);
    atomic_store(&q->any, q->n > 0);
    return ok;
}

static bool on_node(memo_repo *repo, const char *key, int node)
{
    return atomic_load(&repo->cluster.slot[memop_key_slot(key, strlen(key))]) ==
           (unsigned)node;
}

/* Drops every key of an entity. On a cluster, a node that is down is
 * emptied of memo's keys before it is used again (needs_flush): the drop
 * does not wait for it. */
static bool drop_entity(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d)
{
    if (!atomic_load(&repo->cluster.on))
        return memop_redis_flush_entity(repo, c, d) >= 0;
    int nodes[MEMOP_NODES_MAX];
    size_t n = memop_redis_masters(repo, nodes);
    for (size_t i = 0; i < n; i++) {
        memop_rnode *nd = repo->cluster.nodes[nodes[i]];
        if (atomic_load(&nd->down))
            atomic_store(&nd->needs_flush, true);
        else if (memop_redis_flush_entity_on(repo, c, d, nodes[i]) < 0)
            return false;
    }
    return true;
}

bool memop_pending_flush_node(memo_repo *repo, memop_rconn *c, int node)
{
    memop_pending *q = &repo->pending;
    pthread_mutex_lock(&q->lock);
    bool refused;
    bool ok = send_front(repo, c, q, to_front(repo, q, on_node, node), &refused);
    /* up only once its keys went, under the queue's lock; or when a DEL was
     * refused (a permission): those keys stay queued, their slots read
     * PostgreSQL, and the rest of the node serves. Not if a key it could
     * not queue asked meanwhile for it to be emptied first. */
    if ((ok || refused) && !atomic_load(&repo->cluster.nodes[node]->needs_flush))
        memop_cluster_node_up(repo, node);
    pthread_mutex_unlock(&q->lock);
    return ok;
}

bool memop_pending_sendable(memo_repo *repo)
{
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++)
        if (memop_entity_dropping(repo->entity_list[i]))
            return true;
    if (!atomic_load(&repo->pending.any))
        return false;
    /* the slots with queued keys, without the queue's lock: one served by
     * a node that is up */
    for (size_t sl = 0; sl < MEMOP_SLOTS; sl++) {
        if (atomic_load_explicit(&repo->cluster.queued[sl], memory_order_relaxed) == 0)
            continue;
        unsigned node = atomic_load(&repo->cluster.slot[sl]);
        if (node < MEMOP_NODES_MAX && !atomic_load(&repo->cluster.nodes[node]->down))
            return true;
    }
    return false;
}

/* Sends what the outage kept back: first the wholesale drops of entities
 * whose queue overflowed, then the queued keys (on a cluster, those of the
 * nodes that are up). True when all that could go went. */
bool memop_pending_flush(memo_repo *repo, memop_rconn *c)
{
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++) {
        memop_entity *e = repo->entity_list[i];
        uint64_t asked = atomic_load(&e->drop_gen);
        if (asked == atomic_load(&e->dropped_gen))
            continue;
        if (!drop_entity(repo, c, e->desc))
            return false;
        /* a drop asked for meanwhile keeps the entity dropping: next round */
        atomic_store(&e->dropped_gen, asked);
    }
    memop_pending *q = &repo->pending;
    pthread_mutex_lock(&q->lock);
    /* (on a cluster, keys of a node that is down stay, for when it is back) */
    bool refused;
    bool ok = send_front(repo, c, q, to_front(repo, q, sendable, -1), &refused);
    if (ok) {
        /* closed under the queue's lock. A key may still be queued with the
         * breaker closed (a writer that found it open a moment ago, a
         * refused DEL): its entity's reads bypass the cache until the
         * prober, which sees the queue, sends it */
        atomic_store_explicit(&repo->breaker, MEMOP_BREAKER_CLOSED, memory_order_release);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}
