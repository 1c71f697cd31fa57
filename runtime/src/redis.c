/* Redis: a pool of hiredis connections with a time-out on every call, the
 * lease scripts, a circuit breaker, and the queue of invalidations that
 * could not be sent. A failed call never fails the caller's operation: the
 * engine degrades to PostgreSQL, the breaker stops further attempts, and a
 * background prober closes it again when Redis answers. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/sds.h>

#include "internal.h"

/* KEYS[1] value, KEYS[2] lease; ARGV[1] token, ARGV[2] lease ms, ARGV[3] the
 * largest value the caller reads. The value, else 1 when this caller took
 * the lease, else 0 (another holds it), else 2 (the value is too large to
 * send: corrupt). Taking the lease in the same round trip as the GET is
 * what keeps a miss one trip long. Every lease memo sets expires: one
 * without a time to live was not set by memo (or by a memo that died
 * between SET and PEXPIRE, which it never splits), so it is taken over
 * rather than waited for. */
static const char script_get_or_lease[] =
    "if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[3]) then return 2 end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then return v end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "if redis.call('PTTL', KEYS[2]) == -1 then\n"
    "  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* KEYS[1] value, KEYS[2] lease; ARGV[1] token, ARGV[2] value, ARGV[3] ttl ms.
 * Writes the value only while the lease is still this caller's: a write that
 * committed meanwhile deleted the lease, so a stale fill is refused. */
static const char script_fill[] =
    "if redis.call('GET', KEYS[2]) == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* KEYS[1] a unique lookup, KEYS[2] its lease, KEYS[3] its row; ARGV[1]
 * token, ARGV[2] the lookup's value, ARGV[3] its ttl ms, ARGV[4] the row,
 * ARGV[5] its ttl ms. Both values, only while the lookup's lease is this
 * caller's (every write of the row deletes it). Three slots: a single
 * Redis only. */
static const char script_fill_pair[] =
    "if redis.call('GET', KEYS[2]) == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* KEYS[1] lease or lock; ARGV[1] token. Deletes it only while it is the
 * caller's: a filler that could not load the row gives its lease up so others
 * need not wait for it; a lock holder releases. */
