/* PostgreSQL: a pool of libpq connections, statements prepared once per
 * connection, every call bounded by query_timeout_ms, failures sorted into
 * statuses, and the diagnosis of a table of another shape. Values in and
 * out are pgvalue.c's. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct memop_dconn {
    PGconn *conn;
    /* prepared[entity index][statement]: prepared on this connection */
    unsigned char **prepared;
    unsigned nprepared;
};

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void dconn_free(memop_dconn *c)
{
    if (!c)
        return;
    PQfinish(c->conn);
    for (unsigned i = 0; i < c->nprepared; i++)
        free(c->prepared[i]);
    free(c->prepared);
    free(c);
}

static PGresult *await_result(memo_repo *repo, memop_dconn *c, uint64_t deadline,
                              bool *timed_out);

/* A pooler in front of PostgreSQL (PgBouncer) gives its clients a backend
 * PID of its own, not the server's: when the two differ, named statements
 * would go to whichever server connection a transaction gets, and the
 * repository sends them unnamed from now on. One round trip on the first
 * connection of a repository (one URL: the others are of the same kind).
 * False: the connection failed. */
static bool detect_pooler(memo_repo *repo, memop_dconn *c, int timeout_ms)
{
    if ((repo->cfg.flags & MEMO_DB_UNNAMED) || atomic_load(&repo->db_unnamed) ||
        atomic_load(&repo->db_checked))
        return true;
    if (!PQsendQuery(c->conn, "SELECT pg_backend_pid()"))
        return false;
    bool timed_out = false;
    PGresult *res =
        await_result(repo, c, memop_now_us() + (uint64_t)timeout_ms * 1000u, &timed_out);
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok && strtol(PQgetvalue(res, 0, 0), NULL, 10) != PQbackendPID(c->conn))
        atomic_store(&repo->db_unnamed, true);
    if (ok)
        atomic_store(&repo->db_checked, true);
    PQclear(res);
    return ok;
}

/* Connects; the URL's own settings win over our defaults, except the client
 * encoding: values cross into JSON, which is UTF-8. */
static memo_status dconn_new(memo_repo *repo, memop_dconn **out, char *err,
                             size_t errsize)
{
    char timeout[16];
    int secs = (repo->cfg.connect_timeout_ms + 999) / 1000;
    snprintf(timeout, sizeof timeout, "%d", secs < 1 ? 1 : secs);
    const char *keys[] = {"connect_timeout", "application_name", "dbname",
                          "client_encoding", NULL};
    const char *vals[] = {timeout, "memo", repo->database_url, "UTF8", NULL};
    memop_dconn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errsize, "out of memory");
        return MEMO_ERR_NOMEM;
    }
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (!c->conn) {
        free(c);
        snprintf(err, errsize, "out of memory");
        return MEMO_ERR_NOMEM;
    }
    /* the server's notices (a FATAL before it closes the connection, say)
     * are not for the application's stderr, where libpq would print them */
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char msg[400];
        memop_pg_message(repo->database_url, PQerrorMessage(c->conn), msg, sizeof msg);
        snprintf(err, errsize, "connect to PostgreSQL: %s", msg);
        dconn_free(c);
        /* a bad conninfo is the caller's mistake, not an outage */
        bool syntax = strstr(msg, "invalid") || strstr(msg, "missing") ||
                      strstr(msg, "unrecognized") || strstr(msg, "syntax");
        return syntax ? MEMO_ERR_CONFIG : MEMO_ERR_DB_CONN;
    }
    if (!detect_pooler(repo, c, repo->cfg.connect_timeout_ms)) {
        snprintf(err, errsize, "connect to PostgreSQL: no answer to a first query");
        dconn_free(c);
        return MEMO_ERR_DB_CONN;
    }
    *out = c;
    return MEMO_OK;
}

/* A connection that sat idle may have been closed by the server (restart,
 * idle timeout): look before sending, so a statement never goes down a dead
 * socket and a write is never in doubt for that reason. */
static bool still_alive(memop_dconn *c)
{
    if (PQstatus(c->conn) != CONNECTION_OK)
        return false;
    /* A server that ended the session (a restart) sent a FATAL, which libpq
     * reads as a notice, and then closed: the end of the stream is seen on
     * the read after the one that consumed the message. */
    for (int round = 0; round < 4; round++) {
        struct pollfd p = {PQsocket(c->conn), POLLIN, 0};
        if (poll(&p, 1, 0) <= 0)
            return true;
        if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK)
            return false;
        /* notices and parameter updates are harmless; a result here is not */
        if (PQisBusy(c->conn))
            return false;
    }
    return false; /* still talking, unasked: not a connection to use */
}

