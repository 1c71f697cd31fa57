/* Redis connections: connecting (AUTH, SELECT and SCRIPT LOAD in one round
 * trip), the pool they live in (a connection made before the last outage is
 * never used again), the check at memo_open that the Redis user may run
 * every command memo sends, and opening and closing the Redis side. The
 * transport is in transport.c, the scripts in scripts.c, the breaker and its
 * prober in breaker.c, the invalidation queue in pending.c. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static struct timeval tv_of(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

void memop_rconn_free(memop_rconn *c)
{
    if (!c)
        return;
    redisFree(c->ctx);
    if (c->nctx)
        for (size_t i = 0; i < MEMOP_NODES_MAX; i++)
            redisFree(c->nctx[i]);
    free(c->nctx);
    free(c->nepoch);
    memop_cluster_conn_free(c);
    memop_rconn_free_arena(c);
    free(c);
}

/* A reply that is an error: copies its text. */
static bool reply_error(const redisReply *r, char *out, size_t size)
{
    if (r && r->type == REDIS_REPLY_ERROR) {
        snprintf(out, size, "%.*s", (int)r->len, r->str);
        return true;
    }
    return false;
}

/* Connects to one node (host and port, or path), authenticates, selects
 * the database and makes sure the scripts are loaded, in one round trip.
 * `name` names the node in messages. On failure returns NULL with a
 * message in err, and *refused set when Redis answered but said no (a
 * wrong password, a missing permission): a mistake of the configuration,
 * not an outage. */