static const char script_release[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* KEYS[1] a unique lookup; ARGV[1] and ARGV[2] the row key around the
 * primary key's part, ARGV[3] "1" when the key is text, ARGV[4] the largest
 * value the caller reads. The lookup and the row in one round trip: {pk,
 * row}, or {pk} when the row key could not be built here (a part long
 * enough to be hashed), the row is too large, or the lookup is negative, or
 * nil on a miss or a lookup too large (the lookup path sorts those out).
 * The row key is not declared, so this runs on a single Redis, not across
 * Cluster slots. The escaping is keys.c's, byte for byte. */
static const char script_get_by[] =
    "local max = tonumber(ARGV[4])\n"
    "if redis.call('STRLEN', KEYS[1]) > max then return nil end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return nil end\n"
    "if v == 'null' then return {v} end\n"
    "local part = v\n"
    "if ARGV[3] == '1' then\n"
    "  local ok, s = pcall(cjson.decode, v)\n"
    "  if not ok or type(s) ~= 'string' then return {v} end\n"
    "  part = string.gsub(s, '[^%w%-_%.@%+]', function(c)\n"
    "    return string.format('%%%02X', string.byte(c)) end)\n"
    "  if #part > 128 then return {v} end\n"
    "end\n"
    "local row = ARGV[1] .. part .. ARGV[2]\n"
    "if redis.call('STRLEN', row) > max then return {v} end\n"
    "return {v, redis.call('GET', row)}\n";

/* KEYS[1] a lease or lock; ARGV[1] the holder's token, ARGV[2] ms. Extends
 * it only while it is the caller's: a lease a write deleted stays deleted.
 * (Both are released by script_release.) */
static const char script_extend[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

static const char *const scripts[MEMOP_SCRIPT_COUNT] = {
    [MEMOP_SCRIPT_EXTEND] = script_extend,
    [MEMOP_SCRIPT_GET_BY] = script_get_by,
    [MEMOP_SCRIPT_GET_OR_LEASE] = script_get_or_lease,
    [MEMOP_SCRIPT_FILL] = script_fill,
    [MEMOP_SCRIPT_FILL_PAIR] = script_fill_pair,
    [MEMOP_SCRIPT_RELEASE] = script_release,
};

/* Replies live in blocks a connection keeps (see the transport below). */
struct memop_arena {
    struct memop_arena *next;
    size_t cap, used;
    _Alignas(max_align_t) char data[];
};

static void arena_reset(memop_rconn *c);

static struct timeval tv_of(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* ------------------------------------------------------------------ pool */

static void rconn_free(memop_rconn *c)
{
    if (!c)
        return;
    redisFree(c->ctx);
    memop_rconn_free_arena(c);
    free(c);
}

/* Why a context failed, in words: hiredis 0.14 says a time-out is EAGAIN. */
static void context_error(const redisContext *ctx, char *out, size_t size)
{
    if (!ctx) {
        snprintf(out, size, "out of memory");
    } else if (ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK ||
                                            strstr(ctx->errstr, "temporarily"))) {
        snprintf(out, size, "timed out");
    } else {
        snprintf(out, size, "%s", ctx->errstr[0] ? ctx->errstr : "connection lost");
    }
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

/* Connects, authenticates, selects the database and makes sure the scripts
 * are loaded, in one round trip. On failure returns NULL with a message in
 * err, and *refused set when Redis answered but said no (a wrong password,
 * a missing permission): a mistake of the configuration, not an outage. */
static memop_rconn *rconn_new(memo_repo *repo, char *err, size_t errsize, bool *refused)
{
    const memop_redis_target *t = &repo->redis;
    struct timeval ctv = tv_of(repo->cfg.connect_timeout_ms);
    *refused = false;
    redisContext *ctx = t->path ? redisConnectUnixWithTimeout(t->path, ctv)
                                : redisConnectWithTimeout(t->host, t->port, ctv);
    char why[256];
    if (!ctx || ctx->err) {
        context_error(ctx, why, sizeof why);
        snprintf(err, errsize, "connect to Redis %s: %s", repo->redis_name, why);
        redisFree(ctx);
        return NULL;
    }
    if (redisSetTimeout(ctx, tv_of(repo->cfg.command_timeout_ms)) != REDIS_OK) {
        snprintf(err, errsize, "Redis %s: cannot set the command time-out", repo->redis_name);
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
        redisAppendCommand(ctx, "SCRIPT LOAD %s", scripts[i]);
        snprintf(what[n++], sizeof what[0], "SCRIPT LOAD");
    }
    bool failed = false;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK || !r) {
            context_error(ctx, why, sizeof why);
            if (snprintf(err, errsize, "Redis %s: %s: %s", repo->redis_name, what[i], why) < 0)
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
            if (snprintf(err, errsize, "Redis %s: %s failed: %s", repo->redis_name, what[i],
                         why) < 0)
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
    memop_rconn *c = failed ? NULL : calloc(1, sizeof *c);
    if (!c) {
        if (!failed)
            snprintf(err, errsize, "out of memory");
        redisFree(ctx);
        return NULL;
    }
    c->ctx = ctx;
    c->epoch = atomic_load(&repo->breaker_epoch);
    memop_rconn_use_arena(c);
    return c;
}

memop_rconn *memop_redis_acquire(memo_repo *repo)
{
    if (atomic_load_explicit(&repo->breaker, memory_order_acquire) != MEMOP_BREAKER_CLOSED) {
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
        arena_reset(c); /* replies of the last user are done with */
        return c;
    }
    rconn_free(c);
    char err[512];
    bool refused;
    if ((c = rconn_new(repo, err, sizeof err, &refused)))
        return c;
    memop_pool_give(&repo->rpool, NULL);
    memop_fail(repo, MEMO_ERR_REDIS, "%s", err);
    memop_redis_trip(repo);
    return NULL;
}

/* After a large reply, give the memory back: an idle pooled connection
 * keeps at most a few of its buffers' worth. False when it could not (the
 * connection must go). */
#define TRIM_OVER (256u * 1024)
static bool rconn_trim(memop_rconn *c)
{
    size_t total = 0;
    for (struct memop_arena *a = c->first; a; a = a->next)
        total += a->cap;
    if (total > TRIM_OVER)
        memop_rconn_free_arena(c);
    else
        arena_reset(c);
    if (c->out.cap > TRIM_OVER)
        memop_buf_free(&c->out);
    redisReader *r = c->ctx->reader;
    if (r->len == 0 && r->buf && sdsalloc(r->buf) > TRIM_OVER) {
        sdsfree(r->buf);
        r->pos = 0;
        if (!(r->buf = sdsempty()))
            return false;
    }
    return true;
}

void memop_redis_release(memo_repo *repo, memop_rconn *c, bool broken)
{
    if (c && (broken || c->ctx->err || c->epoch != atomic_load(&repo->breaker_epoch) ||
              !rconn_trim(c))) {
        rconn_free(c);
        c = NULL;
    }
    memop_pool_give(&repo->rpool, c);
}

/* --------------------------------------------------------------- transport */

/* Commands are written as RESP from a buffer the connection keeps, straight
 * to the socket; replies are built by hiredis' reader into an arena the
 * connection keeps. Neither allocates once warm, so a cache hit costs no
 * malloc but the caller's strings. Replies live until the connection is
 * released; never freeReplyObject() them. */

static void *arena_alloc(memop_rconn *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    while (c->cur && c->cur->used + n > c->cur->cap) {
        c->cur = c->cur->next;
        if (c->cur)
            c->cur->used = 0;
    }
    if (!c->cur) {
        size_t cap = n > 16384 ? n : 16384;
        struct memop_arena *a = malloc(sizeof *a + cap);
        if (!a)
            return NULL;
        a->next = NULL;
        a->cap = cap;
        a->used = 0;
        /* append: blocks are reused in order after each reset */
        struct memop_arena **tail = &c->first;
        while (*tail)
            tail = &(*tail)->next;
        *tail = a;
        c->cur = a;
    }
    void *p = c->cur->data + c->cur->used;
    c->cur->used += n;
    return p;
}

static void arena_reset(memop_rconn *c)
{
    c->cur = c->first;
    if (c->cur)
        c->cur->used = 0;
}

static redisReply *arena_reply(const redisReadTask *task)
{
    memop_rconn *c = task->privdata;
    redisReply *r = arena_alloc(c, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->type = task->type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *arena_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = arena_reply(task);
    if (!r || !(r->str = arena_alloc(task->privdata, len + 1)))
        return NULL;
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *arena_array(const redisReadTask *task, int elements)
{
    redisReply *r = arena_reply(task);
    if (!r)
        return NULL;
    if (elements > 0 &&
        !(r->element = arena_alloc(task->privdata, (size_t)elements * sizeof *r->element)))
        return NULL;
    r->elements = (size_t)elements;
    return r;
}

static void *arena_integer(const redisReadTask *task, long long value)
{
    redisReply *r = arena_reply(task);
    if (r)
        r->integer = value;
    return r;
}

static void *arena_nil(const redisReadTask *task)
{
    /* the task says "bulk string" for $-1: nil is the reply's own type */
    redisReply *r = arena_reply(task);
    if (r)
        r->type = REDIS_REPLY_NIL;
    return r;
}

static void arena_free(void *reply)
{
    (void)reply; /* the arena owns it */
}

static redisReplyObjectFunctions arena_fns = {arena_string, arena_array, arena_integer,
                                              arena_nil, arena_free};

void memop_rconn_use_arena(memop_rconn *c)
{
    c->ctx->reader->fn = &arena_fns;
    c->ctx->reader->privdata = c;
}

void memop_rconn_free_arena(memop_rconn *c)
{
    while (c->first) {
        struct memop_arena *next = c->first->next;
        free(c->first);
        c->first = next;
    }
    c->cur = NULL;
    memop_buf_free(&c->out);
}

void memop_redis_append(memop_rconn *c, int argc, const char *const *argv, const size_t *lens)
{
    memop_buf *b = &c->out;
    char head[32];
    int n = snprintf(head, sizeof head, "*%d\r\n", argc);
    memop_buf_append(b, head, (size_t)n);
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        n = snprintf(head, sizeof head, "$%zu\r\n", len);
        memop_buf_append(b, head, (size_t)n);
        memop_buf_append(b, argv[i], len);
        memop_buf_append(b, "\r\n", 2);
    }
}

/* Records a transport failure: the connection is dead, the breaker opens. */
static void transport_failed(memo_repo *repo, memop_rconn *c, const char *what)
{
    char why[256];
    context_error(c->ctx, why, sizeof why);
    if (!c->ctx->err) {
        c->ctx->err = REDIS_ERR_IO;
        snprintf(c->ctx->errstr, sizeof c->ctx->errstr, "%.100s", why);
    }
    memop_fail(repo, MEMO_ERR_REDIS, "Redis %s: %s: %s", repo->redis_name, what, why);
    memop_redis_trip(repo);
}

/* Reads one reply, feeding hiredis' parser from the socket ourselves so that
 * the bytes an exchange may read are bounded: a value written by another
 * program can be any size, and must not take this process's memory or
 * time with it. 1 with the reply, 0 over the budget, -1 on a failure. */
static int read_reply(memop_rconn *c, size_t *budget, void **reply)
{
    redisReader *reader = c->ctx->reader;
    for (;;) {
        if (redisReaderGetReply(reader, reply) != REDIS_OK) {
            c->ctx->err = REDIS_ERR_PROTOCOL;
            snprintf(c->ctx->errstr, sizeof c->ctx->errstr, "%s", reader->errstr);
            return -1;
        }
        if (*reply)
            return 1;
        char buf[16384];
        size_t want = *budget < sizeof buf ? *budget : sizeof buf;
        if (want == 0)
            return 0;
        /* the socket has SO_RCVTIMEO: a frozen server times the read out */
        ssize_t got = read(c->ctx->fd, buf, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            c->ctx->err = got == 0 ? REDIS_ERR_EOF : REDIS_ERR_IO;
            snprintf(c->ctx->errstr, sizeof c->ctx->errstr, "%s",
                     got == 0                                    ? "server closed the connection"
                     : errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                               : strerror(errno));
            return -1;
        }
        *budget -= (size_t)got;
        if (redisReaderFeed(reader, buf, (size_t)got) != REDIS_OK) {
            c->ctx->err = REDIS_ERR_PROTOCOL;
            snprintf(c->ctx->errstr, sizeof c->ctx->errstr, "%s", reader->errstr);
            return -1;
        }
    }
}

size_t memop_redis_reply_budget(memo_repo *repo, size_t values)
{
    /* every reply may carry a value of the largest size, plus its framing;
     * a key list (SCAN) is never larger than a megabyte's worth */
    size_t per = (size_t)repo->cfg.max_value_bytes;
    if (per < (1u << 20))
        per = 1u << 20;
    return (values ? values : 1) * (per + 1024) + 65536;
}

int memop_redis_exchange(memo_repo *repo, memop_rconn *c, size_t n, redisReply **replies,
                         const char *what)
{
    memop_buf *b = &c->out;
    size_t budget = c->budget ? c->budget : memop_redis_reply_budget(repo, n);
    c->budget = 0;
    c->oversize = false;
    if (b->failed) {
        b->len = 0;
        b->failed = false;
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return -1;
    }
    /* the socket has SO_SNDTIMEO: a frozen server times the write out */
    size_t done = 0;
    while (done < b->len) {
        ssize_t w = write(c->ctx->fd, b->s + done, b->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            b->len = 0;
            if (w < 0) {
                c->ctx->err = REDIS_ERR_IO;
                snprintf(c->ctx->errstr, sizeof c->ctx->errstr, "%s",
                         errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                                 : strerror(errno));
            }
            transport_failed(repo, c, what);
            return -1;
        }
        done += (size_t)w;
    }
    b->len = 0;
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        int rc = read_reply(c, &budget, &reply);
        if (rc == 0) {
            /* not an outage: the rest of the reply is abandoned with the
             * connection, and the caller treats the value as corrupt */
            c->oversize = true;
            c->ctx->err = REDIS_ERR_OTHER;
            snprintf(c->ctx->errstr, sizeof c->ctx->errstr, "reply too large");
            memop_fail(repo, MEMO_ERR_REDIS,
                       "Redis %s: %s: the reply is larger than max_value_bytes (%d) allows",
                       repo->redis_name, what, repo->cfg.max_value_bytes);
            return -1;
        }
        if (rc < 0) {
            transport_failed(repo, c, what);
            return -1;
        }
        replies[i] = reply;
    }
    return 0;
}

/* Error replies that mean Redis cannot serve now, as opposed to a refusal
 * of this one command (a key of the wrong type, a missing permission, a
 * script's own error): only these open the breaker. */
static const char *const outage_prefixes[] = {
    "LOADING ", "BUSY ", "MASTERDOWN ", "READONLY ", "OOM ", "MISCONF ",
    "NOREPLICAS ", "CLUSTERDOWN ", "TRYAGAIN ",
};

enum memop_redis_error memop_redis_error_kind(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR)
        return MEMOP_REDIS_OUTAGE;
    for (size_t i = 0; i < sizeof outage_prefixes / sizeof outage_prefixes[0]; i++)
        if (strncmp(r->str, outage_prefixes[i], strlen(outage_prefixes[i])) == 0)
            return MEMOP_REDIS_OUTAGE;
    if (strncmp(r->str, "WRONGTYPE ", 10) == 0)
        return MEMOP_REDIS_WRONGTYPE;
    /* a script reports an ACL refusal of its commands as ERR */
    if (strncmp(r->str, "NOPERM ", 7) == 0 ||
        strncmp(r->str, "ERR The user executing the script can't", 39) == 0)
        return MEMOP_REDIS_NOPERM;
    return MEMOP_REDIS_REFUSED;
}

void memop_redis_error_text(const redisReply *r, char *out, size_t size)
{
    /* one line, without the script's SHA and line Redis appends */
    size_t n = r->len;
    const char *tail = strstr(r->str, " script: ");
    if (tail)
        n = (size_t)(tail - r->str);
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), r->str);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

enum memop_redis_error memop_redis_reply_failed(memo_repo *repo, const redisReply *r,
                                                const char *what)
{
    enum memop_redis_error kind = memop_redis_error_kind(r);
    if (!r) /* the transport recorded it and opened the breaker */
        return kind;
    char text[200];
    memop_redis_error_text(r, text, sizeof text);
    memop_fail(repo, kind == MEMOP_REDIS_NOPERM ? MEMO_ERR_CONFIG : MEMO_ERR_REDIS,
               "Redis %s: %s: %s%s", repo->redis_name, what, text,
               kind == MEMOP_REDIS_NOPERM ? " (see \"Redis permissions\" in the README)" : "");
    if (kind == MEMOP_REDIS_OUTAGE)
        memop_redis_trip(repo);
    return kind;
}

redisReply *memop_redis_command(memo_repo *repo, memop_rconn *c, int argc, const char **argv,
                                const size_t *lens)
{
    memop_redis_append(c, argc, argv, lens);
    redisReply *r = NULL;
    return memop_redis_exchange(repo, c, 1, &r, argv[0]) == 0 ? r : NULL;
}

/* EVALSHA sha nkeys keys... args... into the connection's buffer. */
static void append_script(memo_repo *repo, memop_rconn *c, enum memop_script which, bool sha,
                          int nkeys, int argc, const char *const *argv, const size_t *lens)
{
    const char *av[16];
    size_t al[16];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = sha ? "EVALSHA" : "EVAL";
    al[0] = strlen(av[0]);
    av[1] = sha ? repo->script_sha[which] : scripts[which];
    al[1] = strlen(av[1]);
    av[2] = nk;
    al[2] = strlen(nk);
    assert(argc <= 13);
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens[i];
    }
    memop_redis_append(c, argc + 3, av, al);
}

