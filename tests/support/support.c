/* Helpers for the private servers of tests/servers.sh, declared and
 * described in test.h. */
#define _DEFAULT_SOURCE 1 /* usleep */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

const char *test_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set: run the tests with `make check` (tests/with-servers.sh)",
                 name);
    return v;
}

/* v (malloc'd, freed here) is the string want; want NULL: v is NULL. */
static void assert_value(char *v, const char *want)
{
    if (!want) {
        assert_null(v);
    } else {
        assert_non_null(v);
        assert_string_equal(v, want);
    }
    free(v);
}

/* The JSON of text (malloc'd, freed here); fails the test unless it parses. */
static json_t *json_of(char *text)
{
    assert_non_null(text);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    free(text);
    if (!j)
        fail_msg("not JSON: %s", e.text);
    return j;
}

static redisContext *redis;
static PGconn *pg;

/* On a Redis Cluster (REDIS_URL names several nodes: tests/on-cluster.sh),
 * a connection per node: a command follows MOVED and ASK, and the keyless
 * commands the tests send (FLUSHDB, KEYS, SCAN, INFO) go to every master. */
enum { NODES_MAX = 16 };
static struct {
    char host[64];
    int port;
    redisContext *ctx;
    bool master;
} nodes[NODES_MAX];
static int nnodes;

static void close_nodes(void)
{
    for (int i = 0; i < nnodes; i++)
        redisFree(nodes[i].ctx);
    nnodes = 0;
    redis = NULL;
}

static void close_all(void)
{
    if (nnodes)
        close_nodes();
    else
        redisFree(redis);
    PQfinish(pg);
}

bool test_on_cluster(void)
{
    const char *url = getenv("REDIS_URL");
    return url && strchr(url, ',');
}

static int node_index(const char *host, int port)
{
    for (int i = 0; i < nnodes; i++)
        if (nodes[i].port == port && strcmp(nodes[i].host, host) == 0)
            return i;
    if (nnodes == NODES_MAX)
        fail_msg("more than %d cluster nodes", NODES_MAX);
    snprintf(nodes[nnodes].host, sizeof nodes[nnodes].host, "%s", host);
    nodes[nnodes].port = port;
    return nnodes++;
}

static redisContext *node_ctx(int i)
{
    if (!nodes[i].ctx) {
        nodes[i].ctx = redisConnect(nodes[i].host, nodes[i].port);
        if (!nodes[i].ctx || nodes[i].ctx->err)
            fail_msg("cannot connect to cluster node %s:%d", nodes[i].host,
                     nodes[i].port);
    }
    return nodes[i].ctx;
}

/* The masters, from CLUSTER SLOTS of any node the URL names. */
static void cluster_connect(const char *url)
{
    const char *p = url + strlen("redis://");
    while (*p && *p != '/') {
        char host[64];
        int port, used = 0;
        if (sscanf(p, "%63[^:]:%d%n", host, &port, &used) != 2)
            fail_msg("cannot read REDIS_URL %s", url);
        node_index(host, port);
        p += used;
        if (*p == ',')
            p++;
    }
    int seeds = nnodes;
    for (int i = 0; i < seeds; i++) {
        redisReply *r = redisCommand(node_ctx(i), "CLUSTER SLOTS");
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            continue;
        }
        for (int k = 0; k < nnodes; k++)
            nodes[k].master = false;
        for (size_t k = 0; k < r->elements; k++) {
            const redisReply *m = r->element[k]->element[2];
            nodes[node_index(m->element[0]->str, (int)m->element[1]->integer)].master =
                true;
        }
        freeReplyObject(r);
        redis = node_ctx(i);
        return;
    }
    fail_msg("no node of the cluster %s answered", url);
}

redisContext *test_redis(void)
{
    if (redis)
        return redis;
    const char *url = test_env("REDIS_URL");
    if (test_on_cluster()) {
        if (!pg)
            atexit(close_all);
        cluster_connect(url);
        return redis;
    }
    char host[64];
    int port, db = 0;
    if (sscanf(url, "redis://%63[^:]:%d/%d", host, &port, &db) < 2)
        fail_msg("cannot read REDIS_URL %s", url);
    redis = redisConnect(host, port);
    if (!redis || redis->err)
        fail_msg("cannot connect to %s", url);
    if (db) {
        redisReply *r = redisCommand(redis, "SELECT %d", db);
        freeReplyObject(r);
    }
    if (!pg)
        atexit(close_all);
    return redis;
}

PGconn *test_pg(void)
{
    if (pg && PQstatus(pg) != CONNECTION_OK)
        PQreset(pg); /* PostgreSQL restarted under a fault test */
    if (pg)
        return pg;
    pg = PQconnectdb(test_env("DATABASE_URL"));
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("cannot connect to the database: %s", PQerrorMessage(pg));
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    if (!redis)
        atexit(close_all);
    return pg;
}

