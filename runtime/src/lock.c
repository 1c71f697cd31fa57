/* Locks for applications: SET NX PX with a random token; release and extend
 * by scripts that compare the token, so no holder touches another's lock. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct memo_lock {
    memo_repo *repo;
    memop_key key;
    char token[40];
    char name[64]; /* for messages, cut */
};

memo_status memo_lock_acquire(memo_repo *repo, const char *name, int ttl_ms, int wait_ms,
                              memo_lock **out)
{
    if (!repo)
        return MEMO_ERR_ARG;
    if (!name || !out || ttl_ms <= 0 || wait_ms < 0)
        return memop_fail(repo, MEMO_ERR_ARG,
                          "memo_lock_acquire: needs a name, ttl_ms > 0 and wait_ms >= 0");
    *out = NULL;
    memo_lock *l = calloc(1, sizeof *l);
    if (!l)
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    l->repo = repo;
    memop_key_memo(repo, "lock", name, &l->key); /* one slot per lock */
    snprintf(l->name, sizeof l->name, "%s", name);
    memop_make_token(repo, l->token, sizeof l->token);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);

    uint64_t deadline = memop_now_us() + (uint64_t)wait_ms * 1000u, backoff = 2000;
    for (;;) {
        memop_rconn *c = memop_redis_acquire(repo);
        if (!c) {
            free(l);
            return MEMO_ERR_REDIS; /* a lock cannot degrade: say so */
        }
        const char *argv[] = {"SET", l->key.s, l->token, "NX", "PX", ttl};
        size_t lens[] = {3, l->key.len, strlen(l->token), 2, 2, strlen(ttl)};
        redisReply *r = memop_redis_command(repo, c, 6, argv, lens);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        bool failed = !r || r->type == REDIS_REPLY_ERROR;
        if (failed)
            memop_redis_reply_failed(repo, r, "SET (lock)");
        memop_redis_release(repo, c, r == NULL);
        if (ok) {
            *out = l;
            return MEMO_OK;
        }
        if (failed) {
            free(l);
            return MEMO_ERR_REDIS;
        }
        uint64_t now = memop_now_us();
        if (now >= deadline) {
            memo_status st = memop_fail(repo, MEMO_ERR_LOCKED,
                                        "lock '%s' is held by another (waited %d ms)",
                                        l->name, wait_ms);
            free(l);
            return st;
        }
        uint64_t sleep = backoff / 2 + memop_random() % (backoff / 2 + 1);
        if (now + sleep > deadline)
            sleep = deadline - now;
        memop_sleep_us(sleep);
        if (backoff < 100000)
            backoff *= 2;
    }
}

/* Runs a token-checking script on the lock: 1 done, 0 not ours, -1 failed. */
static int own(memo_lock *l, enum memop_script which, const char *arg)
{
    memop_rconn *c = memop_redis_acquire(l->repo);
    if (!c)
        return -1;
    const char *argv[] = {l->key.s, l->token, arg};
    size_t lens[] = {l->key.len, strlen(l->token), arg ? strlen(arg) : 0};
    redisReply *r = memop_redis_script(l->repo, c, which, 1, arg ? 3 : 2, argv, lens);
    int rc = !r || r->type != REDIS_REPLY_INTEGER ? -1 : r->integer == 1 ? 1 : 0;
    if (rc < 0)
        memop_redis_reply_failed(l->repo, r && r->type == REDIS_REPLY_ERROR ? r : NULL,
                                 which == MEMOP_SCRIPT_EXTEND ? "EVALSHA (extend lock)"
                                                              : "EVALSHA (release lock)");
    memop_redis_release(l->repo, c, r == NULL);
    return rc;
}

memo_status memo_lock_extend(memo_lock *l, int ttl_ms)
{
    if (!l)
        return MEMO_ERR_ARG;
    if (ttl_ms <= 0)
        return memop_fail(l->repo, MEMO_ERR_ARG, "memo_lock_extend: ttl_ms must be > 0");
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    int rc = own(l, MEMOP_SCRIPT_EXTEND, ttl);
    if (rc < 0)
        return MEMO_ERR_REDIS;
    if (rc == 0)
        return memop_fail(l->repo, MEMO_ERR_LOCKED,
                          "lock '%s' is no longer held (it expired)", l->name);
    return MEMO_OK;
}

memo_status memo_lock_release(memo_lock *l)
{
    if (!l)
        return MEMO_OK;
    memo_repo *repo = l->repo;
    char name[64];
    snprintf(name, sizeof name, "%s", l->name);
    int rc = own(l, MEMOP_SCRIPT_RELEASE, NULL);
    free(l);
    if (rc < 0)
        return MEMO_ERR_REDIS; /* it expires by itself */
    if (rc == 0)
        return memop_fail(repo, MEMO_ERR_LOCKED,
                          "lock '%s' was no longer held (it expired); nothing released",
                          name);
    return MEMO_OK;
}