static bool noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

redisReply *memop_redis_script(memo_repo *repo, memop_rconn *c, enum memop_script which,
                               int nkeys, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = NULL;
    append_script(repo, c, which, true, nkeys, argc, argv, lens);
    if (memop_redis_exchange(repo, c, 1, &r, "EVALSHA") != 0)
        return NULL;
    if (noscript(r)) {
        /* Redis restarted or was flushed: EVAL runs and caches it again */
        append_script(repo, c, which, false, nkeys, argc, argv, lens);
        if (memop_redis_exchange(repo, c, 1, &r, "EVAL") != 0)
            return NULL;
    }
    return r;
}

int memop_redis_script_many(memo_repo *repo, memop_rconn *c, enum memop_script which,
                            int nkeys, memop_script_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        append_script(repo, c, which, true, nkeys, calls[i].argc, calls[i].argv,
                      calls[i].lens);
    redisReply **replies = n <= 128 ? (redisReply *[128]){0} : calloc(n, sizeof *replies);
    if (!replies)
        return -1;
    int rc = memop_redis_exchange(repo, c, n, replies, "EVALSHA pipeline");
    for (size_t i = 0; i < n && rc == 0; i++) {
        calls[i].reply = replies[i];
        /* after a restart the scripts are gone: run those calls again */
        if (noscript(replies[i]) &&
            !(calls[i].reply = memop_redis_script(repo, c, which, nkeys, calls[i].argc,
                                                  calls[i].argv, calls[i].lens)))
            rc = -1;
    }
    if (n > 128)
        free(replies);
    return rc;
}

