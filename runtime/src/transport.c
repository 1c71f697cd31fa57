/* The Redis transport: commands written as RESP from a buffer each
 * connection keeps, replies read into an arena each connection keeps (no
 * allocation per call once warm), every exchange bounded in time (the
 * socket's time-outs) and in bytes (a value written by another program can
 * be any size), and error replies sorted into outages and refusals. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/sds.h>

#include "internal.h"

/* Replies live in blocks a connection keeps (see the transport below). */
struct memop_arena {
    struct memop_arena *next;
    size_t cap, used;
    _Alignas(max_align_t) char data[];
};

/* Why a context failed, in words: hiredis 0.14 says a time-out is EAGAIN. */
void memop_redis_context_error(const redisContext *ctx, char *out, size_t size)
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

/* Commands are written as RESP from a buffer the connection keeps, straight
 * to the socket; replies are built by hiredis' reader into an arena the
 * connection keeps. Neither allocates once warm, so a cache hit costs no
 * malloc but the caller's strings. Replies live until the connection is
 * released; never freeReplyObject() them. */

void *memop_rconn_alloc(memop_rconn *c, size_t n)
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

void memop_rconn_reset_arena(memop_rconn *c)
{
    c->cur = c->first;
    if (c->cur)
        c->cur->used = 0;
}

