/* The circuit breaker and the background thread (the prober). An outage
 * opens the breaker: calls skip Redis at once and read PostgreSQL. While it
 * is open the prober tries Redis every probe interval; when Redis answers it
 * sends what was kept back (pending.c) and closes the breaker. While it is
 * closed the prober publishes the statistics, and retries invalidations a
 * refusal kept back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

void memop_prober_wake(memo_repo *repo)
{
    pthread_mutex_lock(&repo->prober_lock);
    pthread_cond_signal(&repo->prober_cond);
    pthread_mutex_unlock(&repo->prober_lock);
}

void memop_redis_trip(memo_repo *repo)
{
    int closed = MEMOP_BREAKER_CLOSED;
    if (atomic_compare_exchange_strong(&repo->breaker, &closed, MEMOP_BREAKER_OPEN)) {
        atomic_fetch_add(&repo->breaker_epoch, 1);
        memop_near_lost(repo); /* the subscriber may be missing messages too */
        memop_prober_wake(repo);
    }
}

static void wait_ms(memo_repo *repo, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + ms * 1000000u;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&repo->prober_cond, &repo->prober_lock, &until);
}

/* Something the prober must send: queued invalidations or an entity to drop. */
static bool work_pending(memo_repo *repo)
{
    /* (on a cluster, keys of a node that is down wait for it: no work) */
    if (atomic_load(&repo->cluster.on))
        return memop_pending_sendable(repo);
    if (atomic_load(&repo->pending.any))
        return true;
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++)
        if (memop_entity_dropping(repo->entity_list[i]))
            return true;
    return false;
}

