/* Redis URLs: what memop_redis_url_parse accepts, what it refuses and how it
 * says so, never repeating a password. Pure: no servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "internal.h"

typedef struct want {
    const char *host, *path, *user, *password;
    int port, db;
} want;

static void assert_str_or_null(const char *got, const char *expect)
{
    if (expect)
        assert_string_equal(got ? got : "(null)", expect);
    else
        assert_null(got);
}

static void assert_parses(const char *url, want w)
{
    memop_redis_target t;
    char err[256] = "";
    memo_status st = memop_redis_url_parse(url, &t, err, sizeof err);
    if (st != MEMO_OK)
        fail_msg("%s: %s (%d)", url, err, st);
    assert_str_or_null(t.host, w.host);
    assert_str_or_null(t.path, w.path);
    assert_str_or_null(t.user, w.user);
    assert_str_or_null(t.password, w.password);
    assert_int_equal(t.port, w.port);
    assert_int_equal(t.db, w.db);
    memop_redis_target_free(&t);
    /* freeing leaves nothing behind, so a second free is harmless */
    assert_null(t.host);
    assert_null(t.password);
    memop_redis_target_free(&t);
}

/* A list of nodes (a Redis Cluster's seeds): each with its port, the
 * first one also as host and port; the credentials and database apply to
 * all. */
static void test_seeds(void **state)
{
    (void)state;
    memop_redis_target t;
    char err[256] = "";
    assert_int_equal(memop_redis_url_parse("redis://u:p%2Cw@h1:7000,[::1]:7001,h3/", &t,
                                           err, sizeof err),
                     MEMO_OK);
    assert_int_equal(t.nseeds, 3);
    assert_string_equal(t.seeds[0].host, "h1");
    assert_int_equal(t.seeds[0].port, 7000);
    assert_string_equal(t.seeds[1].host, "::1");
    assert_int_equal(t.seeds[1].port, 7001);
    assert_string_equal(t.seeds[2].host, "h3");
    assert_int_equal(t.seeds[2].port, 6379);
    assert_string_equal(t.host, "h1");
    assert_int_equal(t.port, 7000);
    assert_string_equal(t.user, "u");
    assert_string_equal(t.password, "p,w");
    memop_redis_target_free(&t);
    assert_null(t.seeds);
    /* one node is a list of one */
    assert_int_equal(memop_redis_url_parse("redis://h:1", &t, err, sizeof err), MEMO_OK);
    assert_int_equal(t.nseeds, 1);
    assert_string_equal(t.seeds[0].host, "h");
    memop_redis_target_free(&t);
}

/* Refused with MEMO_ERR_CONFIG, a message containing `why`, and nothing
 * left allocated in the target. */
static void assert_refused(const char *url, const char *why)
{
    memop_redis_target t;
    char err[256];
    memset(err, 0, sizeof err);
    memo_status st = memop_redis_url_parse(url, &t, err, sizeof err);
    if (st != MEMO_ERR_CONFIG)
        fail_msg("%s: status %d, want MEMO_ERR_CONFIG", url ? url : "(NULL)", st);
    if (!strstr(err, why))
        fail_msg("%s: message \"%s\" does not say \"%s\"", url ? url : "(NULL)", err,
                 why);
    assert_null(t.host);
    assert_null(t.path);
    assert_null(t.user);
    assert_null(t.password);
}

/* --------------------------------------------------------------- accepted */

static void test_host_forms(void **state)
{
    (void)state;
    assert_parses("redis://localhost", (want){.host = "localhost", .port = 6379});
    assert_parses("redis://10.0.0.5:6380", (want){.host = "10.0.0.5", .port = 6380});
    assert_parses("redis://cache.internal:7000/3",
                  (want){.host = "cache.internal", .port = 7000, .db = 3});
    assert_parses("redis://h/", (want){.host = "h", .port = 6379});
    assert_parses("redis://h/15", (want){.host = "h", .port = 6379, .db = 15});
    assert_parses("redis://h:1", (want){.host = "h", .port = 1});
    assert_parses("redis://h:65535/0", (want){.host = "h", .port = 65535});
}