static redisReply *arena_reply(const redisReadTask *task)
{
    memop_rconn *c = task->privdata;
    redisReply *r = memop_rconn_alloc(c, sizeof *r);
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
    if (!r || !(r->str = memop_rconn_alloc(task->privdata, len + 1)))
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
    if (elements > 0 && !(r->element = memop_rconn_alloc(
                              task->privdata, (size_t)elements * sizeof *r->element)))
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

void memop_rconn_use_arena(memop_rconn *c, redisContext *ctx)
{
    ctx->reader->fn = &arena_fns;
    ctx->reader->privdata = c;
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

void memop_resp_append(memop_buf *b, int argc, const char *const *argv,
                       const size_t *lens)
{
    char head[32];
    head[0] = '*';
    size_t n = 1 + memop_i64_text(argc, head + 1);
    memcpy(head + n, "\r\n", 2);
    memop_buf_append(b, head, n + 2);
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        head[0] = '$';
        n = 1 + memop_i64_text((int64_t)len, head + 1);
        memcpy(head + n, "\r\n", 2);
        memop_buf_append(b, head, n + 2);
        memop_buf_append(b, argv[i], len);
        memop_buf_append(b, "\r\n", 2);
    }
}

void memop_redis_append(memop_rconn *c, int argc, const char *const *argv,
                        const size_t *lens)
{
    if (c->nctx)
        memop_cluster_append(c, -1, argc, argv, lens);
    else
        memop_resp_append(&c->out, argc, argv, lens);
}

bool memop_rconn_broken(const memop_rconn *c)
{
    return c->dead || (c->ctx && c->ctx->err);
}

void memop_redis_transport_failed(memo_repo *repo, memop_rconn *c, redisContext *ctx,
                                  const char *name, const char *what)
{
    char why[256];
    memop_redis_context_error(ctx, why, sizeof why);
    if (ctx && !ctx->err) {
        ctx->err = REDIS_ERR_IO;
        snprintf(ctx->errstr, sizeof ctx->errstr, "%.100s", why);
    }
    c->dead = true;
    memop_fail(repo, MEMO_ERR_REDIS, "Redis %s: %s: %s", name, what, why);
    memop_redis_trip(repo);
}

/* Records a transport failure: the connection is dead, the breaker opens. */
static void transport_failed(memo_repo *repo, memop_rconn *c, const char *what)
{
    memop_redis_transport_failed(repo, c, c->ctx, repo->redis_name, what);
}

/* Reads one reply, feeding hiredis' parser from the socket ourselves so that
 * the bytes an exchange may read are bounded: a value written by another
 * program can be any size, and must not take this process's memory or
 * time with it. 1 with the reply, 0 over the budget, -1 on a failure. */
int memop_ctx_read(redisContext *ctx, size_t *budget, void **reply)
{
    redisReader *reader = ctx->reader;
    for (;;) {
        if (redisReaderGetReply(reader, reply) != REDIS_OK) {
            ctx->err = REDIS_ERR_PROTOCOL;
            snprintf(ctx->errstr, sizeof ctx->errstr, "%s", reader->errstr);
            return -1;
        }
        if (*reply)
            return 1;
        char buf[16384];
        size_t want = *budget < sizeof buf ? *budget : sizeof buf;
        if (want == 0)
            return 0;
        /* the socket has SO_RCVTIMEO: a frozen server times the read out */
        ssize_t got = read(ctx->fd, buf, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            ctx->err = got == 0 ? REDIS_ERR_EOF : REDIS_ERR_IO;
            snprintf(ctx->errstr, sizeof ctx->errstr, "%s",
                     got == 0 ? "server closed the connection"
                     : errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                               : strerror(errno));
            return -1;
        }
        *budget -= (size_t)got;
        if (redisReaderFeed(reader, buf, (size_t)got) != REDIS_OK) {
            ctx->err = REDIS_ERR_PROTOCOL;
            snprintf(ctx->errstr, sizeof ctx->errstr, "%s", reader->errstr);
            return -1;
        }
    }
}

int memop_ctx_write(redisContext *ctx, const char *s, size_t len)
{
    /* the socket has SO_SNDTIMEO: a frozen server times the write out */
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(ctx->fd, s + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ctx->err = REDIS_ERR_IO;
            snprintf(ctx->errstr, sizeof ctx->errstr, "%s",
                     w == 0                                    ? "connection lost"
                     : errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                               : strerror(errno));
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

void memop_redis_oversize(memo_repo *repo, memop_rconn *c, redisContext *ctx,
                          const char *name, const char *what)
{
    /* not an outage: the rest of the reply is abandoned with the
     * connection, and the caller treats the value as corrupt */
    c->oversize = true;
    c->dead = true;
    ctx->err = REDIS_ERR_OTHER;
    snprintf(ctx->errstr, sizeof ctx->errstr, "reply too large");
    memop_fail(repo, MEMO_ERR_REDIS,
               "Redis %s: %s: the reply is larger than max_value_bytes (%d) allows", name,
               what, repo->cfg.max_value_bytes);
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
    if (c->nctx)
        return memop_cluster_exchange(repo, c, n, replies, what);
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
    if (memop_ctx_write(c->ctx, b->s, b->len) != 0) {
        b->len = 0;
        transport_failed(repo, c, what);
        return -1;
    }
    b->len = 0;
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        int rc = memop_ctx_read(c->ctx, &budget, &reply);
        if (rc == 0) {
            /* not an outage: the rest of the reply is abandoned with the
             * connection, and the caller treats the value as corrupt */
            memop_redis_oversize(repo, c, c->ctx, repo->redis_name, what);
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
    "LOADING ", "BUSY ",       "MASTERDOWN ",  "READONLY ", "OOM ",
    "MISCONF ", "NOREPLICAS ", "CLUSTERDOWN ", "TRYAGAIN ",
};

enum memop_redis_error memop_redis_error_kind(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR || memop_redis_node_down_reply(r))
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
               kind == MEMOP_REDIS_NOPERM
                   ? " (see \"Redis permissions\" in docs/operations.md)"
                   : "");
    /* (a cluster node that is down degrades its own keys only) */
    if (kind == MEMOP_REDIS_OUTAGE && !memop_redis_node_down_reply(r))
        memop_redis_trip(repo);
    return kind;
}

redisReply *memop_redis_command(memo_repo *repo, memop_rconn *c, int argc,
                                const char **argv, const size_t *lens)
{
    memop_redis_append(c, argc, argv, lens);
    redisReply *r = NULL;
    return memop_redis_exchange(repo, c, 1, &r, argv[0]) == 0 ? r : NULL;
}

/* After a large reply, give the memory back: an idle pooled connection
 * keeps at most a few of its buffers' worth. False when it could not (the
 * connection must go). */
#define TRIM_OVER (256u * 1024)
bool memop_rconn_trim(memop_rconn *c)
{
    size_t total = 0;
    for (struct memop_arena *a = c->first; a; a = a->next)
        total += a->cap;
    if (total > TRIM_OVER)
        memop_rconn_free_arena(c);
    else
        memop_rconn_reset_arena(c);
    if (c->out.cap > TRIM_OVER)
        memop_buf_free(&c->out);
    for (size_t i = 0; i < (c->nctx ? MEMOP_NODES_MAX : 1); i++) {
        redisContext *ctx = c->nctx ? c->nctx[i] : c->ctx;
        redisReader *r = ctx ? ctx->reader : NULL;
        if (r && r->len == 0 && r->buf && sdsalloc(r->buf) > TRIM_OVER) {
            sdsfree(r->buf);
            r->pos = 0;
            if (!(r->buf = sdsempty()))
                return false;
        }
    }
    return memop_cluster_trim(c);
}

int memop_redis_del(memo_repo *repo, memop_rconn *c, const memop_key *keys, size_t n,
                    const char *what, bool *broken)
{
    enum { PER_DEL = 1000 };
    *broken = false;
    size_t ndel = (n + PER_DEL - 1) / PER_DEL;
    if (ndel == 0)
        return 0;
    redisReply **replies = calloc(ndel, sizeof *replies);
    if (!replies) {
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (size_t at = 0; at < n; at += PER_DEL) {
        size_t k = n - at < PER_DEL ? n - at : PER_DEL;
        const char *argv[PER_DEL + 1];
        size_t lens[PER_DEL + 1];
        argv[0] = "DEL";
        lens[0] = 3;
        for (size_t i = 0; i < k; i++) {
            argv[i + 1] = keys[at + i].s;
            lens[i + 1] = keys[at + i].len;
        }
        memop_redis_append(c, (int)k + 1, argv, lens);
    }
    int rc = 0;
    if (memop_redis_exchange(repo, c, ndel, replies, what) != 0) {
        *broken = true;
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < ndel; i++)
        if (replies[i]->type != REDIS_REPLY_INTEGER) {
            memop_redis_reply_failed(repo, replies[i], what);
            rc = -1;
        }
    free(replies);
    return rc;
}
