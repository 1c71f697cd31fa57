/* What Redis holds is untrusted input: another program, a bug or an
 * attacker may have written any key. A key of the wrong type, a value too
 * large, a list longer than its limit, a row under another row's key: each
 * is a corrupt entry, counted, deleted and read again from PostgreSQL,
 * never an outage (the breaker stays closed) and never a wrong answer. */
#define _GNU_SOURCE 1 /* mallinfo2 */
#include "test.h"
#include "schema_keys.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blog.h"
#include "wiki.h"

static const char *const tables[] = {"revisions", "pages", "comments", "posts",
                                     "users",     "orgs",  NULL};
static memo_repo *repo;
static int64_t org_a, org_b, ann, bob, cid; /* ann and cid in org a, bob in org b */

#define STAT(entity, counter) test_stat(repo, "blog." entity, counter)

static int64_t add_user(const char *email, const char *name, int64_t org)
{
    blog_user u = {
        .email = (char *)email, .name = (char *)name, .org_id = org, .karma = 1};
    assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
    return u.id;
}

static void assert_breaker_closed(void)
{
    test_assert_redis_state(repo, "breaker", "closed");
    assert_int_equal(STAT("user", "degraded"), 0);
}

static int group_setup(void **state)
{
    test_schema_sql("blog");
    test_schema_sql("wiki");
    memo_config cfg = {.max_value_bytes = 65536, .flags = MEMO_STATS_PRIVATE};
    repo = *state = test_open(&cfg);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    test_reset(tables);
    blog_org a = {.slug = (char *)"a", .name = (char *)"A", .plan = (char *)"p"};
    blog_org b = {.slug = (char *)"b", .name = (char *)"B", .plan = (char *)"p"};
    assert_int_equal(blog_org_insert(repo, &a), MEMO_OK);
    assert_int_equal(blog_org_insert(repo, &b), MEMO_OK);
    org_a = a.id;
    org_b = b.id;
    ann = add_user("ann@x", "Ann", org_a);
    bob = add_user("bob@x", "Bob", org_b);
    cid = add_user("cid@x", "Cid", org_a);
    memo_stats_reset(repo);
    return 0;
}

/* ------------------------------------------------------- wrong types */

static void wrong_type_is_corrupt_not_an_outage(void **state)
{
    (void)state;
    const char *key = test_user_key(ann);
    const char *ek = test_email_key("ann@x");
    const char *lk = test_by_org_key(org_a);
    freeReplyObject(test_redis_cmd("RPUSH %s x", key));
    freeReplyObject(test_redis_cmd("HSET %s f v", ek));
    freeReplyObject(test_redis_cmd("SADD %s m", lk));
    blog_user u = {0};
    for (int i = 0; i < 3; i++) { /* again and again: never an outage */
        assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
        assert_string_equal(u.name, "Ann");
        blog_user_clear(&u);
    }
    assert_int_equal(blog_user_get_by_email(repo, "ann@x", &u), MEMO_OK);
    assert_int_equal(u.id, ann);
    blog_user_clear(&u);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org_a, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    blog_user_list_clear(&l);
    assert_breaker_closed();
    assert_int_equal(STAT("user", "corrupt"), 3);
    assert_int_equal(STAT("user", "errors"), 0);
    /* each key holds memo's value again, and is a hit */
    char *v = test_redis_get(key);
    assert_non_null(v);
    assert_non_null(strstr(v, "\"name\":\"Ann\""));
    free(v);
    long long hits = STAT("user", "hits");
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(STAT("user", "hits") - hits, 1);

    /* in a batch: MGET answers nil for it; the lease script finds it */
    freeReplyObject(test_redis_cmd("DEL %s", key));
    freeReplyObject(test_redis_cmd("ZADD %s 1 m", key));
    int64_t ids[] = {bob, ann, cid};
    assert_int_equal(blog_user_get_many(repo, ids, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 3);
    assert_int_equal(l.items[1].id, ann);
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "corrupt"), 4);
    assert_breaker_closed();
    v = test_redis_get(key);
    assert_non_null(v);
    free(v);
}

/* A lease nobody set to expire, or set to expire later than twice this
 * reader's lease_ms (1 s here), was not set by memo: it is taken over at
 * once, not waited for. */
