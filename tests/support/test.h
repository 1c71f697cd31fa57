/* What every memo test includes: cmocka (with the headers cmocka 1.1 needs
 * first) and helpers for the private servers of tests/servers.sh
 * (support.c) and for child processes (process.c). The integration tests
 * have two more headers: schema_keys.h (Redis keys recomputed) and
 * wiki_fixture.h (the wiki tests' rows and checks). */
#ifndef MEMO_TEST_H
#define MEMO_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <sys/types.h>

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

/* The suite runs against a Redis Cluster (tests/on-cluster.sh): REDIS_URL
 * names several nodes. */
bool test_on_cluster(void);
/* Runs a Redis command (printf-style, hiredis format); the reply must be
 * freed. On a cluster it goes where its key lives, and FLUSHDB, FLUSHALL
 * and KEYS go to every master. */
redisReply *test_redis_cmd(const char *fmt, ...);
/* The string at key, malloc'd, or NULL when the key does not exist. */
char *test_redis_get(const char *key);
bool test_redis_exists(const char *key);
long long test_redis_pttl(const char *key);
/* The key holds a filler's lease (memo's mark and a token), not a value. */
bool test_redis_leased(const char *key);
/* Number of keys matching a pattern (SCAN). */
long test_redis_count(const char *pattern);

/* The string at key is want (the key exists). */
void test_assert_redis_value(const char *key, const char *want);
/* The value at key is a cached row: a JSON object whose `member` is the
 * string `want` (the slug of a page, for instance). */
void test_assert_cached_member(const char *key, const char *member, const char *want);
/* Rewrites a string member of the row cached at key behind the library's
 * back, keeping the TTL: a later hit must return exactly this. */
void test_doctor(const char *key, const char *member, const char *value);
/* PTTL of key within [lo - 2 s of elapsed time, hi]. */
void test_assert_pttl(const char *key, long long lo, long long hi);
/* Waits (5 s at most) until key is gone; true if it went. */
bool test_redis_gone(const char *key);

/* Runs SQL, failing the test on error. */
void test_sql(const char *sql);
/* A single value of a query as a malloc'd string, NULL for SQL NULL. */
char *test_sql_value(const char *sql);
/* The same with one text parameter $1, so hostile values stay data. */
char *test_sql_value_param(const char *sql, const char *param);
/* Applies a .sql file (twice is harmless). */
void test_sql_file(const char *path);
/* Applies the generated tables of a schema, build/schemas/<name>.sql. */
void test_schema_sql(const char *name);
/* The single value of sql is the string want (not SQL NULL). */
void test_assert_sql(const char *sql, const char *want);
/* The same with one text parameter $1; want NULL: the value is SQL NULL. */
void test_assert_sql_param(const char *sql, const char *param, const char *want);

/* Empties the given tables (RESTART IDENTITY, CASCADE) and Redis. */
void test_reset(const char *const *tables);

/* Opens a repository on the private servers with `cfg` overrides applied
 * (NULL: defaults). */
memo_repo *test_open(const memo_config *cfg);
/* The same in a child process: a repository of its own (never the
 * parent's). A child must not call cmocka: if it cannot open, it says why
 * on stderr and exits with status 3. */
memo_repo *test_child_open(const memo_config *cfg);
/* A cmocka group teardown: closes the repository the group setup left in
 * *state (`repo = *state = test_open(...)`). */
int test_group_close(void **state);
/* A cmocka group setup for the tests that open their own repositories:
 * applies the blog schema's tables. */
int test_group_blog_tables(void **state);

/* One counter of memo_stats_json for "schema.entity". */
long long test_stat(memo_repo *, const char *entity, const char *counter);
/* How many of the n rows of `ids` (primary keys) memo_check finds cached
 * and different from PostgreSQL; a check that fails fails the test. */
long test_stale_rows(memo_repo *, const memo_entity_desc *, const int64_t *ids, size_t n);

/* The private servers, for fault tests: runs tests/servers.sh CMD (redis-start,
 * redis-stop, pg-start, pg-stop) on this run's servers; fails the test if it fails. */
void test_servers(const char *cmd);
/* The redis-server's PID, to signal it (SIGKILL, SIGSTOP, SIGCONT). */
int test_redis_pid(void);
/* The PID in a pid file of this run's servers directory ("redis.pid",
 * "cluster/PORT/redis.pid"). */
int test_server_pid(const char *pidfile);
/* Whatever a fault test did to the servers, the next test finds them
 * running: a stopped Redis continued, both servers started if down. */
void test_servers_restore(void);
/* Drops the helper connection so the next command reconnects (after a restart). */
void test_redis_reconnect(void);
/* The number after `field` in INFO `section` ("stats",
 * "total_net_output_bytes:"); 0 when the field is not there. */
long long test_redis_info(const char *section, const char *field);
/* Calls of a Redis command since its start, from INFO commandstats ("del"). */
long long test_redis_calls(const char *command);
/* A string member of memo_stats_json's "redis" object, malloc'd. */
char *test_redis_state(memo_repo *, const char *member);
/* That member reads want ("breaker" "closed", "pending" "3"). */
void test_assert_redis_state(memo_repo *, const char *member, const char *want);
/* Waits for the breaker to read `state`; milliseconds it took, or -1 when
 * it did not within limit_ms. */
double test_wait_breaker(memo_repo *, const char *state, double limit_ms);
/* Wall-clock milliseconds, monotonic. */
double test_now_ms(void);
/* True under make torture (MEMO_TORTURE=1): fault and race tests run longer. */
bool test_torture(void);

/* ------------------------------------------------ processes (process.c) */

/* Runs argv (the PATH is searched) with `input` (may be NULL) on its stdin.
 * Returns its exit status (-1 if a signal ended it); its stdout, malloc'd,
 * in *out when out is not NULL. stderr passes through. */
int test_run(const char *const *argv, const char *input, char **out);
/* fork, with stdio flushed first (else the child prints the parent's
 * buffered output again); fails the test if it cannot. */
pid_t test_fork(void);
/* Starts this test binary again as a child, with argv (argv[0] its name,
 * NULL-terminated): a fork of a process with threads must not go on running
 * library code. in_fd (or -1: the parent's stdin) becomes its stdin, fd3
 * (or -1) its fd 3; it inherits no other descriptor above stderr. Returns
 * its PID. */
pid_t test_spawn_self(const char *const *argv, int in_fd, int fd3);
/* Waits for n children; fails the test unless each exited with status 0. */
void test_wait_children(const pid_t *pids, int n);
/* Zeroed memory shared with the children forked after (counters a run's
 * children report in); test_shared_free unmaps it. */
void *test_shared_new(size_t size);
void test_shared_free(void *shared, size_t size);

/* One line of a fault or race test's outcome, printed and, under make
 * torture, appended to $MEMO_METRICS for tests/torture-report.sh. */
void test_metric(const char *name, long ops, long stale, long failed, long degraded,
                 double recovery_ms);

/* The generated files' directory (build/schemas), from MEMO_SCHEMAS_DIR. */
const char *test_schemas_dir(void);

#endif