/* ------------------------------------------------------- invalidation */

static void wake_prober(memo_repo *repo)
{
    pthread_mutex_lock(&repo->prober_lock);
    pthread_cond_signal(&repo->prober_cond);
    pthread_mutex_unlock(&repo->prober_lock);
}

/* Keeps keys for later. Over the bound, the owners are flagged instead: on
 * reconnect all their keys are dropped, so nothing stale survives. */
static void pending_add(memo_repo *repo, memop_entity *const *owners, const memop_key *keys,
                        size_t n)
{
    memop_pending *q = &repo->pending;
    size_t max = memop_test_hooks.pending_max ? memop_test_hooks.pending_max : MEMOP_PENDING_MAX;
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
        if (!copy) {
            memop_entity_drop(repo, owners[i]);
            continue;
        }
        q->keys[q->n] = copy;
        q->owners[q->n] = owners[i];
        q->n++;
    }
    atomic_store(&q->any, true);
    pthread_mutex_unlock(&q->lock);
    wake_prober(repo);
}

void memop_entity_drop(memo_repo *repo, memop_entity *e)
{
    atomic_fetch_add(&e->drop_gen, 1);
    wake_prober(repo);
}

bool memop_entity_dropping(memop_entity *e)
{
    return atomic_load(&e->drop_gen) != atomic_load(&e->dropped_gen);
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
    /* one DEL for every key: one round trip, applied at once */
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *lens = malloc((n + 1) * sizeof *lens);
    redisReply *r = NULL;
    bool broken = false;
    if (!argv || !lens) {
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        pending_add(repo, owners, keys, n);
        goto out;
    }
    argv[0] = "DEL";
    lens[0] = 3;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = keys[i].s;
        lens[i + 1] = keys[i].len;
    }
    r = memop_redis_command(repo, c, (int)n + 1, argv, lens);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        /* kept for the prober: after an outage, or (a refusal) until the
         * permission is back; an outage opens the breaker here */
        broken = r == NULL;
        memop_redis_reply_failed(repo, r, "DEL");
        pending_add(repo, owners, keys, n);
    }
