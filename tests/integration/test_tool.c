/* The memo command on the private servers, with the blog schema: every
 * command run as a user would, its output parsed (--json), not eyeballed.
 * Also: statistics summed across two processes, a killed one ageing out,
 * and the Prometheus text checked by promtool. */
#define _DEFAULT_SOURCE 1
#include "test.h"
#include "schema_keys.h"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blog.h"

static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};
static char schema[512];

enum { USERS = 40 };

/* memo --schema schemas/blog.memo ARGS... --json, parsed; exit status in *rc. */
static json_t *memo_json(int *rc, const char *a1, const char *a2, const char *a3,
                         const char *a4, const char *a5)
{
    const char *argv[12] = {
        test_env("MEMO_TOOL"), "--schema", schema, a1, a2, a3, a4, a5};
    int n = 3;
    while (n < 8 && argv[n])
        n++;
    argv[n++] = "--json";
    argv[n] = NULL;
    char *out;
    int status = test_run(argv, NULL, &out);
    if (rc)
        *rc = status;
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    if (!j)
        fail_msg("memo %s: not JSON (%s): %s", a1, e.text, out);
    free(out);
    return j;
}

/* memo --schema schemas/blog.memo ARGS... (NULL-terminated): the exit
 * status, its stdout in *out; with merge, its stderr too (for messages). */
static int tool(char **out, bool merge, ...)
{
    const char *sh = merge ? "exec \"$0\" \"$@\" 2>&1" : "exec \"$0\" \"$@\"";
    const char *argv[32] = {"sh", "-c", sh, test_env("MEMO_TOOL"), "--schema", schema};
    int n = 6;
    va_list ap;
    va_start(ap, merge);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return test_run(argv, NULL, out);
}

static memo_repo *repo;

static void seed(void)
{
    test_reset(tables);
    char slug[] = "t", name[] = "T", plan[] = "p";
    blog_org o = {.slug = slug, .name = name, .plan = plan};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    for (int i = 0; i < USERS; i++) {
        char email[32], uname[32];
        snprintf(email, sizeof email, "u%d@t", i);
        snprintf(uname, sizeof uname, "User %02d", i);
        blog_user u = {.email = email, .name = uname, .org_id = o.id};
        assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
    }
}

static void ping(void **state)
{
    (void)state;
    seed();
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, 1, &u), MEMO_OK);
    blog_user_clear(&u);
    /* an entry written by an older shape of the schema */
    freeReplyObject(test_redis_cmd("SET blog:{user:1}:0badf00d old"));
    int rc;
    json_t *j = memo_json(&rc, "ping", NULL, NULL, NULL, NULL);
    assert_int_equal(rc, 0);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(j, "redis"), "version")),
               "7."));
    assert_true(json_real_value(json_object_get(json_object_get(j, "redis"), "rtt_ms")) >
                0);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(j, "postgresql"), "version")),
        "15"));
    json_t *s = json_object_get(j, "schema");
    assert_int_equal(json_integer_value(json_object_get(s, "scanned")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "older")), 1);
    assert_string_equal(json_string_value(json_object_get(s, "example")),
                        "blog:{user:1}:0badf00d");
    json_decref(j);
}

