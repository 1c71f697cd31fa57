/* Redis users with restricted permissions (ACL). memo_open checks every
 * command memo needs and names the one missing; the minimal ACL of
 * docs/operations.md is enough; a permission taken away at run time costs
 * the calls that need it (they read PostgreSQL and say why), never the
 * breaker. */
#define _DEFAULT_SOURCE 1 /* usleep */
#include "test.h"
#include "schema_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "blog.h"
#include "hot.h"
#include "internal.h"

static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};

/* The minimal ACL of docs/operations.md ("Redis permissions"), word for
 * word: tests/docs/check-docs.sh fails when the two differ. */
#define MINIMAL_ACL                                                                      \
    "on >s3cret ~memo:* ~blog:* -@all +get +set +del +unlink +mget +exists +pttl "       \
    "+pexpire +strlen +scan +ping +select +eval +evalsha +script|load"

/* needle in s, ignoring case */
static bool mentions(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0)
            return true;
    return false;
}

/* ACL SETUSER name <rules...> (the rules split at spaces). */
static void set_user(const char *name, const char *rules)
{
    char *copy = strdup(rules);
    const char *argv[64] = {"ACL", "SETUSER", name};
    int argc = 3;
    for (char *tok = strtok(copy, " "); tok && argc < 64; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    redisReply *r = redisCommandArgv(test_redis(), argc, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("ACL SETUSER %s %s: %s", name, rules, r ? r->str : "no reply");
    freeReplyObject(r);
    free(copy);
}

/* A URL that logs in as `user` with the password every test user has. */
static void url_of(const char *user, char *out, size_t size)
{
    const char *real = test_env("REDIS_URL");
    snprintf(out, size, "redis://%s:s3cret@%s", user, real + strlen("redis://"));
}

static memo_status open_as(const char *user, unsigned flags, memo_repo **repo,
                           memo_error *err)
{
    char url[256];
    url_of(user, url, sizeof url);
    memo_config cfg = {.redis_url = url,
                       .database_url = test_env("DATABASE_URL"),
                       .flags = flags | MEMO_STATS_PRIVATE};
    *repo = NULL;
    return memo_open(repo, &cfg, err);
}

/* A repository as the user "minimal", who has the README's minimal ACL. */
static memo_repo *open_minimal(void)
{
    set_user("minimal", "reset " MINIMAL_ACL);
    memo_repo *repo;
    memo_error err;
    assert_int_equal(open_as("minimal", 0, &repo, &err), MEMO_OK);
    return repo;
}

static int setup(void **state)
{
    (void)state;
    test_schema_sql("blog");
    test_reset(tables);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    freeReplyObject(test_redis_cmd("ACL DELUSER minimal narrow"));
    return 0;
}

static int64_t seed_org(memo_repo *repo)
{
    blog_org o = {.slug = (char *)"acl", .name = (char *)"A", .plan = (char *)"p"};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    return o.id;
}

/* Each command memo needs, taken away in turn: memo_open fails, names it,
 * and a service that may start without Redis is refused as well. */
static void missing_command_named(void **state)
{
    (void)state;
    static const char *const needed[] = {"evalsha", "mget",   "scan", "unlink", "del",
                                         "pexpire", "strlen", "pttl", "exists", "set"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        char rules[512];
        snprintf(rules, sizeof rules, "reset %s -%s", MINIMAL_ACL, needed[i]);
        set_user("narrow", rules);
        memo_repo *repo;
        memo_error err;
        memo_status st = open_as("narrow", 0, &repo, &err);
        if (st != MEMO_ERR_CONFIG || !mentions(err.message, needed[i]))
            fail_msg("without +%s: %s: %s", needed[i], memo_status_str(st), err.message);
        assert_null(repo);
        assert_true(mentions(err.message, "permission"));
        assert_null(strstr(err.message, "s3cret"));
        assert_int_equal(open_as("narrow", MEMO_OPEN_DEGRADED, &repo, &err),
                         MEMO_ERR_CONFIG);
        assert_null(repo);
    }
    /* keys under memo: (its probe, locks and statistics) must be allowed */
    set_user("narrow", "reset on >s3cret ~blog:* +@all");
    memo_repo *repo;
    memo_error err;
    assert_int_equal(open_as("narrow", 0, &repo, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "keys"));
}

/* The documented minimal ACL runs everything: reads, fills, writes,
 * get_many, lists, flush, locks. */
static void minimal_acl_is_enough(void **state)
{
    (void)state;
    memo_repo *repo = open_minimal();
    int64_t org = seed_org(repo);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK); /* miss, fill */
    blog_org_clear(&o);
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK); /* hit */
    blog_org_clear(&o);
    assert_int_equal(test_stat(repo, "blog.org", "hits"), 1);
    assert_int_equal(blog_org_get_by_slug(repo, "acl", &o), MEMO_OK);
    free(o.name);
    o.name = strdup("B");
    assert_int_equal(blog_org_update(repo, &o), MEMO_OK);
    blog_org_clear(&o);
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.name, "B");
    blog_org_clear(&o);
    blog_org_list many = {0};
    assert_int_equal(blog_org_get_many(repo, &org, 1, &many), MEMO_OK);
    assert_int_equal(many.len, 1);
    blog_org_list_clear(&many);
    long removed = 0;
    assert_int_equal(memo_flush(repo, &blog_org_desc, NULL, NULL, NULL, &removed),
                     MEMO_OK);
    assert_true(removed >= 1);
    memo_lock *lock;
    assert_int_equal(memo_lock_acquire(repo, "job", 1000, 0, &lock), MEMO_OK);
    assert_int_equal(memo_lock_extend(lock, 1000), MEMO_OK);
    assert_int_equal(memo_lock_release(lock), MEMO_OK);
    assert_int_equal(test_stat(repo, "blog.org", "errors"), 0);
    assert_int_equal(test_stat(repo, "blog.org", "degraded"), 0);
    memo_close(repo);
}