redisContext *memop_redis_connect(memo_repo *repo, const char *host, int port,
                                  const char *path, const char *name, char *err,
                                  size_t errsize, bool *refused)
{
    const memop_redis_target *t = &repo->redis;
    struct timeval ctv = tv_of(repo->cfg.connect_timeout_ms);
    *refused = false;
    redisContext *ctx = path ? redisConnectUnixWithTimeout(path, ctv)
                             : redisConnectWithTimeout(host, port, ctv);
    char why[256];
    if (!ctx || ctx->err) {
        memop_redis_context_error(ctx, why, sizeof why);
        snprintf(err, errsize, "connect to Redis %s: %s", name, why);
        redisFree(ctx);
        return NULL;
    }
    if (redisSetTimeout(ctx, tv_of(repo->cfg.command_timeout_ms)) != REDIS_OK) {
        snprintf(err, errsize, "Redis %s: cannot set the command time-out", name);
        redisFree(ctx);
        return NULL;
    }
    /* AUTH's error names the user at most, never the password. SCRIPT LOAD
     * gives the SHA1 for EVALSHA; it is the same on every connection, so one
     * load per connection costs little and keeps NOSCRIPT rare (it only
     * follows a restart or SCRIPT FLUSH). */
    char what[MEMOP_SCRIPT_COUNT + 2][24];
    int n = 0;
    if (t->password) {
        if (t->user)
            redisAppendCommand(ctx, "AUTH %s %s", t->user, t->password);
        else
            redisAppendCommand(ctx, "AUTH %s", t->password);
        snprintf(what[n++], sizeof what[0], "AUTH");
    }
    if (t->db != 0) {
        redisAppendCommand(ctx, "SELECT %d", t->db);
        snprintf(what[n++], sizeof what[0], "SELECT %d", t->db);
    }
    int first_script = n;
    for (int i = 0; i < MEMOP_SCRIPT_COUNT; i++) {
        redisAppendCommand(ctx, "SCRIPT LOAD %s",
                           memop_script_text((enum memop_script)i));
        snprintf(what[n++], sizeof what[0], "SCRIPT LOAD");
    }
    bool failed = false;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK || !r) {
            memop_redis_context_error(ctx, why, sizeof why);
            if (snprintf(err, errsize, "Redis %s: %s: %s", name, what[i], why) < 0)
                err[0] = '\0';
            redisFree(ctx);
            return NULL; /* the rest of the replies go with the connection */
        }
        bool bad = i >= first_script ? r->type != REDIS_REPLY_STRING || r->len != 40
                                     : r->type == REDIS_REPLY_ERROR;
        if (bad && !failed) {
            failed = true;
            if (!reply_error(r, why, sizeof why))
                snprintf(why, sizeof why, "unexpected reply");
            *refused = r->type != REDIS_REPLY_ERROR ||
                       memop_redis_error_kind(r) != MEMOP_REDIS_OUTAGE;
            /* (a long message is cut: the start says what failed) */
            if (snprintf(err, errsize, "Redis %s: %s failed: %s", name, what[i], why) < 0)
                err[0] = '\0';
        } else if (!bad && i >= first_script) {
            /* The SHA1 of a script never changes: it is written once, by
             * the first connection (in memo_open, or by the prober before
             * the breaker first closes), before any call can read it. */
            int k = i - first_script;
            pthread_mutex_lock(&repo->rpool.lock);
            if (memcmp(repo->script_sha[k], r->str, 40) != 0) {
                memcpy(repo->script_sha[k], r->str, 40);
                repo->script_sha[k][40] = '\0';
            }
            pthread_mutex_unlock(&repo->rpool.lock);
        }
        freeReplyObject(r);
    }
    if (failed) {
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

static memop_rconn *wrap(memo_repo *repo, redisContext *ctx)
{
    memop_rconn *c = calloc(1, sizeof *c);
    if (!c) {
        redisFree(ctx);
        return NULL;
    }
    c->repo = repo;
    c->ctx = ctx;
    c->epoch = atomic_load(&repo->breaker_epoch);
    memop_rconn_use_arena(c, ctx);
    return c;
}

/* A connection of the pool. To one Redis: connected now. To a cluster: a
 * router (cluster.c) that connects to each node when a command first goes
 * there. */
memop_rconn *memop_rconn_new(memo_repo *repo, char *err, size_t errsize, bool *refused)
{
    *refused = false;
    if (!atomic_load(&repo->cluster.on)) {
        const memop_redis_target *t = &repo->redis;
        redisContext *ctx = memop_redis_connect(repo, t->host, t->port, t->path,
                                                repo->redis_name, err, errsize, refused);
        memop_rconn *c = ctx ? wrap(repo, ctx) : NULL;
        if (ctx && !c)
            snprintf(err, errsize, "out of memory");
        return c;
    }
    memop_rconn *c = calloc(1, sizeof *c);
    if (c && (!(c->nctx = calloc(MEMOP_NODES_MAX, sizeof *c->nctx)) ||
              !(c->nepoch = calloc(MEMOP_NODES_MAX, sizeof *c->nepoch)))) {
        free(c->nctx);
        free(c);
        c = NULL;
    }
    if (!c) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    c->repo = repo;
    c->pin = -1;
    c->probing = -1;
    c->epoch = atomic_load(&repo->breaker_epoch);
    return c;
}

memop_rconn *memop_redis_acquire(memo_repo *repo)
{
    if (atomic_load_explicit(&repo->breaker, memory_order_acquire) !=
        MEMOP_BREAKER_CLOSED) {
        memop_fail(repo, MEMO_ERR_REDIS, "Redis %s is unavailable (circuit open)",
                   repo->redis_name);
        return NULL;
    }
    void *taken;
    if (!memop_pool_take(&repo->rpool, (uint64_t)repo->cfg.pool_wait_ms, &taken)) {
        /* busy, not down: this call goes without the cache, the breaker stays */
        memop_fail(repo, MEMO_ERR_TIMEOUT,
                   "Redis %s: no free connection within %d ms: all %d of the pool are in "
                   "use (raise pool_size)",
                   repo->redis_name, repo->cfg.pool_wait_ms, repo->cfg.pool_size);
        return NULL;
    }
    /* a connection from before the last outage is not trusted */
    memop_rconn *c = taken;
    if (c && c->epoch == atomic_load(&repo->breaker_epoch)) {
        memop_rconn_reset_arena(c); /* replies of the last user are done with */
        return c;
    }
    memop_rconn_free(c);
    char err[512];
    bool refused;
    if ((c = memop_rconn_new(repo, err, sizeof err, &refused)))
        return c;
    memop_pool_give(&repo->rpool, NULL);
    memop_fail(repo, MEMO_ERR_REDIS, "%s", err);
    memop_redis_trip(repo);
    return NULL;
}

void memop_redis_release(memo_repo *repo, memop_rconn *c, bool broken)
{
    /* on a cluster the router knows: a node that failed was dropped alone,
     * and a command for a node that is down was never sent */
    if (c && c->nctx)
        broken = false;
    if (c && (broken || memop_rconn_broken(c) ||
              c->epoch != atomic_load(&repo->breaker_epoch) || !memop_rconn_trim(c))) {
        memop_rconn_free(c);
        c = NULL;
    }
    memop_pool_give(&repo->rpool, c);
}

/* ----------------------------------------------------------- open / close */

/* Runs, once, every command memo sends, as memo sends it (scripts included,
 * so the commands they call are checked too), on a key of its own under
 * <prefix>memo:: a user whose ACL lacks one is told at memo_open which,
 * instead of finding its cache silently off. MEMO_ERR_CONFIG names the
 * refused command; MEMO_ERR_REDIS is an outage. */
static memo_status check_permissions(memo_repo *repo, memop_rconn *c, char *err,
                                     size_t errsize)
{
    char token[40], key[MEMOP_KEY_MAX], other[MEMOP_KEY_MAX + 8], lease[MEMOP_LEASE_MAX];
    snprintf(token, sizeof token, "%016llx%08x", (unsigned long long)repo->token_prefix,
             (unsigned)memop_random());
    memop_key pk;
    memop_key_memo(repo, "probe", token, &pk);
    snprintf(key, sizeof key, "%s", pk.s);
    snprintf(other, sizeof other, "%s:other", key);
    memop_make_lease(repo, lease);
    char max[16];
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    const char *null = memop_null_value;
    struct {
        const char *what;
        enum memop_script script; /* MEMOP_SCRIPT_COUNT: argv is a command */
        int nkeys, argc;
        const char *argv[8];
    } probes[] = {
        {"MGET", MEMOP_SCRIPT_COUNT, 0, 2, {"MGET", key}},
        /* a hit's command; Redis before 7.0 answers it with a syntax error */
        {"SET NX GET (memo needs Redis 7.0 or later)",
         MEMOP_SCRIPT_COUNT,
         0,
         7,
         {"SET", key, lease, "NX", "GET", "PX", "5000"}},
        {"EVALSHA (a script that runs STRLEN, GET, SET, PTTL)",
         MEMOP_SCRIPT_LEASE,
         1,
         4,
         {key, lease, "5000", max}},
        {"EVALSHA (a script that runs GET, SET)",
         MEMOP_SCRIPT_FILL,
         1,
         4,
         {key, lease, null, "5000"}},
        {"EVALSHA (a script that runs GET, PEXPIRE)",
         MEMOP_SCRIPT_EXTEND,
         1,
         3,
         {key, null, "5000"}},
        {"EVALSHA (a script that runs GET)",
         MEMOP_SCRIPT_GET_BY,
         1,
         5,
         {key, "x", "y", "0", max}},
        {"EVALSHA (a script that runs GET, DEL)",
         MEMOP_SCRIPT_RELEASE,
         1,
         2,
         {key, lease}},
        {"EVAL", MEMOP_SCRIPT_COUNT, 0, 3, {"EVAL", "return 1", "0"}},
        {"PTTL", MEMOP_SCRIPT_COUNT, 0, 2, {"PTTL", key}},
        {"EXISTS", MEMOP_SCRIPT_COUNT, 0, 2, {"EXISTS", key}},
        {"SET", MEMOP_SCRIPT_COUNT, 0, 6, {"SET", other, token, "NX", "PX", "5000"}},
        {"SCAN", MEMOP_SCRIPT_COUNT, 0, 6, {"SCAN", "0", "MATCH", key, "COUNT", "10"}},
        {"UNLINK", MEMOP_SCRIPT_COUNT, 0, 2, {"UNLINK", other}},
        {"DEL", MEMOP_SCRIPT_COUNT, 0, 3, {"DEL", key, other}},
        {"PING", MEMOP_SCRIPT_COUNT, 0, 1, {"PING"}},
    };
    enum { NPROBES = sizeof probes / sizeof probes[0] };
    for (size_t i = 0; i < NPROBES; i++) {
        size_t lens[8];
        for (int k = 0; k < probes[i].argc; k++)
            lens[k] = strlen(probes[i].argv[k]);
        if (probes[i].script == MEMOP_SCRIPT_COUNT)
            memop_redis_append(c, probes[i].argc, probes[i].argv, lens);
        else
            memop_redis_append_script(repo, c, probes[i].script, true, probes[i].nkeys,
                                      probes[i].argc, probes[i].argv, lens);
    }
    redisReply *replies[NPROBES];
    if (memop_redis_exchange(repo, c, NPROBES, replies, "permission check") != 0) {
        snprintf(err, errsize, "%s", memo_last_error(repo));
        return MEMO_ERR_REDIS;
    }
    for (size_t i = 0; i < NPROBES; i++) {
        const redisReply *r = replies[i];
        if (r->type != REDIS_REPLY_ERROR)
            continue;
        enum memop_redis_error kind = memop_redis_error_kind(r);
        char text[200];
        memop_redis_error_text(r, text, sizeof text);
        if (snprintf(err, errsize, "Redis %s: %s: %s%s", repo->redis_name, probes[i].what,
                     text,
                     kind == MEMOP_REDIS_NOPERM
                         ? " (see \"Redis permissions\" in docs/operations.md)"
                         : "") < 0)
            err[0] = '\0';
        return kind == MEMOP_REDIS_OUTAGE ? MEMO_ERR_REDIS : MEMO_ERR_CONFIG;
    }
    return MEMO_OK;
}

/* Whether the node behind ctx is a Redis Cluster node (HELLO's "mode";
 * HELLO needs no permission, and a Redis without it, before 6, is none).
 * -1 when it did not answer. */
static int is_cluster_node(redisContext *ctx)
{
    redisReply *r = redisCommand(ctx, "HELLO 2");
    if (!r)
        return -1;
    int cluster = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, "mode") == 0 &&
            v->type == REDIS_REPLY_STRING && strcmp(v->str, "cluster") == 0)
            cluster = 1;
    }
    freeReplyObject(r);
    return cluster;
}

