/* What every memo test includes: cmocka (with the headers cmocka 1.1 needs
 * first) and helpers for the private servers of tests/servers.sh. */
#ifndef MEMO_TEST_H
#define MEMO_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "memo/memo.h"

/* An environment variable the test cannot run without: fails the test with
 * a message naming it (run through `make check`, which sets them). */
const char *test_env(const char *name);

/* A Redis connection and a PostgreSQL connection to the private servers,
 * for looking behind the library's back. Opened once, closed at exit. */
redisContext *test_redis(void);
PGconn *test_pg(void);

/* Runs a Redis command (printf-style, hiredis format); the reply must be freed. */
redisReply *test_redis_cmd(const char *fmt, ...);
/* The string at key, malloc'd, or NULL when the key does not exist. */
char *test_redis_get(const char *key);
bool test_redis_exists(const char *key);
long long test_redis_pttl(const char *key);
/* Number of keys matching a pattern (SCAN). */
long test_redis_count(const char *pattern);

/* Runs SQL, failing the test on error. */
void test_sql(const char *sql);
/* A single value of a query as a malloc'd string, NULL for SQL NULL. */
char *test_sql_value(const char *sql);
/* The same with one text parameter $1, so hostile values stay data. */
char *test_sql_value_param(const char *sql, const char *param);
/* Applies a .sql file (twice is harmless). */
void test_sql_file(const char *path);

/* Empties the given tables (RESTART IDENTITY, CASCADE) and Redis. */
void test_reset(const char *const *tables);

/* Opens a repository on the private servers with `cfg` overrides applied
 * (NULL: defaults). */
memo_repo *test_open(const memo_config *cfg);

/* One counter of memo_stats_json for "schema.entity". */
long long test_stat(memo_repo *, const char *entity, const char *counter);

/* The private servers, for fault tests: runs tests/servers.sh CMD (redis-start,
 * redis-stop, pg-start, pg-stop) on this run's servers; fails the test if it fails. */
void test_servers(const char *cmd);
/* The redis-server's PID, to signal it (SIGKILL, SIGSTOP, SIGCONT). */
int test_redis_pid(void);
/* Drops the helper connection so the next command reconnects (after a restart). */
void test_redis_reconnect(void);
/* Calls of a Redis command since its start, from INFO commandstats ("del"). */
long long test_redis_calls(const char *command);
/* A string member of memo_stats_json's "redis" object, malloc'd. */
char *test_redis_state(memo_repo *, const char *member);
/* Wall-clock milliseconds, monotonic. */
double test_now_ms(void);

/* Runs argv (the PATH is searched) with `input` (may be NULL) on its stdin.
 * Returns its exit status (-1 if a signal ended it); its stdout, malloc'd,
 * in *out when out is not NULL. stderr passes through. */
int test_run(const char *const *argv, const char *input, char **out);

/* One line of a fault or race test's outcome, printed and, under make
 * torture, appended to $MEMO_METRICS for tests/torture-report.sh. */
void test_metric(const char *name, long ops, long stale, long failed, long degraded,
                 double recovery_ms);

/* The generated files' directory (build/schemas), from MEMO_SCHEMAS_DIR. */
const char *test_schemas_dir(void);

#endif