PGconn *memop_dconn_pg(memop_dconn *c)
{
    return c->conn;
}

memo_status memop_db_acquire(memo_repo *repo, memop_dconn **out)
{
    void *taken;
    if (!memop_pool_take(&repo->dpool, (uint64_t)repo->cfg.pool_wait_ms, &taken)) {
        int txs = atomic_load(&repo->open_txs);
        return memop_fail(
            repo, MEMO_ERR_TIMEOUT,
            "PostgreSQL: no free connection within %d ms: all %d of the pool "
            "are in use, %d of them by open transactions (a transaction holds "
            "its connection until memo_commit or memo_rollback; raise "
            "pool_size or end transactions sooner)",
            repo->cfg.pool_wait_ms, repo->cfg.pool_size, txs);
    }
    memop_dconn *c = taken;
    if (c && still_alive(c)) {
        *out = c;
        return MEMO_OK;
    }
    dconn_free(c); /* dead: a fresh one takes its slot */
    char err[512];
    memo_status st = dconn_new(repo, &c, err, sizeof err);
    if (st == MEMO_OK) {
        *out = c;
        return MEMO_OK;
    }
    memop_pool_give(&repo->dpool, NULL);
    return memop_fail(repo, st, "%s", err);
}

void memop_db_release(memo_repo *repo, memop_dconn *c, bool broken)
{
    if (c && (broken || PQstatus(c->conn) != CONNECTION_OK)) {
        dconn_free(c);
        c = NULL;
    }
    memop_pool_give(&repo->dpool, c);
}

/* Waits for the result of what was sent, within the deadline. NULL on
 * timeout (the statement is cancelled and the connection is lost) or when
 * the connection broke. */
static PGresult *await_result(memo_repo *repo, memop_dconn *c, uint64_t deadline,
                              bool *timed_out)
{
    PGconn *conn = c->conn;
    while (PQisBusy(conn)) {
        uint64_t now = memop_now_us();
        if (now >= deadline) {
            *timed_out = true;
            char buf[256];
            PGcancel *cancel = PQgetCancel(conn);
            if (cancel) {
                PQcancel(cancel, buf, sizeof buf);
                PQfreeCancel(cancel);
            }
            return NULL;
        }
        struct pollfd p = {PQsocket(conn), POLLIN, 0};
        int ms = (int)((deadline - now + 999) / 1000);
        int rc = poll(&p, 1, ms);
        if (rc < 0 && errno != EINTR)
            return NULL;
        if (rc > 0 && !PQconsumeInput(conn))
            return NULL;
    }
    (void)repo;
    PGresult *res = PQgetResult(conn);
    /* drain: one statement, one result, then NULL */
    PGresult *extra;
    while ((extra = PQgetResult(conn)) != NULL)
        PQclear(extra);
    return res;
}