/* PING to every node that serves slots (one, on a single Redis). */
static bool ping_all(memo_repo *repo, memop_rconn *c)
{
    int nodes[MEMOP_NODES_MAX];
    size_t all = memop_redis_masters(repo, nodes), n = 0;
    const char *ping[] = {"PING"};
    for (size_t i = 0; i < all; i++) {
        /* (a cluster node that is down comes back on its own: recover) */
        if (c->nctx && atomic_load(&repo->cluster.nodes[nodes[i]]->down))
            continue;
        if (c->nctx)
            memop_cluster_append(c, nodes[i], 1, ping, NULL);
        else
            memop_redis_append(c, 1, ping, NULL);
        n++;
    }
    redisReply *r[MEMOP_NODES_MAX];
    if (n == 0 || memop_redis_exchange(repo, c, n, r, "PING") != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (r[i]->type == REDIS_REPLY_ERROR)
            return false;
    return true;
}

static void say_refused(memo_repo *repo, memo_status st, const char *err)
{
    pthread_mutex_lock(&repo->prober_lock);
    snprintf(repo->redis_refused, sizeof repo->redis_refused, "%.255s",
             st == MEMO_ERR_CONFIG ? err : "");
    pthread_mutex_unlock(&repo->prober_lock);
}

/* On a connection of its own: Redis answers, and what was kept back went. */
static bool probe_and_flush(memo_repo *repo)
{
    char err[512];
    bool refused;
    memop_rconn *c = NULL;
    memo_status st;
    if (!atomic_load(&repo->redis_checked)) {
        /* opened degraded: memo_open's checks first (a missing permission,
         * or a list of nodes that is no cluster, keeps the breaker open,
         * and the statistics say why) */
        st = memop_redis_first(repo, &c, err, sizeof err);
        say_refused(repo, st, err);
        if (st != MEMO_OK)
            return false;
    } else {
        /* after an outage the map may have changed (a failover); while the
         * breaker is closed, recover and MOVED keep it */
        if (atomic_load(&repo->cluster.on) &&
            atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED) {
            st = memop_cluster_refresh(repo, err, sizeof err);
            say_refused(repo, st, err);
            if (st != MEMO_OK)
                return false;
        }
        if (!(c = memop_rconn_new(repo, err, sizeof err, &refused)))
            return false;
    }
    bool ok = ping_all(repo, c) && memop_pending_flush(repo, c);
    memop_rconn_free(c);
    return ok;
}

/* How long a refused invalidation waits before it is tried again while
 * Redis is up (a permission taken away at run time, say). */
#define RETRY_CLOSED_MS 1000

/* The background thread. While the breaker is open it tries Redis every
 * probe interval and, when Redis answers, sends what was kept back and closes
 * the breaker. While it is closed it publishes the statistics every
 * stats_publish_ms, and retries what a refusal kept back. */
static void *prober_main(void *arg)
{
    memo_repo *repo = arg;
    uint64_t next_publish = memop_now_us() + (uint64_t)repo->cfg.stats_publish_ms * 1000u;
    uint64_t retry_at = 0, next_recover = 0, next_refresh = 0;
    pthread_mutex_lock(&repo->prober_lock);
    while (!repo->closing) {
        uint64_t now = memop_now_us();
        bool open = atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED;
        bool work = work_pending(repo);
        if (atomic_load(&repo->cluster.ndown) > 0 && now >= next_recover) {
            /* cluster nodes down: each brought back when it answers (the
             * breaker open or not: a node held down must not hold it) */
            pthread_mutex_unlock(&repo->prober_lock);
            memop_cluster_recover(repo);
            pthread_mutex_lock(&repo->prober_lock);
            next_recover = memop_now_us() + MEMOP_PROBE_INTERVAL_MS * 1000u;
            continue;
        }
        if (open || (work && now >= retry_at)) {
            pthread_mutex_unlock(&repo->prober_lock);
            bool ok = probe_and_flush(repo);
            pthread_mutex_lock(&repo->prober_lock);
            if (!ok && open && !repo->closing)
                wait_ms(repo, MEMOP_PROBE_INTERVAL_MS);
            else if (!ok)
                retry_at = memop_now_us() + RETRY_CLOSED_MS * 1000u;
            else if (work_pending(repo)) /* keys of a cluster node that is down */
                retry_at = memop_now_us() + MEMOP_PROBE_INTERVAL_MS * 1000u;
            continue;
        }
        if (atomic_load(&repo->cluster.stale) && now >= next_refresh) {
            /* a MOVED corrected one slot: the whole map, at most every
             * probe interval however many MOVED come */
            char err[512];
            pthread_mutex_unlock(&repo->prober_lock);
            memop_cluster_refresh(repo, err, sizeof err);
            pthread_mutex_lock(&repo->prober_lock);
            next_refresh = memop_now_us() + MEMOP_PROBE_INTERVAL_MS * 1000u;
            continue;
        }
        if (repo->publish && now >= next_publish) {
            pthread_mutex_unlock(&repo->prober_lock);
            memop_stats_publish(repo);
            pthread_mutex_lock(&repo->prober_lock);
            next_publish = now + (uint64_t)repo->cfg.stats_publish_ms * 1000u;
            continue;
        }
        uint64_t wake = repo->publish ? next_publish : UINT64_MAX;
        if (work && retry_at < wake)
            wake = retry_at;
        if (atomic_load(&repo->cluster.ndown) > 0 && next_recover < wake)
            wake = next_recover;
        if (atomic_load(&repo->cluster.stale) && next_refresh < wake)
            wake = next_refresh;
        if (wake == UINT64_MAX)
            pthread_cond_wait(&repo->prober_cond, &repo->prober_lock);
        else
            wait_ms(repo, (wake - now + 999) / 1000);
    }
    pthread_mutex_unlock(&repo->prober_lock);
    return NULL;
}

bool memop_prober_start(memo_repo *repo)
{
    if (pthread_create(&repo->prober, NULL, prober_main, repo) != 0)
        return false;
    repo->prober_started = true;
    return true;
}

void memop_prober_stop(memo_repo *repo)
{
    if (!repo->prober_started)
        return;
    pthread_mutex_lock(&repo->prober_lock);
    repo->closing = true;
    pthread_cond_signal(&repo->prober_cond);
    pthread_mutex_unlock(&repo->prober_lock);
    pthread_join(repo->prober, NULL);
    repo->prober_started = false;
}