static void lease_without_expiry_is_taken_over(void **state)
{
    (void)state;
    const char *key = test_user_key(bob);
    const char *forged[] = {"SET %s ~lease:forged", "SET %s ~lease:forged PX 3600000",
                            "SET %s ~lease:forged PX 5000"};
    for (int i = 0; i < 3; i++) {
        freeReplyObject(test_redis_cmd(forged[i], key));
        memo_config cfg = {.lease_wait_ms = 300, .flags = MEMO_STATS_PRIVATE};
        memo_repo *r = test_open(&cfg);
        blog_user u = {0};
        assert_int_equal(blog_user_get(r, bob, &u), MEMO_OK);
        assert_int_equal(u.id, bob);
        blog_user_clear(&u);
        assert_int_equal(test_stat(r, "blog.user", "lease_waits"), 0);
        assert_int_equal(test_stat(r, "blog.user", "fills"), 1);
        assert_false(test_redis_leased(key));
        char *v = test_redis_get(key);
        assert_non_null(v);
        assert_non_null(strstr(v, "\"id\":"));
        free(v);
        memo_close(r);
    }
}

/* A key holds a value or, while a filler queries, that filler's lease. A
 * live lease (it expires, as memo's do) is waited for up to lease_wait_ms on
 * every read path, then the row is read from PostgreSQL without filling:
 * the lease is never taken for a value, counted corrupt, or overwritten. */
static void live_lease_on_every_path(void **state)
{
    (void)state;
    const char *key = test_user_key(ann), *ek = test_email_key("ann@x"),
               *lk = test_by_org_key(org_a);
    const char *keys[] = {key, ek, lk};
    for (int i = 0; i < 3; i++)
        freeReplyObject(test_redis_cmd("SET %s ~lease:someone PX 20000", keys[i]));
    /* (leases of 20 s are live for a reader whose lease_ms is 60 s) */
    memo_config cfg = {
        .lease_ms = 60000, .lease_wait_ms = 100, .flags = MEMO_STATS_PRIVATE};
    memo_repo *r = test_open(&cfg);
    blog_user u = {0};
    assert_int_equal(blog_user_get(r, ann, &u), MEMO_OK); /* the native ask */
    assert_string_equal(u.name, "Ann");
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(r, "ann@x", &u), MEMO_OK); /* lookup */
    assert_int_equal(u.id, ann);
    blog_user_clear(&u);
    int64_t ids[] = {bob, ann, cid};
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(r, ids, 3, &l), MEMO_OK); /* MGET, LEASE */
    assert_int_equal(l.len, 3);
    assert_int_equal(l.items[1].id, ann);
    blog_user_list_clear(&l);
    assert_int_equal(blog_user_by_org(r, org_a, &l), MEMO_OK); /* a list's key */
    assert_int_equal(l.len, 2);
    blog_user_list_clear(&l);
    assert_int_equal(test_stat(r, "blog.user", "corrupt"), 0);
    assert_int_equal(test_stat(r, "blog.user", "lease_waits"), 3);
    for (int i = 0; i < 3; i++) {
        char *v = test_redis_get(keys[i]);
        assert_string_equal(v, "~lease:someone");
        free(v);
    }
    /* the others were filled around them */
    assert_false(test_redis_leased(test_user_key(bob)));
    assert_true(test_redis_exists(test_user_key(bob)));
    memo_close(r);
}

/* A row too large to cache (max_value_bytes 64 here) is read, not
 * cached, and its lease given back at once on every path: nobody waits a
 * lease for a fill that will not come. */
static void too_large_to_cache_gives_its_lease_back(void **state)
{
    (void)state;
    memo_config cfg = {.max_value_bytes = 64, .flags = MEMO_STATS_PRIVATE};
    memo_repo *r = test_open(&cfg);
    blog_user u = {0};
    assert_int_equal(blog_user_get(r, ann, &u), MEMO_OK);
    assert_string_equal(u.name, "Ann");
    blog_user_clear(&u);
    assert_false(test_redis_exists(test_user_key(ann)));
    int64_t ids[] = {bob, cid};
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(r, ids, 2, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    blog_user_list_clear(&l);
    assert_false(test_redis_exists(test_user_key(bob)));
    assert_false(test_redis_exists(test_user_key(cid)));
    assert_int_equal(test_stat(r, "blog.user", "fills"), 0);
    memo_close(r);
}

/* Redis that refuses writes (maxmemory with noeviction here; a failed save
 * or a replica alike) still serves hits: a hit's SET NX GET is a write, so
 * memo asks the lease script instead, which only reads when the key holds a
 * value. The breaker stays closed. */
static void hits_served_when_writes_refused(void **state)
{
    (void)state;
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK); /* fills */
    blog_user_clear(&u);
    freeReplyObject(test_redis_cmd("CONFIG SET maxmemory-policy noeviction"));
    freeReplyObject(test_redis_cmd("CONFIG SET maxmemory 1"));
    redisReply *r = test_redis_cmd("SET %s x", test_user_key(bob));
    assert_int_equal(r->type, REDIS_REPLY_ERROR); /* Redis does refuse writes */
    freeReplyObject(r);
    long long hits = STAT("user", "hits");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
        assert_string_equal(u.name, "Ann");
        blog_user_clear(&u);
    }
    assert_int_equal(STAT("user", "hits") - hits, 3);
    assert_breaker_closed();
}