static bool sqlstate_is(const PGresult *res, const char *prefix)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* Turns a failed result into a status and a message. */
static memo_status result_failure(memo_repo *repo, memop_dconn *c, memop_entity *e,
                                  const PGresult *res, bool *broken)
{
    const char *table = e->desc->table;
    if (!res || PQstatus(c->conn) != CONNECTION_OK) {
        char msg[400];
        memop_pg_message(repo->database_url, PQerrorMessage(c->conn), msg, sizeof msg);
        *broken = true;
        return memop_fail(repo, MEMO_ERR_DB_CONN, "PostgreSQL, table %s: %s", table,
                          msg[0] ? msg : "connection lost");
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    memo_status st = MEMO_ERR_DB;
    if (sqlstate_is(res, "23505"))
        st = MEMO_CONFLICT;
    else if (sqlstate_is(res, "23"))
        st = MEMO_ERR_CONSTRAINT;
    else if (sqlstate_is(res, "22"))
        st = MEMO_ERR_ARG;
    else if (sqlstate_is(res, "57014"))
        st = MEMO_ERR_TIMEOUT;
    else if (sqlstate_is(res, "42P01") || sqlstate_is(res, "42703") ||
             sqlstate_is(res, "42804"))
        st = MEMO_ERR_SCHEMA;
    else if (sqlstate_is(res, "08") || sqlstate_is(res, "57P")) {
        st = MEMO_ERR_DB_CONN;
        *broken = true;
    }
    if (st == MEMO_ERR_SCHEMA) /* say what differs, on this connection if it is free */
        return memop_schema_mismatch(
            repo, e, PQtransactionStatus(c->conn) == PQTRANS_IDLE ? c : NULL);
    return memop_fail(repo, st, "PostgreSQL, table %s: %s%s%s (SQLSTATE %s)", table,
                      primary ? primary : "error", detail ? ": " : "",
                      detail ? detail : "", state ? state : "?");
}

/* ------------------------------------------------------- schema mismatch */

/* The table's columns, from information_schema, against the entity's
 * fields: a table created by an older schema keeps its shape, because the
 * generated .sql only creates what is missing (IF NOT EXISTS). */
static void diagnose(memo_repo *repo, memop_dconn *c, const memo_entity_desc *d,
                     memop_buf *b)
{
    static const char query[] =
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = $1 AND table_schema = ANY (current_schemas(false))";
    const char *params[] = {d->table};
    uint64_t deadline = memop_now_us() + (uint64_t)repo->cfg.query_timeout_ms * 1000u;
    bool timed_out = false;
    PGresult *res = NULL;
    if (PQsendQueryParams(c->conn, query, 1, NULL, params, NULL, NULL, 0))
        res = await_result(repo, c, deadline, &timed_out);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return;
    }
    if (PQntuples(res) == 0) {
        memop_buf_printf(b,
                         ": the table does not exist; create it with the schema's .sql "
                         "file (psql -f %s.sql)",
                         d->schema);
        PQclear(res);
        return;
    }
    unsigned problems = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        const char *want = memop_sql_type(f->type), *have = NULL;
        for (int r = 0; r < PQntuples(res) && !have; r++)
            if (strcmp(PQgetvalue(res, r, 0), f->name) == 0)
                have = PQgetvalue(res, r, 1);
        if (have && strcmp(have, want) == 0)
            continue;
        if (problems++ == 0)
            memop_buf_puts(b, ":");
        else
            memop_buf_puts(b, ";");
        if (!have)
            memop_buf_printf(
                b,
                " column \"%s\" is missing (ALTER TABLE \"%s\" ADD COLUMN "
                "\"%s\" %s%s)",
                f->name, d->table, f->name, want,
                f->flags & MEMO_FIELD_NULLABLE ? "" : ", then fill it and SET NOT NULL");
        else
            memop_buf_printf(
                b,
                " column \"%s\" is %s, the entity says %s (ALTER TABLE \"%s\" "
                "ALTER COLUMN \"%s\" TYPE %s)",
                f->name, have, want, d->table, f->name, want);
    }
    if (problems)
        memop_buf_puts(b, ". The schema's .sql file does not change a table that exists "
                          "(CREATE TABLE IF NOT EXISTS); `memoc --migrate OLD.memo "
                          "NEW.memo` prints the SQL from the schema that made it");
    PQclear(res);
}

memo_status memop_schema_mismatch(memo_repo *repo, memop_entity *e, memop_dconn *c)
{
    const memo_entity_desc *d = e->desc;
    memop_buf b = {0};
    memop_buf_printf(&b, "table \"%s\" does not match entity %s.%s", d->table, d->schema,
                     d->name);
    /* on the caller's connection, else a free one: never wait for one */
    bool own = false;
    void *taken;
    if (!c && memop_pool_take(&repo->dpool, 0, &taken)) {
        own = true;
        if ((c = taken) && !still_alive(c)) {
            dconn_free(c);
            c = NULL;
        }
        char err[256];
        if (!c && dconn_new(repo, &c, err, sizeof err) != MEMO_OK)
            c = NULL;
    }
    size_t before = b.len;
    if (c)
        diagnose(repo, c, d, &b);
    if (own)
        memop_db_release(repo, c, false);
    if (b.len == before)
        memop_buf_puts(&b, "; compare the table with the schema's .sql file");
    memo_status st =
        memop_fail(repo, MEMO_ERR_SCHEMA, "%s", b.failed ? "out of memory" : b.s);
    memop_buf_free(&b);
    return st;
}