static void test_credentials(void **state)
{
    (void)state;
    assert_parses("redis://alice:s3cret@db.example:6390/2", (want){.host = "db.example",
                                                                   .port = 6390,
                                                                   .db = 2,
                                                                   .user = "alice",
                                                                   .password = "s3cret"});
    /* an empty user: AUTH with the password alone */
    assert_parses("redis://:s3cret@h",
                  (want){.host = "h", .port = 6379, .password = "s3cret"});
    /* a bare word is a password, as redis-cli reads it */
    assert_parses("redis://s3cret@h:6400",
                  (want){.host = "h", .port = 6400, .password = "s3cret"});
    /* the password may hold ':' */
    assert_parses("redis://u:a:b@h",
                  (want){.host = "h", .port = 6379, .user = "u", .password = "a:b"});
}

static void test_percent_escapes(void **state)
{
    (void)state;
    assert_parses(
        "redis://us%65r%3Ax:p%40ss%2Fw%3Ad%25@h",
        (want){.host = "h", .port = 6379, .user = "user:x", .password = "p@ss/w:d%"});
    assert_parses("redis://:%c3%A9t%C3%a9@h",
                  (want){.host = "h", .port = 6379, .password = "\xc3\xa9t\xc3\xa9"});
}

/* Passwords straight from a generator hold '/', '?', '#' and '@'; everything
 * before the last '@' is the user information. */
static void test_unescaped_password_characters(void **state)
{
    (void)state;
    assert_parses("redis://default:ab/cd+ef==@h:6381/1",
                  (want){.host = "h",
                         .port = 6381,
                         .db = 1,
                         .user = "default",
                         .password = "ab/cd+ef=="});
    assert_parses("redis://:a?b#c@d@h",
                  (want){.host = "h", .port = 6379, .password = "a?b#c@d"});
}

static void test_ipv6(void **state)
{
    (void)state;
    assert_parses("redis://[::1]:6380", (want){.host = "::1", .port = 6380});
    assert_parses("redis://[::1]", (want){.host = "::1", .port = 6379});
    assert_parses(
        "redis://u:p@[fe80::1]:7000/4",
        (want){.host = "fe80::1", .port = 7000, .db = 4, .user = "u", .password = "p"});
}

static void test_unix(void **state)
{
    (void)state;
    assert_parses("unix:///path/to.sock", (want){.path = "/path/to.sock", .port = 6379});
    assert_parses("unix:///p?db=3", (want){.path = "/p", .port = 6379, .db = 3});
    assert_parses("unix://:pw@/path",
                  (want){.path = "/path", .port = 6379, .password = "pw"});
    /* a password holding "@/" stays whole: the path starts at the last "@/" */
    assert_parses("unix://:pa@/ss@/run/r.sock",
                  (want){NULL, "/run/r.sock", NULL, "pa@/ss", 6379, 0});
    assert_parses("unix://u:a@/b@/c@/run/r.sock?db=2",
                  (want){NULL, "/run/r.sock", "u", "a@/b@/c", 6379, 2});
    /* without userinfo, a path may hold '@' */
    assert_parses("unix:///run/redis@main/r.sock",
                  (want){NULL, "/run/redis@main/r.sock", NULL, NULL, 6379, 0});
    assert_parses("unix://bob:pw@/run/redis.sock?db=12", (want){.path = "/run/redis.sock",
                                                                .port = 6379,
                                                                .db = 12,
                                                                .user = "bob",
                                                                .password = "pw"});
}

/* ---------------------------------------------------------------- refused */