static void get(void **state)
{
    (void)state;
    seed();
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, 3, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(repo, "u4@t", &u), MEMO_OK);
    blog_user_clear(&u);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, 1, &l), MEMO_OK);
    blog_user_list_clear(&l);

    int rc;
    json_t *j = memo_json(&rc, "get", "user", "3", "email=u4@t", "by_org=1");
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(j), 3);
    json_t *row = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(row, "redis_key")),
                        test_user_key(3));
    assert_true(
        json_equal(json_object_get(row, "cached"), json_object_get(row, "database")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(row, "cached"), "email")),
        "u2@t");
    assert_true(json_integer_value(json_object_get(row, "ttl_ms")) > 590000);
    assert_true(json_is_true(json_object_get(row, "agree")));
    json_t *look = json_array_get(j, 1);
    assert_int_equal(json_integer_value(json_object_get(look, "cached")),
                     5); /* u4 is id 5 */
    assert_true(json_is_true(json_object_get(look, "agree")));
    json_t *list = json_array_get(j, 2);
    assert_int_equal(json_array_size(json_object_get(list, "cached")), USERS);
    assert_true(
        json_equal(json_object_get(list, "cached"), json_object_get(list, "database")));
    json_decref(j);

    /* a cut list (101 posts, limit 100) keeps the key past its limit; the
     * database side is read the same way, and they agree */
    for (int i = 0; i < 101; i++) {
        blog_post p = {.author_id = 1, .title = (char *)"p", .body = (char *)"b"};
        assert_int_equal(blog_post_insert(repo, &p), MEMO_OK);
    }
    blog_post_list pl = {0};
    assert_int_equal(blog_post_by_author(repo, 1, &pl), MEMO_OK);
    assert_true(pl.more);
    blog_post_list_clear(&pl);
    j = memo_json(&rc, "get", "post", "1", "by_author=1", NULL);
    assert_int_equal(rc, 0);
    list = json_array_get(j, 1);
    assert_int_equal(json_array_size(json_object_get(list, "cached")), 101);
    assert_true(json_is_true(json_object_get(list, "agree")));
    json_decref(j);

    /* a cached row that differs from the database: reported, exit status 1 */
    char *v = test_redis_get(test_user_key(3));
    char *at = strstr(v, "User 02");
    assert_non_null(at);
    memcpy(at, "Stale!!", 7);
    freeReplyObject(test_redis_cmd("SET %s %s", test_user_key(3), v));
    free(v);
    j = memo_json(&rc, "get", "user", "3", NULL, NULL);
    assert_int_equal(rc, 1);
    assert_false(json_is_true(json_object_get(json_array_get(j, 0), "agree")));
    json_decref(j);
    /* a key not cached agrees with anything; a missing row is null on both */
    j = memo_json(&rc, "get", "user", "999", NULL, NULL);
    assert_int_equal(rc, 0);
    assert_true(json_is_null(json_object_get(json_array_get(j, 0), "database")));
    json_decref(j);
}

/* `memo get` on entries that are not plain values: no entry, a negative
 * entry (the row does not exist), a corrupt value (shown raw, escaped and
 * bounded; exit status 1), and a key argument that does not parse (status
 * 2, before any output). */