void test_redis_reconnect(void)
{
    if (nnodes) {
        close_nodes();
        return;
    }
    redisFree(redis);
    redis = NULL;
}

static redisReply *node_cmd(int i, const char *cmd, size_t len, bool asking)
{
    redisContext *c = node_ctx(i);
    if (asking)
        freeReplyObject(redisCommand(c, "ASKING"));
    redisReply *r = NULL;
    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK ||
        redisGetReply(c, (void **)&r) != REDIS_OK || !r)
        fail_msg("Redis %s:%d: %s", nodes[i].host, nodes[i].port, c->errstr);
    return r;
}

/* One command on a cluster: keyless ones the tests send to every master
 * (KEYS' arrays joined), the others where MOVED or ASK say. */
static redisReply *cluster_cmd(const char *cmd, size_t len)
{
    test_redis();
    /* the command's name: "*N\r\n$L\r\nNAME\r\n" */
    const char *name = strchr(strchr(cmd, '\n') + 1, '\n') + 1;
    bool every = strncasecmp(name, "FLUSHDB", 7) == 0 ||
                 strncasecmp(name, "KEYS", 4) == 0 ||
                 strncasecmp(name, "FLUSHALL", 8) == 0;
    if (every) {
        redisReply *all = NULL;
        for (int i = 0; i < nnodes; i++) {
            if (!nodes[i].master)
                continue;
            redisReply *r = node_cmd(i, cmd, len, false);
            if (!all || r->type != REDIS_REPLY_ARRAY || all->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(all);
                all = r;
                continue;
            }
            if (r->elements == 0) {
                freeReplyObject(r);
                continue;
            }
            redisReply **el =
                realloc(all->element, (all->elements + r->elements) * sizeof *el);
            if (!el)
                fail_msg("out of memory");
            memcpy(el + all->elements, r->element, r->elements * sizeof *el);
            all->element = el;
            all->elements += r->elements;
            r->elements = 0; /* its elements are all's now */
            freeReplyObject(r);
        }
        return all;
    }
    int at = 0;
    for (int i = 0; i < nnodes; i++)
        if (nodes[i].ctx == redis)
            at = i;
    bool asking = false;
    for (int hop = 0; hop < 5; hop++) {
        redisReply *r = node_cmd(at, cmd, len, asking);
        bool moved = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0;
        asking = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0;
        if (!moved && !asking)
            return r;
        char host[64];
        int slot, port;
        if (sscanf(strchr(r->str, ' ') + 1, "%d %63[^:]:%d", &slot, host, &port) != 3)
            fail_msg("Redis: %s", r->str);
        freeReplyObject(r);
        at = node_index(host, port);
    }
    fail_msg("Redis Cluster: too many redirections");
    return NULL;
}

redisReply *test_redis_cmd(const char *fmt, ...)
{
    va_list ap;
    if (test_on_cluster()) {
        char *cmd;
        va_start(ap, fmt);
        int len = redisvFormatCommand(&cmd, fmt, ap);
        va_end(ap);
        if (len < 0)
            fail_msg("cannot format %s", fmt);
        redisReply *r = cluster_cmd(cmd, (size_t)len);
        redisFreeCommand(cmd);
        return r;
    }
    va_start(ap, fmt);
    redisReply *r = redisvCommand(test_redis(), fmt, ap);
    va_end(ap);
    if (!r) {
        /* the server may have restarted under a fault test: once more */
        test_redis_reconnect();
        va_start(ap, fmt);
        r = redisvCommand(test_redis(), fmt, ap);
        va_end(ap);
    }
    if (!r)
        fail_msg("Redis: %s", test_redis()->errstr);
    return r;
}

void test_servers(const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof line, "\"%s/tests/servers.sh\" %s \"%s\"", test_env("MEMO_TOP"),
             cmd, test_env("MEMO_TEST_SERVERS_DIR"));
    if (system(line) != 0)
        fail_msg("tests/servers.sh %s failed", cmd);
    if (strncmp(cmd, "redis", 5) == 0)
        test_redis_reconnect();
}

int test_redis_pid(void)
{
    return test_server_pid("redis.pid");
}

int test_server_pid(const char *pidfile)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", test_env("MEMO_TEST_SERVERS_DIR"), pidfile);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0)
        fail_msg("cannot read %s", path);
    fclose(f);
    return pid;
}

void test_servers_restore(void)
{
    /* not test_redis_pid: a test that failed half-way may have left no pidfile */
    char path[512];
    snprintf(path, sizeof path, "%s/redis.pid", test_env("MEMO_TEST_SERVERS_DIR"));
    FILE *f = fopen(path, "r");
    if (f) {
        int pid;
        if (fscanf(f, "%d", &pid) == 1)
            kill(pid, SIGCONT);
        fclose(f);
    }
    test_servers("redis-start");
    test_servers("pg-start");
}

