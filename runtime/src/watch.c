/* memo watch: invalidation from PostgreSQL's own change stream, so writes
 * made outside memo (psql, migrations, other services) never leave the
 * cache stale.
 *
 * A logical replication slot with the built-in pgoutput plugin streams
 * every committed change to the schema's tables (the publication
 * memo_<schema>). Each relation maps to its entity by table name and its
 * columns to fields by name; old and new tuples are decoded into rows with
 * the descriptors, and the keys they make wrong come from the same pure
 * function the write path uses (invalidate.c). The keys of every committed
 * transaction go out as DELs; only after Redis acknowledged them is the
 * transaction's end LSN confirmed to PostgreSQL. So the stream is at least
 * once: killed at any moment, the next run resumes from the slot and
 * repeats what was not confirmed.
 *
 * pgoutput (protocol 1) sends a transaction only once it committed, so its
 * keys may go out before its end arrives: a transaction of a million rows
 * is sent a batch at a time, and confirmed at its end.
 *
 * When the keys cannot be known (a TRUNCATE, a table whose columns no
 * longer match its entity, an update whose old values PostgreSQL did not
 * log, no memory for them) every entry of the entity is dropped (SCAN +
 * UNLINK) before the LSN is confirmed.
 *
 * Over 500 lines: one state machine (connect, stand by, stream, send,
 * confirm), whose pieces share the stream's state. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "shared.h"

/* PostgreSQL's epoch, 2000-01-01, in Unix microseconds. */
#define PG_EPOCH_US 946684800000000LL
/* Keys sent in one round trip, at most; a batch of transactions is sent
 * when the stream has nothing more to read at once, or at this size. */
#define BATCH_KEYS_MAX 20000
/* How long the stream may hold back a batch while more data arrives. */
#define BATCH_HOLD_US 10000
/* A busy stream (its last batch went out less than BUSY_US ago) is read
 * every BUSY_TICK_US, asleep in between rather than woken by each
 * transaction that arrives: the wake-ups and round trips are most of the
 * watch's cost, and this way a tick's transactions share them, for at most
 * a tick of lag. A quiet stream wakes when data arrives. */
#define BUSY_US 5000
#define BUSY_TICK_US 1000
/* Progress goes to PostgreSQL this soon after it is made (and at least
 * every status_interval_ms): what the slot retains, and what a reader of
 * pg_replication_slots sees, follows the invalidations closely. */
#define STATUS_SOON_US 10000

/* A relation of the stream, and how its columns map to the entity. */
typedef struct rel {
    uint32_t relid;
    memop_entity *e; /* NULL: a table of no entity (ignored) */
    int ncols;
    int *field;       /* column -> field index, -1 for a column of no field */
    bool *jsonb;      /* column is jsonb (its binary form has a version byte) */
    bool *ident;      /* column is in the replica identity (its old value is logged) */
    bool mismatch;    /* the columns do not carry the entity's keys */
    bool keys_logged; /* every key field is in the replica identity */
    char why[160];
} rel;

struct memo_watch {
    memo_repo *repo;
    const memo_schema_desc *schema;
    char slot[64], publication[64];
    int status_ms, retry_ms;
    void (*log)(void *arg, const char *message);
    void *log_arg;

    PGconn *conn;
    memop_pgparser parser;
    rel *rels;
    size_t nrels;

    bool in_tx; /* between a Begin and its Commit */

    /* keys of changes not yet sent to Redis, and entities to drop whole */
    memop_inval batch;
    uint64_t batch_end; /* the end LSN of the last transaction in it */
    int64_t *batch_ts;  /* commit times, for the lag */
    size_t nbatch, capbatch;
    uint64_t batch_since;  /* when its first transaction arrived */
    uint64_t last_sent_us; /* when the last batch went out */

    uint64_t confirmed; /* every change up to here is invalidated */
    uint64_t received;  /* the server's end of WAL, as last told */
    uint64_t next_status_us;

    /* catching up with the WAL written before this connection */
    uint64_t backlog_end; /* the server's WAL position when it connected */
    bool caught_up;
    uint64_t connected_us, next_progress_us, changes_before;

    _Atomic bool stop;
    int wake[2]; /* a byte here interrupts a wait: memo_watch_stop */
};

/* ------------------------------------------------------------------ helpers */