static void test_refused(void **state)
{
    (void)state;
    assert_refused(NULL, "no Redis URL");
    assert_refused("", "no Redis URL");
    assert_refused("http://localhost", "redis:// or unix://");
    assert_refused("localhost:6379", "redis:// or unix://");
    assert_refused("REDIS://localhost", "redis:// or unix://");
    assert_refused("rediss://localhost:6380", "TLS");
    assert_refused("redis://h:0", "invalid port '0'");
    assert_refused("redis://h:70000", "invalid port '70000'");
    assert_refused("redis://h:65536", "invalid port '65536'");
    assert_refused("redis://h:abc", "invalid port 'abc'");
    assert_refused("redis://h:-1", "invalid port '-1'");
    assert_refused("redis://h:", "invalid port ''");
    assert_refused("redis://h:99999999999999999999", "invalid port");
    assert_refused("redis://h/x", "invalid database number 'x'");
    assert_refused("redis://h/-1", "invalid database number '-1'");
    assert_refused("redis://h/1000001", "invalid database number '1000001'");
    assert_refused("redis://h/1/2", "invalid database number '1/2'");
    assert_refused("redis://h/1?x", "unexpected");
    assert_refused("redis://h/1#frag", "unexpected");
    assert_refused("redis://[::1]x", "unexpected");
    assert_refused("redis://[::1", "unclosed '['");
    assert_refused("redis://", "no host");
    assert_refused("redis://:6379", "no host");
    assert_refused("redis://h1:7000,/", "no host in the list of nodes");
    assert_refused("redis://,h1", "no host in the list of nodes");
    assert_refused("redis://h1:7000,h2:x/", "invalid port 'x'");
    assert_refused("redis://h1:7000,[::1/", "unclosed '['");
    assert_refused("redis://[::1]x,h2", "unexpected text after host ::1");
    assert_refused("redis://h,h,h,h,h,h,h,h,h,h,h,h,h,h,h,h,h", "more than 16 nodes");
    assert_refused("redis:///0", "no host");
    assert_refused("redis://[]:6379", "no host");
    assert_refused("redis://u:p@", "no host");
    assert_refused("redis://:p@:6379/0", "no host");
    assert_refused("redis://:pa%zzss@h", "bad %-escape (or %00) in the password");
    assert_refused("redis://:pass%4@h", "bad %-escape (or %00) in the password");
    assert_refused("redis://:pass%@h", "bad %-escape (or %00) in the password");
    assert_refused("redis://us%g1er:p@h", "bad %-escape (or %00) in the user name");
    /* %00 would cut the secret short: the server would see another one */
    assert_refused("redis://:pass%00word@h", "(or %00) in the password");
    assert_refused("redis://us%00er:p@h", "(or %00) in the user name");
    assert_refused("unix://:pass%00@/run/r.sock", "(or %00) in the password");
    assert_refused("unix://relative.sock", "absolute");
    assert_refused("unix://", "absolute");
    assert_refused("unix:///", "empty socket path");
    assert_refused("unix:///p?db=x", "?db=N");
    assert_refused("unix:///p?timeout=3", "?db=N");
    assert_refused("unix:///p?db=", "?db=N");
    assert_refused("unix://:pw@/p?db=-2", "?db=N");
}

/* Every refused URL that carries a password: the message names the problem
 * but holds no part of the password. */