long long test_redis_info(const char *section, const char *field)
{
    long long n = 0;
    test_redis();
    /* on a cluster, summed over the masters */
    for (int i = 0; i < (nnodes ? nnodes : 1); i++) {
        if (nnodes && !nodes[i].master)
            continue;
        redisReply *r = nnodes ? redisCommand(node_ctx(i), "INFO %s", section)
                               : test_redis_cmd("INFO %s", section);
        const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, field) : NULL;
        n += p ? atoll(p + strlen(field)) : 0;
        freeReplyObject(r);
    }
    return n;
}

long long test_redis_calls(const char *command)
{
    char field[64];
    snprintf(field, sizeof field, "cmdstat_%s:calls=", command);
    return test_redis_info("commandstats", field);
}

char *test_redis_state(memo_repo *repo, const char *member)
{
    char *s = memo_stats_json(repo);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    json_t *v = json_object_get(json_object_get(j, "redis"), member);
    char buf[64] = "";
    if (json_is_string(v))
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    json_decref(j);
    return strdup(buf);
}

void test_assert_redis_state(memo_repo *repo, const char *member, const char *want)
{
    assert_value(test_redis_state(repo, member), want);
}

double test_wait_breaker(memo_repo *repo, const char *state, double limit_ms)
{
    double t0 = test_now_ms();
    while (test_now_ms() - t0 < limit_ms) {
        char *s = test_redis_state(repo, "breaker");
        bool done = strcmp(s, state) == 0;
        free(s);
        if (done)
            return test_now_ms() - t0;
        usleep(5000);
    }
    return -1;
}

bool test_torture(void)
{
    const char *t = getenv("MEMO_TORTURE");
    return t && atoi(t) > 0;
}

double test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

char *test_redis_get(const char *key)
{
    redisReply *r = test_redis_cmd("GET %s", key);
    char *s = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return s;
}

bool test_redis_exists(const char *key)
{
    redisReply *r = test_redis_cmd("EXISTS %s", key);
    bool e = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return e;
}

bool test_redis_leased(const char *key)
{
    char *v = test_redis_get(key);
    bool leased = v && strncmp(v, "~lease:", 7) == 0;
    free(v);
    return leased;
}

long long test_redis_pttl(const char *key)
{
    redisReply *r = test_redis_cmd("PTTL %s", key);
    long long t = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return t;
}

void test_assert_redis_value(const char *key, const char *want)
{
    assert_value(test_redis_get(key), want);
}

void test_assert_cached_member(const char *key, const char *member, const char *want)
{
    json_t *j = json_of(test_redis_get(key));
    assert_true(json_is_object(j));
    json_t *m = json_object_get(j, member);
    assert_true(json_is_string(m));
    assert_string_equal(json_string_value(m), want);
    json_decref(j);
}

void test_doctor(const char *key, const char *member, const char *value)
{
    json_t *j = json_of(test_redis_get(key));
    assert_int_equal(json_object_set_new(j, member, json_string(value)), 0);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    redisReply *r = test_redis_cmd("SET %s %s KEEPTTL", key, s);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    free(s);
}

void test_assert_pttl(const char *key, long long lo, long long hi)
{
    long long t = test_redis_pttl(key);
    if (t < lo - 2000 || t > hi)
        fail_msg("PTTL %s = %lld, not in [%lld, %lld]", key, t, lo, hi);
}

bool test_redis_gone(const char *key)
{
    double t0 = test_now_ms();
    while (test_redis_exists(key) && test_now_ms() - t0 < 5000)
        usleep(10000);
    return !test_redis_exists(key);
}

long test_redis_count(const char *pattern)
{
    long n = 0;
    test_redis();
    /* on a cluster, every master's keys */
    for (int i = 0; i < (nnodes ? nnodes : 1); i++) {
        if (nnodes && !nodes[i].master)
            continue;
        redisContext *c = nnodes ? node_ctx(i) : test_redis();
        char cursor[32] = "0";
        do {
            redisReply *r =
                redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
            if (!r || r->type != REDIS_REPLY_ARRAY)
                fail_msg("SCAN: %s", r ? r->str : c->errstr);
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            n += (long)r->element[1]->elements;
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    return n;
}

void test_sql(const char *sql)
{
    PGresult *res = PQexec(test_pg(), sql);
    if (PQstatus(pg) != CONNECTION_OK) { /* restarted: once more */
        PQclear(res);
        PQreset(pg);
        res = PQexec(pg, sql);
    }
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        PQclear(res);
        fail_msg("SQL failed: %s: %s", sql, msg);
    }
    PQclear(res);
}

/* One value of a result, checked: the string, NULL for SQL NULL. */
static char *one_value(PGresult *res, const char *sql)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        PQclear(res);
        fail_msg("SQL failed: %s: %s", sql, msg);
    }
    char *v = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