memo_status memop_redis_first(memo_repo *repo, memop_rconn **out, char *err, size_t size)
{
    *out = NULL;
    const memop_redis_target *t = &repo->redis;
    redisContext *ctx = NULL;
    bool refused = false;
    char name[300] = "";
    size_t nseeds = t->path ? 1 : t->nseeds;
    for (size_t i = 0; i < nseeds && !ctx; i++) {
        const char *host = t->path ? NULL : t->seeds[i].host;
        int port = t->path ? 0 : t->seeds[i].port;
        if (t->path)
            snprintf(name, sizeof name, "%s", repo->redis_name);
        else
            memop_host_port_name(host, port, name, sizeof name);
        ctx = memop_redis_connect(repo, host, port, t->path, name, err, size, &refused);
        if (refused) /* a mistake to fix, never a reason to start degraded */
            return MEMO_ERR_CONFIG;
    }
    if (!ctx) {
        /* a list of nodes is a cluster's: its map is read when one answers */
        if (nseeds > 1)
            atomic_store(&repo->cluster.on, true);
        return MEMO_ERR_REDIS;
    }
    int cluster = is_cluster_node(ctx);
    if (cluster < 0) {
        char why[256];
        memop_redis_context_error(ctx, why, sizeof why);
        snprintf(err, size, "Redis %.100s: HELLO: %.100s", name, why);
        redisFree(ctx);
        return MEMO_ERR_REDIS;
    }
    if (!cluster && nseeds > 1) {
        snprintf(err, size,
                 "the Redis URL names several nodes, but %.100s is no Redis Cluster node "
                 "(name one node of a single Redis)",
                 name);
        redisFree(ctx);
        return MEMO_ERR_CONFIG;
    }
    if (cluster && (t->path || t->db != 0)) {
        snprintf(
            err, size,
            "Redis %.100s is a Redis Cluster node: a cluster has database 0 only and "
            "is reached by host and port",
            name);
        redisFree(ctx);
        return MEMO_ERR_CONFIG;
    }
    memop_rconn *c;
    memo_status st = MEMO_OK;
    if (cluster) {
        /* before any connection of the pool is made: they route by it */
        redisFree(ctx);
        atomic_store(&repo->cluster.on, true);
        if ((st = memop_cluster_refresh(repo, err, size)) != MEMO_OK)
            return st;
        c = memop_rconn_new(repo, err, size, &refused);
    } else {
        c = wrap(repo, ctx);
        if (!c)
            snprintf(err, size, "out of memory");
    }
    if (!c)
        return MEMO_ERR_NOMEM;
    if ((st = check_permissions(repo, c, err, size)) != MEMO_OK) {
        memop_rconn_free(c);
        return st;
    }
    atomic_store(&repo->redis_checked, true);
    *out = c;
    return MEMO_OK;
}