/* A permission taken away while the service runs: the calls that need it
 * go to PostgreSQL and say why, the breaker stays closed, and the cache
 * works again as soon as the permission is back. */
static void permission_lost_at_run_time(void **state)
{
    (void)state;
    memo_repo *repo = open_minimal();
    int64_t org = seed_org(repo);
    set_user("minimal", "-evalsha");
    blog_org o = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
        assert_string_equal(o.slug, "acl");
        blog_org_clear(&o);
    }
    assert_non_null(strstr(memo_last_error(repo), "evalsha"));
    assert_non_null(strstr(memo_last_error(repo), "permission"));
    test_assert_redis_state(repo, "breaker", "closed");
    /* the first read took the lease natively and could not fill it; the
     * others found that lease and could not run the script that waits */
    assert_int_equal(test_stat(repo, "blog.org", "errors"), 3);
    assert_int_equal(test_stat(repo, "blog.org", "degraded"), 2);
    set_user("minimal", "+evalsha");
    /* fills, once the lease the first read left has expired (lease_ms) */
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    blog_org_clear(&o);
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK); /* hits */
    blog_org_clear(&o);
    assert_int_equal(test_stat(repo, "blog.org", "hits"), 1);
    memo_close(repo);
}

/* A write whose DEL is refused keeps its keys and sends them once the
 * permission is back; meanwhile the breaker stays closed. */
static void refused_invalidation_is_retried(void **state)
{
    (void)state;
    memo_repo *repo = open_minimal();
    int64_t org = seed_org(repo);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    const char *key = test_org_key(org);
    assert_true(test_redis_exists(key));
    set_user("minimal", "-del");
    free(o.name);
    o.name = strdup("Renamed");
    assert_int_equal(blog_org_update(repo, &o), MEMO_OK);
    blog_org_clear(&o);
    /* the row (its slug lookup still holds) */
    test_assert_redis_state(repo, "pending", "1");
    test_assert_redis_state(repo, "breaker", "closed");
    assert_true(test_redis_exists(key));
    set_user("minimal", "+del");
    assert_true(test_redis_gone(key)); /* the prober sent it */
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.name, "Renamed");
    blog_org_clear(&o);
    memo_close(repo);
}

/* The same, raced: a reader read the row before the write and holds a
 * lease the refused DEL did not break, so its fill lands. Until the queued
 * DEL goes, reads of the entity bypass the cache: a read that begins after
 * the write returned never gets the value from before it. */
static memo_repo *racer;
static int64_t raced_org;

static void write_refused_before_fill(const char *key)
{
    (void)key;
    memop_test_hooks.before_fill = NULL;
    set_user("minimal", "-del");
    blog_org o = {.id = raced_org,
                  .slug = (char *)"acl",
                  .name = (char *)"Renamed",
                  .plan = (char *)"p"};
    assert_int_equal(blog_org_update(racer, &o), MEMO_OK);
}

static void refused_invalidation_bypasses_the_cache(void **state)
{
    (void)state;
    racer = open_minimal();
    raced_org = seed_org(racer);
    memo_stats_reset(racer);
    memop_test_hooks.before_fill = write_refused_before_fill;
    blog_org o = {0};
    assert_int_equal(blog_org_get(racer, raced_org, &o), MEMO_OK);
    memop_test_hooks.before_fill = NULL;
    assert_string_equal(o.name, "A"); /* read before the write */
    blog_org_clear(&o);
    assert_int_equal(test_stat(racer, "blog.org", "fills"), 1); /* its lease held */
    test_assert_redis_state(racer, "pending", "1");
    test_assert_redis_state(racer, "breaker", "closed");
    long long degraded = test_stat(racer, "blog.org", "degraded");
    assert_int_equal(blog_org_get(racer, raced_org, &o), MEMO_OK);
    assert_string_equal(o.name, "Renamed"); /* not the old value in Redis */
    blog_org_clear(&o);
    assert_int_equal(test_stat(racer, "blog.org", "degraded"), degraded + 1);
    assert_true(test_redis_exists(test_org_key(raced_org)));
    set_user("minimal", "+del");
    assert_true(test_redis_gone(test_org_key(raced_org))); /* the prober sent it */
    test_assert_redis_state(racer, "pending", "0");
    assert_int_equal(blog_org_get(racer, raced_org, &o), MEMO_OK);
    assert_string_equal(o.name, "Renamed");
    blog_org_clear(&o);
    assert_int_equal(blog_org_get(racer, raced_org, &o), MEMO_OK);
    blog_org_clear(&o);
    assert_int_equal(test_stat(racer, "blog.org", "hits"), 1); /* cached again */
    memo_close(racer);
}

