/* Single flight: threads of one process that miss the same key share one
 * load. The first leads; the others wait for its value, which they may use
 * only if its fill was accepted and no write of this process committed
 * meanwhile (fill.c decides). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static size_t flight_bucket(const memop_key *k)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k->len; i++)
        h = (h ^ (unsigned char)k->s[i]) * 1099511628211ull;
    return (size_t)(h % MEMOP_FLIGHT_BUCKETS);
}

static memop_flight **flight_find(memo_repo *repo, const memop_key *k)
{
    memop_flight **p = &repo->flights[flight_bucket(k)];
    for (; *p; p = &(*p)->next)
        if ((*p)->keylen == k->len && memcmp((*p)->key, k->s, k->len) == 0)
            break;
    return p;
}

static void flight_unref(memop_flight *f)
{
    if (--f->refs > 0)
        return;
    pthread_cond_destroy(&f->cond);
    memop_buf_free(&f->value);
    free(f);
}

/* Becomes the leader of the key's flight, or NULL when another thread
 * already leads one (or memory is short: then go alone). */
memop_flight *memop_flight_lead(memo_repo *repo, const memop_key *k)
{
    pthread_mutex_lock(&repo->flights_lock);
    memop_flight **p = flight_find(repo, k), *f = NULL;
    if (!*p && (f = calloc(1, sizeof *f + k->len + 1))) {
        pthread_cond_init(&f->cond, NULL);
        f->refs = 1;
        f->keylen = k->len;
        memcpy(f->key, k->s, k->len + 1);
        *p = f;
    }
    pthread_mutex_unlock(&repo->flights_lock);
    return f;
}

/* Publishes the leader's value to the waiters and leaves the table. */
void memop_flight_finish(memo_repo *repo, memop_flight *f, const memop_buf *value,
                         bool shareable, uint64_t seq)
{
    memop_key k;
    memcpy(k.s, f->key, f->keylen + 1);
    k.len = f->keylen;
    if (memop_test_hooks.before_share)
        memop_test_hooks.before_share(f->key);
    pthread_mutex_lock(&repo->flights_lock);
    /* Under the lock a waiter joins by: a write that returned before a
     * waiter began has counted write_seq up before it joined, so it is
     * seen here. (Compared before the lock, a waiter could join between
     * the comparison and the lock, after a write, and get what was read
     * before it.) */
    shareable = shareable && atomic_load(&repo->write_seq) == seq;
    memop_flight **p = flight_find(repo, &k);
    if (*p == f)
        *p = f->next;
    if (shareable && value && !value->failed) {
        memop_buf_append(&f->value, value->s, value->len);
        f->shareable = !f->value.failed;
    }
    f->done = true;
    pthread_cond_broadcast(&f->cond);
    flight_unref(f);
    pthread_mutex_unlock(&repo->flights_lock);
}

/* Waits for the key's flight, if there is one, until the deadline. True with
 * the leader's value in `out` when it could be shared. */
bool memop_flight_wait(memo_repo *repo, const memop_key *k, uint64_t deadline,
                       memop_buf *out)
{
    pthread_mutex_lock(&repo->flights_lock);
    memop_flight *f = *flight_find(repo, k);
    bool got = false;
    if (f) {
        f->refs++;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t left = deadline > memop_now_us() ? deadline - memop_now_us() : 0;
        uint64_t ns = (uint64_t)until.tv_nsec + left * 1000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!f->done)
            if (pthread_cond_timedwait(&f->cond, &repo->flights_lock, &until) != 0)
                break;
        if (f->done && f->shareable) {
            out->len = 0;
            memop_buf_append(out, f->value.s, f->value.len);
            got = !out->failed;
        }
        flight_unref(f);
    }
    pthread_mutex_unlock(&repo->flights_lock);
    return got;
}