memo_status memop_redis_open(memo_repo *repo, memo_error *err)
{
    memop_pool_init(&repo->rpool, (size_t)repo->cfg.pool_size);
    memop_cluster_init(repo);
    pthread_mutex_init(&repo->pending.lock, NULL);
    pthread_mutex_init(&repo->prober_lock, NULL);
    pthread_cond_init(&repo->prober_cond, NULL);
    if (!repo->rpool.free) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return MEMO_ERR_NOMEM;
    }
    atomic_store(&repo->breaker, MEMOP_BREAKER_CLOSED);
    memop_stats_identity(repo);
    memop_rconn *c;
    memo_status st = memop_redis_first(repo, &c, err->message, sizeof err->message);
    if (st == MEMO_OK) {
        repo->rpool.free[repo->rpool.nfree++] = c;
        repo->rpool.live++;
    } else if (st != MEMO_ERR_REDIS || !(repo->cfg.flags & MEMO_OPEN_DEGRADED)) {
        return st; /* a refusal is a mistake to fix, never a reason to start degraded */
    } else {
        err->message[0] = '\0';
        atomic_store(&repo->breaker, MEMOP_BREAKER_OPEN);
    }
    /* the keeper first: the prober publishes statistics, which read it */
    if (memop_lease_keeper_start(repo) != MEMO_OK) {
        snprintf(err->message, sizeof err->message,
                 "cannot start the lease keeper thread");
        return MEMO_ERR_NOMEM;
    }
    if (!memop_prober_start(repo)) {
        snprintf(err->message, sizeof err->message,
                 "cannot start the Redis prober thread");
        return MEMO_ERR_NOMEM;
    }
    return MEMO_OK;
}

void memop_redis_close(memo_repo *repo)
{
    memop_prober_stop(repo);
    memop_lease_keeper_stop(repo); /* after the prober, which reads it */
    memop_pool *p = &repo->rpool;
    for (size_t i = 0; i < p->nfree; i++)
        memop_rconn_free(p->free[i]);
    p->nfree = 0;
    memop_pool_destroy(p);
    memop_pending *q = &repo->pending;
    for (size_t i = 0; i < q->n; i++)
        free(q->keys[i]);
    free(q->keys);
    free(q->owners);
    pthread_mutex_destroy(&q->lock);
    memop_cluster_destroy(repo);
    pthread_mutex_destroy(&repo->prober_lock);
    pthread_cond_destroy(&repo->prober_cond);
}