out:
    free(argv);
    free(lens);
    memop_redis_release(repo, c, broken);
}

/* Glob-escapes s into b for a SCAN pattern. */
static void glob_escape(memop_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", s[i]))
            memop_buf_append(b, "\\", 1);
        memop_buf_append(b, &s[i], 1);
    }
}

/* Drops every key of one lookup or list: SCAN + UNLINK, never KEYS. Returns
 * the number of keys removed, or -1 when Redis failed. */
typedef struct flush_progress {
    void (*fn)(long removed, void *arg);
    void *arg;
    long before; /* removed by earlier key kinds */
} flush_progress;

static long flush_key_desc(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d,
                           const memo_key_desc *k, const flush_progress *progress)
{
    memop_buf pat = {0};
    glob_escape(&pat, repo->key_prefix, repo->key_prefix_len);
    glob_escape(&pat, d->schema, strlen(d->schema));
    memop_buf_puts(&pat, ":{");
    glob_escape(&pat, k->head, strlen(k->head));
    memop_buf_puts(&pat, "*");
    glob_escape(&pat, k->tail, strlen(k->tail));
    memop_buf_puts(&pat, "}:");
    glob_escape(&pat, k->tag, strlen(k->tag));
    memop_buf_puts(&pat, "*");
    if (pat.failed) {
        memop_buf_free(&pat);
        return -1;
    }
    long removed = 0;
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pat.s, "COUNT", "1000"};
        size_t lens[] = {4, strlen(cursor), 5, pat.len, 5, 4};
        redisReply *r = memop_redis_command(repo, c, 6, argv, lens);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r && r->type == REDIS_REPLY_ERROR)
                memop_redis_reply_failed(repo, r, "SCAN");
            else if (r)
                memop_fail(repo, MEMO_ERR_REDIS, "Redis %s: SCAN: unexpected reply",
                           repo->redis_name);
            removed = -1;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements > 0) {
            const char **av = malloc((keys->elements + 1) * sizeof *av);
            size_t *al = malloc((keys->elements + 1) * sizeof *al);
            redisReply *u = NULL;
            if (av && al) {
                av[0] = "UNLINK";
                al[0] = 6;
                for (size_t i = 0; i < keys->elements; i++) {
                    av[i + 1] = keys->element[i]->str;
                    al[i + 1] = keys->element[i]->len;
                }
                u = memop_redis_command(repo, c, (int)keys->elements + 1, av, al);
            }
            if (u && u->type == REDIS_REPLY_INTEGER) {
                removed += u->integer;
            } else {
                if (!av || !al)
                    memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                else if (u && u->type == REDIS_REPLY_ERROR)
                    memop_redis_reply_failed(repo, u, "UNLINK");
                removed = -1;
            }
            free(av);
            free(al);
        }
        arena_reset(c); /* done with both replies: keep a big scan's memory flat */
        if (progress && progress->fn && removed >= 0)
            progress->fn(progress->before + removed, progress->arg);
    } while (removed >= 0 && strcmp(cursor, "0") != 0);
    memop_buf_free(&pat);
    return removed;
}