static int writes_allowed_again(void **state)
{
    (void)state;
    freeReplyObject(test_redis_cmd("CONFIG SET maxmemory 0"));
    return 0;
}

/* ------------------------------------------------------- sizes */

/* bytes Redis has sent to its clients so far */
static long long net_output(void)
{
    return test_redis_info("stats", "total_net_output_bytes:");
}

static void set_big(const char *key, size_t n)
{
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[0] = '{';
    big[n] = '\0';
    freeReplyObject(test_redis_cmd("SET %s %b", key, big, n));
    free(big);
}

/* Larger than max_value_bytes (64 KiB here): deleted, read from
 * PostgreSQL. A hit is a native command, which cannot measure a value
 * before sending it: the client stops reading at the reply's budget and
 * lets the connection go (not an outage). */
static void oversized_value(void **state)
{
    (void)state;
    const char *key = test_user_key(ann);
    set_big(key, 8u << 20);
    long long sent = net_output();
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
    assert_string_equal(u.name, "Ann");
    blog_user_clear(&u);
    assert_true(net_output() - sent < (8 << 20)); /* not all of it was read */
    assert_int_equal(STAT("user", "corrupt"), 1);
    assert_breaker_closed();
    char *v = test_redis_get(key);
    assert_non_null(v);
    assert_true(strlen(v) < 1000);
    free(v);

    /* within the budget but over max_value_bytes: corrupt all the same */
    set_big(key, 200000);
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
    assert_string_equal(u.name, "Ann");
    blog_user_clear(&u);
    assert_int_equal(STAT("user", "corrupt"), 2);
    v = test_redis_get(key);
    assert_true(v && strlen(v) < 1000);
    free(v);

    /* in a batch, over the reply's budget: the connection is let go (not an
     * outage), and each key is measured by the lease script instead */
    set_big(key, 8u << 20);
    int64_t ids[] = {ann, bob, cid};
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(repo, ids, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[0].name, "Ann");
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "corrupt"), 3);
    assert_breaker_closed();

    /* within the budget but over max_value_bytes: corrupt all the same */
    set_big(key, 200000);
    assert_int_equal(blog_user_get_many(repo, ids, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 3);
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "corrupt"), 4);
    v = test_redis_get(key);
    assert_true(v && strlen(v) < 1000);
    free(v);
}

/* A large reply's memory goes back when the connection returns to the
 * pool: it does not stay resident for the life of the connection. */
static void large_reply_memory_is_returned(void **state)
{
    (void)state;
    memo_config cfg = {
        .max_value_bytes = 8 << 20, .pool_size = 1, .flags = MEMO_STATS_PRIVATE};
    memo_repo *r = test_open(&cfg);
    blog_user u = {0};
    assert_int_equal(blog_user_get(r, ann, &u), MEMO_OK); /* warm */
    blog_user_clear(&u);
    const char *key = test_user_key(cid);
    set_big(key, 4u << 20); /* within max_value_bytes, and corrupt */
    size_t before = mallinfo2().uordblks;
    assert_int_equal(blog_user_get(r, cid, &u), MEMO_OK);
    blog_user_clear(&u);
    size_t after = mallinfo2().uordblks;
    assert_int_equal(test_stat(r, "blog.user", "corrupt"), 1);
    if (after > before + (1u << 20))
        fail_msg("%zu bytes still held after a 4 MB reply", after - before);
    memo_close(r);
}

/* ------------------------------------------------------- lists */

static void list_longer_than_its_limit(void **state)
{
    (void)state;
    const char *lk = test_by_org_key(org_a);
    /* 100 000 ids: the limit is 500 */
    size_t cap = 100000 * 8 + 16, n = 0;
    char *ids = malloc(cap);
    n += (size_t)snprintf(ids + n, cap - n, "[%lld", (long long)ann);
    for (int i = 1; i < 100000; i++)
        n += (size_t)snprintf(ids + n, cap - n, ",%d", 1000000 + i);
    snprintf(ids + n, cap - n, "]");
    freeReplyObject(test_redis_cmd("SET %s %s", lk, ids));
    free(ids);
    long long queries = STAT("user", "db_queries");
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org_a, &l), MEMO_OK);
    assert_int_equal(l.len, 2); /* ann and cid, from PostgreSQL */
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "corrupt"), 1);
    /* the forged ids were never looked up: the list and its two rows */
    assert_int_equal(STAT("user", "db_queries") - queries, 2);
    char *v = test_redis_get(lk);
    assert_non_null(v);
    assert_true(strlen(v) < 100);
    free(v);
}

