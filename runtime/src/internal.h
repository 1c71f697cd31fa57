/* libmemo's private interfaces. Everything here is shared between the
 * runtime's files and prefixed memop_; nothing here is installed. */
#ifndef MEMO_INTERNAL_H
#define MEMO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "memo/memo.h"

/* ------------------------------------------------------------ small tools */

uint64_t memop_now_us(void); /* monotonic clock */
void memop_sleep_us(uint64_t us);
uint64_t memop_random(void); /* per-thread xorshift, seeded from getrandom */

/* A growable byte string; every function keeps s NUL-terminated. On
 * allocation failure `failed` is set and later appends do nothing. */
typedef struct memop_buf {
    char *s;
    size_t len, cap;
    bool failed;
    bool borrowed; /* s is the caller's storage (on its stack): never freed */
} memop_buf;

/* A buffer that starts in storage the caller owns and moves to the heap only
 * when it outgrows it. */
#define MEMOP_BUF_IN(storage) ((memop_buf){(storage), 0, sizeof(storage), false, true})

void memop_buf_append(memop_buf *, const void *data, size_t n);
void memop_buf_puts(memop_buf *, const char *s);
void memop_buf_printf(memop_buf *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void memop_buf_free(memop_buf *);

/* A TTL with jitter: uniform in [ttl, ttl * (1 + pct/100)]. */
uint64_t memop_ttl_ms(uint64_t ttl_ms, unsigned jitter_pct);

/* Test-only switches (tests/ sets them; production never does): a pause
 * between a filler's query and its fill, to make races happen, and plain
 * SET instead of the lease check, to prove the tests can see a stale fill. */
typedef struct memop_hooks {
    void (*before_fill)(const char *key);
    bool no_leases;
    size_t pending_max;    /* a smaller bound for the invalidation queue */
    bool fail_collect;     /* collecting a write's keys fails, as out of memory would */
    bool near_no_tracking; /* near caches without CLIENT TRACKING: they must go stale */
    void (*before_share)(const char *key); /* a flight's leader, before it shares */
} memop_hooks;
extern memop_hooks memop_test_hooks;

/* ------------------------------------------------------------------ errors */

/* Each thread's memo_last_error buffer (util.c). */
typedef struct memop_err_buf memop_err_buf;
void memop_err_buf_destroy(void *buf); /* the thread-specific key's destructor */
void memop_err_bufs_free(memo_repo *); /* every thread's, at memo_close */

/* Records this thread's failure message for memo_last_error and returns st. */
memo_status memop_fail(memo_repo *, memo_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ config */

/* A node of a Redis URL's list (redis://h1:p1,h2:p2/). */
typedef struct memop_redis_seed {
    char *host;
    int port;
} memop_redis_seed;

#define MEMOP_SEEDS_MAX 16

typedef struct memop_redis_target {
    char *host; /* NULL for a unix socket; else the first of seeds */
    int port;
    memop_redis_seed *seeds; /* redis://: every node the URL names, 1 or more */
    size_t nseeds;
    char *path; /* unix socket */
    char *user; /* NULL: AUTH with the password alone */
    char *password;
    int db;
} memop_redis_target;

/* Parses a Redis URL; on failure writes a message naming the problem (never
 * the password) into err and returns MEMO_ERR_CONFIG. */
memo_status memop_redis_url_parse(const char *url, memop_redis_target *out, char *err,
                                  size_t errsize);
void memop_redis_target_free(memop_redis_target *);
/* Copies a message of libpq into out, on one line, with every spelling of
 * the password that conninfo holds (even a conninfo libpq could not parse)
 * replaced by "***". */
void memop_pg_message(const char *conninfo, const char *text, char *out, size_t size);
/* "host:port", "[v6]:port", for messages. */
void memop_host_port_name(const char *host, int port, char *out, size_t size);
/* "127.0.0.1:6379" or "unix:/path", for messages. */
void memop_redis_target_name(const memop_redis_target *, char *out, size_t size);

/* ------------------------------------------------------------------- stats */

enum memop_op {
    MEMOP_OP_GET,
    MEMOP_OP_GET_BY,
    MEMOP_OP_LIST,
    MEMOP_OP_GET_MANY,
    MEMOP_OP_INSERT,
    MEMOP_OP_UPDATE,
    MEMOP_OP_DELETE,
    MEMOP_OP_COUNT
};

#define MEMOP_HIST_BUCKETS 128

/* A latency histogram in microseconds: 4 buckets per power of two. */
typedef struct memop_hist {
    _Atomic uint64_t b[MEMOP_HIST_BUCKETS];
    _Atomic uint64_t sum_us;
} memop_hist;

/* The counters of memop_stats, by name and meaning, in one place for every
 * writer (JSON, Prometheus, memo_stats_entity, the memo tool). */
#define MEMOP_COUNTERS(X)                                                                \
    X(hits, "Cache lookups answered by Redis with a row or key list")                    \
    X(misses, "Cache lookups Redis could not answer")                                    \
    X(negative_hits, "Cache lookups answered by a remembered missing row")               \
    X(fills, "Values written to Redis under a lease")                                    \
    X(fill_rejects, "Fills refused because a write broke the lease")                     \
    X(lease_waits, "Reads that waited for another filler")                               \
    X(invalidations, "Keys deleted by writes")                                           \
    X(db_queries, "Statements sent to PostgreSQL")                                       \
    X(degraded, "Operations served without the cache")                                   \
    X(errors, "Failed statements and Redis commands: lost connections, time-outs, "      \
              "refusals by the server's configuration or the schema")                    \
    X(rejected, "Writes PostgreSQL refused for their data: unique conflicts, "           \
                "constraint violations, invalid values")                                 \
    X(corrupt, "Cached values that did not belong to their key and were deleted")        \
    X(near_hits, "Reads answered by the near cache, in the process")                     \
    X(near_evictions, "Rows the near cache let go to stay within its bounds")            \
    X(near_invalidations, "Near-cached rows dropped because Redis said they changed")    \
    X(near_flushes, "Times the near cache was emptied: a lost subscriber, a breaker "    \
                    "that opened, a FLUSHALL, a drop of the entity")

/* What is there now, not counted up: not reset, summed across processes. */
#define MEMOP_GAUGES(X)                                                                  \
    X(near_entries, "Rows in the near cache")                                            \
    X(near_bytes, "Memory the near cache holds, in bytes")

typedef struct memop_stats {
#define MEMOP_COUNTER_FIELD(name, help) _Atomic uint64_t name;
    MEMOP_COUNTERS(MEMOP_COUNTER_FIELD)
    MEMOP_GAUGES(MEMOP_COUNTER_FIELD)
#undef MEMOP_COUNTER_FIELD
    _Atomic uint64_t ops[MEMOP_OP_COUNT];
    memop_hist hit_latency, miss_latency;
    memop_hist op_latency[MEMOP_OP_COUNT];
} memop_stats;

void memop_hist_add(memop_hist *, uint64_t us);
/* The first microsecond past bucket b. */
uint64_t memop_hist_upper(unsigned b);
/* The q-quantile (0..1) in microseconds, 0 when empty. */
uint64_t memop_hist_quantile(const memop_hist *, double q);
const char *memop_op_name(enum memop_op);

/* Writers over named stats: the repository's own, or sums across processes
 * (the memo tool). raw: histogram buckets instead of percentiles. */
void memop_stats_write_json(memop_buf *, const char *const *names,
                            const memop_stats *const *stats, size_t n, bool raw);
void memop_stats_write_prometheus(memop_buf *, const char *const *names,
                                  const memop_stats *const *stats, size_t n);
/* What the repository publishes to Redis: JSON with raw histograms and the
 * given "process" object. malloc'd. */
char *memop_stats_publication(memo_repo *, const char *process);

#define MEMOP_INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)
#define MEMOP_ADD(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)

/* --------------------------------------------------------------- entities */

#define MEMOP_MAX_ENTITIES 256

/* A statement: its text and the types of its parameters. */
typedef struct memop_stmt {
    char *text;
    Oid types[MEMO_MAX_FIELDS + 1]; /* every field, and update_fields' mask */
    int ntypes;
    /* "memo_" and a hash of the text and types: one name, one statement,
     * whichever process prepared it on whichever server connection (a
     * pooler shares those) */
    char name[32];
} memop_stmt;

/* What the repository keeps per entity: statistics and the SQL built from the
 * descriptor, once. Registered on first use, with every entity its rules
 * reach. */
typedef struct memop_entity {
    const memo_entity_desc *desc;
    unsigned index; /* dense, for per-connection prepared-statement tables */
    memop_stats stats;
    /* SQL, one per statement; see sql.c for the numbering */
    memop_stmt *sql;
    unsigned nsql;
    /* Invalidations were lost (the queue overflowed, or collecting them
     * failed): every cached entry of the entity is to be dropped. Requests
     * count up drop_gen; the prober copies it into dropped_gen once it has
     * dropped everything. While they differ, reads bypass the cache. */
    _Atomic uint64_t drop_gen, dropped_gen;
    /* Keys of the entity waiting in the invalidation queue (pending.c).
     * While there are any, reads bypass the cache too: a reader that read
     * the old row under a lease the queued DEL has not broken yet could
     * fill it, and a later reader hit it, after the write returned. */
    _Atomic uint64_t queued;
    /* the fields a write's invalidation depends on, in field order: the key,
     * cached unique fields, list group and order fields, rule fields. Writes
     * return only these. */
    unsigned keyfields[MEMO_MAX_FIELDS];
    unsigned nkeyfields;
    int version; /* the version field's index, or -1 */
    /* the entity of each rule's target, registered with this one */
    struct memop_entity **targets;
    struct memop_near *near; /* `near N`: the rows kept in the process, or NULL */
} memop_entity;

enum memop_sql {
    MEMOP_SQL_SELECT,      /* one row by primary key */
    MEMOP_SQL_SELECT_MANY, /* rows by primary key = ANY($1) */
    MEMOP_SQL_INSERT,      /* every column */
    MEMOP_SQL_INSERT_AUTO, /* every column but the primary key */
    MEMOP_SQL_UPDATE,      /* old and new row */
    MEMOP_SQL_DELETE,      /* the old row */
    MEMOP_SQL_UPSERT,      /* insert or update: the old row if any, the new, inserted? */
    MEMOP_SQL_UPDATE_FIELDS, /* UPDATE's, writing the fields of a mask (last param) */
    MEMOP_SQL_FIXED          /* then one per unique lookup, then one per list */
};

#define MEMOP_SQL_UNIQUE(d, u) (MEMOP_SQL_FIXED + (u))
#define MEMOP_SQL_LIST(d, l) (MEMOP_SQL_FIXED + (d)->nuniques + (l))
#define MEMOP_SQL_COUNT(d, l) (MEMOP_SQL_FIXED + (d)->nuniques + (d)->nlists + (l))
#define MEMOP_SQL_AFTER(d, l) (MEMOP_SQL_FIXED + (d)->nuniques + 2 * (d)->nlists + (l))
/* (a list with a nullable order field: the page after a row whose value is NULL) */
#define MEMOP_SQL_AFTER_NULL(d, l)                                                       \
    (MEMOP_SQL_FIXED + (d)->nuniques + 3 * (d)->nlists + (l))

memo_status memop_entity_get(memo_repo *, const memo_entity_desc *, memop_entity **out);
/* Asks for every cached entry of e to be dropped (SCAN + UNLINK, by the
 * background thread), for when some of its invalidations were lost. */
void memop_entity_drop(memo_repo *, memop_entity *e);
/* A drop of e's entries was asked for and has not finished. */
bool memop_entity_dropping(memop_entity *e);
/* Reads of e must not use the cache: a drop has not finished, or some of
 * its invalidations wait in the queue. */
bool memop_entity_bypassed(memop_entity *e);
/* Builds every statement of an entity; NULL entries on allocation failure. */
memo_status memop_sql_build(memop_entity *);
void memop_sql_free(memop_entity *);

/* ------------------------------------------------------------------- keys */

/* The longest key the runtime builds; longer user parts are hashed, so only
 * an absurd prefix or template could exceed it (memo_open checks the prefix). */
#define MEMOP_KEY_MAX 640
/* Escaped user parts longer than this are replaced by a hash. */
#define MEMOP_KEY_PART_MAX 128

typedef struct memop_key {
    char s[MEMOP_KEY_MAX];
    size_t len;
} memop_key;

/* Escapes a key part: [A-Za-z0-9-_.@+] stay, every other byte is %XX, and a
 * result over MEMOP_KEY_PART_MAX is "~" and 32 hex digits of its SHA-256.
 * Returns the length written (at most MEMOP_KEY_PART_MAX) into out. */
size_t memop_key_part(const char *s, size_t n, char *out);
/* The key part of a value of field f (int, bool, timestamp or text). */
size_t memop_key_value(const memo_field_desc *f, const void *value, char *out);
/* <prefix><schema>:{<head><part><tail>}:<tag> */
void memop_key_build(memo_repo *, const memo_entity_desc *, const memo_key_desc *,
                     const char *part, size_t partlen, memop_key *out);
/* The key of lookup or list k for a value of field f: the two above at once. */
void memop_key_of(memo_repo *, const memo_entity_desc *, const memo_key_desc *k,
                  const memo_field_desc *f, const void *value, memop_key *out);
/* The primary key: a key value (memo_entity_desc.pks, pk_offsets) in a
 * Redis key, in parameters, and against a row. A composite key's part is
 * its fields' parts joined by ',' (never in an escaped part), hashed as one
 * part is when longer than MEMOP_KEY_PART_MAX. */
#define MEMOP_MAX_PK 8         /* fields in a composite key */
#define MEMOP_KEY_SIZE_MAX 128 /* bytes of a key value */
/* The part of the row key; returns its length (at most MEMOP_KEY_PART_MAX). */
size_t memop_pk_part(const memo_entity_desc *, const void *key, char *out);
/* The row key of a key value. */
void memop_key_row(memo_repo *, const memo_entity_desc *, const void *key,
                   memop_key *out);
/* The key value of a row (its strings borrowed from the row). */
void memop_pk_of_row(const memo_entity_desc *, const void *row, void *key);
/* The row has this key value. */
bool memop_row_has_pk(const memo_entity_desc *, const void *row, const void *key);
/* A text part is not NULL: MEMO_ERR_ARG naming the field, else MEMO_OK. */
memo_status memop_check_pk(memo_repo *, const memo_entity_desc *, const void *key);
/* Two values of key field f (pointers to its C type) are equal; a NULL
 * text equals nothing. */
bool memop_key_equal(const memo_field_desc *f, const void *a, const void *b);
/* The Redis Cluster slot of a key (hash tags as Redis reads them). */
unsigned memop_key_slot(const char *key, size_t len);
/* The key of lookup or list k cut around its value: <before><part><after>
 * (for a script that builds keys from values it reads). */
void memop_key_around(memo_repo *, const memo_entity_desc *, const memo_key_desc *k,
                      memop_key *before, memop_key *after);
/* The key of a list's count: the list's key and ":n" (the same slot). */
void memop_key_count(const memop_key *list, memop_key *out);
/* Appends the SCAN pattern that matches every key of k (a list's count
 * too). */
void memop_key_pattern(memo_repo *, const memo_entity_desc *, const memo_key_desc *k,
                       memop_buf *out);
/* memo's own keys: <prefix>memo:<kind>:{<name escaped>} (kind "lock", "probe"). */
void memop_key_memo(memo_repo *, const char *kind, const char *name, memop_key *out);
/* The key a process publishes its statistics under (host already a key part). */
void memop_key_stats(memo_repo *, const char *host, long pid, unsigned long tag,
                     memop_key *out);
/* The Lua pattern class of the bytes memop_key_part keeps (for the GET_BY
 * script), and the longest part as a string. */
#define MEMOP_KEY_PLAIN_LUA "%w%-_%.@%+"
#define MEMOP_STR_(x) #x
#define MEMOP_STR(x) MEMOP_STR_(x)

/* A lease lives in its value key: while a filler queries, the key holds
 * MEMOP_LEASE_MARK and the filler's token (with a time to live of lease_ms)
 * instead of a value. No value memo writes begins with '~' (rows, lists and
 * null are JSON; lookups hold a primary key as JSON), so the two cannot be
 * confused. */
#define MEMOP_LEASE_MARK "~lease:"
#define MEMOP_LEASE_MAX 48        /* the mark, a token, the NUL */
#define MEMOP_LEASE_MS_MAX 600000 /* the longest lease_ms a repository may have */
/* A new lease value, unique across processes. */
void memop_make_lease(memo_repo *, char out[MEMOP_LEASE_MAX]);
/* The value is a lease (someone's), not a value. */
bool memop_is_lease(const char *s, size_t n);

/* ------------------------------------------------------------------ codec */

/* JSON values in Redis. A row is an object with one member per field; a
 * missing row is the literal `null`. */
extern const char memop_null_value[]; /* "null" */

/* Encodes a row as a JSON object into buf. */
memo_status memop_row_encode(const memo_entity_desc *, const void *row, memop_buf *buf);
/* Decodes a JSON object into a zeroed row. On failure the row is cleared and
 * MEMO_ERR_ARG returned (a corrupt value), with a reason in why. */
memo_status memop_row_decode(const memo_entity_desc *, const char *data, size_t len,
                             void *row, char *why, size_t whysize);
/* Primary keys as JSON (42, "abc", or [7, "abc"] for a composite key): the
 * value of a unique lookup, and arrays of them: the value of a list.
 * Decoding writes key values (memop_pk_width bytes each: an int32_t, an
 * int64_t, a char *, or the key struct), their strings malloc'd: free them
 * with memop_pk_free. */
memo_status memop_pk_encode(const memo_entity_desc *, const void *key, memop_buf *buf);
bool memop_pk_decode(const memo_entity_desc *, const char *data, size_t len, void *out);
/* An array of at most max keys; more is a corrupt value (false). */
bool memop_pk_array_decode(const memo_entity_desc *, const char *data, size_t len,
                           size_t max, void **keys, size_t *count);
size_t memop_pk_width(const memo_entity_desc *);
/* Frees the strings of a decoded key value, and NULLs them. */
void memop_pk_free(const memo_entity_desc *, void *key);

/* Where field f lives in a row struct. */
#define MEMOP_FIELD_PTR(row, f) ((char *)(row) + (f)->offset)
#define MEMOP_FIELD_CPTR(row, f) ((const char *)(row) + (f)->offset)
/* Text and json fields are char *; the rest are values (row.c). */
bool memop_field_is_text(memo_type);
/* Field f of row is SQL NULL: a NULL string, or a nullable scalar's flag. */
bool memop_field_null(const memo_field_desc *f, const void *row);
void memop_field_set_null(const memo_field_desc *f, void *row, bool null);
/* Copies a row, deep: strings are duplicated. */
memo_status memop_row_copy(const memo_entity_desc *, const void *src, void *dst);
bool memop_row_equal(const memo_entity_desc *, const void *a, const void *b);

/* ---------------------------------------------------------------- redis */

/* A Redis Cluster has 16384 slots; memo keeps at most MEMOP_NODES_MAX nodes
 * (the masters and any node a MOVED named): a map from Redis is untrusted. */
#define MEMOP_SLOTS 16384
#define MEMOP_NODES_MAX 64

typedef struct memop_rconn {
    memo_repo *repo;
    redisContext *ctx;               /* one Redis: the connection; a cluster: NULL */
    uint64_t epoch;                  /* the breaker epoch it was made in */
    memop_buf out;                   /* commands waiting to be written */
    struct memop_arena *first, *cur; /* where replies live until release */
    size_t budget; /* bytes the next exchange may read; 0: by its reply count */
    bool oversize; /* the last exchange stopped at its budget */
    bool dead;     /* a transport failure: it goes at release */
    /* a cluster (cluster.c): a connection per node, made when a command
     * first goes there, and the commands appended since the last exchange
     * with the node each goes to */
    redisContext **nctx; /* MEMOP_NODES_MAX of them; NULL: one Redis */
    uint64_t *nepoch;    /* the node's epoch each was made in */
    int probing;         /* the prober's: this node answers though down */
    struct memop_route *routes;
    size_t nroutes, routecap, nlogical;
    uint32_t *keypos; /* a split command's keys: where each was in the caller's */
    size_t nkeypos, keyposcap;
    memop_buf scratch; /* one node's share of the commands, being written */
    int pin;           /* keyless commands go to this node; -1: any master */
} memop_rconn;

/* Formats one command into the connection's output buffer (on a cluster,
 * routed by its keys: cluster.c). */
void memop_redis_append(memop_rconn *, int argc, const char *const *argv,
                        const size_t *lens);
/* The RESP of one command, appended to b. */
void memop_resp_append(memop_buf *b, int argc, const char *const *argv,
                       const size_t *lens);
/* The connection failed (a transport failure or an oversized reply). */
bool memop_rconn_broken(const memop_rconn *);
/* Memory that lives as long as the connection's replies. */
void *memop_rconn_alloc(memop_rconn *, size_t n);
/* Writes len bytes; -1 with ctx->err set. Reads one reply, at most *budget
 * bytes of it: 1, 0 over the budget, -1 on a failure (ctx->err set). */
int memop_ctx_write(redisContext *ctx, const char *s, size_t len);
int memop_ctx_read(redisContext *ctx, size_t *budget, void **reply);
/* A transport failure on ctx (of c, a node named `name`): recorded for
 * memo_last_error, the connection marked dead, the breaker opened. */
void memop_redis_transport_failed(memo_repo *, memop_rconn *c, redisContext *ctx,
                                  const char *name, const char *what);
/* A reply over its budget: recorded, the connection marked dead, no outage. */
void memop_redis_oversize(memo_repo *, memop_rconn *c, redisContext *ctx,
                          const char *name, const char *what);
/* Writes what was appended and reads n replies into replies[] (valid until
 * the connection is released). 0, or -1 after recording the failure; then
 * the connection is broken. `what` names the command for the message.
 * It reads at most c->budget bytes (else memop_redis_reply_budget(n)):
 * past that it sets c->oversize and fails without opening the breaker. */
int memop_redis_exchange(memo_repo *, memop_rconn *, size_t n, redisReply **replies,
                         const char *what);
/* The bytes replies carrying `values` values of at most max_value_bytes may
 * take. */
size_t memop_redis_reply_budget(memo_repo *, size_t values);

/* What an error reply means. Only an outage opens the breaker; the others
 * refuse one command and leave the cache working for the rest. */
enum memop_redis_error {
    MEMOP_REDIS_OUTAGE,    /* no reply, LOADING, BUSY, READONLY, OOM...: cannot serve */
    MEMOP_REDIS_WRONGTYPE, /* a key holds another type: a corrupt entry */
    MEMOP_REDIS_NOPERM,    /* the ACL user may not run the command or touch the key */
    MEMOP_REDIS_REFUSED    /* any other error reply */
};
enum memop_redis_error memop_redis_error_kind(const redisReply *);
/* An error reply's text on one line, for a message. */
void memop_redis_error_text(const redisReply *r, char *out, size_t size);
/* A failed command: records "Redis host: what: reply" for memo_last_error,
 * opens the breaker for an outage, and says which kind it was. r NULL is a
 * transport failure (already recorded). */
enum memop_redis_error memop_redis_reply_failed(memo_repo *, const redisReply *r,
                                                const char *what);
void memop_rconn_use_arena(memop_rconn *, redisContext *ctx);
void memop_rconn_free_arena(memop_rconn *);
/* Replies of the last user are done with: the arena starts over. */
void memop_rconn_reset_arena(memop_rconn *);
/* After a large reply: gives memory back (false when it cannot, then the
 * connection must go). */
bool memop_rconn_trim(memop_rconn *);
/* Why a context failed, in words ("timed out" for hiredis 0.14's EAGAIN). */
void memop_redis_context_error(const redisContext *ctx, char *out, size_t size);
/* A new connection: AUTH, SELECT and SCRIPT LOAD done (on a cluster, a
 * router whose nodes connect when first used). NULL with a message in err,
 * and *refused when Redis answered but said no (a wrong password, a missing
 * permission). */
memop_rconn *memop_rconn_new(memo_repo *, char *err, size_t errsize, bool *refused);
/* One node's connection, AUTH, SELECT and SCRIPT LOAD done (path: a unix
 * socket); `name` is for messages. */
redisContext *memop_redis_connect(memo_repo *, const char *host, int port,
                                  const char *path, const char *name, char *err,
                                  size_t errsize, bool *refused);

/* ------------------------------------------------------------- cluster.c */

typedef struct memop_rnode {
    char *host;
    int port;
    char name[300]; /* host:port, for messages */
    /* unreachable: its commands fail at once (the other nodes' go on), and
     * the prober brings it back; each time it goes down, epoch moves and
     * the connections made to it before are dropped */
    _Atomic bool down;
    _Atomic uint64_t epoch;
    /* it took over the slots of a node that was down (a failover): a DEL
     * the old master acknowledged may never have reached it, so its keys
     * are dropped before it is used */
    _Atomic bool needs_flush;
    struct memop_rnode *retired; /* replaced nodes, freed at close */
} memop_rnode;

/* What memo knows of a Redis Cluster. nodes[] is written under lock (a new
 * one published by nnodes); slot[] is read without a lock: a slot read while a
 * refresh rewrites the map may be the old owner's, which answers MOVED. */
typedef struct memop_cluster {
    _Atomic bool on; /* set before any connection is made for the pool */
    pthread_mutex_t lock;
    /* an index no slot names may be given to a new node when the table is
     * full (the old one goes to retired, and epochs never repeat) */
    _Atomic(memop_rnode *) nodes[MEMOP_NODES_MAX];
    _Atomic unsigned nnodes;
    _Atomic uint64_t epochs;
    memop_rnode *retired;
    _Atomic unsigned char slot[MEMOP_SLOTS]; /* the node serving it; 0xff: none */
    _Atomic bool stale;                      /* a MOVED came: the prober refreshes */
    _Atomic unsigned ndown;                  /* nodes down */
    _Atomic uint64_t moved, asked, tryagain, refreshes, failovers;
    /* keys of each slot waiting in the invalidation queue: reads of a slot
     * with some bypass the cache (only those of the entities queued) */
    _Atomic uint32_t queued[MEMOP_SLOTS];
} memop_cluster;

#define MEMOP_NO_NODE 0xff

/* Routes one command (node -1: by its keys; MGET, DEL, UNLINK and EXISTS are
 * split by slot) into the connection's output. */
void memop_cluster_append(memop_rconn *, int node, int argc, const char *const *argv,
                          const size_t *lens);
/* Writes every node's commands, then reads; follows MOVED and ASK, retries
 * TRYAGAIN within the command time-out; joins split replies. As
 * memop_redis_exchange. */
int memop_cluster_exchange(memo_repo *, memop_rconn *, size_t n, redisReply **replies,
                           const char *what);
void memop_cluster_conn_free(memop_rconn *);
bool memop_cluster_trim(memop_rconn *);
/* Keyless commands of c go to this node (-1: any master). */
void memop_rconn_pin(memop_rconn *, int node);
/* The nodes that serve slots, into out (at most MEMOP_NODES_MAX); on one
 * Redis, one: -1. */
size_t memop_redis_masters(memo_repo *, int *out);
/* A node could not be reached: its commands fail at once until the prober
 * brings it back. */
void memop_cluster_node_down(memo_repo *, unsigned node, const char *why);
/* The prober's work while nodes are down: the map read again, each down
 * node that serves slots pinged, emptied of memo's keys after a failover,
 * and brought back. */
void memop_cluster_recover(memo_repo *);
/* The error reply a command for a node that is down gets ("MEMODOWN ..."):
 * an outage of that node's keys, not of the repository. */
bool memop_redis_node_down_reply(const redisReply *);
/* Reads of key may use the cache: no invalidation of it waits in the
 * queue, no drop of its entity is under way (the key's slot on a cluster,
 * the entity on one Redis). */
bool memop_key_bypassed(memo_repo *, memop_entity *e, const memop_key *k);
/* Reads the slot map from a node that answers (CLUSTER SLOTS): the known
 * masters first, then the URL's nodes. MEMO_ERR_CONFIG when a node refused
 * (a permission), MEMO_ERR_REDIS when none answered or slots are unserved. */
memo_status memop_cluster_refresh(memo_repo *, char *err, size_t size);
/* Node index for host:port, added if new; -1 when the table is full. */
int memop_cluster_node(memo_repo *, const char *host, size_t hostlen, int port);
void memop_cluster_init(memo_repo *);
void memop_cluster_destroy(memo_repo *);
void memop_rconn_free(memop_rconn *);

/* Takes a Redis connection from the pool, connecting if needed. NULL (with a
 * message recorded) when Redis is unavailable, the breaker is open, or no
 * connection came free within pool_wait_ms. */
memop_rconn *memop_redis_acquire(memo_repo *);
/* Returns it; `broken` drops it (a hiredis context that failed is dead). */
void memop_redis_release(memo_repo *, memop_rconn *, bool broken);

/* Deletes n keys in one round trip: DELs of at most 1000 keys, pipelined.
 * 0 when Redis took them all; -1 after recording the failure, *broken set
 * when the connection is lost with it (an outage, not a refusal). */
int memop_redis_del(memo_repo *, memop_rconn *, const memop_key *keys, size_t n,
                    const char *what, bool *broken);

/* Runs one command (argv form) and returns its reply, or NULL after recording
 * the failure; then the connection is broken. */
redisReply *memop_redis_command(memo_repo *, memop_rconn *, int argc, const char **argv,
                                const size_t *lens);

enum memop_script {
    MEMOP_SCRIPT_LEASE,   /* value; 1 lease taken, 0 held by another, 2 too large */
    MEMOP_SCRIPT_FILL,    /* set the value while the lease is ours */
    MEMOP_SCRIPT_RELEASE, /* drop a lease or lock if it is still ours */
    MEMOP_SCRIPT_GET_BY,  /* a unique lookup and its row in one trip */
    MEMOP_SCRIPT_EXTEND,  /* pexpire a lease or lock while its token is ours */
    MEMOP_SCRIPT_COUNT
};

/* The text of a script (for SCRIPT LOAD and EVAL). */
const char *memop_script_text(enum memop_script);
/* Appends EVALSHA (or EVAL when sha is false) of a script with at most 13
 * arguments to the connection's output. */
void memop_redis_append_script(memo_repo *, memop_rconn *, enum memop_script, bool sha,
                               int nkeys, int argc, const char *const *argv,
                               const size_t *lens);
/* Runs a script by EVALSHA, loading it again when Redis lost it. */
redisReply *memop_redis_script(memo_repo *, memop_rconn *, enum memop_script, int nkeys,
                               int argc, const char **argv, const size_t *lens);

/* Drops every key of an entity (SCAN + UNLINK). Keys removed, -1 on failure. */
long memop_redis_flush_entity(memo_repo *, memop_rconn *, const memo_entity_desc *);
/* The same on one node of a cluster. */
long memop_redis_flush_entity_on(memo_repo *, memop_rconn *, const memo_entity_desc *,
                                 int node);

/* Sets the key and the process description statistics are published under. */
void memop_stats_identity(memo_repo *);
/* Publishes this process's statistics to Redis now (if the breaker is closed). */
void memop_stats_publish(memo_repo *);

/* Sends what an outage or a refusal kept back (pending.c): the drops of
 * entities, then the queued keys; closes the breaker when all went out. */
bool memop_pending_flush(memo_repo *, memop_rconn *);
/* A cluster node coming back: its queued keys sent over c (which may use
 * it), then, under the queue's lock, the node marked up. */
bool memop_pending_flush_node(memo_repo *, memop_rconn *c, int node);
/* Something the prober can send now: an entity drop, or a queued key of a
 * node that is up. */
bool memop_pending_sendable(memo_repo *);
void memop_cluster_node_up(memo_repo *, int node);
/* The prober (breaker.c): wakes it (work for it, or the breaker opened). */
void memop_prober_wake(memo_repo *);
bool memop_prober_start(memo_repo *);
void memop_prober_stop(memo_repo *);

/* How often the prober tries Redis while the breaker is open. */
#define MEMOP_PROBE_INTERVAL_MS 100
/* `near N`, at most (memoc says so too) */
#define MEMOP_NEAR_ENTRIES_MAX 16000000u
/* memo_config.near_max_bytes, at most (1 TiB) */
#define MEMOP_NEAR_MAX_BYTES_MAX (1ull << 40)

/* One script call of a pipeline. */
typedef struct memop_script_call {
    const char *argv[8];
    size_t lens[8];
    int argc;
    redisReply *reply; /* set by memop_redis_script_many; the caller frees it */
} memop_script_call;

/* Runs n calls of one script in one pipeline. 0 when every reply arrived
 * (each may still be an error reply), -1 when the connection failed. */
int memop_redis_script_many(memo_repo *, memop_rconn *, enum memop_script, int nkeys,
                            memop_script_call *calls, size_t n);

/* Sends every key in one DEL; on failure (an outage, or a refusal) queues
 * them for the prober, which sends them when Redis takes them. */
void memop_redis_invalidate(memo_repo *, memop_entity *const *owners,
                            const memop_key *keys, size_t n);

/* ------------------------------------------------------------------- db */

typedef struct memop_dconn memop_dconn;

memo_status memop_db_acquire(memo_repo *, memop_dconn **out);
void memop_db_release(memo_repo *, memop_dconn *, bool broken);
/* The libpq connection of a pooled one, for a statement of its own. */
PGconn *memop_dconn_pg(memop_dconn *);

/* Runs prepared statement `stmt` of entity e (preparing it on first use on
 * this connection) with text or binary parameters, binary results. On
 * failure records a message and returns a status: MEMO_CONFLICT for a unique
 * violation, MEMO_ERR_CONSTRAINT, MEMO_ERR_ARG for data the server refused,
 * MEMO_ERR_DB_CONN when the connection is lost (then *broken is set). */
memo_status memop_db_exec(memo_repo *, memop_dconn *, memop_entity *e, unsigned stmt,
                          int nparams, const char *const *values, const int *lengths,
                          const int *formats, PGresult **out, bool *broken);

/* The table of e does not have the entity's shape: records a message that
 * says what differs (missing columns, other types, no table) and what to
 * run, looked up on c when given (an idle connection), else on a free one.
 * Returns MEMO_ERR_SCHEMA. */
memo_status memop_schema_mismatch(memo_repo *, memop_entity *e, memop_dconn *c);
/* The SQL type of a memo type, as information_schema names it. */
const char *memop_sql_type(memo_type);

/* Runs a statement without parameters or results (BEGIN, COMMIT). */
memo_status memop_db_simple(memo_repo *, memop_dconn *, const char *sql, bool *broken);

/* Parameters of a row's fields, in binary form where it is cheaper. */
typedef struct memop_params {
    const char *values[MEMO_MAX_FIELDS + 1];
    int lengths[MEMO_MAX_FIELDS + 1];
    int formats[MEMO_MAX_FIELDS + 1];
    char scratch[MEMO_MAX_FIELDS + 1][8];
    int n;
} memop_params;

/* Runs a statement of e: on the transaction's connection when tx is given
 * (a failure marks the transaction failed), else on a pooled one. Counts
 * failures of the system (not refused data) under errors. */
memo_status memop_db_run(memo_repo *, memo_tx *tx, memop_entity *e, unsigned stmt,
                         const memop_params *ps, PGresult **res);

/* Appends field f of row as the next parameter (NULL for SQL NULL). */
void memop_param_field(memop_params *, const memo_field_desc *f, const void *row);
/* Appends an SQL NULL, or an int64. */
void memop_param_null(memop_params *);
void memop_param_int64(memop_params *, int64_t v);
/* Appends a key value (pointer to the field's C type). */
void memop_param_key(memop_params *, const memo_field_desc *f, const void *key);
/* Reads fields which[0..n) (NULL: every field) from columns first.. of
 * result row r into a zeroed row. */
memo_status memop_result_fields(const memo_entity_desc *, const unsigned *which,
                                unsigned n, const PGresult *, int r, int first,
                                void *row);
/* Decodes one value in PostgreSQL's binary form (NULL v: SQL NULL) into
 * field f of row; jsonb: the value is jsonb_send's (a version byte first).
 * MEMO_ERR_SCHEMA when it is not of the field's type (or NULL where the
 * field may not be). */
memo_status memop_value_decode(const memo_field_desc *f, const char *v, int len,
                               bool jsonb, void *row);
/* Reads columns [first, first + nfields) of result row `r` into a zeroed row. */
memo_status memop_result_row(const memo_entity_desc *, const PGresult *, int r, int first,
                             void *row);

/* ---------------------------------------------------------- invalidation */

/* The keys a write deletes (a lease lives in its value key, so deleting
 * the key breaks it too). */
typedef struct memop_inval {
    memop_key *keys;
    memop_entity **owners;
    size_t n, cap;
    size_t change; /* where the current change's keys begin */
    bool failed;   /* some keys could not be collected */
    unsigned char drop[MEMOP_MAX_ENTITIES / 8]; /* entities to drop whole, by index */
} memop_inval;

void memop_inval_free(memop_inval *);
/* Adds to v every key a change of e's row from `old` to `new` (either NULL
 * for an insert or a delete) makes wrong, for an event MEMO_ON_*: the row;
 * the unique lookups of the old and new values, when they differ; the lists of the old
 * and new values (those whose group or order changed); the targets of the entity's rules
 * for the event. Pure: no I/O. When keys could not be added (out of memory), sets
 * v->failed and marks e and its rules' targets to be dropped whole. */
void memop_inval_collect(memo_repo *, memop_entity *e, unsigned event, const void *old,
                         const void *new, memop_inval *v);
/* A change of e whose keys are not known (its rows could not be read):
 * marks e and every target of its rules to be dropped whole. */
void memop_inval_unknown(memop_entity *e, memop_inval *v);
/* Sends the keys in one DEL (or queues them), counts the value keys, and
 * drops the marked entities. */
void memop_inval_send(memo_repo *, memop_inval *);

/* ------------------------------------------------------------ transactions */

struct memo_tx {
    memo_repo *repo;
    memop_dconn *conn; /* held from BEGIN to COMMIT or ROLLBACK */
    bool failed;       /* a statement failed: PostgreSQL aborted the transaction */
    bool broken;       /* the connection is lost */
    memop_inval inval; /* sent once, after COMMIT */
};

/* ------------------------------------------------------------------ leases */

/* Leases a filler holds while its query runs (lease.c). The hold lives on
 * the filler's stack, in the keeper's list from start to end. */
typedef struct memop_lease_hold {
    struct memop_lease_hold *next, *prev;
    const memop_key *keys; /* value keys holding this filler's leases */
    const char *const *tokens;
    size_t n;
    uint64_t id;
    uint64_t since_us; /* taken or last extended */
} memop_lease_hold;

typedef struct memop_lease_keeper {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    memop_lease_hold *holds;
    uint64_t next_id;
    uint64_t extended; /* extensions sent, for the statistics */
    bool idle, closing, initialised, started;
    pthread_t thread;
} memop_lease_keeper;

/* Keeps the leases in keys[0..n) alive until hold_end (tokens[i]: the
 * lease value this filler set at keys[i]). */
void memop_lease_hold_start(memo_repo *, memop_lease_hold *, const memop_key *keys,
                            const char *const *tokens, size_t n);
void memop_lease_hold_end(memo_repo *, memop_lease_hold *);
memo_status memop_lease_keeper_start(memo_repo *);
void memop_lease_keeper_stop(memo_repo *);

/* ----------------------------------------------------------- single flight */

/* Threads of one process that miss the same key share one load: the first
 * leads, the others wait for its value. */
typedef struct memop_flight {
    struct memop_flight *next;
    int refs;
    bool done;
    bool shareable; /* the result may be used by the waiters */
    memop_buf value;
    pthread_cond_t cond;
    size_t keylen;
    char key[];
} memop_flight;

#define MEMOP_FLIGHT_BUCKETS 64

/* What memo watch has done, for the statistics (watch.c fills it, stats.c
 * writes it). Allocated by the first memo_watch_open of a repository. */
#define MEMOP_WATCH_COUNTERS(X)                                                          \
    X(changes, "Row changes read from the change stream")                                \
    X(transactions, "Committed transactions read from the change stream")                \
    X(keys_deleted, "Keys the change stream deleted (each change's, once)")              \
    X(truncates, "TRUNCATEs read from the change stream")                                \
    X(drops, "Changes whose keys could not be known: their entities were dropped whole") \
    X(entity_drops, "Wholesale drops of an entity's entries by the change stream")       \
    X(mismatches, "Tables found not to match their entity")                              \
    X(reconnects, "Reconnections of the change stream")

typedef struct memop_watch_stats {
#define MEMOP_WATCH_FIELD(name, help) _Atomic uint64_t name;
    MEMOP_WATCH_COUNTERS(MEMOP_WATCH_FIELD)
#undef MEMOP_WATCH_FIELD
    _Atomic uint64_t confirmed_lsn, lag_bytes;
    memop_hist lag; /* commit to DEL acknowledged, microseconds */
    pthread_mutex_t lock;
    char state[32]; /* "streaming", "standby", "waiting for Redis", ... */
} memop_watch_stats;

/* The watch's statistics: one process's, or (the memo tool) a sum over
 * `watchers` processes of which `streaming` stream; the JSON is an object,
 * the state included when there is one watcher. */
void memop_watch_write_json(memop_buf *, const memop_watch_stats *, bool raw);
void memop_watch_write_prometheus(memop_buf *, const memop_watch_stats *,
                                  unsigned watchers, unsigned streaming);

/* --------------------------------------------------------------- the repo */

typedef struct memop_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void **free; /* idle connections */
    size_t nfree;
    size_t live; /* connections that exist, idle or in use */
    size_t cap;
} memop_pool;

enum { MEMOP_BREAKER_CLOSED, MEMOP_BREAKER_OPEN };

/* Invalidations that could not be sent, for when Redis is back. */
typedef struct memop_pending {
    pthread_mutex_t lock;
    char **keys;
    memop_entity **owners;
    size_t n, cap;
    _Atomic bool any;
} memop_pending;

#define MEMOP_PENDING_MAX 10000

/* ------------------------------------------------------------ near cache */

/* near.c: rows kept in the process, dropped when Redis says they changed. */
typedef struct memop_near_ticket {
    uint64_t hash;       /* the key's */
    uint64_t epoch, seq; /* its shard's and its slot's sequences when the read began */
    bool valid;          /* false: the near cache was not live, nothing to put */
} memop_near_ticket;

/* The subscriber thread and its connection (one per repository). */
typedef struct memop_near_sub {
    pthread_t thread;
    _Atomic bool started, stop;
    _Atomic unsigned want; /* near entities registered: reconnect when it moves */
    int wake[2];           /* a pipe that wakes the thread */
    _Atomic bool up;       /* subscribed, tracking on */
    _Atomic uint64_t connects;
    pthread_mutex_t lock; /* of why; lives as long as the repository */
    char why[256];        /* why the last connection went or could not be made */
} memop_near_sub;

memo_status memop_near_new(memo_repo *, memop_entity *e);
void memop_near_free(memop_entity *e);
/* A hit: the row in out and MEMO_OK in *st, or MEMO_NOT_FOUND; true. A
 * miss (or no memory for the copy): false, and *t says what memop_near_put
 * needs. */
bool memop_near_get(memop_entity *e, const memop_key *k, void *out, memo_status *st,
                    memop_near_ticket *t);
/* Keeps what Redis answered for k (row NULL: no such row), unless an
 * invalidation or flush came since the ticket was taken. */
void memop_near_put(memop_entity *e, const memop_key *k, const void *row,
                    const memop_near_ticket *t);
/* A write of this process: the key's entry goes, in-flight inserts too. */
void memop_near_drop(memop_entity *e, const memop_key *k);
/* Every entry of e goes (a drop of the entity, memo_flush). */
void memop_near_clear(memop_entity *e);
/* Coherence is not assured (the breaker opened): every near cache empties
 * and stays empty until the subscriber is back. */
void memop_near_lost(memo_repo *);
/* Starts the subscriber thread, once (before new near entities are
 * published); memop_near_track then has it track them (after). */
memo_status memop_near_start(memo_repo *);
void memop_near_track(memo_repo *);
/* The subscriber's state for the statistics: false when there is none. */
bool memop_near_state(memo_repo *, bool *up, uint64_t *connects, char *why, size_t size);
void memop_near_wake(memo_repo *);
void memop_near_stop(memo_repo *);

struct memo_repo {
    /* configuration, with defaults applied and strings owned */
    memo_config cfg;
    char *redis_url, *database_url, *key_prefix;
    size_t key_prefix_len;
    memop_redis_target redis;
    char redis_name[160];

    memop_pool rpool, dpool;
    char script_sha[MEMOP_SCRIPT_COUNT][41];
    memop_cluster cluster; /* a Redis Cluster's map (cluster.on) */

    /* breaker: while open, Redis calls fail at once; the prober closes it */
    _Atomic int breaker;
    _Atomic uint64_t breaker_epoch; /* connections older than this are dropped */
    memop_pending pending;

    /* entities by descriptor: an open-addressing table, filled under lock,
     * read without one */
    pthread_mutex_t entities_lock;
    _Atomic(memop_entity *) entity_slots[MEMOP_MAX_ENTITIES * 2];
    memop_entity *entity_list[MEMOP_MAX_ENTITIES];
    _Atomic unsigned nentities;

    pthread_key_t err_key; /* this thread's memop_err_buf */
    pthread_mutex_t errs_lock;
    memop_err_buf *errs; /* every thread's, for memo_close */

    /* the background thread: probes Redis while the breaker is open */
    pthread_t prober;
    bool prober_started;
    pthread_mutex_t prober_lock;
    pthread_cond_t prober_cond;
    bool closing;

    bool redis_opened, db_opened; /* what memo_close must undo */
    /* memo_open's checks of the Redis it talks to (not a cluster node, every
     * command permitted) ran; else, after a degraded open, the prober runs
     * them before it closes the breaker, and keeps why they failed */
    _Atomic bool redis_checked;
    char redis_refused[256]; /* under prober_lock */
    /* statistics published for `memo stats`: a key per process, with an
     * expiry, so the processes that stop publishing age out */
    bool publish;
    memop_key stats_key;
    char process_json[256];
    pthread_mutex_t flights_lock;
    memop_flight *flights[MEMOP_FLIGHT_BUCKETS];
    _Atomic uint64_t write_seq; /* committed writes of this process */
    /* statements go unnamed: MEMO_DB_UNNAMED, or a statement prepared on a
     * connection was lost at once, twice (a transaction-mode pooler) */
    _Atomic bool db_unnamed;
    _Atomic bool db_checked; /* the first connection told direct or pooler */
    /* Until then reads ask with the LEASE script, not SET NX GET: Redis
     * refused a write (fill.c) */
    _Atomic uint64_t native_off_until;
    _Atomic int open_txs; /* transactions holding a database connection */

    memop_lease_keeper keeper;
    memop_near_sub near;
    _Atomic(memop_watch_stats *) watch; /* NULL until a memo_watch_open */

    uint64_t token_prefix; /* random, so lease tokens differ across processes */
    _Atomic uint64_t token_counter;
};

/* ------------------------------------------------------------ the read engine */

/* fill.c: one key through the cache. */
enum memop_outcome {
    MEMOP_HIT,     /* value holds what Redis had */
    MEMOP_NEG_HIT, /* Redis remembered that there is nothing */
    MEMOP_LOADED,  /* the loader ran: its context holds the result */
    MEMOP_FAILED   /* the loader failed; the status says how */
};

/* Loads from PostgreSQL. Writes the value to cache into `value` (the
 * literal null when there is no row) and its TTL into *ttl_ms. */
typedef memo_status (*memop_loader_fn)(memo_repo *, memop_entity *, void *ctx,
                                       memop_buf *value, uint64_t *ttl_ms);

typedef struct memop_read {
    memo_repo *repo;
    memop_entity *e;
    const memop_key *key;
    memop_loader_fn load;
    void *ctx;
    memop_buf value;
    memo_status st;
    bool degraded;
    bool missed;        /* counted as a miss: the caller's latency is a miss's */
    bool filled;        /* this call's fill was accepted */
    bool healed;        /* a corrupt value at the key was deleted once already */
    bool from_redis;    /* MEMOP_HIT/NEG_HIT: Redis's own reply (not a flight's) */
    uint64_t drop_gen;  /* the entity's drop generation when the read began */
    char storage[1024]; /* where value starts: a typical row needs no malloc */
} memop_read;

/* Sets up a read; value starts in the context's own storage. */
#define MEMOP_READ(name, repo_, e_, key_, load_, ctx_)                                   \
    memop_read name = {.repo = (repo_),                                                  \
                       .e = (e_),                                                        \
                       .key = (key_),                                                    \
                       .load = (load_),                                                  \
                       .ctx = (ctx_),                                                    \
                       .st = MEMO_OK};                                                   \
    name.value = MEMOP_BUF_IN(name.storage)

void memop_read_free(memop_read *);
/* The value is the literal null: a remembered missing row. */
bool memop_is_null_value(const char *s, size_t n);
/* One key through the cache; on MEMOP_HIT the value is in r->value. */
enum memop_outcome memop_cached_read(memop_read *r);
/* Deletes keys[0..n) holding corrupt values (on c if given: a caller that
 * holds a connection must never ask the pool for a second), counts them and
 * records why. */
void memop_discard(memo_repo *, memop_entity *, memop_rconn *c, const memop_key *keys,
                   size_t n, const char *why);
/* Gives a lease back (the loader failed): the next reader need not wait. */
void memop_release_lease(memo_repo *, const memop_key *key, const char *lease);
/* After an accepted fill: if a drop of the entity began since `gen`, delete
 * the keys filled. */
void memop_undo_fill_if_dropped(memo_repo *, memop_entity *, memop_rconn *c, uint64_t gen,
                                const memop_key *keys, size_t n);
/* Counts an operation and its latency (a hit's or a miss's). */
void memop_record(memop_entity *, enum memop_op, uint64_t t0, bool hit);

/* flight.c: single flight within the process. */
memop_flight *memop_flight_lead(memo_repo *, const memop_key *);
/* Ends the leader's flight: waiters get value if shareable and no write of
 * this process counted write_seq past seq (the leader's, from before its
 * query), compared under the lock waiters join by. */
void memop_flight_finish(memo_repo *, memop_flight *, const memop_buf *value,
                         bool shareable, uint64_t seq);
bool memop_flight_wait(memo_repo *, const memop_key *, uint64_t deadline, memop_buf *out);

/* get.c */
memo_status memop_check_key(memo_repo *, const memo_field_desc *f, const void *key);
/* Field f of a row holds the key value (a NULL never does). */
bool memop_row_has(const memo_field_desc *f, const void *row, const void *key);
/* Appends a key value as its fields' parameters. */
void memop_param_pk(memop_params *, const memo_entity_desc *, const void *key);
/* Runs a statement whose parameters are a key value. */
memo_status memop_query_pk(memo_repo *, memo_tx *, memop_entity *, unsigned stmt,
                           const void *key, PGresult **res);
/* Runs a statement with one key parameter. */
memo_status memop_query_one_key(memo_repo *, memo_tx *, memop_entity *, unsigned stmt,
                                const memo_field_desc *f, const void *key,
                                PGresult **res);
memo_status memop_tx_entity(memo_tx *, const memo_entity_desc *, const void *arg,
                            memop_entity **e);

/* batch.c: rows by primary key, through the cache (or, in a transaction,
 * the database); found rows only, in the order asked. near: the near cache
 * too (get_many; not a list's rows, which must be no older than the list
 * that names them: a near copy may be, for the invalidation delay). */
memo_status memop_many(memo_repo *, memop_entity *, const void *keys, size_t n,
                       memo_rows *out, bool *all_hit, bool near);
memo_status memop_tx_many(memo_tx *, memop_entity *, const void *keys, size_t n,
                          memo_rows *out);
/* Empties out and finds d's entity; `more` is touched only once d's ABI is
 * known to be this library's (an older caller's rows lack it). */
memo_status memop_rows_start(memo_repo *, const memo_entity_desc *, memo_rows *out,
                             memop_entity **e);

/* util.c: TTLs and tokens. */
uint64_t memop_row_ttl(memo_repo *, const memo_lookup_desc *);
uint64_t memop_negative_ttl(memo_repo *, const memo_lookup_desc *);
/* A lease or lock token, unique across processes. */
void memop_make_token(memo_repo *, char *out, size_t size);
/* v in decimal, NUL-terminated, into out (21 bytes hold any int64_t): its
 * length. snprintf's cost shows on the batch path, once per key. */
size_t memop_i64_text(int64_t v, char out[21]);

/* ------------------------------------------------------- the change stream */

/* pgoutput.c: logical replication messages, parsed in place (pointers into
 * the message, valid while it is). */
typedef struct memop_pgcol {
    char kind; /* 'n' null, 'u' an unchanged TOASTed value, 't' text, 'b' binary */
    const char *data;
    int len;
} memop_pgcol;

typedef struct memop_pgrelcol {
    const char *name;
    uint32_t type; /* the type's OID */
    bool key;      /* part of the replica identity */
} memop_pgrelcol;

typedef struct memop_pgmsg {
    char type;            /* 'B' 'C' 'R' 'I' 'U' 'D' 'T' 'O' 'Y' */
    uint64_t lsn;         /* B: final, C: commit LSN */
    uint64_t end_lsn;     /* C */
    int64_t ts;           /* B, C: commit time, microseconds since 2000 */
    uint32_t xid;         /* B */
    uint32_t relid;       /* R, I, U, D */
    const char *nspname;  /* R */
    const char *relname;  /* R */
    char replident;       /* R: 'd' default, 'f' full, 'i' index, 'n' nothing */
    int ncols;            /* R */
    memop_pgrelcol *cols; /* R */
    char old_kind;        /* U, D: 'K' key columns only, 'O' the whole old row; 0 none */
    int nold, nnew;
    memop_pgcol *old, *new;
    int nrels;          /* T */
    const char *relids; /* T: nrels big-endian OIDs */
} memop_pgmsg;

/* The arrays parsed columns live in, reused from message to message. */
typedef struct memop_pgparser {
    memop_pgcol *old, *new;
    memop_pgrelcol *rel;
    size_t cap;
} memop_pgparser;

/* Parses one message; false when it is not one of protocol 1 (or is cut,
 * or has bytes left over). */
bool memop_pgoutput_parse(memop_pgparser *, const char *data, size_t len,
                          memop_pgmsg *out);
/* The i-th relation of a Truncate. */
uint32_t memop_pgoutput_relid(const memop_pgmsg *, int i);
void memop_pgparser_free(memop_pgparser *);

/* Allocates repo->watch, once (memo_watch_open); freed by memo_close. */
memo_status memop_watch_stats_init(memo_repo *);
void memop_watch_stats_free(memo_repo *);

/* Opens and closes the Redis side: pool, scripts, breaker, prober. */
memo_status memop_redis_open(memo_repo *, memo_error *err);
/* memo_open's first connection: the URL's nodes tried in turn, one Redis
 * or a cluster told apart (HELLO; a cluster's map read), and every
 * permission checked. MEMO_ERR_CONFIG with why in err when memo cannot use
 * it (a refused login or command, several nodes that are no cluster),
 * MEMO_ERR_REDIS when no node answered. */
memo_status memop_redis_first(memo_repo *, memop_rconn **out, char *err, size_t size);
void memop_redis_close(memo_repo *);
/* Records a Redis failure: opens the breaker and wakes the prober. */
void memop_redis_trip(memo_repo *);
memo_status memop_db_open(memo_repo *, memo_error *err);
void memop_db_close(memo_repo *);

void memop_pool_init(memop_pool *, size_t cap);
void memop_pool_destroy(memop_pool *);
/* Takes an idle connection into *conn; or, leaving it NULL, a slot for the
 * caller to make one in. Waits while every slot is in use, at most wait_ms:
 * false when the time ran out (then the caller holds nothing). */
bool memop_pool_take(memop_pool *, uint64_t wait_ms, void **conn);
/* A deadline of memop_now_us()'s clock as a timespec, for timed waits on
 * condition variables made with CLOCK_MONOTONIC. */
struct timespec;
void memop_deadline_ts(uint64_t deadline_us, struct timespec *ts);
/* Gives a connection back, or with NULL gives the slot up (the connection was
 * dropped or could not be made). */
void memop_pool_give(memop_pool *, void *conn);

#endif
