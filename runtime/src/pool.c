/* A bounded pool of connections, shared by the Redis and the PostgreSQL
 * side: a caller holds one slot from take to give, and the lock is never
 * held across anything but the list itself. Taking waits at most the time
 * it is given: a pool held by open transactions, or by as many callers as
 * it has connections, fails a caller rather than hanging it. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

void memop_pool_init(memop_pool *p, size_t cap)
{
    pthread_mutex_init(&p->lock, NULL);
    /* waits measure a monotonic clock: a clock change neither ends nor
     * stretches them */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &attr);
    pthread_condattr_destroy(&attr);
    p->free = calloc(cap, sizeof *p->free);
    p->cap = cap;
    p->nfree = 0;
    p->live = 0;
}

void memop_pool_destroy(memop_pool *p)
{
    free(p->free);
    p->free = NULL;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

void memop_deadline_ts(uint64_t deadline_us, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline_us / 1000000u);
    ts->tv_nsec = (long)(deadline_us % 1000000u) * 1000;
}

bool memop_pool_take(memop_pool *p, uint64_t wait_ms, void **conn)
{
    *conn = NULL;
    struct timespec until;
    memop_deadline_ts(memop_now_us() + wait_ms * 1000u, &until);
    bool ok = true;
    pthread_mutex_lock(&p->lock);
    while (p->nfree == 0 && p->live >= p->cap) {
        if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT &&
            p->nfree == 0 && p->live >= p->cap) {
            ok = false;
            break;
        }
    }
    if (ok) {
        if (p->nfree > 0)
            *conn = p->free[--p->nfree];
        else
            p->live++; /* a slot for a connection the caller makes */
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

void memop_pool_give(memop_pool *p, void *c)
{
    pthread_mutex_lock(&p->lock);
    if (c)
        p->free[p->nfree++] = c;
    else
        p->live--;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}