static void say(memo_watch *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(memo_watch *w, const char *fmt, ...)
{
    if (!w->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->log(w->log_arg, msg);
}

static void set_state(memo_watch *w, const char *state)
{
    memop_watch_stats *s = w->repo->watch;
    pthread_mutex_lock(&s->lock);
    snprintf(s->state, sizeof s->state, "%s", state);
    pthread_mutex_unlock(&s->lock);
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const char *s, int n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int64_t pg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - PG_EPOCH_US;
}

/* A PostgreSQL message, masked and on one line. */
static void pg_error(memo_watch *w, const char *what, char *out, size_t size)
{
    char msg[400];
    memop_pg_message(w->repo->database_url,
                     w->conn ? PQerrorMessage(w->conn) : "no connection", msg,
                     sizeof msg);
    snprintf(out, size, "%s: %s", what, msg);
}

/* Waits up to us microseconds for a stop, and for the stream's socket when
 * `stream`. */
static void wait_for(memo_watch *w, uint64_t us, bool stream)
{
    struct pollfd p[2] = {{w->wake[0], POLLIN, 0}, {-1, POLLIN, 0}};
    if (stream && w->conn)
        p[1].fd = PQsocket(w->conn);
    uint64_t ms = (us + 999) / 1000;
    if (poll(p, 2, ms > INT32_MAX ? INT32_MAX : (int)ms) > 0 && (p[0].revents & POLLIN)) {
        char b[16];
        while (read(w->wake[0], b, sizeof b) > 0)
            ;
    }
}

/* -------------------------------------------------------------- relations */

static const memo_entity_desc *entity_of(memo_watch *w, const char *table)
{
    for (unsigned i = 0; i < w->schema->nentities; i++)
        if (strcmp(w->schema->entities[i]->table, table) == 0)
            return w->schema->entities[i];
    return NULL;
}

static rel *rel_find(memo_watch *w, uint32_t relid)
{
    for (size_t i = 0; i < w->nrels; i++)
        if (w->rels[i].relid == relid)
            return &w->rels[i];
    return NULL;
}

static bool type_fits(memo_type t, uint32_t oid)
{
    switch (t) {
    case MEMO_INT32:
        return oid == 23;
    case MEMO_INT64:
        return oid == 20;
    case MEMO_FLOAT64:
        return oid == 701;
    case MEMO_BOOL:
        return oid == 16;
    case MEMO_TEXT:
        return oid == 25 || oid == 1043;
    case MEMO_TIMESTAMP:
        return oid == 1184;
    case MEMO_JSON:
        return oid == 3802;
    }
    return false;
}

static bool is_key_field(const memop_entity *e, unsigned f)
{
    for (unsigned k = 0; k < e->nkeyfields; k++)
        if (e->keyfields[k] == f)
            return true;
    return false;
}

/* A Relation message: the mapping of its columns, checked once. */
static memo_status relation(memo_watch *w, const memop_pgmsg *m)
{
    rel *r = rel_find(w, m->relid);
    if (!r) {
        rel *grown = realloc(w->rels, (w->nrels + 1) * sizeof *grown);
        if (!grown)
            return memop_fail(w->repo, MEMO_ERR_NOMEM, "out of memory");
        w->rels = grown;
        r = &w->rels[w->nrels++];
        memset(r, 0, sizeof *r);
        r->relid = m->relid;
    }
    free(r->field);
    free(r->jsonb);
    free(r->ident);
    r->field = calloc((size_t)m->ncols + 1, sizeof *r->field);
    r->jsonb = calloc((size_t)m->ncols + 1, sizeof *r->jsonb);
    r->ident = calloc((size_t)m->ncols + 1, sizeof *r->ident);
    if (!r->field || !r->jsonb || !r->ident)
        return memop_fail(w->repo, MEMO_ERR_NOMEM, "out of memory");
    r->ncols = m->ncols;
    r->e = NULL;
    r->mismatch = false;
    r->keys_logged = false;
    const memo_entity_desc *d = entity_of(w, m->relname);
    if (!d) { /* published, but of no entity: a table renamed, or added by hand */
        say(w,
            "table %s.%s is published in %s but is no entity of schema %s: its changes "
            "are ignored",
            m->nspname, m->relname, w->publication, w->schema->name);
        return MEMO_OK;
    }
    memo_status st = memop_entity_get(w->repo, d, &r->e);
    if (st != MEMO_OK)
        return st;
    bool have[MEMO_MAX_FIELDS] = {false}, logged[MEMO_MAX_FIELDS] = {false};
    for (int c = 0; c < m->ncols; c++) {
        r->field[c] = -1;
        r->jsonb[c] = m->cols[c].type == 3802;
        r->ident[c] = m->cols[c].key;
        for (unsigned f = 0; f < d->nfields; f++)
            if (strcmp(d->fields[f].name, m->cols[c].name) == 0) {
                /* only key fields are decoded: only their types matter */
                if (is_key_field(r->e, f) &&
                    !type_fits(d->fields[f].type, m->cols[c].type)) {
                    r->mismatch = true;
                    snprintf(r->why, sizeof r->why,
                             "column %s is of another type (OID %u)", m->cols[c].name,
                             m->cols[c].type);
                }
                r->field[c] = (int)f;
                have[f] = true;
                logged[f] = m->cols[c].key;
            }
    }
    r->keys_logged = true;
    for (unsigned k = 0; k < r->e->nkeyfields; k++)
        r->keys_logged &= logged[r->e->keyfields[k]];
    for (unsigned k = 0; k < r->e->nkeyfields && !r->mismatch; k++)
        if (!have[r->e->keyfields[k]]) {
            r->mismatch = true;
            snprintf(r->why, sizeof r->why, "column %s is missing",
                     d->fields[r->e->keyfields[k]].name);
        }
    if (r->mismatch) {
        /* said once per relation message, that is once per change of shape */
        say(w,
            "table %s no longer matches entity %s.%s (%s): its changes drop all of "
            "its cached entries",
            d->table, d->schema, d->name, r->why);
        MEMOP_INC(w->repo->watch->mismatches);
    }
    return MEMO_OK;
}

/* ----------------------------------------------------------------- changes */

/* An entity's keys cannot be known: its entries go whole, and those of
 * every target of its rules, which its changes may have made wrong too. */
static void mark_drop(unsigned char *set, const memop_entity *e)
{
    set[e->index / 8] |= (unsigned char)(1u << (e->index % 8));
    for (unsigned i = 0; i < e->desc->nrules; i++)
        set[e->targets[i]->index / 8] |=
            (unsigned char)(1u << (e->targets[i]->index % 8));
}

/* Decodes a tuple's key fields into row; have[f] says which arrived. 'u'
 * (an unchanged TOASTed value) takes the value of `from` when it has it.
 * False when a value is not of its field's type. */
static bool decode(memo_watch *w, const rel *r, const memop_pgcol *cols, int ncols,
                   bool key_only, void *row, bool *have, const void *from,
                   const bool *from_have)
{
    const memo_entity_desc *d = r->e->desc;
    bool key[MEMO_MAX_FIELDS] = {false};
    for (unsigned k = 0; k < r->e->nkeyfields; k++)
        key[r->e->keyfields[k]] = true;
    for (int c = 0; c < ncols && c < r->ncols; c++) {
        int f = r->field[c];
        if (f < 0 || !key[f])
            continue; /* invalidation reads only the key fields */
        if (key_only && !r->ident[c])
            continue; /* a 'K' tuple's other columns are nulls that mean nothing */
        const memo_field_desc *fd = &d->fields[f];
        switch (cols[c].kind) {
        case 'n':
            if (memop_value_decode(fd, NULL, 0, false, row) != MEMO_OK)
                return false;
            have[f] = true;
            break;
        case 'b':
            if (memop_value_decode(fd, cols[c].data, cols[c].len, r->jsonb[c], row) !=
                MEMO_OK)
                return false;
            have[f] = true;
            break;
        case 'u':
            if (from && from_have[f]) {
                memo_entity_desc one = {.nfields = 1, .fields = fd};
                void *dst = row;
                if (memop_row_copy(&one, from, dst) != MEMO_OK)
                    return false;
                have[f] = true;
            }
            break;
        default: /* 't': text, which this stream never asks for */
            (void)w;
            return false;
        }
    }
    return true;
}

static bool all_keys(const memop_entity *e, const bool *have)
{
    for (unsigned k = 0; k < e->nkeyfields; k++)
        if (!have[e->keyfields[k]])
            return false;
    return true;
}

/* An insert, update or delete: its keys into the transaction, or its entity
 * into the drop set when its keys cannot all be known. */
static void change(memo_watch *w, const memop_pgmsg *m)
{
    rel *r = rel_find(w, m->relid);
    if (!r || !r->e)
        return; /* a table of no entity */
    MEMOP_INC(w->repo->watch->changes);
    memop_entity *e = r->e;
    if (r->mismatch) {
        mark_drop(w->batch.drop, e);
        return;
    }
    const memo_entity_desc *d = e->desc;
    void *old = calloc(1, d->size), *new = calloc(1, d->size);
    bool hold[MEMO_MAX_FIELDS] = {false}, hnew[MEMO_MAX_FIELDS] = {false};
    bool ok = old && new;
    unsigned event = m->type == 'I'   ? MEMO_ON_INSERT
                     : m->type == 'U' ? MEMO_ON_UPDATE
                                      : MEMO_ON_DELETE;
    if (ok && m->old)
        ok = decode(w, r, m->old, m->nold, m->old_kind == 'K', old, hold, NULL, NULL);
    if (ok && m->new)
        ok = decode(w, r, m->new, m->nnew, false, new, hnew, m->old ? old : NULL, hold);
    /* A change's keys need the old values of every key field. PostgreSQL
     * logs those of the replica identity's columns (all columns under
     * FULL), and for an update only when one of them changed: when every
     * key field is in the identity, an update that logged none left them
     * as they were; otherwise the old values are unknown and the entity is
     * dropped. */
    if (ok && event == MEMO_ON_UPDATE && !m->old && r->keys_logged) {
        memo_row_clear(d, old);
        memset(old, 0, d->size);
        ok = memop_row_copy(d, new, old) == MEMO_OK;
        memcpy(hold, hnew, sizeof hold);
    }
    if (ok && event != MEMO_ON_INSERT)
        ok = all_keys(e, hold);
    if (ok && event != MEMO_ON_DELETE)
        ok = all_keys(e, hnew);
    if (ok) {
        /* out of memory, it marks its entities to drop */
        memop_inval_collect(w->repo, e, event, event == MEMO_ON_INSERT ? NULL : old,
                            event == MEMO_ON_DELETE ? NULL : new, &w->batch);
    } else {
        mark_drop(w->batch.drop, e);
        MEMOP_INC(w->repo->watch->drops);
    }
    memo_row_clear(d, old);
    memo_row_clear(d, new);
    free(old);
    free(new);
}

static void truncate_(memo_watch *w, const memop_pgmsg *m)
{
    for (int i = 0; i < m->nrels; i++) {
        rel *r = rel_find(w, memop_pgoutput_relid(m, i));
        if (r && r->e) {
            mark_drop(w->batch.drop, r->e);
            MEMOP_INC(w->repo->watch->truncates);
        }
    }
}

/* A commit: the batch, which holds the transaction's keys, may be
 * confirmed up to its end once sent. */
static memo_status commit(memo_watch *w, const memop_pgmsg *m)
{
    if (w->nbatch == w->capbatch) {
        size_t cap = w->capbatch ? 2 * w->capbatch : 64;
        int64_t *ts = realloc(w->batch_ts, cap * sizeof *ts);
        if (!ts)
            return memop_fail(w->repo, MEMO_ERR_NOMEM, "out of memory");
        w->batch_ts = ts;
        w->capbatch = cap;
    }
    if (w->nbatch == 0)
        w->batch_since = memop_now_us();
    w->batch_ts[w->nbatch++] = m->ts;
    w->batch_end = m->end_lsn;
    w->in_tx = false;
    MEMOP_INC(w->repo->watch->transactions);
    return MEMO_OK;
}

static bool batch_empty(const memo_watch *w)
{
    if (w->nbatch > 0 || w->batch.n > 0)
        return false;
    for (size_t i = 0; i < sizeof w->batch.drop; i++)
        if (w->batch.drop[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------ Redis */

/* Everything up to lsn is invalidated: said to PostgreSQL soon. */
static void advance(memo_watch *w, uint64_t lsn)
{
    w->confirmed = lsn;
    uint64_t soon = memop_now_us() + STATUS_SOON_US;
    if (w->next_status_us > soon)
        w->next_status_us = soon;
}

/* Sends the batch: the drops (SCAN + UNLINK), then every key in DELs of at
 * most 1000, in one round trip. True when Redis took all of it. */
static bool send_batch(memo_watch *w)
{
    memo_repo *repo = w->repo;
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return false;
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++)
        if (w->batch.drop[i / 8] & (1u << (i % 8))) {
            if (memop_redis_flush_entity(repo, c, repo->entity_list[i]->desc) < 0) {
                memop_redis_release(repo, c, true);
                return false;
            }
            w->batch.drop[i / 8] &= (unsigned char)~(1u << (i % 8));
            MEMOP_INC(repo->watch->entity_drops);
        }
    memop_inval *b = &w->batch;
    bool broken;
    bool ok = memop_redis_del(repo, c, b->keys, b->n, "DEL (memo watch)", &broken) == 0;
    memop_redis_release(repo, c, broken);
    if (!ok)
        return false;
    MEMOP_ADD(repo->watch->keys_deleted, b->n);
    int64_t now = pg_now();
    for (size_t i = 0; i < w->nbatch; i++)
        memop_hist_add(&repo->watch->lag,
                       now > w->batch_ts[i] ? (uint64_t)(now - w->batch_ts[i]) : 0);
    b->n = b->change = 0;
    b->failed = false;
    w->nbatch = 0;
    w->last_sent_us = memop_now_us();
    if (w->batch_end > w->confirmed)
        advance(w, w->batch_end);
    return true;
}

/* ------------------------------------------------------------ the stream */

/* Tells PostgreSQL how far the cache is invalidated ('r': write, flush and
 * apply positions). */
static bool status(memo_watch *w, bool reply)
{
    unsigned char msg[34];
    msg[0] = 'r';
    put_be(msg + 1, w->received > w->confirmed ? w->received : w->confirmed, 8);
    put_be(msg + 9, w->confirmed, 8);
    put_be(msg + 17, w->confirmed, 8);
    put_be(msg + 25, (uint64_t)pg_now(), 8);
    msg[33] = reply;
    w->next_status_us = memop_now_us() + (uint64_t)w->status_ms * 1000u;
    atomic_store(&w->repo->watch->confirmed_lsn, w->confirmed);
    atomic_store(&w->repo->watch->lag_bytes,
                 w->received > w->confirmed ? w->received - w->confirmed : 0);
    return PQputCopyData(w->conn, (const char *)msg, sizeof msg) == 1 &&
           PQflush(w->conn) == 0;
}

static void disconnect(memo_watch *w)
{
    PQfinish(w->conn);
    w->conn = NULL;
    /* what was read and not confirmed comes again */
    memop_inval_free(&w->batch);
    w->nbatch = 0;
    w->in_tx = false;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Entries cached before the slot existed may hold changes it never
 * streamed: its first start drops the schema's entries, and then records
 * in Redis that it did (<prefix>memo:watch:{slot}). A start that finds the
 * slot without the record (the first was killed before it finished, or the
 * slot was made by hand) drops them again. */
static memo_status first_flush(memo_watch *w, bool created)
{
    memo_repo *repo = w->repo;
    memop_key k;
    memop_key_memo(repo, "watch", w->slot, &k);
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return MEMO_ERR_REDIS;
    if (!created) {
        const char *argv[] = {"EXISTS", k.s};
        size_t lens[] = {6, k.len};
        redisReply *r = memop_redis_command(repo, c, 2, argv, lens);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            if (r)
                memop_redis_reply_failed(repo, r, "EXISTS (memo watch)");
            memop_redis_release(repo, c, !r);
            return MEMO_ERR_REDIS;
        }
        bool done = r->integer == 1;
        memop_redis_release(repo, c, false);
        if (done)
            return MEMO_OK;
        say(w,
            "the replication slot %s has no record of its first drop of the cached "
            "entries: dropping them now",
            w->slot);
    } else {
        memop_redis_release(repo, c, false);
        say(w,
            "created the replication slot %s: dropping the schema's cached entries, "
            "which may predate it",
            w->slot);
    }
    for (unsigned i = 0; i < w->schema->nentities; i++)
        if (memo_flush(repo, w->schema->entities[i], NULL, NULL, NULL, NULL) != MEMO_OK)
            return MEMO_ERR_REDIS;
    if (!(c = memop_redis_acquire(repo)))
        return MEMO_ERR_REDIS;
    const char *argv[] = {"SET", k.s, "1"};
    size_t lens[] = {3, k.len, 1};
    redisReply *r = memop_redis_command(repo, c, 3, argv, lens);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r && !ok)
        memop_redis_reply_failed(repo, r, "SET (memo watch)");
    memop_redis_release(repo, c, !r);
    return ok ? MEMO_OK : MEMO_ERR_REDIS;
}

/* Whether the role may replicate, asked on an ordinary connection (a
 * replication connection of a role that may not is refused whole, with a
 * message only): 1 yes, 0 no, -1 unknown (the database is down). */
static int may_replicate(memo_watch *w)
{
    memop_dconn *c;
    if (memop_db_acquire(w->repo, &c) != MEMO_OK)
        return -1;
    PGresult *res = PQexec(memop_dconn_pg(c), "SELECT rolreplication OR rolsuper FROM "
                                              "pg_catalog.pg_roles WHERE rolname = "
                                              "current_user");
    int may = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                  ? PQgetvalue(res, 0, 0)[0] == 't'
                  : -1;
    PQclear(res);
    memop_db_release(w->repo, c, may < 0);
    return may;
}

/* A command on the replication connection, its wait bounded by a stop
 * (then NULL: the connection is dropped, and with it a slot being made).
 * CREATE_REPLICATION_SLOT waits for the transactions running when it
 * starts, however long they run. The last result, or the COPY_BOTH of
 * START_REPLICATION. */
static PGresult *run_command(memo_watch *w, const char *sql)
{
    if (!PQsendQuery(w->conn, sql))
        return NULL;
    PGresult *last = NULL;
    for (;;) {
        while (!PQisBusy(w->conn)) {
            PGresult *r = PQgetResult(w->conn);
            if (!r)
                return last;
            PQclear(last);
            last = r;
            if (PQresultStatus(r) == PGRES_COPY_BOTH)
                return r; /* the stream: nothing follows it */
        }
        if (atomic_load(&w->stop)) {
            PQclear(last);
            return NULL;
        }
        wait_for(w, 1000000, true);
        if (!PQconsumeInput(w->conn)) {
            PQclear(last);
            return NULL;
        }
    }
}

/* Connects for replication; creates the slot the first time. MEMO_OK
 * streaming, MEMO_ERR_LOCKED while another watcher holds the slot,
 * MEMO_ERR_CONFIG for what a retry cannot mend, else MEMO_ERR_DB_CONN. */
static memo_status start(memo_watch *w, char *err, size_t errsize)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d",
             (w->repo->cfg.connect_timeout_ms + 999) / 1000);
    /* A server that vanished (no FIN, no RST) is found out by TCP within
     * half a minute: the status updates sent every second go unacknowledged
     * (tcp_user_timeout), an idle link is probed (keepalives). Before the
     * URL, which may set its own; replication after it, which must be. */
    const char *keys[] = {"keepalives",          "keepalives_idle",
                          "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout",    "connect_timeout",
                          "application_name",    "dbname",
                          "replication",         NULL};
    const char *vals[] = {"1",        "10",    "5",          "3",
                          "30000",    timeout, "memo watch", w->repo->database_url,
                          "database", NULL};
    w->conn = PQconnectdbParams(keys, vals, 1);
    if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
        bool pooler = w->conn && strstr(PQerrorMessage(w->conn),
                                        "unsupported startup parameter: replication");
        pg_error(w, "connect to PostgreSQL for replication", err, errsize);
        if (pooler) { /* PgBouncer: nothing a retry would change */
            size_t n = strlen(err);
            snprintf(err + n, errsize - n,
                     " (a pooler such as PgBouncer: the watch needs a replication "
                     "connection to PostgreSQL itself; give it the database's own URL)");
            return MEMO_ERR_CONFIG;
        }
        if (may_replicate(w) == 0) {
            size_t n = strlen(err);
            snprintf(err + n, errsize - n,
                     " (the role needs the REPLICATION attribute: ALTER ROLE ... "
                     "REPLICATION, or the managed service's equivalent)");
            return MEMO_ERR_CONFIG;
        }
        return MEMO_ERR_DB_CONN;
    }
    PQsetNoticeProcessor(w->conn, ignore_notice, NULL);
    char sql[512];
    /* pgoutput reports a missing publication only at the first change, as
     * a stream error a retry would repeat forever: asked first. (Names are
     * plain_name: nothing to quote.) */
    snprintf(sql, sizeof sql,
             "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = '%s'",
             w->publication);
    PGresult *res = run_command(w, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        pg_error(w, "look for the publication", err, errsize);
        return MEMO_ERR_DB_CONN;
    }
    bool published = PQntuples(res) == 1;
    PQclear(res);
    if (!published) {
        snprintf(err, errsize,
                 "the publication %s does not exist: apply the schema's .sql (memoc "
                 "generates it) to this database",
                 w->publication);
        return MEMO_ERR_CONFIG;
    }
    if (PQserverVersion(w->conn) < 140000) {
        snprintf(err, errsize,
                 "memo watch needs PostgreSQL 14 or later (binary pgoutput)");
        return MEMO_ERR_CONFIG;
    }
    snprintf(sql, sizeof sql,
             "CREATE_REPLICATION_SLOT \"%s\" LOGICAL pgoutput NOEXPORT_SNAPSHOT",
             w->slot);
    res = run_command(w, sql);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool created = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!created && !(state && strcmp(state, "42710") == 0)) { /* 42710: it exists */
        char msg[256];
        memop_pg_message(w->repo->database_url, PQresultErrorMessage(res), msg,
                         sizeof msg);
        snprintf(err, errsize, "cannot create the replication slot %s: %s%s", w->slot,
                 msg,
                 state && strcmp(state, "55000") == 0
                     ? " (set wal_level = logical in postgresql.conf and restart)"
                 : state && strcmp(state, "42501") == 0
                     ? " (the role needs the REPLICATION attribute)"
                     : "");
        /* 53400: max_replication_slots reached (other class 53 states, a
         * full disk or too many connections, may pass) */
        bool fatal =
            state && (strcmp(state, "55000") == 0 || strcmp(state, "42501") == 0 ||
                      strcmp(state, "53400") == 0);
        PQclear(res);
        return fatal ? MEMO_ERR_CONFIG : MEMO_ERR_DB_CONN;
    }
    PQclear(res);
    memo_status st = first_flush(w, created);
    if (st != MEMO_OK) {
        snprintf(err, errsize, "%s", memo_last_error(w->repo));
        return st;
    }
    /* where the WAL ends now: the backlog to catch up with */
    res = run_command(w, "IDENTIFY_SYSTEM");
    unsigned hi = 0, lo = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        PQnfields(res) >= 3 && sscanf(PQgetvalue(res, 0, 2), "%X/%X", &hi, &lo) == 2)
        w->backlog_end = (uint64_t)hi << 32 | lo;
    PQclear(res);
    snprintf(sql, sizeof sql,
             "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '1', "
             "publication_names '\"%s\"', binary 'true')",
             w->slot, w->publication);
    res = run_command(w, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char msg[400];
        memop_pg_message(w->repo->database_url, PQresultErrorMessage(res), msg,
                         sizeof msg);
        snprintf(err, errsize, "cannot stream from the replication slot %s: %s", w->slot,
                 msg);
        bool held = state && strcmp(state, "55006") == 0; /* active for another */
        /* 55000 here: the slot was invalidated (it kept more WAL than
         * max_slot_wal_keep_size allows); retrying cannot mend it */
        bool lost = state && strcmp(state, "55000") == 0;
        if (lost) {
            size_t n = strlen(err);
            snprintf(err + n, errsize - n,
                     " (drop it with memo watch --drop-slot: the next start makes it "
                     "again and drops the cached entries)");
        }
        PQclear(res);
        return held ? MEMO_ERR_LOCKED : lost ? MEMO_ERR_CONFIG : MEMO_ERR_DB_CONN;
    }
    PQclear(res);
    /* positions of this server's stream only (after a fail-over the last
     * one's may not exist here) */
    w->confirmed = w->received = 0;
    w->next_status_us = 0;
    w->caught_up = false;
    w->connected_us = memop_now_us();
    w->next_progress_us = w->connected_us + 1000000;
    w->changes_before = atomic_load(&w->repo->watch->changes);
    return MEMO_OK;
}