static void get_entries(void **state)
{
    (void)state;
    seed();
    /* every key is checked before anything is printed */
    char *out;
    assert_int_equal(tool(&out, false, "get", "user", "1", "abc", NULL), 2);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(tool(&out, false, "get", "user", "1", "nosuch=3", NULL), 2);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(
        tool(&out, false, "get", "user", "1", "email=u1@t", "by_org=x", NULL), 2);
    assert_string_equal(out, "");
    free(out);

    /* no entry, and a negative entry */
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, 999, &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "nobody@t", &u), MEMO_NOT_FOUND);
    int rc;
    json_t *j = memo_json(&rc, "get", "user", "998", "999", "email=nobody@t");
    assert_int_equal(rc, 0);
    json_t *none = json_array_get(j, 0), *neg = json_array_get(j, 1),
           *look = json_array_get(j, 2);
    assert_string_equal(json_string_value(json_object_get(none, "entry")), "none");
    assert_true(json_is_null(json_object_get(none, "cached")));
    assert_string_equal(json_string_value(json_object_get(neg, "entry")), "negative");
    assert_true(
        json_is_true(json_object_get(json_object_get(neg, "cached"), "missing_row")));
    assert_true(json_is_true(json_object_get(neg, "agree")));
    assert_string_equal(json_string_value(json_object_get(look, "entry")), "negative");
    assert_true(
        json_is_true(json_object_get(json_object_get(look, "cached"), "missing_row")));
    assert_true(json_is_true(json_object_get(look, "agree")));
    json_decref(j);
    assert_int_equal(tool(&out, false, "get", "user", "998", "999", NULL), 0);
    assert_non_null(strstr(out, "  cache     (no entry)\n"));
    assert_non_null(strstr(out, "  cache     negative: the row does not exist\n"));
    assert_non_null(strstr(out, "  database  (no row)\n"));
    free(out);
    /* a negative lookup entry while the row exists (written behind memo's back) */
    test_sql("UPDATE users SET email = 'nobody@t' WHERE id = 6");
    j = memo_json(&rc, "get", "user", "email=nobody@t", NULL, NULL);
    assert_int_equal(rc, 1);
    assert_false(json_is_true(json_object_get(json_array_get(j, 0), "agree")));
    json_decref(j);

    /* a corrupt row: its bytes, escaped and cut, not an empty row */
    char bad[1200];
    int n = snprintf(bad, sizeof bad, "{\"id\":3,\"name\":\"\033[31mred\r\"");
    memset(bad + n, 'x', 1000);
    bad[n + 1000] = '\0';
    freeReplyObject(test_redis_cmd("SET %s %s", test_user_key(3), bad));
    j = memo_json(&rc, "get", "user", "3", NULL, NULL);
    assert_int_equal(rc, 1);
    json_t *row = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(row, "entry")), "corrupt");
    json_t *cached = json_object_get(row, "cached");
    assert_true(json_is_true(json_object_get(cached, "corrupt")));
    assert_int_equal(json_integer_value(json_object_get(cached, "bytes")),
                     (long long)strlen(bad));
    const char *raw = json_string_value(json_object_get(cached, "raw"));
    assert_non_null(raw);
    assert_non_null(strstr(raw, "{\"id\":3,\"name\":\"\\x1b[31mred\\x0d\"xxx"));
    assert_true(strlen(raw) < 400);
    assert_non_null(strstr(raw, "..."));
    assert_false(json_is_true(json_object_get(row, "agree")));
    json_decref(j);
    assert_int_equal(tool(&out, false, "get", "user", "3", NULL), 1);
    assert_null(strchr(out, '\033'));
    assert_null(strchr(out, '\r'));
    assert_null(strstr(out, "\"id\":0"));
    assert_non_null(strstr(out, "  cache     corrupt ("));
    assert_non_null(strstr(out, "  raw       {\"id\":3,\"name\":\"\\x1b[31mred"));
    free(out);

    /* a corrupt lookup entry */
    assert_int_equal(blog_user_get_by_email(repo, "u4@t", &u), MEMO_OK);
    blog_user_clear(&u);
    j = memo_json(&rc, "get", "user", "email=u4@t", NULL, NULL);
    char key[256];
    snprintf(key, sizeof key, "%s",
             json_string_value(json_object_get(json_array_get(j, 0), "redis_key")));
    json_decref(j);
    freeReplyObject(test_redis_cmd("SET %s %s", key, "\"five\""));
    j = memo_json(&rc, "get", "user", "email=u4@t", NULL, NULL);
    assert_int_equal(rc, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "entry")),
                        "corrupt");
    json_decref(j);
}

static void flush(void **state)
{
    (void)state;
    seed();
    for (int64_t id = 1; id <= USERS; id++) {
        blog_user u = {0};
        assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
        blog_user_clear(&u);
    }
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, 1, &l), MEMO_OK);
    blog_user_list_clear(&l);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, 1, &o), MEMO_OK);
    blog_org_clear(&o);

    int rc;
    json_t *j = memo_json(&rc, "flush", "user", "--list", "by_org", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "blog.user")), 1);
    json_decref(j);
    assert_int_equal(test_redis_count("blog:{user:*"), USERS);

    j = memo_json(&rc, "flush", "user", NULL, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "blog.user")), USERS);
    json_decref(j);
    assert_int_equal(test_redis_count("blog:{user:*"), 0);
    assert_int_equal(test_redis_count("blog:{org:*"), 1); /* others untouched */

    j = memo_json(&rc, "flush", "--all", NULL, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "blog.org")), 1);
    json_decref(j);
    assert_int_equal(test_redis_count("blog:*"), 0);
}

