#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/wait.h>
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

static redisContext *redis;
static PGconn *pg;

static void close_all(void)
{
    redisFree(redis);
    PQfinish(pg);
}

redisContext *test_redis(void)
{
    if (redis)
        return redis;
    const char *url = test_env("REDIS_URL");
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
    redisFree(redis);
    redis = NULL;
}

redisReply *test_redis_cmd(const char *fmt, ...)
{
    va_list ap;
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
    snprintf(line, sizeof line, "\"%s/tests/servers.sh\" %s \"%s\"", test_env("MEMO_TOP"), cmd,
             test_env("MEMO_TEST_SERVERS_DIR"));
    if (system(line) != 0)
        fail_msg("tests/servers.sh %s failed", cmd);
    if (strncmp(cmd, "redis", 5) == 0)
        test_redis_reconnect();
}

int test_redis_pid(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/redis.pid", test_env("MEMO_TEST_SERVERS_DIR"));
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0)
        fail_msg("cannot read %s", path);
    fclose(f);
    return pid;
}

long long test_redis_calls(const char *command)
{
    redisReply *r = test_redis_cmd("INFO commandstats");
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", command);
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, needle) : NULL;
    long long n = p ? atoll(p + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
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

long long test_redis_pttl(const char *key)
{
    redisReply *r = test_redis_cmd("PTTL %s", key);
    long long t = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return t;
}

long test_redis_count(const char *pattern)
{
    long n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = test_redis_cmd("SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        n += (long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
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

void test_reset(const char *const *tables)
{
    for (; tables && *tables; tables++) {
        char sql[256];
        snprintf(sql, sizeof sql, "TRUNCATE \"%s\" RESTART IDENTITY CASCADE", *tables);
        test_sql(sql);
    }
    freeReplyObject(test_redis_cmd("FLUSHDB"));
}

memo_repo *test_open(const memo_config *over)
{
    memo_config cfg = {0};
    if (over)
        cfg = *over;
    if (!cfg.redis_url)
        cfg.redis_url = test_env("REDIS_URL");
    if (!cfg.database_url)
        cfg.database_url = test_env("DATABASE_URL");
    memo_error err;
    memo_repo *repo = NULL;
    memo_status st = memo_open(&repo, &cfg, &err);
    if (st != MEMO_OK)
        fail_msg("memo_open: %s: %s", memo_status_str(st), err.message);
    return repo;
}

long long test_stat(memo_repo *repo, const char *entity, const char *counter)
{
    char *s = memo_stats_json(repo);
    assert_non_null(s);
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    free(s);
    assert_non_null(j);
    json_t *v = json_object_get(json_object_get(json_object_get(j, "entities"), entity),
                                counter);
    long long n = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

const char *test_schemas_dir(void)
{
    const char *d = getenv("MEMO_SCHEMAS_DIR");
    return d && *d ? d : "build/schemas";
}

int test_run(const char *const *argv, const char *input, char **out)
{
    int in[2], outp[2];
    if (pipe(in) != 0 || pipe(outp) != 0)
        fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        close(in[0]);
        close(in[1]);
        close(outp[0]);
        close(outp[1]);
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    if (input) {
        size_t n = strlen(input), done = 0;
        while (done < n) {
            ssize_t w = write(in[1], input + done, n - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
    }
    close(in[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(outp[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(outp[0]);
    if (buf)
        buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void test_metric(const char *name, long ops, long stale, long failed, long degraded,
                 double recovery_ms)
{
    printf("metric %s: ops=%ld stale=%ld failed=%ld degraded=%ld recovery_ms=%.0f\n", name, ops,
           stale, failed, degraded, recovery_ms);
    const char *path = getenv("MEMO_METRICS");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "%s %ld %ld %ld %ld %.0f\n", name, ops, stale, failed, degraded, recovery_ms);
        fclose(f);
    }
}