/* Says how the catch-up goes, every second while it lasts, and when it is
 * done: the WAL written before this connection is invalidated. */
static void progress(memo_watch *w)
{
    if (w->caught_up)
        return;
    uint64_t now = memop_now_us();
    uint64_t changes = atomic_load(&w->repo->watch->changes) - w->changes_before;
    if (w->confirmed >= w->backlog_end) {
        w->caught_up = true;
        if (changes > 0 || now - w->connected_us >= 1000000)
            say(w, "caught up: %" PRIu64 " changes of the backlog in %.1f s", changes,
                (double)(now - w->connected_us) / 1e6);
    } else if (now >= w->next_progress_us) {
        w->next_progress_us = now + 1000000;
        say(w, "catching up: %" PRIu64 " changes so far, %.1f MB of WAL to go", changes,
            (double)(w->backlog_end - w->confirmed) / 1e6);
    }
}

/* One message of the copy stream: 'w' XLogData carrying a pgoutput message,
 * or 'k' a keepalive. */
static memo_status message(memo_watch *w, const char *buf, int len, char *err,
                           size_t errsize)
{
    if (len >= 18 && buf[0] == 'k') {
        uint64_t end = get_be(buf + 1, 8);
        if (end > w->received)
            w->received = end;
        /* with nothing read and unsent, all before the server's end is done */
        if (!w->in_tx && batch_empty(w) && end > w->confirmed)
            advance(w, end);
        if (buf[17] && !status(w, false))
            return MEMO_ERR_DB_CONN;
        return MEMO_OK;
    }
    if (len < 25 || buf[0] != 'w') {
        snprintf(err, errsize, "memo watch: an unexpected replication message");
        return MEMO_ERR_DB;
    }
    uint64_t end = get_be(buf + 9, 8);
    if (end > w->received)
        w->received = end;
    memop_pgmsg m;
    if (!memop_pgoutput_parse(&w->parser, buf + 25, (size_t)len - 25, &m)) {
        snprintf(err, errsize,
                 "memo watch: a pgoutput message it cannot read (type '%c')",
                 len > 25 ? buf[25] : '?');
        return MEMO_ERR_DB;
    }
    switch (m.type) {
    case 'B':
        w->in_tx = true;
        break;
    case 'C':
        return commit(w, &m);
    case 'R':
        return relation(w, &m);
    case 'I':
    case 'U':
    case 'D':
        change(w, &m);
        break;
    case 'T':
        truncate_(w, &m);
        break;
    default:
        break; /* origins and types say nothing about keys */
    }
    return MEMO_OK;
}