static void warm(void **state)
{
    (void)state;
    seed();
    int rc;
    json_t *j = memo_json(&rc, "warm", "user", "--top", "10", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "requested")), 10);
    assert_int_equal(json_integer_value(json_object_get(j, "filled")), 10);
    assert_int_equal(json_integer_value(json_object_get(j, "already_cached")), 0);
    json_decref(j);
    /* the highest keys: 31..40 */
    assert_true(test_redis_exists(test_user_key(40)));
    assert_true(test_redis_exists(test_user_key(31)));
    assert_false(test_redis_exists(test_user_key(30)));

    char path[] = "/tmp/memo-ids-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char ids[] = "1\n2\n40\n777\n";
    assert_int_equal(write(fd, ids, sizeof ids - 1), (ssize_t)(sizeof ids - 1));
    close(fd);
    j = memo_json(&rc, "warm", "user", "--ids", path, NULL);
    unlink(path);
    assert_int_equal(json_integer_value(json_object_get(j, "requested")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "found")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "missing")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "already_cached")),
                     1); /* 40 */
    assert_int_equal(json_integer_value(json_object_get(j, "filled")),
                     3); /* 1, 2, null 777 */
    json_decref(j);
    test_assert_redis_value(test_user_key(777), "null");
}

/* warm --ids: a bad line is named by FILE:LINE before anything is warmed;
 * a line is read whole, however long. */
static void warm_ids_file(void **state)
{
    (void)state;
    seed();
    char path[] = "/tmp/memo-ids-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char bad[] = "1\n2\n\nabc\n4\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    char *out, where[128];
    assert_int_equal(tool(&out, true, "warm", "user", "--ids", path, NULL), 2);
    snprintf(where, sizeof where, "%s:4: 'abc' is not a valid int64 for id", path);
    if (!strstr(out, where))
        fail_msg("expected '%s' in: %s", where, out);
    free(out);
    assert_false(test_redis_exists(test_user_key(1)));

    /* the same from stdin */
    const char *argv[] = {"sh",
                          "-c",
                          "exec \"$0\" \"$@\" 2>&1",
                          test_env("MEMO_TOOL"),
                          "--schema",
                          schema,
                          "warm",
                          "user",
                          "--ids",
                          "-",
                          NULL};
    assert_int_equal(test_run(argv, "7\n\n8x\n", &out), 2);
    assert_non_null(strstr(out, "<stdin>:3: '8x' is not a valid int64 for id"));
    free(out);

    /* a line of 5000 bytes is one key (7, with leading zeros), not two */
    size_t zeros = 5000;
    char *ids = malloc(zeros + 16);
    assert_non_null(ids);
    strcpy(ids, "1\n");
    memset(ids + 2, '0', zeros);
    strcpy(ids + 2 + zeros, "7\n3\n");
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, ids, strlen(ids)), (ssize_t)strlen(ids));
    close(fd);
    free(ids);
    int rc;
    json_t *j = memo_json(&rc, "warm", "user", "--ids", path, NULL);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "requested")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "found")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "missing")), 0);
    json_decref(j);
    assert_true(test_redis_exists(test_user_key(7)));
    assert_false(test_redis_exists(test_user_key(0)));
}

/* ------------------------------------------------------- stats, processes */

/* A service process: n gets, then waits on stdin to be killed or told to
 * stop. It is this binary run again: a fork of a process with threads must
 * not go on running library code. */
static int service(int gets)
{
    memo_config cfg = {.stats_publish_ms = 200};
    memo_repo *r = test_child_open(&cfg);
    for (int i = 0; i < gets; i++) {
        blog_user u = {0};
        int64_t id = 1 + i % USERS;
        if (blog_user_get(r, id, &u) != MEMO_OK)
            return 4;
        blog_user_clear(&u);
    }
    char c;
    ssize_t n = read(0, &c, 1); /* blocks until the parent closes our stdin */
    (void)n;
    memo_close(r);
    return 0;
}

/* A service making `gets` gets, its stdin the read end of `stop`. */
static pid_t spawn_service(const char *gets, int stop)
{
    const char *argv[] = {"test_tool", "--service", gets, NULL};
    return test_spawn_self(argv, stop, -1);
}

static long long summed(json_t *j, const char *counter)
{
    return json_integer_value(json_object_get(
        json_object_get(json_object_get(j, "entities"), "blog.user"), counter));
}