/* The near cache's subscriber needs CLIENT ID, CLIENT TRACKING and
 * SUBSCRIBE (docs/operations.md): without them reads still work, from
 * Redis, and the statistics say why the near cache is off; granted, it
 * comes live by itself. */
static char *near_state(memo_repo *repo, const char *member)
{
    char *s = memo_stats_json(repo);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    json_t *v =
        json_object_get(json_object_get(json_object_get(j, "redis"), "near"), member);
    char *out = strdup(json_is_string(v) ? json_string_value(v) : "");
    json_decref(j);
    return out;
}

static void near_cache_needs_its_commands(void **state)
{
    (void)state;
    set_user("minimal", "reset " MINIMAL_ACL " ~hot:*");
    memo_repo *repo;
    memo_error err;
    assert_int_equal(open_as("minimal", 0, &repo, &err), MEMO_OK);
    int64_t org = seed_org(repo);
    hot_org o = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hot_org_get(repo, org, &o), MEMO_OK);
        assert_string_equal(o.name, "A");
        hot_org_clear(&o);
    }
    double t0 = test_now_ms();
    char *why = near_state(repo, "last_error");
    while (!*why && test_now_ms() - t0 < 2000) {
        free(why);
        usleep(10000);
        why = near_state(repo, "last_error");
    }
    char *up = near_state(repo, "subscriber");
    assert_string_equal(up, "down");
    assert_true(mentions(why, "permission"));
    free(up);
    free(why);
    assert_int_equal(test_stat(repo, "hot.org", "near_hits"), 0);
    set_user("minimal", "+client|id +client|tracking +subscribe &__redis__:invalidate");
    t0 = test_now_ms();
    up = near_state(repo, "subscriber");
    while (strcmp(up, "live") != 0 && test_now_ms() - t0 < 2000) {
        free(up);
        usleep(10000);
        up = near_state(repo, "subscriber");
    }
    assert_string_equal(up, "live");
    free(up);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hot_org_get(repo, org, &o), MEMO_OK);
        hot_org_clear(&o);
    }
    assert_true(test_stat(repo, "hot.org", "near_hits") > 0);
    memo_close(repo);
}

/* Locks and flushes that Redis refuses say why, in memo_last_error, the
 * way every other failed call does. */
static void lock_and_flush_say_why(void **state)
{
    (void)state;
    memo_repo *repo = open_minimal();
    memo_lock *lock = NULL;
    assert_int_equal(memo_lock_acquire(repo, "job", 5000, 0, &lock), MEMO_OK);
    set_user("minimal", "-set -evalsha -scan");
    memo_lock *other = NULL;
    assert_int_equal(memo_lock_acquire(repo, "job2", 1000, 0, &other), MEMO_ERR_REDIS);
    assert_non_null(strstr(memo_last_error(repo), "SET (lock)"));
    assert_true(mentions(memo_last_error(repo), "permission"));
    assert_int_equal(memo_lock_extend(lock, 5000), MEMO_ERR_REDIS);
    assert_non_null(strstr(memo_last_error(repo), "extend lock"));
    assert_int_equal(memo_flush(repo, &blog_org_desc, NULL, NULL, NULL, NULL),
                     MEMO_ERR_REDIS);
    assert_non_null(strstr(memo_last_error(repo), "SCAN"));
    assert_int_equal(memo_lock_release(lock), MEMO_ERR_REDIS);
    assert_non_null(strstr(memo_last_error(repo), "release lock"));
    set_user("minimal", "+set +evalsha +scan");
    memo_close(repo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(missing_command_named, setup, teardown),
        cmocka_unit_test_setup_teardown(minimal_acl_is_enough, setup, teardown),
        cmocka_unit_test_setup_teardown(permission_lost_at_run_time, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_invalidation_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_invalidation_bypasses_the_cache, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(lock_and_flush_say_why, setup, teardown),
        cmocka_unit_test_setup_teardown(near_cache_needs_its_commands, setup, teardown),
    };
    return cmocka_run_group_tests_name("redis permissions", tests, NULL, NULL);
}