/* Every key of the entity, or of one list (list >= 0). */
static long flush_entity(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d, int list,
                         flush_progress *progress)
{
    /* the key kinds: the row, each lookup, each list */
    size_t n = list >= 0 ? 1 : 1 + d->nuniques + d->nlists;
    long total = 0;
    for (size_t i = 0; i < n; i++) {
        const memo_key_desc *k = list >= 0          ? &d->lists[list].key
                                 : i == 0           ? &d->row.key
                                 : i <= d->nuniques ? &d->uniques[i - 1].key
                                                    : &d->lists[i - 1 - d->nuniques].key;
        if (progress)
            progress->before = total;
        long got = flush_key_desc(repo, c, d, k, progress);
        if (got < 0)
            return -1;
        total += got;
    }
    return total;
}

long memop_redis_flush_entity(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d)
{
    return flush_entity(repo, c, d, -1, NULL);
}

memo_status memo_flush(memo_repo *repo, const memo_entity_desc *d, const char *list,
                       void (*progress)(long removed, void *arg), void *arg, long *removed)
{
    if (!repo)
        return MEMO_ERR_ARG;
    if (removed)
        *removed = 0;
    memop_entity *e;
    memo_status st;
    if (!d)
        return memop_fail(repo, MEMO_ERR_ARG, "memo_flush: NULL descriptor");
    if ((st = memop_entity_get(repo, d, &e)) != MEMO_OK)
        return st;
    int which = -1;
    if (list) {
        for (unsigned i = 0; i < d->nlists; i++)
            if (strcmp(d->lists[i].name, list) == 0)
                which = (int)i;
        if (which < 0)
            return memop_fail(repo, MEMO_ERR_ARG, "%s.%s has no list '%s'", d->schema, d->name,
                              list);
    }
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return MEMO_ERR_REDIS;
    flush_progress p = {progress, arg, 0};
    long n = flush_entity(repo, c, d, which, &p);
    memop_redis_release(repo, c, n < 0);
    if (n < 0)
        return MEMO_ERR_REDIS;
    if (removed)
        *removed = n;
    return MEMO_OK;
}

/* Sends what the outage kept back: first the wholesale drops of entities
 * whose queue overflowed, then the queued keys. True when all went out. */