static void stats_across_processes(void **state)
{
    (void)state;
    seed();
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    int stop[2];
    assert_int_equal(pipe(stop), 0);
    pid_t a = spawn_service("100", stop[0]);
    pid_t b = spawn_service("60", stop[0]);
    /* both published within a few intervals */
    json_t *j = NULL;
    for (int i = 0; i < 50; i++) {
        usleep(100000);
        json_decref(j);
        j = memo_json(NULL, "stats", NULL, NULL, NULL, NULL);
        if (json_integer_value(json_object_get(j, "processes")) == 2 &&
            summed(j, "hits") + summed(j, "misses") == 160)
            break;
    }
    assert_int_equal(json_integer_value(json_object_get(j, "processes")), 2);
    /* 40 distinct users: each process misses and fills each once, or
     * finds it filled by the other; every get is one lookup */
    assert_int_equal(summed(j, "hits") + summed(j, "misses"), 160);
    assert_true(summed(j, "misses") >= 40 && summed(j, "misses") <= 80);
    assert_int_equal(summed(j, "fills"), 40);
    json_decref(j);

    /* the Prometheus form of the sum parses with promtool */
    const char *prom[] = {test_env("MEMO_TOOL"), "stats", "--prom", NULL};
    char *text;
    assert_int_equal(test_run(prom, NULL, &text), 0);
    assert_non_null(strstr(text, "memo_processes 2\n"));
    assert_non_null(strstr(text, "memo_cache_fills_total{entity=\"blog.user\"} 40\n"));
    const char *check[] = {"promtool", "check", "metrics", NULL};
    assert_int_equal(test_run(check, text, NULL), 0);
    free(text);

    /* --watch: a table per interval, then it stops (--count) */
    const char *watch[] = {
        test_env("MEMO_TOOL"), "stats", "--watch", "0.2", "--count", "2", NULL};
    assert_int_equal(test_run(watch, NULL, &text), 0);
    int drawn = 0;
    for (const char *p = text; (p = strstr(p, "processes publishing")); p++)
        drawn++;
    assert_int_equal(drawn, 2);
    assert_non_null(strstr(text, "blog.user"));
    free(text);

    /* a killed process publishes no more and ages out (3 intervals) */
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    for (int i = 0; i < 30; i++) {
        usleep(100000);
        j = memo_json(NULL, "stats", NULL, NULL, NULL, NULL);
        if (json_integer_value(json_object_get(j, "processes")) == 1)
            break;
        json_decref(j);
    }
    assert_int_equal(json_integer_value(json_object_get(j, "processes")), 1);
    assert_int_equal(summed(j, "hits") + summed(j, "misses"), 60);
    json_decref(j);
    close(stop[1]); /* the other stops */
    waitpid(b, NULL, 0);
    close(stop[0]);
}

/* The library's own Prometheus text, straight from memo_stats_prometheus. */
static void prometheus_in_process(void **state)
{
    (void)state;
    seed();
    memo_stats_reset(repo);
    blog_user u = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(blog_user_get(repo, 2, &u), MEMO_OK);
        blog_user_clear(&u);
    }
    char *text = memo_stats_prometheus(repo);
    assert_non_null(text);
    assert_non_null(strstr(text, "memo_cache_hits_total{entity=\"blog.user\"} 2\n"));
    assert_non_null(strstr(text, "memo_cache_misses_total{entity=\"blog.user\"} 1\n"));
    assert_non_null(strstr(
        text,
        "memo_operation_duration_seconds_count{entity=\"blog.user\",op=\"get\"} 3\n"));
    assert_non_null(strstr(text, "memo_redis_up 1\n"));
    const char *check[] = {"promtool", "check", "metrics", NULL};
    assert_int_equal(test_run(check, text, NULL), 0);
    free(text);
}

/* Publications under memo:stats:* are untrusted: anything may write there.
 * Only what memo itself writes is summed; the rest is counted as ignored and
 * never reaches the output (an entity name with a newline would inject a
 * Prometheus line, one with ESC would drive the terminal). */