static bool *prepared_slot(memop_dconn *c, memop_entity *e, unsigned stmt)
{
    if (e->index >= c->nprepared) {
        unsigned n = e->index + 8;
        unsigned char **grown = realloc(c->prepared, n * sizeof *grown);
        if (!grown)
            return NULL;
        for (unsigned i = c->nprepared; i < n; i++)
            grown[i] = NULL;
        c->prepared = grown;
        c->nprepared = n;
    }
    if (!c->prepared[e->index] && !(c->prepared[e->index] = calloc(e->nsql, 1)))
        return NULL;
    return (bool *)(void *)&c->prepared[e->index][stmt];
}

memo_status memop_db_exec(memo_repo *repo, memop_dconn *c, memop_entity *e, unsigned stmt,
                          int nparams, const char *const *values, const int *lengths,
                          const int *formats, PGresult **out, bool *broken)
{
    *out = NULL;
    memop_stmt *s = &e->sql[stmt];
    const char *name = s->name;
    uint64_t deadline = memop_now_us() + (uint64_t)repo->cfg.query_timeout_ms * 1000u;
    bool timed_out = false;
    MEMOP_INC(e->stats.db_queries);

    bool unnamed = (repo->cfg.flags & MEMO_DB_UNNAMED) || atomic_load(&repo->db_unnamed);
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned char *prepared =
            unnamed ? &(unsigned char){1} : (unsigned char *)prepared_slot(c, e, stmt);
        if (!prepared)
            return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        if (!*prepared) {
            if (!PQsendPrepare(c->conn, name, s->text, s->ntypes, s->types))
                return result_failure(repo, c, e, NULL, broken);
            PGresult *res = await_result(repo, c, deadline, &timed_out);
            /* already there: the same text (the name is its hash), prepared
             * on this server connection by another client of a pooler */
            bool there = res && sqlstate_is(res, "42P05") &&
                         PQtransactionStatus(c->conn) == PQTRANS_IDLE;
            if (!there && (!res || PQresultStatus(res) != PGRES_COMMAND_OK)) {
                memo_status st;
                if (timed_out) {
                    *broken = true;
                    st = memop_fail(repo, MEMO_ERR_TIMEOUT,
                                    "PostgreSQL, table %s: no answer within %d ms",
                                    e->desc->table, repo->cfg.query_timeout_ms);
                } else {
                    st = result_failure(repo, c, e, res, broken);
                }
                PQclear(res);
                return st;
            }
            PQclear(res);
            *prepared = 1;
        }
        /* unnamed: parsed, planned and run in one exchange, on whatever
         * server connection a pooler gives this transaction */
        if (!(unnamed ? PQsendQueryParams(c->conn, s->text, nparams, s->types, values,
                                          lengths, formats, 1)
                      : PQsendQueryPrepared(c->conn, name, nparams, values, lengths,
                                            formats, 1)))
            return result_failure(repo, c, e, NULL, broken);
        PGresult *res = await_result(repo, c, deadline, &timed_out);
        if (res && (PQresultStatus(res) == PGRES_TUPLES_OK ||
                    PQresultStatus(res) == PGRES_COMMAND_OK)) {
            *out = res;
            return MEMO_OK;
        }
        if (timed_out) {
            *broken = true;
            PQclear(res);
            return memop_fail(repo, MEMO_ERR_TIMEOUT,
                              "PostgreSQL, table %s: no answer within %d ms",
                              e->desc->table, repo->cfg.query_timeout_ms);
        }
        /* A statement prepared just now is gone again: the connection is a
         * transaction-mode pooler's (PgBouncer), which runs each exchange
         * on any server connection. From now on, unnamed statements. */
        if (attempt == 1 && !unnamed && sqlstate_is(res, "26000")) {
            PQclear(res);
            atomic_store(&repo->db_unnamed, true);
            unnamed = true;
            continue;
        }
        /* The server forgot the statement (DISCARD ALL by a pooler):
         * prepare again, once. Its plan no longer fits the table (a column
         * changed type): the same, after freeing the name on this
         * connection, within the call's deadline. */
        if (attempt == 0 && !unnamed &&
            (sqlstate_is(res, "26000") || sqlstate_is(res, "0A000"))) {
            bool stale = sqlstate_is(res, "0A000");
            PQclear(res);
            if (stale) {
                char dealloc[64];
                snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", name);
                if (!PQsendQuery(c->conn, dealloc))
                    return result_failure(repo, c, e, NULL, broken);
                PQclear(await_result(repo, c, deadline, &timed_out));
                if (timed_out) {
                    *broken = true;
                    return memop_fail(repo, MEMO_ERR_TIMEOUT,
                                      "PostgreSQL, table %s: no answer within %d ms",
                                      e->desc->table, repo->cfg.query_timeout_ms);
                }
            }
            *prepared = 0;
            continue;
        }
        memo_status st = result_failure(repo, c, e, res, broken);
        PQclear(res);
        return st;
    }
    return memop_fail(repo, MEMO_ERR_DB, "PostgreSQL, table %s: statement failed twice",
                      e->desc->table);
}