static bool pending_flush(memo_repo *repo, memop_rconn *c)
{
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++) {
        memop_entity *e = repo->entity_list[i];
        uint64_t asked = atomic_load(&e->drop_gen);
        if (asked == atomic_load(&e->dropped_gen))
            continue;
        if (memop_redis_flush_entity(repo, c, e->desc) < 0)
            return false;
        /* a drop asked for meanwhile keeps the entity dropping: next round */
        atomic_store(&e->dropped_gen, asked);
    }
    memop_pending *q = &repo->pending;
    pthread_mutex_lock(&q->lock);
    bool ok = true;
    size_t done = 0;
    while (done < q->n && ok) {
        size_t batch = q->n - done < 500 ? q->n - done : 500;
        const char *argv[501];
        size_t lens[501];
        argv[0] = "DEL";
        lens[0] = 3;
        for (size_t i = 0; i < batch; i++) {
            argv[i + 1] = q->keys[done + i];
            lens[i + 1] = strlen(q->keys[done + i]);
        }
        redisReply *r = memop_redis_command(repo, c, (int)batch + 1, argv, lens);
        ok = r && r->type == REDIS_REPLY_INTEGER;
        if (ok)
            done += batch;
        else if (r)
            memop_redis_reply_failed(repo, r, "DEL (queued invalidations)");
    }
    for (size_t i = 0; i < done; i++)
        free(q->keys[i]);
    if (done > 0 && done < q->n) {
        memmove(q->keys, q->keys + done, (q->n - done) * sizeof *q->keys);
        memmove(q->owners, q->owners + done, (q->n - done) * sizeof *q->owners);
    }
    q->n -= done;
    if (ok) {
        atomic_store(&q->any, false);
        /* closed under the queue's lock: a key queued from now on comes
         * with a trip that opens the breaker again */
        atomic_store_explicit(&repo->breaker, MEMOP_BREAKER_CLOSED, memory_order_release);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

/* ------------------------------------------------------------ the breaker */

void memop_redis_trip(memo_repo *repo)
{
    int closed = MEMOP_BREAKER_CLOSED;
    if (atomic_compare_exchange_strong(&repo->breaker, &closed, MEMOP_BREAKER_OPEN)) {
        atomic_fetch_add(&repo->breaker_epoch, 1);
        wake_prober(repo);
    }
}

void memop_stats_publish(memo_repo *repo)
{
    if (!repo->publish || atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED)
        return;
    char *json = memop_stats_publication(repo, repo->process_json);
    memop_rconn *c = json ? memop_redis_acquire(repo) : NULL;
    if (c) {
        char ttl[24];
        int ms = repo->cfg.stats_publish_ms * 3;
        snprintf(ttl, sizeof ttl, "%d", ms < 500 ? 500 : ms);
        const char *argv[] = {"SET", repo->stats_key, json, "PX", ttl};
        size_t lens[] = {3, strlen(repo->stats_key), strlen(json), 2, strlen(ttl)};
        redisReply *r = memop_redis_command(repo, c, 5, argv, lens);
        memop_redis_release(repo, c, r == NULL);
    }
    free(json);
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

/* The background thread. While the breaker is open it tries Redis every
 * probe interval and, when Redis answers, sends what was kept back and closes
 * the breaker. While it is closed it publishes the statistics every
 * stats_publish_ms. */
/* Something the prober must send: queued invalidations or an entity to drop. */
static bool work_pending(memo_repo *repo)
{
    if (atomic_load(&repo->pending.any))
        return true;
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++)
        if (memop_entity_dropping(repo->entity_list[i]))
            return true;
    return false;
}

/* On a connection of its own: Redis answers, and what was kept back went. */
static bool probe_and_flush(memo_repo *repo)
{
    char err[512];
    bool refused;
    memop_rconn *c = rconn_new(repo, err, sizeof err, &refused);
    if (!c)
        return false;
    const char *ping[] = {"PING"};
    redisReply *r = memop_redis_command(repo, c, 1, ping, NULL);
    bool ok = r && r->type != REDIS_REPLY_ERROR && pending_flush(repo, c);
    rconn_free(c);
    return ok;
}

/* How long a refused invalidation waits before it is tried again while
 * Redis is up (a permission taken away at run time, say). */
#define RETRY_CLOSED_MS 1000

static void *prober_main(void *arg)
{
    memo_repo *repo = arg;
    uint64_t next_publish = memop_now_us() + (uint64_t)repo->cfg.stats_publish_ms * 1000u;
    uint64_t retry_at = 0;
    pthread_mutex_lock(&repo->prober_lock);
    while (!repo->closing) {
        uint64_t now = memop_now_us();
        bool open = atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED;
        bool work = work_pending(repo);
        if (open || (work && now >= retry_at)) {
            pthread_mutex_unlock(&repo->prober_lock);
            bool ok = probe_and_flush(repo);
            pthread_mutex_lock(&repo->prober_lock);
            if (!ok && open && !repo->closing)
                wait_ms(repo, MEMOP_PROBE_INTERVAL_MS);
            else if (!ok)
                retry_at = memop_now_us() + RETRY_CLOSED_MS * 1000u;
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
        if (wake == UINT64_MAX)
            pthread_cond_wait(&repo->prober_cond, &repo->prober_lock);
        else
            wait_ms(repo, (wake - now + 999) / 1000);
    }
    pthread_mutex_unlock(&repo->prober_lock);
    return NULL;
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
    char token[40], key[MEMOP_KEY_MAX], lease[MEMOP_KEY_MAX + 8], other[MEMOP_KEY_MAX + 8];
    snprintf(token, sizeof token, "%016llx%08x", (unsigned long long)repo->token_prefix,
             (unsigned)memop_random());
    snprintf(key, sizeof key, "%smemo:probe:{%s}", repo->key_prefix, token);
    snprintf(lease, sizeof lease, "%s:lease", key);
    snprintf(other, sizeof other, "%s:other", key);
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
        {"EVALSHA (a script that runs STRLEN, GET, SET, PTTL)", MEMOP_SCRIPT_GET_OR_LEASE,
         2, 5, {key, lease, token, "5000", max}},
        {"EVALSHA (a script that runs GET, SET, DEL)", MEMOP_SCRIPT_FILL, 2, 5,
         {key, lease, token, null, "5000"}},
        {"EVALSHA (a script that runs GET, PEXPIRE)", MEMOP_SCRIPT_EXTEND, 1, 3,
         {key, null, "5000"}},
        {"EVALSHA (a script that runs STRLEN, GET)", MEMOP_SCRIPT_GET_BY, 1, 5,
         {key, "x", "y", "0", max}},
        {"EVALSHA (a script that runs GET, DEL)", MEMOP_SCRIPT_RELEASE, 1, 2, {lease, token}},
        {"EVAL", MEMOP_SCRIPT_COUNT, 0, 3, {"EVAL", "return 1", "0"}},
        {"PTTL", MEMOP_SCRIPT_COUNT, 0, 2, {"PTTL", key}},
        {"EXISTS", MEMOP_SCRIPT_COUNT, 0, 2, {"EXISTS", key}},
        {"SET", MEMOP_SCRIPT_COUNT, 0, 6, {"SET", other, token, "NX", "PX", "5000"}},
        {"SCAN", MEMOP_SCRIPT_COUNT, 0, 6, {"SCAN", "0", "MATCH", key, "COUNT", "10"}},
        {"UNLINK", MEMOP_SCRIPT_COUNT, 0, 2, {"UNLINK", other}},
        {"DEL", MEMOP_SCRIPT_COUNT, 0, 3, {"DEL", key, lease}},
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
            append_script(repo, c, probes[i].script, true, probes[i].nkeys, probes[i].argc,
                          probes[i].argv, lens);
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
                     kind == MEMOP_REDIS_NOPERM ? " (see \"Redis permissions\" in the README)"
                                                : "") < 0)
            err[0] = '\0';
        return kind == MEMOP_REDIS_OUTAGE ? MEMO_ERR_REDIS : MEMO_ERR_CONFIG;
    }
    return MEMO_OK;
}