char *test_sql_value(const char *sql)
{
    PGresult *res = PQexec(test_pg(), sql);
    if (PQstatus(pg) != CONNECTION_OK) { /* restarted: once more */
        PQclear(res);
        PQreset(pg);
        res = PQexec(pg, sql);
    }
    return one_value(res, sql);
}

char *test_sql_value_param(const char *sql, const char *param)
{
    const char *values[] = {param};
    return one_value(PQexecParams(test_pg(), sql, 1, NULL, values, NULL, NULL, 0), sql);
}

void test_sql_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    test_sql(buf);
}

void test_schema_sql(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.sql", test_schemas_dir(), name);
    test_sql_file(path);
}

void test_assert_sql(const char *sql, const char *want)
{
    assert_non_null(want);
    assert_value(test_sql_value(sql), want);
}

void test_assert_sql_param(const char *sql, const char *param, const char *want)
{
    assert_value(test_sql_value_param(sql, param), want);
}

void test_reset(const char *const *tables)
{
    for (; tables && *tables; tables++) {
        char sql[256];
        snprintf(sql, sizeof sql, "TRUNCATE \"%s\" RESTART IDENTITY CASCADE", *tables);
        test_sql(sql);
    }
    freeReplyObject(test_redis_cmd("FLUSHDB"));
}

/* over's settings (NULL: none), on the private servers unless it names
 * others; a URL the environment lacks stays NULL. */
static memo_config on_servers(const memo_config *over)
{
    memo_config cfg = {0};
    if (over)
        cfg = *over;
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!cfg.redis_url && redis_url && *redis_url)
        cfg.redis_url = redis_url;
    if (!cfg.database_url && db_url && *db_url)
        cfg.database_url = db_url;
    /* behind a transaction-mode pooler (tests/through-pgbouncer.sh), as a
     * service there would be configured */
    const char *unnamed = getenv("MEMO_DB_UNNAMED");
    if (unnamed && strcmp(unnamed, "1") == 0)
        cfg.flags |= MEMO_DB_UNNAMED;
    return cfg;
}

memo_repo *test_open(const memo_config *over)
{
    memo_config cfg = on_servers(over);
    if (!cfg.redis_url)
        cfg.redis_url = test_env("REDIS_URL"); /* fails the test, saying why */
    if (!cfg.database_url)
        cfg.database_url = test_env("DATABASE_URL");
    memo_error err;
    memo_repo *repo = NULL;
    memo_status st = memo_open(&repo, &cfg, &err);
    if (st != MEMO_OK)
        fail_msg("memo_open: %s: %s", memo_status_str(st), err.message);
    return repo;
}

int test_group_close(void **state)
{
    memo_close(*state);
    *state = NULL;
    return 0;
}

int test_group_blog_tables(void **state)
{
    (void)state;
    test_schema_sql("blog");
    return 0;
}

memo_repo *test_child_open(const memo_config *over)
{
    memo_config cfg = on_servers(over);
    memo_error err;
    memo_repo *r = NULL;
    if (memo_open(&r, &cfg, &err) != MEMO_OK) {
        fprintf(stderr, "child: memo_open: %s\n", err.message);
        _exit(3);
    }
    return r;
}

long long test_stat(memo_repo *repo, const char *entity, const char *counter)
{
    json_t *j = json_of(memo_stats_json(repo));
    json_t *v =
        json_object_get(json_object_get(json_object_get(j, "entities"), entity), counter);
    long long n = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

long test_stale_rows(memo_repo *repo, const memo_entity_desc *desc, const int64_t *ids,
                     size_t n)
{
    long stale = 0;
    for (size_t i = 0; i < n; i++) {
        memo_check_result r;
        memset(&r, 0, sizeof r);
        if (memo_check(repo, desc, &ids[i], NULL, NULL, &r) != MEMO_OK)
            fail_msg("memo_check: %s", memo_last_error(repo));
        stale += !r.fresh;
    }
    return stale;
}

const char *test_schemas_dir(void)
{
    const char *d = getenv("MEMO_SCHEMAS_DIR");
    return d && *d ? d : "build/schemas";
}

void test_metric(const char *name, long ops, long stale, long failed, long degraded,
                 double recovery_ms)
{
    printf("metric %s: ops=%ld stale=%ld failed=%ld degraded=%ld recovery_ms=%.0f\n",
           name, ops, stale, failed, degraded, recovery_ms);
    const char *path = getenv("MEMO_METRICS");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "%s %ld %ld %ld %ld %.0f\n", name, ops, stale, failed, degraded,
                recovery_ms);
        fclose(f);
    }
}
