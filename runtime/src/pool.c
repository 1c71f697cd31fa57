/* A bounded pool of connections, shared by the Redis and the PostgreSQL
 * side: a caller holds one slot from take to give, and the lock is never
 * held across anything but the list itself. */
#include <stdlib.h>

#include "internal.h"

void memop_pool_init(memop_pool *p, size_t cap)
{
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
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

void *memop_pool_take(memop_pool *p)
{
    void *c = NULL;
    pthread_mutex_lock(&p->lock);
    while (p->nfree == 0 && p->live >= p->cap)
        pthread_cond_wait(&p->cond, &p->lock);
    if (p->nfree > 0)
        c = p->free[--p->nfree];
    else
        p->live++; /* a slot for a connection the caller makes */
    pthread_mutex_unlock(&p->lock);
    return c;
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