/* Sends the batch, waiting for Redis as long as it takes (or a stop), and
 * keeping the replication connection alive meanwhile. */
static memo_status flush_batch(memo_watch *w)
{
    if (batch_empty(w))
        return MEMO_OK;
    uint64_t backoff = 50;
    bool said = false;
    while (!send_batch(w)) {
        if (!said) {
            say(w,
                "Redis does not take the invalidations (%s): confirming nothing until "
                "it does",
                memo_last_error(w->repo));
            set_state(w, "waiting for Redis");
            said = true;
        }
        if (atomic_load(&w->stop))
            return MEMO_ERR_REDIS;
        if (memop_now_us() >= w->next_status_us && !status(w, false))
            return MEMO_ERR_DB_CONN;
        wait_for(w, backoff * 1000, false);
        if (backoff < 1000)
            backoff *= 2;
    }
    if (said) {
        say(w, "Redis takes the invalidations again");
        set_state(w, "streaming");
    }
    return MEMO_OK;
}

/* Streams until a stop or a failure of the connection. */
static memo_status stream(memo_watch *w, char *err, size_t errsize)
{
    set_state(w, "streaming");
    while (!atomic_load(&w->stop)) {
        char *buf = NULL;
        int len = PQgetCopyData(w->conn, &buf, 1);
        if (len > 0) {
            memo_status st = message(w, buf, len, err, errsize);
            PQfreemem(buf);
            if (st != MEMO_OK)
                return st;
            if (memop_now_us() >= w->next_status_us && !status(w, false)) {
                pg_error(w, "replication stream", err, errsize);
                return MEMO_ERR_DB_CONN;
            }
            /* a batch waits while more arrives, a little */
            if (w->batch.n >= BATCH_KEYS_MAX ||
                (w->nbatch > 0 && memop_now_us() - w->batch_since > BATCH_HOLD_US)) {
                if ((st = flush_batch(w)) != MEMO_OK)
                    return st;
                progress(w);
            }
            continue;
        }
        if (len == -2 || len == -1) {
            pg_error(w, "replication stream", err, errsize);
            return MEMO_ERR_DB_CONN;
        }
        /* nothing more now: send what was committed, confirm it, wait */
        memo_status st = flush_batch(w);
        if (st != MEMO_OK)
            return st;
        progress(w);
        if (memop_now_us() >= w->next_status_us && !status(w, false)) {
            pg_error(w, "replication stream", err, errsize);
            return MEMO_ERR_DB_CONN;
        }
        uint64_t now = memop_now_us();
        if (now - w->last_sent_us < BUSY_US) {
            wait_for(w, BUSY_TICK_US, false);
        } else {
            uint64_t left = w->next_status_us > now ? w->next_status_us - now : 0;
            wait_for(w, left + 1000, true);
        }
        if (!PQconsumeInput(w->conn)) {
            pg_error(w, "replication stream", err, errsize);
            return MEMO_ERR_DB_CONN;
        }
    }
    /* stopping: what was committed goes out, and is confirmed */
    if (flush_batch(w) == MEMO_OK)
        status(w, false);
    return MEMO_OK;
}