memo_status memop_db_simple(memo_repo *repo, memop_dconn *c, const char *sql,
                            bool *broken)
{
    uint64_t deadline = memop_now_us() + (uint64_t)repo->cfg.query_timeout_ms * 1000u;
    bool timed_out = false;
    if (!PQsendQuery(c->conn, sql)) {
        *broken = true;
        return memop_fail(repo, MEMO_ERR_DB_CONN, "PostgreSQL: %s: connection lost", sql);
    }
    PGresult *res = await_result(repo, c, deadline, &timed_out);
    memo_status st = MEMO_OK;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[400];
        memop_pg_message(repo->database_url,
                         res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn), msg,
                         sizeof msg);
        if (timed_out || !res || PQstatus(c->conn) != CONNECTION_OK)
            *broken = true;
        st = memop_fail(repo,
                        timed_out ? MEMO_ERR_TIMEOUT
                        : *broken ? MEMO_ERR_DB_CONN
                                  : MEMO_ERR_DB,
                        "PostgreSQL: %s: %s", sql, msg[0] ? msg : "no answer");
    }
    PQclear(res);
    return st;
}

/* errors count failures of the system; rejected, data the server refused */
static void count_failure(memop_entity *e, memo_status st)
{
    if (st == MEMO_CONFLICT || st == MEMO_ERR_CONSTRAINT || st == MEMO_ERR_ARG)
        MEMOP_INC(e->stats.rejected);
    else
        MEMOP_INC(e->stats.errors);
}

memo_status memop_db_run(memo_repo *repo, memo_tx *tx, memop_entity *e, unsigned stmt,
                         const memop_params *ps, PGresult **res)
{
    *res = NULL;
    if (tx) {
        if (tx->failed)
            return memop_fail(repo, MEMO_ERR_TX,
                              "the transaction failed earlier: roll it back");
        bool broken = false;
        memo_status st = memop_db_exec(repo, tx->conn, e, stmt, ps->n, ps->values,
                                       ps->lengths, ps->formats, res, &broken);
        /* any error aborts a PostgreSQL transaction */
        if (st != MEMO_OK) {
            tx->failed = true;
            tx->broken |= broken;
            count_failure(e, st);
        }
        return st;
    }
    memop_dconn *dc;
    memo_status st = memop_db_acquire(repo, &dc);
    if (st == MEMO_OK) {
        bool broken = false;
        st = memop_db_exec(repo, dc, e, stmt, ps->n, ps->values, ps->lengths, ps->formats,
                           res, &broken);
        memop_db_release(repo, dc, broken);
    }
    if (st != MEMO_OK)
        count_failure(e, st);
    return st;
}

/* ----------------------------------------------------------- open / close */

memo_status memop_db_open(memo_repo *repo, memo_error *err)
{
    memop_pool_init(&repo->dpool, (size_t)repo->cfg.pool_size);
    if (!repo->dpool.free) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return MEMO_ERR_NOMEM;
    }
    /* One connection now, so a wrong URL or a dead server is reported here. */
    memop_dconn *c;
    memo_status st = dconn_new(repo, &c, err->message, sizeof err->message);
    if (st != MEMO_OK)
        return st;
    repo->dpool.free[repo->dpool.nfree++] = c;
    repo->dpool.live++;
    return MEMO_OK;
}

void memop_db_close(memo_repo *repo)
{
    memop_pool *p = &repo->dpool;
    for (size_t i = 0; i < p->nfree; i++)
        dconn_free(p->free[i]);
    p->nfree = 0;
    memop_pool_destroy(p);
}