memo_status memop_redis_open(memo_repo *repo, memo_error *err)
{
    memop_pool_init(&repo->rpool, (size_t)repo->cfg.pool_size);
    pthread_mutex_init(&repo->pending.lock, NULL);
    pthread_mutex_init(&repo->prober_lock, NULL);
    pthread_cond_init(&repo->prober_cond, NULL);
    if (!repo->rpool.free) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return MEMO_ERR_NOMEM;
    }
    atomic_store(&repo->breaker, MEMOP_BREAKER_CLOSED);
    /* <prefix>memo:stats:<host>:<pid>:<random>, for `memo stats` */
    repo->publish = !(repo->cfg.flags & MEMO_STATS_PRIVATE);
    char host[128] = "unknown";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char hostpart[MEMOP_KEY_PART_MAX + 1];
    size_t hlen = memop_key_part(host, strlen(host), hostpart);
    snprintf(repo->stats_key, sizeof repo->stats_key, "%smemo:stats:%.*s:%ld:%08llx",
             repo->key_prefix, (int)hlen, hostpart, (long)getpid(),
             (unsigned long long)(repo->token_prefix & 0xffffffffu));
    snprintf(repo->process_json, sizeof repo->process_json,
             "{\"host\":\"%.*s\",\"pid\":%ld}", (int)hlen, hostpart, (long)getpid());
    bool refused;
    memop_rconn *c = rconn_new(repo, err->message, sizeof err->message, &refused);
    memo_status st = c ? check_permissions(repo, c, err->message, sizeof err->message)
                   : refused ? MEMO_ERR_CONFIG
                             : MEMO_ERR_REDIS;
    if (st != MEMO_OK && c) {
        rconn_free(c);
        c = NULL;
    }
    /* a refusal is a mistake to fix, never a reason to start degraded */
    if (st == MEMO_ERR_CONFIG)
        return st;
    if (c) {
        repo->rpool.free[repo->rpool.nfree++] = c;
        repo->rpool.live++;
    } else if (!(repo->cfg.flags & MEMO_OPEN_DEGRADED)) {
        return MEMO_ERR_REDIS;
    } else {
        err->message[0] = '\0';
        atomic_store(&repo->breaker, MEMOP_BREAKER_OPEN);
    }
    /* the keeper first: the prober publishes statistics, which read it */
    if (memop_lease_keeper_start(repo) != MEMO_OK) {
        snprintf(err->message, sizeof err->message, "cannot start the lease keeper thread");
        return MEMO_ERR_NOMEM;
    }
    if (pthread_create(&repo->prober, NULL, prober_main, repo) != 0) {
        snprintf(err->message, sizeof err->message, "cannot start the Redis prober thread");
        return MEMO_ERR_NOMEM;
    }
    repo->prober_started = true;
    return MEMO_OK;
}

void memop_redis_close(memo_repo *repo)
{
    if (repo->prober_started) {
        pthread_mutex_lock(&repo->prober_lock);
        repo->closing = true;
        pthread_cond_signal(&repo->prober_cond);
        pthread_mutex_unlock(&repo->prober_lock);
        pthread_join(repo->prober, NULL);
    }
    memop_lease_keeper_stop(repo); /* after the prober, which reads it */
    memop_pool *p = &repo->rpool;
    for (size_t i = 0; i < p->nfree; i++)
        rconn_free(p->free[i]);
    p->nfree = 0;
    memop_pool_destroy(p);
    memop_pending *q = &repo->pending;
    for (size_t i = 0; i < q->n; i++)
        free(q->keys[i]);
    free(q->keys);
    free(q->owners);
    pthread_mutex_destroy(&q->lock);
    pthread_mutex_destroy(&repo->prober_lock);
    pthread_cond_destroy(&repo->prober_cond);
}