/* ------------------------------------------------------------------- API */

static void fcntl_nonblock_cloexec(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static bool plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* The configured name, or memo_<schema>; false when it does not fit. */
static bool name_of(const char *given, const char *schema, char out[64])
{
    if (!given) {
        memop_stream_name(schema, out);
        return true;
    }
    size_t n = strlen(given);
    if (n >= 64)
        return false;
    memcpy(out, given, n + 1);
    return true;
}

memo_status memo_watch_open(memo_repo *repo, const memo_watch_config *cfg,
                            memo_watch **out)
{
    if (out)
        *out = NULL;
    if (!repo)
        return MEMO_ERR_ARG;
    if (!cfg || !out || !cfg->schema)
        return memop_fail(repo, MEMO_ERR_ARG, "memo_watch_open: NULL argument");
    size_t size = cfg->size ? cfg->size : sizeof *cfg;
    if (size > sizeof *cfg)
        return memop_fail(repo, MEMO_ERR_CONFIG,
                          "memo_watch_config.size does not match this "
                          "libmemo: rebuild against its memo.h");
    memo_watch_config c = {0};
    memcpy(&c, cfg, size < sizeof c ? size : sizeof c);
    memo_watch *w = calloc(1, sizeof *w);
    if (!w)
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    w->repo = repo;
    w->schema = c.schema;
    /* a name too long is refused, never cut to another */
    bool long_name = !name_of(c.slot, c.schema->name, w->slot) ||
                     !name_of(c.publication, c.schema->name, w->publication);
    w->status_ms = c.status_interval_ms > 0 ? c.status_interval_ms : 1000;
    w->retry_ms = c.retry_ms > 0 ? c.retry_ms : 500;
    w->log = c.log;
    w->log_arg = c.log_arg;
    memo_status st = MEMO_OK;
    if (long_name || !plain_name(w->slot) || !plain_name(w->publication))
        st = memop_fail(
            repo, MEMO_ERR_CONFIG,
            "memo watch: slot and publication names are 1 to 63 of a-z, 0-9, _");
    else if (pipe(w->wake) != 0)
        st = memop_fail(repo, MEMO_ERR_NOMEM, "memo watch: no pipe: %s", strerror(errno));
    else if ((st = memop_watch_stats_init(repo)) != MEMO_OK)
        st = memop_fail(repo, st, "out of memory");
    for (unsigned i = 0; st == MEMO_OK && i < c.schema->nentities; i++) {
        memop_entity *e;
        st = memop_entity_get(repo, c.schema->entities[i], &e);
    }
    if (st != MEMO_OK) {
        if (w->wake[0] || w->wake[1]) {
            close(w->wake[0]);
            close(w->wake[1]);
        }
        free(w);
        return st;
    }
    for (int i = 0; i < 2; i++) /* a wake-up never blocks, nor outlives an exec */
        fcntl_nonblock_cloexec(w->wake[i]);
    *out = w;
    return MEMO_OK;
}

memo_status memo_watch_run(memo_watch *w)
{
    if (!w)
        return MEMO_ERR_ARG;
    memo_repo *repo = w->repo;
    char err[512];
    bool standby_said = false;
    uint64_t backoff = (uint64_t)w->retry_ms;
    while (!atomic_load(&w->stop)) {
        err[0] = '\0';
        memo_status st = start(w, err, sizeof err);
        if (atomic_load(&w->stop)) /* what start says of a stop is no failure */
            break;
        if (st == MEMO_OK) {
            if (standby_said)
                say(w, "took over the replication slot %s", w->slot);
            else
                say(w, "streaming from the replication slot %s", w->slot);
            standby_said = false;
            backoff = (uint64_t)w->retry_ms;
            st = stream(w, err, sizeof err);
            if (st == MEMO_OK || atomic_load(&w->stop)) /* stopped */
                break;
        }
        disconnect(w);
        if (!err[0]) /* a failure recorded, not written out: memop_fail's message */
            snprintf(err, sizeof err, "%s", memo_last_error(repo));
        if (st == MEMO_ERR_CONFIG || st == MEMO_ERR_DB || st == MEMO_ERR_NOMEM) {
            set_state(w, "stopped");
            return memop_fail(repo, st, "%s", err);
        }
        if (st == MEMO_ERR_LOCKED) {
            if (!standby_said)
                say(w, "standing by: another memo watch streams from %s", w->slot);
            standby_said = true;
            set_state(w, "standby");
            atomic_store(&repo->watch->lag_bytes, 0); /* another's to report */
            wait_for(w, (uint64_t)w->retry_ms * 1000, false);
            continue;
        }
        memop_fail(repo, st, "%s", err);
        say(w, "%s; again in %" PRIu64 " ms", err, backoff);
        set_state(w, "reconnecting");
        MEMOP_INC(repo->watch->reconnects);
        wait_for(w, backoff * 1000, false);
        if (backoff < 5000)
            backoff *= 2;
    }
    disconnect(w);
    set_state(w, "stopped");
    return MEMO_OK;
}

void memo_watch_stop(memo_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, true);
    char b = 1;
    ssize_t n = write(w->wake[1], &b, 1); /* async-signal-safe */
    (void)n;
}