/* A list naming rows of another group: dropped and read again. */
static void list_with_rows_of_another_group(void **state)
{
    (void)state;
    char forged[64];
    const char *lk = test_by_org_key(org_a);
    snprintf(forged, sizeof forged, "[%lld,%lld]", (long long)ann, (long long)bob);
    freeReplyObject(test_redis_cmd("SET %s %s", lk, forged));
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org_a, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    for (size_t i = 0; i < l.len; i++)
        assert_int_equal(l.items[i].org_id, org_a); /* never bob */
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "corrupt"), 1);
    assert_breaker_closed();
}

/* ------------------------------------------------------- keys */

/* Another row's value under a row's key, a lookup naming another row: the
 * answer is always the row asked for. */
static void row_under_another_key(void **state)
{
    (void)state;
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, bob, &u), MEMO_OK);
    blog_user_clear(&u);
    const char *ak = test_user_key(ann);
    const char *bk = test_user_key(bob);
    char *bobs = test_redis_get(bk);
    freeReplyObject(test_redis_cmd("SET %s %s", ak, bobs));
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
    assert_int_equal(u.id, ann);
    assert_string_equal(u.name, "Ann");
    blog_user_clear(&u);
    assert_int_equal(STAT("user", "corrupt"), 1);

    freeReplyObject(test_redis_cmd("SET %s %s", ak, bobs));
    int64_t ids[] = {ann};
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(repo, ids, 1, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    assert_int_equal(l.items[0].id, ann);
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "corrupt"), 2);
    free(bobs);

    /* a lookup naming another row, cached or not */
    char pk[32];
    const char *ek = test_email_key("ann@x");
    snprintf(pk, sizeof pk, "%lld", (long long)bob);
    freeReplyObject(test_redis_cmd("SET %s %s", ek, pk));
    assert_int_equal(blog_user_get_by_email(repo, "ann@x", &u), MEMO_OK);
    assert_int_equal(u.id, ann);
    blog_user_clear(&u);
    freeReplyObject(test_redis_cmd("DEL %s", bk));
    freeReplyObject(test_redis_cmd("SET %s %s", ek, pk));
    assert_int_equal(blog_user_get_by_email(repo, "ann@x", &u), MEMO_OK);
    assert_int_equal(u.id, ann);
    blog_user_clear(&u);
    /* a lookup naming a row that does not exist is no proof of absence */
    freeReplyObject(test_redis_cmd("SET %s %s", ek, "987654"));
    assert_int_equal(blog_user_get_by_email(repo, "ann@x", &u), MEMO_OK);
    assert_int_equal(u.id, ann);
    blog_user_clear(&u);
    assert_int_equal(STAT("user", "corrupt"), 5);
    assert_breaker_closed();
}

/* Text keys (the review's case): the key of m1 holding m2's row. */
static void text_key_holding_another_row(void **state)
{
    (void)state;
    wiki_page p = {.slug = (char *)"m1",
                   .title = (char *)"one",
                   .body = (char *)"b",
                   .meta = (char *)"{}",
                   .space = (char *)"s",
                   .views_is_null = true,
                   .rating_is_null = true,
                   .locked_is_null = true,
                   .edited_at_is_null = true};
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
    p.slug = (char *)"m2";
    p.title = (char *)"two";
    p.position = 1;
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
    wiki_page g = {0};
    assert_int_equal(wiki_page_get(repo, "m2", &g), MEMO_OK);
    wiki_page_clear(&g);
    const char *k1 = test_page_key("m1"), *k2 = test_page_key("m2");
    char *v = test_redis_get(k2);
    assert_non_null(v);
    freeReplyObject(test_redis_cmd("SET %s %s", k1, v));
    free(v);
    assert_int_equal(wiki_page_get(repo, "m1", &g), MEMO_OK);
    assert_string_equal(g.slug, "m1");
    assert_string_equal(g.title, "one");
    wiki_page_clear(&g);
    assert_int_equal(test_stat(repo, "wiki.page", "corrupt"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(wrong_type_is_corrupt_not_an_outage, setup),
        cmocka_unit_test_setup(lease_without_expiry_is_taken_over, setup),
        cmocka_unit_test_setup(live_lease_on_every_path, setup),
        cmocka_unit_test_setup(too_large_to_cache_gives_its_lease_back, setup),
        cmocka_unit_test_setup_teardown(hits_served_when_writes_refused, setup,
                                        writes_allowed_again),
        cmocka_unit_test_setup(oversized_value, setup),
        cmocka_unit_test_setup(large_reply_memory_is_returned, setup),
        cmocka_unit_test_setup(list_longer_than_its_limit, setup),
        cmocka_unit_test_setup(list_with_rows_of_another_group, setup),
        cmocka_unit_test_setup(row_under_another_key, setup),
        cmocka_unit_test_setup(text_key_holding_another_row, setup),
    };
    return cmocka_run_group_tests_name("untrusted Redis contents", tests, group_setup,
                                       test_group_close);
}