static void stats_untrusted(void **state)
{
    (void)state;
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    freeReplyObject(test_redis_cmd(
        "SET memo:stats:h:1:00000001 %s",
        "{\"process\":{\"host\":\"h\",\"pid\":1},\"entities\":{\"blog.user\":{\"hits\":7,"
        "\"misses\":1,\"fills\":1,\"hit_latency_us\":{\"sum\":70,\"b\":[[9,7]]},"
        "\"ops\":{\"get\":{\"calls\":8,\"latency_us\":{\"sum\":90,\"b\":[[9,8]]}}}}}}"));
    static const char *const forged[] = {
        /* a name that closes the label and adds a metric line */
        "{\"entities\":{\"blog.user\\\"} 1\\nmemo_injected_total 1\\n#\":{\"hits\":5}}}",
        /* a name that clears the screen and turns it red */
        "{\"entities\":{\"blog.\\u001b[2J\\u001b[31mred\":{\"hits\":5}}}",
        "{\"entities\":{\"blog\":{\"hits\":5}}}",
        "{\"entities\":{\"blog.user.x\":{\"hits\":5}}}",
        "[1,2,3]",
        "not json",
        "{\"entities\":[]}",
        "{\"entities\":{\"blog.user\":[]}}",
        "{\"entities\":{\"blog.user\":{\"hits\":-5}}}",
        "{\"entities\":{\"blog.user\":{\"hits\":1.5}}}",
        "{\"entities\":{\"blog.user\":{\"hits\":\"5\"}}}",
        "{\"entities\":{\"blog.user\":{\"hits\":9007199254740993}}}", /* 2^53 + 1 */
        "{\"entities\":{\"blog.user\":{\"hit_latency_us\":{\"b\":[[128,1]]}}}}",
        "{\"entities\":{\"blog.user\":{\"hits\":5,\"hit_latency_us\":{\"b\":[[1]]}}}}",
        "{\"entities\":{\"blog.user\":{\"ops\":{\"get\":{\"calls\":-1}}}}}",
    };
    size_t nforged = sizeof forged / sizeof forged[0];
    for (size_t i = 0; i < nforged; i++)
        freeReplyObject(test_redis_cmd("SET memo:stats:evil:%d:0 %s", (int)i, forged[i]));
    /* not a string, and a string too large to be a publication (2 MiB) */
    freeReplyObject(test_redis_cmd("HSET memo:stats:evil:hash:0 entities x"));
    size_t big = 2u << 20;
    char *pad = malloc(big + 64);
    assert_non_null(pad);
    int at = snprintf(pad, 64, "{\"entities\":{\"blog.user\":{\"hits\":5}},\"pad\":\"");
    memset(pad + at, 'x', big);
    strcpy(pad + at + big, "\"}");
    freeReplyObject(test_redis_cmd("SET memo:stats:evil:big:0 %s", pad));
    free(pad);
    long long ignored = (long long)nforged + 2;

    /* --json: the honest publication only, the rest counted */
    int rc;
    json_t *j = memo_json(&rc, "stats", NULL, NULL, NULL, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "processes")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "ignored")), ignored);
    assert_int_equal(json_object_size(json_object_get(j, "entities")), 1);
    assert_int_equal(summed(j, "hits"), 7);
    assert_int_equal(summed(j, "misses"), 1);
    json_decref(j);

    /* --prom: no injected line, and promtool accepts it */
    char *text;
    assert_int_equal(tool(&text, false, "stats", "--prom", NULL), 0);
    assert_null(strstr(text, "injected"));
    assert_null(strstr(text, "\033"));
    assert_non_null(strstr(text, "memo_processes 1\n"));
    assert_non_null(strstr(text, "memo_cache_hits_total{entity=\"blog.user\"} 7\n"));
    const char *check[] = {"promtool", "check", "metrics", NULL};
    assert_int_equal(test_run(check, text, NULL), 0);
    free(text);

    /* the table: no terminal escapes, the honest entity, a note on stderr */
    assert_int_equal(tool(&text, true, "stats", NULL), 0);
    assert_null(strchr(text, '\033'));
    assert_null(strstr(text, "[31m"));
    assert_non_null(strstr(text, "blog.user"));
    char note[96];
    snprintf(note, sizeof note, "ignored %lld publications", ignored);
    assert_non_null(strstr(text, note));
    free(text);
    freeReplyObject(test_redis_cmd("FLUSHDB"));
}