void memo_watch_close(memo_watch *w)
{
    if (!w)
        return;
    disconnect(w);
    memop_pgparser_free(&w->parser);
    for (size_t i = 0; i < w->nrels; i++) {
        free(w->rels[i].field);
        free(w->rels[i].jsonb);
        free(w->rels[i].ident);
    }
    free(w->rels);
    free(w->batch_ts);
    close(w->wake[0]);
    close(w->wake[1]);
    free(w);
}

memo_status memo_watch_drop_slot(memo_repo *repo, const char *slot)
{
    if (!repo)
        return MEMO_ERR_ARG;
    if (!slot || !plain_name(slot))
        return memop_fail(repo, MEMO_ERR_ARG,
                          "memo_watch_drop_slot: a slot name of a-z, 0-9, _");
    /* The record of the slot's first drop of entries goes first: a slot
     * made again under this name must drop them again (first_flush). */
    memop_key k;
    memop_key_memo(repo, "watch", slot, &k);
    memop_rconn *rc = memop_redis_acquire(repo);
    if (!rc)
        return memop_fail(repo, MEMO_ERR_REDIS, "cannot drop the replication slot %s: %s",
                          slot, memo_last_error(repo));
    bool broken;
    bool gone = memop_redis_del(repo, rc, &k, 1, "DEL (memo watch)", &broken) == 0;
    memop_redis_release(repo, rc, broken);
    if (!gone)
        return memop_fail(repo, MEMO_ERR_REDIS, "cannot drop the replication slot %s: %s",
                          slot, memo_last_error(repo));
    memop_dconn *c;
    memo_status st = memop_db_acquire(repo, &c);
    if (st != MEMO_OK)
        return st;
    const char *params[] = {slot};
    PGresult *res = PQexecParams(memop_dconn_pg(c),
                                 "SELECT pg_drop_replication_slot(slot_name) FROM "
                                 "pg_replication_slots WHERE slot_name = $1",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[400];
        memop_pg_message(repo->database_url, PQresultErrorMessage(res), msg, sizeof msg);
        st = memop_fail(repo, MEMO_ERR_DB, "cannot drop the replication slot %s: %s",
                        slot, msg);
    } else if (PQntuples(res) == 0) {
        st = memop_fail(repo, MEMO_NOT_FOUND, "no replication slot %s", slot);
    }
    PQclear(res);
    memop_db_release(repo, c, false);
    return st;
}