static void test_message_never_holds_the_password(void **state)
{
    (void)state;
    static const struct {
        const char *url, *password;
    } cases[] = {
        {"redis://u:Xyzzy4711@h:abc", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@h:0", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@h:70000/1", "Xyzzy4711"},
        {"redis://:Xyzzy4711@h/abc", "Xyzzy4711"},
        {"redis://Xyzzy4711@h/1/2", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@h/1?x=1", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@:6379", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@[::1", "Xyzzy4711"},
        {"redis://u:Xyzzy4711@[::1]junk", "Xyzzy4711"},
        {"redis://u:Xyzzy%zz4711@h", "Xyzzy"},
        {"redis://u:Xyzzy4711%@h", "Xyzzy4711"},
        {"redis://%zz:Xyzzy4711@h", "Xyzzy4711"},
        {"redis://Xyzzy%4@h", "Xyzzy"},
        {"rediss://u:Xyzzy4711@h", "Xyzzy4711"},
        {"http://u:Xyzzy4711@h", "Xyzzy4711"},
        {"unix://:Xyzzy4711@relative.sock", "Xyzzy4711"},
        {"unix://:Xyzzy4711@/?db=1", "Xyzzy4711"},
        {"unix://u:Xyzzy4711@/p?db=x", "Xyzzy4711"},
        {"unix://u:Xyzzy%zz@/p", "Xyzzy"},
        {"unix://:Xy@/zzy4711@/p?db=x", "zzy4711"},
        {"redis://:Xyzzy%004711@h:abc", "4711"},
        /* a password given the way some clients take it, as an option */
        {"redis://h:6379/0?password=Xyzzy4711", "Xyzzy"},
        {"redis://h/0?password=Xyzzy4711&x=1", "Xyzzy"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memop_redis_target t;
        char err[256] = "";
        memo_status st = memop_redis_url_parse(cases[i].url, &t, err, sizeof err);
        if (st != MEMO_ERR_CONFIG)
            fail_msg("%s: status %d, want MEMO_ERR_CONFIG", cases[i].url, st);
        assert_true(err[0] != '\0');
        if (strstr(err, cases[i].password))
            fail_msg("%s: message \"%s\" shows the password", cases[i].url, err);
        assert_null(t.password);
    }
}

/* A message cut to a small buffer is still terminated. */
static void test_small_message_buffer(void **state)
{
    (void)state;
    memop_redis_target t;
    char err[8];
    memset(err, 'X', sizeof err);
    assert_int_equal(memop_redis_url_parse("http://h", &t, err, 5), MEMO_ERR_CONFIG);
    assert_int_equal(strlen(err), 4);
    assert_int_equal(err[5], 'X');
}

/* ------------------------------------------------------------ target name */

static void assert_name(const char *url, const char *expect)
{
    memop_redis_target t;
    char err[256], name[160];
    assert_int_equal(memop_redis_url_parse(url, &t, err, sizeof err), MEMO_OK);
    memop_redis_target_name(&t, name, sizeof name);
    assert_string_equal(name, expect);
    memop_redis_target_free(&t);
}

static void test_target_name(void **state)
{
    (void)state;
    assert_name("redis://localhost", "localhost:6379");
    assert_name("redis://u:Xyzzy4711@10.1.2.3:7000/5", "10.1.2.3:7000");
    assert_name("redis://[::1]:6380", "[::1]:6380");
    assert_name("unix:///run/redis.sock?db=2", "unix:/run/redis.sock");
    assert_name("unix://:Xyzzy4711@/tmp/r.sock", "unix:/tmp/r.sock");

    /* truncated, still terminated */
    memop_redis_target t;
    char err[256], name[8];
    const char *url = "redis://longhostname:6379";
    assert_int_equal(memop_redis_url_parse(url, &t, err, sizeof err), MEMO_OK);
    memop_redis_target_name(&t, name, sizeof name);
    assert_string_equal(name, "longhos");
    memop_redis_target_free(&t);
}

/* ------------------------------------------------- PostgreSQL messages */

/* libpq's message about a conninfo, masked: no spelling of the password
 * survives, and the rest of the message does. */
static void assert_masked(const char *conninfo, const char *message, const char *secret,
                          const char *kept)
{
    char out[256];
    memop_pg_message(conninfo, message, out, sizeof out);
    if (strstr(out, secret))
        fail_msg("%s: \"%s\" still shows \"%s\"", conninfo, out, secret);
    if (kept && !strstr(out, kept))
        fail_msg("%s: \"%s\" lost \"%s\"", conninfo, out, kept);
    assert_null(strchr(out, '\n'));
}

static void test_pg_message_masks_the_password(void **state)
{
    (void)state;
    /* the cases a review found, with libpq's real messages */
    assert_masked("postgresql://memo:Sup3rS%zzecret@127.0.0.1:5432/memo",
                  "invalid percent-encoded token: \"Sup3rS%zzecret\"\n", "Sup3rS",
                  "invalid percent-encoded token");
    assert_masked(
        "postgres//memo:Sup3rSecret@127.0.0.1:5432/memo",
        "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database "
        "\"postgres//memo:Sup3rSecret@127.0.0.1:5432/memo\" does not exist\n",
        "Sup3rSecret", "does not exist");
    /* %-encoded and decoded spellings */
    assert_masked("postgresql://u:p%40ss%2Fword@h/db", "x p@ss/word y", "p@ss/word",
                  "x ");
    assert_masked("postgresql://u:p%40ss%2Fword@h/db", "x p%40ss%2Fword y", "p%40ss",
                  " y");
    /* key=value conninfo, quoted or not, and a URL parameter */
    assert_masked("host=h password='it\\'s a secret' dbname=d", "bad: it's a secret",
                  "secret", "bad:");
    assert_masked("host=h password='it\\'s a secret' dbname=d", "bad: it\\'s a secret",
                  "secret", "bad:");
    assert_masked("host=h password = hunter22 dbname=d", "unknown hunter22", "hunter22",
                  "unknown");
    assert_masked("postgresql://h/db?password=hunter22&sslmode=x", "q hunter22 q",
                  "hunter22", "q ");
    /* short passwords: every occurrence, and "***" growing the text is safe */
    char out[16];
    memop_pg_message("postgresql://u:*@h/d", "a*b*c*d*e*f*g*h*i", out, sizeof out);
    assert_string_equal(out, "a***b***c***d"); /* cut where the next mask cannot fit */
    memop_pg_message("postgresql://u:x@h/d", "0123456789abcdx", out, sizeof out);
    assert_string_equal(out, "0123456789abcd");
    /* no conninfo: one line, nothing else changed */
    memop_pg_message(NULL, "two\nlines\n", out, sizeof out);
    assert_string_equal(out, "two lines");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_percent_escapes),
        cmocka_unit_test(test_unescaped_password_characters),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_message_never_holds_the_password),
        cmocka_unit_test(test_small_message_buffer),
        cmocka_unit_test(test_target_name),
        cmocka_unit_test(test_pg_message_masks_the_password),
    };
    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