static void usage_errors(void **state)
{
    (void)state;
    const char *tool = test_env("MEMO_TOOL");
    char *out;
    const char *help[] = {tool, "--help", NULL};
    assert_int_equal(test_run(help, NULL, &out), 0);
    assert_non_null(strstr(out, "usage: memo"));
    free(out);
    const char *bad[] = {tool, "--schema", schema, "get", "nosuch", "1", NULL};
    assert_int_equal(test_run(bad, NULL, NULL), 2);
    const char *noschema[] = {tool, "get", "user", "1", NULL};
    assert_int_equal(test_run(noschema, NULL, NULL), 2);
    const char *unknown[] = {tool, "frobnicate", NULL};
    assert_int_equal(test_run(unknown, NULL, NULL), 2);
    const char *dead[] = {tool, "--redis", "redis://127.0.0.1:1", "ping", NULL};
    assert_int_equal(test_run(dead, NULL, NULL), 1);
}

/* memo ARGS... must fail with status 2 and say `message` (stdout and stderr
 * together), before it prints any result. */
#define USAGE(message, ...)                                                              \
    do {                                                                                 \
        char *out_;                                                                      \
        assert_int_equal(tool(&out_, true, __VA_ARGS__, NULL), 2);                       \
        if (!strstr(out_, message))                                                      \
            fail_msg("expected '%s' in: %s", message, out_);                             \
        free(out_);                                                                      \
    } while (0)

/* Options: a missing value is named as such, numbers are checked whole and
 * in range, and options that need each other or exclude each other say so. */
static void option_errors(void **state)
{
    (void)state;
    USAGE("option --watch needs a value", "stats", "--watch");
    USAGE("option --watch needs a value", "stats", "--watch", "--count", "2");
    USAGE("option --top needs a value", "warm", "user", "--top");
    USAGE("option --ids needs a value", "warm", "user", "--ids");
    USAGE("option --list needs a value", "flush", "user", "--list");
    USAGE("option --count needs a value", "stats", "--watch", "1", "--count");
    USAGE("option --redis needs a value", "--redis");
    /* not a number, not all of it a number, out of range */
    USAGE("option --watch needs", "stats", "--watch", "0");
    USAGE("option --watch needs", "stats", "--watch", "-1");
    USAGE("option --watch needs", "stats", "--watch", "abc");
    USAGE("option --watch needs", "stats", "--watch", "1x");
    USAGE("option --watch needs", "stats", "--watch", "nan");
    USAGE("option --watch needs", "stats", "--watch", "inf");
    USAGE("option --watch needs", "stats", "--watch", "86400");
    USAGE("option --count needs", "stats", "--watch", "1", "--count", "0");
    USAGE("option --count needs", "stats", "--watch", "1", "--count", "1.5");
    USAGE("option --top needs", "warm", "user", "--top", "0");
    USAGE("option --top needs", "warm", "user", "--top", "10abc");
    USAGE("option --top needs", "warm", "user", "--top", " 10");
    USAGE("option --top needs", "warm", "user", "--top", "99999999999999999999");
    /* --count counts redraws of --watch */
    USAGE("option --count needs --watch", "stats", "--count", "2");
    USAGE("not with --json or --prom", "stats", "--watch", "1", "--json");
    /* an option of another command */
    USAGE("option --top does not apply to stats", "stats", "--top", "5");
    USAGE("option --watch does not apply to get", "get", "user", "1", "--watch", "1");
    USAGE("unknown option '--frob' for stats", "stats", "--frob");
}

static int group_setup(void **state)
{
    snprintf(schema, sizeof schema, "%s/schemas/blog.memo", test_env("MEMO_TOP"));
    test_schema_sql("blog");
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    repo = *state = test_open(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--service") == 0)
        return service(atoi(argv[2]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ping),
        cmocka_unit_test(get),
        cmocka_unit_test(get_entries),
        cmocka_unit_test(flush),
        cmocka_unit_test(warm),
        cmocka_unit_test(warm_ids_file),
        cmocka_unit_test(stats_across_processes),
        cmocka_unit_test(stats_untrusted),
        cmocka_unit_test(prometheus_in_process),
        cmocka_unit_test(usage_errors),
        cmocka_unit_test(option_errors),
    };
    return cmocka_run_group_tests_name("memo tool", tests, group_setup, test_group_close);
}
