/* The blog repository on the real servers: every generated function, and
 * each invalidation case checked by looking into Redis and at the stats. */
#include "test.h"
#include "schema_keys.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blog.h"
#include "internal.h" /* the test hooks */

static memo_repo *repo;
static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};

/* ------------------------------------------------------------- helpers */

static int64_t new_org(const char *slug)
{
    blog_org o = {.slug = (char *)slug,
                  .name = (char *)"Org",
                  .plan = (char *)"free",
                  .created_at = 1700000000000000};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    assert_true(o.id > 0);
    return o.id;
}

static int64_t new_user(const char *email, const char *name, int64_t org)
{
    blog_user u = {.email = (char *)email,
                   .name = (char *)name,
                   .org_id = org,
                   .karma = 1,
                   .active = true,
                   .created_at = 1700000000123456};
    assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
    assert_true(u.id > 0);
    return u.id;
}

static int64_t new_post(int64_t author, const char *title)
{
    blog_post p = {.author_id = author,
                   .title = (char *)title,
                   .body = (char *)"body",
                   .score = 1.5,
                   .published_at_is_null = true};
    assert_int_equal(blog_post_insert(repo, &p), MEMO_OK);
    return p.id;
}

#define STAT(entity, counter) test_stat(repo, "blog." entity, counter)

/* --------------------------------------------------------------- setup */

static int group_setup(void **state)
{
    test_schema_sql("blog");
    repo = *state = test_open(NULL);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    test_reset(tables);
    memo_stats_reset(repo);
    return 0;
}

/* --------------------------------------------------------------- tests */

static void get_miss_then_hit(void **state)
{
    (void)state;
    int64_t org = new_org("acme");
    int64_t id = new_user("ann@example.com", "Ann", org);
    const char *key = test_user_key(id);
    assert_false(test_redis_exists(key)); /* the insert filled nothing */

    memo_stats_reset(repo);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_int_equal(u.id, id);
    assert_string_equal(u.email, "ann@example.com");
    assert_string_equal(u.name, "Ann");
    assert_int_equal(u.org_id, org);
    assert_null(u.bio);
    assert_int_equal(u.karma, 1);
    assert_true(u.active);
    assert_int_equal(u.created_at, 1700000000123456);
    blog_user_clear(&u);
    assert_null(u.email);

    /* the value is a JSON object with field names, readable in redis-cli */
    char *v = test_redis_get(key);
    assert_non_null(v);
    assert_non_null(strstr(v, "\"email\":\"ann@example.com\""));
    assert_non_null(strstr(v, "\"bio\":null"));
    free(v);
    assert_int_equal(STAT("user", "misses"), 1);
    assert_int_equal(STAT("user", "fills"), 1);
    assert_int_equal(STAT("user", "db_queries"), 1);

    /* a second read comes from Redis: no query */
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_string_equal(u.name, "Ann");
    assert_int_equal(u.created_at, 1700000000123456);
    blog_user_clear(&u);
    assert_int_equal(STAT("user", "hits"), 1);
    assert_int_equal(STAT("user", "db_queries"), 1);
}

static void negative_cache(void **state)
{
    (void)state;
    const char *key = test_user_key(4242);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, 4242, &u), MEMO_NOT_FOUND);
    test_assert_redis_value(key, "null");
    /* negative 30s, jitter 10%: [30s, 33s] */
    long long pttl = test_redis_pttl(key);
    assert_in_range(pttl, 29000, 33000);

    long long q = STAT("user", "db_queries");
    assert_int_equal(blog_user_get(repo, 4242, &u), MEMO_NOT_FOUND);
    assert_int_equal(STAT("user", "db_queries"), q);
    assert_int_equal(STAT("user", "negative_hits"), 1);

    /* an insert with that id deletes the negative entry */
    int64_t org = new_org("neg");
    blog_user n = {.id = 4242,
                   .email = (char *)"n@x",
                   .name = (char *)"N",
                   .org_id = org,
                   .created_at = 5};
    assert_int_equal(blog_user_insert(repo, &n), MEMO_OK);
    assert_false(test_redis_exists(key));
    assert_int_equal(blog_user_get(repo, 4242, &u), MEMO_OK);
    assert_string_equal(u.email, "n@x");
    blog_user_clear(&u);

    /* and for a unique lookup */
    const char *ekey = test_email_key("nobody@x");
    assert_int_equal(blog_user_get_by_email(repo, "nobody@x", &u), MEMO_NOT_FOUND);
    test_assert_redis_value(ekey, "null");
    new_user("nobody@x", "Nobody", org);
    assert_false(test_redis_exists(ekey));
    assert_int_equal(blog_user_get_by_email(repo, "nobody@x", &u), MEMO_OK);
    assert_string_equal(u.name, "Nobody");
    blog_user_clear(&u);
}

static void ttl_with_jitter(void **state)
{
    (void)state;
    int64_t org = new_org("ttl");
    /* ttl 10m jitter 10%: every fill lands in [600 s, 660 s] */
    long long lo = 1LL << 62, hi = 0;
    for (int i = 0; i < 20; i++) {
        char email[32];
        snprintf(email, sizeof email, "t%d@x", i);
        int64_t id = new_user(email, "T", org);
        blog_user u = {0};
        assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
        blog_user_clear(&u);
        long long pttl = test_redis_pttl(test_user_key(id));
        assert_in_range(pttl, 599000, 660000);
        lo = pttl < lo ? pttl : lo;
        hi = pttl > hi ? pttl : hi;
    }
    assert_true(hi - lo > 1000); /* jittered, not all equal */
    /* list: ttl 60s, no jitter */
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 20);
    blog_user_list_clear(&l);
    assert_in_range(test_redis_pttl(test_by_org_key(org)), 59000, 60000);
}

static void unique_field_moved(void **state)
{
    (void)state;
    int64_t org = new_org("u");
    int64_t id = new_user("old@x", "Ann", org);
    blog_user u = {0};
    assert_int_equal(blog_user_get_by_email(repo, "old@x", &u), MEMO_OK);
    const char *oldk = test_email_key("old@x");
    const char *newk = test_email_key("new@x");
    char *v = test_redis_get(oldk);
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)id);
    assert_string_equal(v, want); /* the lookup holds the primary key */
    free(v);
    /* a negative entry for the new value, which the update must delete */
    blog_user none = {0};
    assert_int_equal(blog_user_get_by_email(repo, "new@x", &none), MEMO_NOT_FOUND);
    assert_true(test_redis_exists(newk));

    long long inv = STAT("user", "invalidations");
    free(u.email);
    u.email = strdup("new@x");
    assert_int_equal(blog_user_update(repo, &u), MEMO_OK);
    assert_false(test_redis_exists(oldk));
    assert_false(test_redis_exists(newk));
    /* row + old email + new email; the list is untouched (org and name same) */
    assert_int_equal(STAT("user", "invalidations") - inv, 3);
    blog_user_clear(&u);

    assert_int_equal(blog_user_get_by_email(repo, "old@x", &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "new@x", &u), MEMO_OK);
    assert_int_equal(u.id, id);
    blog_user_clear(&u);
}

static void list_group_moved(void **state)
{
    (void)state;
    int64_t a = new_org("a"), b = new_org("b");
    int64_t x = new_user("x@x", "Xavier", a);
    new_user("y@x", "Yvonne", a);
    new_user("z@x", "Zoe", b);
    blog_user_list la = {0}, lb = {0};
    assert_int_equal(blog_user_by_org(repo, a, &la), MEMO_OK);
    assert_int_equal(blog_user_by_org(repo, b, &lb), MEMO_OK);
    assert_int_equal(la.len, 2);
    assert_int_equal(lb.len, 1);
    const char *ka = test_by_org_key(a);
    const char *kb = test_by_org_key(b);
    char *v = test_redis_get(ka);
    assert_non_null(v); /* the list caches ids, ordered by name */
    char want[64];
    snprintf(want, sizeof want, "[%lld,%lld]", (long long)la.items[0].id,
             (long long)la.items[1].id);
    assert_string_equal(v, want);
    free(v);
    blog_user_list_clear(&lb);

    blog_user moved = la.items[0];
    assert_int_equal(moved.id, x);
    moved.org_id = b;
    assert_int_equal(blog_user_update(repo, &moved), MEMO_OK);
    blog_user_list_clear(&la);
    assert_false(test_redis_exists(ka));
    assert_false(test_redis_exists(kb));

    assert_int_equal(blog_user_by_org(repo, a, &la), MEMO_OK);
    assert_int_equal(blog_user_by_org(repo, b, &lb), MEMO_OK);
    assert_int_equal(la.len, 1);
    assert_string_equal(la.items[0].name, "Yvonne");
    assert_int_equal(lb.len, 2);
    assert_string_equal(lb.items[0].name, "Xavier"); /* ordered by name */
    assert_string_equal(lb.items[1].name, "Zoe");
    blog_user_list_clear(&la);
    blog_user_list_clear(&lb);
}

static void order_field_changed(void **state)
{
    (void)state;
    int64_t org = new_org("o");
    int64_t id = new_user("a@o", "Alice", org);
    new_user("b@o", "Bob", org);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_string_equal(l.items[0].name, "Alice");
    blog_user_list_clear(&l);
    const char *k = test_by_org_key(org);
    assert_true(test_redis_exists(k));

    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    free(u.name);
    u.name = strdup("Zed");
    assert_int_equal(blog_user_update(repo, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_false(test_redis_exists(k));
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].name, "Bob");
    assert_string_equal(l.items[1].name, "Zed");
    blog_user_list_clear(&l);
}

static void edit_keeps_list(void **state)
{
    (void)state;
    int64_t org = new_org("k");
    int64_t id = new_user("k@k", "Kim", org);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    blog_user_list_clear(&l);
    const char *lk = test_by_org_key(org);
    const char *rk = test_user_key(id);
    assert_true(test_redis_exists(lk));
    assert_true(test_redis_exists(rk));

    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    u.karma = 99;
    free(u.bio);
    u.bio = strdup("now with a bio");
    assert_int_equal(blog_user_update(repo, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_true(test_redis_exists(lk)); /* membership and order unchanged */
    assert_false(test_redis_exists(rk));

    /* the list still shows the fresh row: rows are read by id */
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    assert_int_equal(l.items[0].karma, 99);
    assert_string_equal(l.items[0].bio, "now with a bio");
    blog_user_list_clear(&l);
}

static void insert_and_delete_in_list(void **state)
{
    (void)state;
    int64_t org = new_org("l");
    new_user("a@l", "A", org);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    blog_user_list_clear(&l);
    const char *lk = test_by_org_key(org);
    assert_true(test_redis_exists(lk));

    int64_t b = new_user("b@l", "B", org);
    assert_false(test_redis_exists(lk));
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    blog_user_list_clear(&l);

    assert_int_equal(blog_user_delete(repo, b), MEMO_OK);
    assert_false(test_redis_exists(lk));
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].name, "A");
    blog_user_list_clear(&l);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, b, &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_delete(repo, b), MEMO_NOT_FOUND);
}

static void rules_across_entities(void **state)
{
    (void)state;
    int64_t org = new_org("r");
    int64_t ann = new_user("ann@r", "Ann", org), bob = new_user("bob@r", "Bob", org);
    const char *ak = test_user_key(ann);
    const char *bk = test_user_key(bob);
    blog_user u = {0};

    /* insert: on change invalidate user(author_id) */
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_true(test_redis_exists(ak));
    int64_t post = new_post(ann, "Hello");
    assert_false(test_redis_exists(ak));

    /* update that moves the post to another author: old and new authors */
    assert_int_equal(blog_user_get(repo, ann, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get(repo, bob, &u), MEMO_OK);
    blog_user_clear(&u);
    blog_post p = {0};
    assert_int_equal(blog_post_get(repo, post, &p), MEMO_OK);
    p.author_id = bob;
    long long inv = STAT("user", "invalidations");
    assert_int_equal(blog_post_update(repo, &p), MEMO_OK);
    assert_false(test_redis_exists(ak));
    assert_false(test_redis_exists(bk));
    assert_int_equal(STAT("user", "invalidations") - inv, 2);

    /* delete */
    assert_int_equal(blog_user_get(repo, bob, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_true(test_redis_exists(bk));
    assert_int_equal(blog_post_delete(repo, post), MEMO_OK);
    assert_false(test_redis_exists(bk));
    blog_post_clear(&p);

    /* comments: on insert and on delete invalidate post(post_id), not on update */
    post = new_post(ann, "Again");
    const char *pk = test_post_key(post);
    assert_int_equal(blog_post_get(repo, post, &p), MEMO_OK);
    blog_post_clear(&p);
    assert_true(test_redis_exists(pk));
    blog_comment c = {
        .post_id = post, .author_id = bob, .body = (char *)"Nice", .created_at = 10};
    assert_int_equal(blog_comment_insert(repo, &c), MEMO_OK);
    assert_false(test_redis_exists(pk));
    assert_int_equal(blog_post_get(repo, post, &p), MEMO_OK);
    blog_post_clear(&p);
    c.body = (char *)"Nicer";
    assert_int_equal(blog_comment_update(repo, &c), MEMO_OK);
    assert_true(test_redis_exists(pk)); /* no rule for update */
    assert_int_equal(blog_comment_delete(repo, c.id), MEMO_OK);
    assert_false(test_redis_exists(pk));
}

static void get_many_order_and_batching(void **state)
{
    (void)state;
    int64_t org = new_org("m");
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char email[16];
        snprintf(email, sizeof email, "m%d@m", i);
        ids[i] = new_user(email, email, org);
    }
    /* warm two of them */
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, ids[1], &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get(repo, ids[3], &u), MEMO_OK);
    blog_user_clear(&u);
    memo_stats_reset(repo);

    int64_t ask[] = {ids[4], 999999, ids[1], ids[0], ids[4], ids[3], ids[2]};
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(repo, ask, 7, &l), MEMO_OK);
    assert_int_equal(l.len, 6); /* found rows only, in the order asked */
    int64_t want[] = {ids[4], ids[1], ids[0], ids[4], ids[3], ids[2]};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(l.items[i].id, want[i]);
    assert_string_equal(l.items[0].email, "m4@m");
    assert_string_equal(l.items[3].email, "m4@m");
    blog_user_list_clear(&l);
    assert_null(l.items);
    assert_int_equal(STAT("user", "db_queries"), 1); /* one query for every miss */
    assert_int_equal(STAT("user", "hits"), 2);
    assert_int_equal(STAT("user", "misses"), 5);
    assert_int_equal(STAT("user", "corrupt"), 0); /* a miss is not a corrupt value */

    /* now all of them are cached, the missing one negatively */
    assert_int_equal(blog_user_get_many(repo, ask, 7, &l), MEMO_OK);
    assert_int_equal(l.len, 6);
    blog_user_list_clear(&l);
    assert_int_equal(STAT("user", "db_queries"), 1);
    assert_int_equal(STAT("user", "negative_hits"), 1);

    assert_int_equal(blog_user_get_many(repo, ask, 0, &l), MEMO_OK);
    assert_int_equal(l.len, 0);
}

static void hostile_keys(void **state)
{
    (void)state;
    int64_t org = new_org("h");
    new_user("plain@h", "Plain", org);
    static const char *const nasty[] = {
        "a:b",
        "a%3Ab",
        "*",
        "?",
        "[x]",
        "{tag}",
        "new\nline",
        "sp ace",
        "~x",
        "",
        "blog:{user:1}:tag",
    };
    /* (blog's keys only: the statistics' key may appear meanwhile) */
    long before = test_redis_count("blog:*");
    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        blog_user u = {0};
        assert_int_equal(blog_user_get_by_email(repo, nasty[i], &u), MEMO_NOT_FOUND);
    }
    /* one negative entry each: no two inputs share a key */
    assert_int_equal(test_redis_count("blog:*"),
                     before + (long)(sizeof nasty / sizeof nasty[0]));
    char scan[64];
    snprintf(scan, sizeof scan, "blog:{user:email=*}:%s",
             blog_user_desc.uniques[0].key.tag);
    redisReply *r = test_redis_cmd("KEYS %s", scan);
    for (size_t i = 0; i < r->elements; i++) {
        const char *k = r->element[i]->str;
        /* the user part between "email=" and "}" has no raw specials */
        const char *part = strstr(k, "email=") + 6;
        const char *end = strrchr(k, '}');
        for (const char *p = part; p < end; p++)
            assert_null(strchr(":*?[]{} \n", *p));
    }
    freeReplyObject(r);

    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        if (!nasty[i][0])
            continue;
        blog_user u = {.email = (char *)nasty[i], .name = (char *)"N", .org_id = org};
        assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
    }
    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        blog_user u = {0};
        if (!nasty[i][0])
            continue;
        assert_int_equal(blog_user_get_by_email(repo, nasty[i], &u), MEMO_OK);
        assert_string_equal(u.email, nasty[i]);
        blog_user_clear(&u);
    }
    /* 10 KB: the key part is hashed, the value round-trips */
    char *big = malloc(10241);
    for (int i = 0; i < 10240; i++)
        big[i] = "ab:*{}\n"[i % 7];
    big[10240] = '\0';
    blog_user u = {.email = big, .name = big, .org_id = org};
    assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
    for (int pass = 0; pass < 2; pass++) {
        blog_user g = {0};
        assert_int_equal(blog_user_get_by_email(repo, big, &g), MEMO_OK);
        assert_string_equal(g.name, big);
        blog_user_clear(&g);
    }
    r = test_redis_cmd("KEYS blog:{user:email=~*");
    assert_int_equal(r->elements, 1);
    assert_true(r->element[0]->len < 100);
    freeReplyObject(r);
    free(big);
    /* the plain user was never touched */
    blog_user p = {0};
    assert_int_equal(blog_user_get_by_email(repo, "plain@h", &p), MEMO_OK);
    assert_string_equal(p.name, "Plain");
    blog_user_clear(&p);
}

static void corrupt_value_heals(void **state)
{
    (void)state;
    int64_t org = new_org("c");
    int64_t id = new_user("c@c", "Carol", org);
    const char *key = test_user_key(id);
    static const char *const junk[] = {"{not json", "[1,2]", "{\"id\":\"x\"}", "42", ""};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        freeReplyObject(test_redis_cmd("SET %s %s", key, junk[i]));
        long long errors = STAT("user", "errors"), corrupt = STAT("user", "corrupt");
        blog_user u = {0};
        assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
        assert_string_equal(u.name, "Carol");
        blog_user_clear(&u);
        assert_int_equal(STAT("user", "corrupt") - corrupt, 1);
        assert_int_equal(STAT("user", "errors") - errors, 0); /* nothing failed */
        assert_non_null(strstr(memo_last_error(repo), "corrupt"));
        /* overwritten with the real row */
        char *v = test_redis_get(key);
        assert_non_null(v);
        assert_non_null(strstr(v, "\"name\":\"Carol\""));
        free(v);
    }
    /* a corrupt unique lookup and list heal too */
    const char *ek = test_email_key("c@c");
    const char *lk = test_by_org_key(org);
    freeReplyObject(test_redis_cmd("SET %s %s", ek, "{oops"));
    freeReplyObject(test_redis_cmd("SET %s %s", lk, "[\"x\""));
    blog_user u = {0};
    assert_int_equal(blog_user_get_by_email(repo, "c@c", &u), MEMO_OK);
    assert_int_equal(u.id, id);
    blog_user_clear(&u);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    blog_user_list_clear(&l);
}

static void conflicts_and_errors(void **state)
{
    (void)state;
    int64_t org = new_org("e");
    memo_stats_reset(repo);
    new_user("dup@e", "D", org);
    blog_user u = {.email = (char *)"dup@e", .name = (char *)"E", .org_id = org};
    assert_int_equal(blog_user_insert(repo, &u), MEMO_CONFLICT);
    assert_non_null(strstr(memo_last_error(repo), "dup@e"));
    /* a foreign key the database refuses */
    blog_user orphan = {.email = (char *)"o@e", .name = (char *)"O", .org_id = 987654};
    assert_int_equal(blog_user_insert(repo, &orphan), MEMO_ERR_CONSTRAINT);
    assert_non_null(strstr(memo_last_error(repo), "23503"));
    /* NULL where the schema says not nullable */
    blog_user bad = {.email = NULL, .name = (char *)"B", .org_id = org};
    assert_int_equal(blog_user_insert(repo, &bad), MEMO_ERR_ARG);
    assert_non_null(strstr(memo_last_error(repo), "email"));
    assert_int_equal(blog_user_get_by_email(repo, NULL, &u), MEMO_ERR_ARG);
    /* a read the database refuses (not UTF-8) gives its lease back at once */
    assert_int_equal(blog_user_get_by_email(repo, "\xff", &u), MEMO_ERR_ARG);
    assert_false(test_redis_exists(test_email_key("%FF")));
    /* updates of missing rows */
    blog_user ghost = {
        .id = 5555, .email = (char *)"g@e", .name = (char *)"G", .org_id = org};
    assert_int_equal(blog_user_update(repo, &ghost), MEMO_NOT_FOUND);
    /* a conflicting update changes nothing and invalidates nothing */
    int64_t id = new_user("mine@e", "M", org);
    blog_user m = {0};
    assert_int_equal(blog_user_get(repo, id, &m), MEMO_OK);
    free(m.email);
    m.email = strdup("dup@e");
    const char *key = test_user_key(id);
    assert_int_equal(blog_user_update(repo, &m), MEMO_CONFLICT);
    assert_true(test_redis_exists(key));
    blog_user_clear(&m);
    /* refusals of the data are counted apart from failures of the system:
     * two conflicts, a foreign key, a value that is not UTF-8 */
    assert_int_equal(STAT("user", "rejected"), 4);
    assert_int_equal(STAT("user", "errors"), 0);
}

static void stats_are_exact(void **state)
{
    (void)state;
    int64_t org = new_org("s");
    int64_t a = new_user("a@s", "A", org), b = new_user("b@s", "B", org);
    memo_stats_reset(repo);
    blog_user u = {0};
    /* 3 misses (a, b, missing) then 4 hits and 1 negative hit */
    int64_t seq[] = {a, b, 777, a, a, b, b, 777};
    for (size_t i = 0; i < 8; i++) {
        memo_status st = blog_user_get(repo, seq[i], &u);
        assert_int_equal(st, seq[i] == 777 ? MEMO_NOT_FOUND : MEMO_OK);
        blog_user_clear(&u);
    }
    assert_int_equal(STAT("user", "misses"), 3);
    assert_int_equal(STAT("user", "hits"), 4);
    assert_int_equal(STAT("user", "negative_hits"), 1);
    assert_int_equal(STAT("user", "fills"), 3);
    assert_int_equal(STAT("user", "db_queries"), 3);
    assert_int_equal(STAT("user", "degraded"), 0);
    assert_int_equal(STAT("user", "errors"), 0);
    /* as a struct, and into a shorter one (an application built with an
     * older memo.h) without writing past it */
    memo_entity_stats es = MEMO_ENTITY_STATS_INIT;
    assert_int_equal(memo_stats_entity(repo, &blog_user_desc, &es), MEMO_OK);
    assert_int_equal(es.hits, 4);
    assert_int_equal(es.calls, 8);
    assert_int_equal(es.size, sizeof es);
    union {
        memo_entity_stats s;
        unsigned char bytes[sizeof(memo_entity_stats)];
    } old;
    memset(&old, 0xA5, sizeof old);
    old.s.size = offsetof(memo_entity_stats, rejected);
    assert_int_equal(memo_stats_entity(repo, &blog_user_desc, &old.s), MEMO_OK);
    assert_int_equal(old.s.misses, 3);
    for (size_t i = offsetof(memo_entity_stats, rejected); i < sizeof old; i++)
        assert_int_equal(old.bytes[i], 0xA5);
    char *js = memo_stats_json(repo);
    assert_non_null(strstr(js, "\"hit_latency_us\":{\"count\":5"));
    assert_non_null(strstr(js, "\"miss_latency_us\":{\"count\":3"));
    free(js);
}

/* Every generated function of blog.h, each with an assertion on what it
 * returned (the cases above go deeper for users). */
static void every_function(void **state)
{
    (void)state;
    char slug[] = "every", name[] = "Every", plan[] = "pro";
    blog_org o = {.slug = slug, .name = name, .plan = plan, .created_at = 7};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    blog_org og = {0};
    assert_int_equal(blog_org_get(repo, o.id, &og), MEMO_OK);
    assert_string_equal(og.plan, "pro");
    assert_int_equal(og.created_at, 7);
    blog_org_clear(&og);
    assert_int_equal(blog_org_get_by_slug(repo, "every", &og), MEMO_OK);
    assert_int_equal(og.id, o.id);
    free(og.plan);
    og.plan = strdup("free");
    assert_int_equal(blog_org_update(repo, &og), MEMO_OK);
    blog_org_clear(&og);
    blog_org_list ol = {0};
    int64_t oids[] = {o.id, 424242};
    assert_int_equal(blog_org_get_many(repo, oids, 2, &ol), MEMO_OK);
    assert_int_equal(ol.len, 1);
    assert_string_equal(ol.items[0].plan, "free");
    blog_org_list_clear(&ol);
    blog_org_list_clear(NULL);
    blog_org_clear(NULL);
    /* every function refuses a NULL result the same way (lists used to
     * write through it) */
    assert_int_equal(blog_org_get(repo, o.id, NULL), MEMO_ERR_ARG);
    assert_int_equal(blog_org_get_by_slug(repo, "every", NULL), MEMO_ERR_ARG);
    assert_int_equal(blog_org_get_many(repo, oids, 2, NULL), MEMO_ERR_ARG);
    assert_int_equal(blog_user_by_org(repo, o.id, NULL), MEMO_ERR_ARG);
    assert_non_null(strstr(memo_last_error(repo), "memo_list"));
    memo_tx *ntx = (memo_tx *)repo; /* must come back NULL */
    assert_int_equal(memo_begin(repo, NULL), MEMO_ERR_ARG);
    assert_int_equal(memo_begin(NULL, &ntx), MEMO_ERR_ARG);
    assert_null(ntx);
    assert_int_equal(memo_begin(repo, &ntx), MEMO_OK);
    assert_int_equal(blog_org_get_tx(ntx, o.id, NULL), MEMO_ERR_ARG);
    assert_int_equal(blog_org_get_many_tx(ntx, oids, 2, NULL), MEMO_ERR_ARG);
    assert_int_equal(blog_user_by_org_tx(ntx, o.id, NULL), MEMO_ERR_ARG);
    assert_int_equal(memo_rollback(ntx), MEMO_OK);

    int64_t author = new_user("author@every", "Author", o.id);
    int64_t p1 = new_post(author, "One"), p2 = new_post(author, "Two");
    blog_post_list pl = {0};
    assert_int_equal(blog_post_by_author(repo, author, &pl), MEMO_OK);
    assert_int_equal(pl.len, 2);
    assert_int_equal(pl.items[0].id, p2); /* order by id desc */
    assert_true(pl.items[0].published_at_is_null);
    assert_true(pl.items[0].score == 1.5);
    blog_post_list_clear(&pl);
    int64_t pids[] = {p1, p2};
    assert_int_equal(blog_post_get_many(repo, pids, 2, &pl), MEMO_OK);
    assert_int_equal(pl.len, 2);
    assert_string_equal(pl.items[1].title, "Two");
    blog_post_list_clear(&pl);
    blog_post pg = {0};
    assert_int_equal(blog_post_get(repo, p1, &pg), MEMO_OK);
    pg.published_at_is_null = false;
    pg.published_at = 1234567;
    assert_int_equal(blog_post_update(repo, &pg), MEMO_OK);
    blog_post_clear(&pg);
    assert_int_equal(blog_post_get(repo, p1, &pg), MEMO_OK);
    assert_false(pg.published_at_is_null);
    assert_int_equal(pg.published_at, 1234567);
    blog_post_clear(&pg);

    char body[] = "first!";
    blog_comment c = {.post_id = p1, .author_id = author, .body = body, .created_at = 5};
    assert_int_equal(blog_comment_insert(repo, &c), MEMO_OK);
    blog_comment cg = {0};
    assert_int_equal(blog_comment_get(repo, c.id, &cg), MEMO_OK);
    assert_string_equal(cg.body, "first!");
    blog_comment_clear(&cg);
    blog_comment_list cl = {0};
    assert_int_equal(blog_comment_by_post(repo, p1, &cl), MEMO_OK);
    assert_int_equal(cl.len, 1);
    blog_comment_list_clear(&cl);
    assert_int_equal(blog_comment_get_many(repo, &c.id, 1, &cl), MEMO_OK);
    assert_int_equal(cl.len, 1);
    blog_comment_list_clear(&cl);
    char edited[] = "edited";
    c.body = edited;
    assert_int_equal(blog_comment_update(repo, &c), MEMO_OK);
    assert_int_equal(blog_comment_get(repo, c.id, &cg), MEMO_OK);
    assert_string_equal(cg.body, "edited");
    blog_comment_clear(&cg);

    /* the _tx variants, in one transaction that reads its own writes */
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    char slug2[] = "in-tx";
    blog_org o2 = {.slug = slug2, .name = name, .plan = plan};
    assert_int_equal(blog_org_insert_tx(tx, &o2), MEMO_OK);
    assert_int_equal(blog_org_get_by_slug_tx(tx, "in-tx", &og), MEMO_OK);
    og.created_at = 99;
    assert_int_equal(blog_org_update_tx(tx, &og), MEMO_OK);
    blog_org_clear(&og);
    assert_int_equal(blog_org_get_tx(tx, o2.id, &og), MEMO_OK);
    assert_int_equal(og.created_at, 99);
    blog_org_clear(&og);
    int64_t both[] = {o.id, o2.id};
    assert_int_equal(blog_org_get_many_tx(tx, both, 2, &ol), MEMO_OK);
    assert_int_equal(ol.len, 2);
    blog_org_list_clear(&ol);
    blog_user_list ul = {0};
    assert_int_equal(blog_user_by_org_tx(tx, o.id, &ul), MEMO_OK);
    assert_int_equal(ul.len, 1);
    blog_user_list_clear(&ul);
    blog_user uu = {0};
    assert_int_equal(blog_user_get_by_email_tx(tx, "author@every", &uu), MEMO_OK);
    assert_int_equal(blog_user_get_many_tx(tx, &uu.id, 1, &ul), MEMO_OK);
    assert_int_equal(ul.len, 1);
    blog_user_list_clear(&ul);
    blog_user_clear(&uu);
    assert_int_equal(blog_post_by_author_tx(tx, author, &pl), MEMO_OK);
    assert_int_equal(pl.len, 2);
    blog_post_list_clear(&pl);
    assert_int_equal(blog_comment_by_post_tx(tx, p1, &cl), MEMO_OK);
    assert_int_equal(cl.len, 1);
    blog_comment_list_clear(&cl);
    assert_int_equal(blog_comment_delete_tx(tx, c.id), MEMO_OK);
    assert_int_equal(blog_comment_get_tx(tx, c.id, &cg), MEMO_NOT_FOUND);
    assert_int_equal(blog_post_delete_tx(tx, p2), MEMO_OK);
    assert_int_equal(blog_post_get_tx(tx, p2, &pg), MEMO_NOT_FOUND);
    pg = (blog_post){.author_id = author, .title = name, .body = body};
    assert_int_equal(blog_post_insert_tx(tx, &pg), MEMO_OK);
    assert_int_equal(blog_post_update_tx(tx, &pg), MEMO_OK);
    int64_t p3 = pg.id;
    assert_int_equal(blog_org_delete_tx(tx, o2.id), MEMO_OK);
    blog_user nu = {.email = slug2, .name = name, .org_id = o.id};
    assert_int_equal(blog_user_insert_tx(tx, &nu), MEMO_OK);
    nu.karma = 3;
    assert_int_equal(blog_user_update_tx(tx, &nu), MEMO_OK);
    assert_int_equal(blog_user_delete_tx(tx, nu.id), MEMO_OK);
    assert_int_equal(memo_commit(tx), MEMO_OK);
    /* committed: outside the transaction too */
    assert_int_equal(blog_comment_get(repo, c.id, &cg), MEMO_NOT_FOUND);
    assert_int_equal(blog_post_get(repo, p2, &pg), MEMO_NOT_FOUND);
    assert_int_equal(blog_org_get(repo, o2.id, &og), MEMO_NOT_FOUND);

    assert_int_equal(blog_comment_delete(repo, c.id), MEMO_NOT_FOUND);
    assert_int_equal(blog_post_delete(repo, p1), MEMO_OK);
    assert_int_equal(blog_post_delete(repo, p3),
                     MEMO_OK); /* inserted in the transaction */
    assert_int_equal(blog_user_delete(repo, author), MEMO_OK);
    assert_int_equal(blog_org_delete(repo, o.id), MEMO_OK);
    assert_int_equal(blog_org_get(repo, o.id, &og), MEMO_NOT_FOUND);
}

/* ------------------------------------------------ two repositories' stats */

typedef struct stats_thread {
    memo_repo *repo;
    const char *entity, *other;
    int bad;
} stats_thread;

static void *read_stats(void *arg)
{
    stats_thread *t = arg;
    for (int i = 0; i < 200; i++) {
        char *j = memo_stats_json(t->repo), *p = memo_stats_prometheus(t->repo);
        t->bad += !j || !p || !strstr(j, t->entity) || strstr(j, t->other) ||
                  !strstr(p, t->entity) || strstr(p, t->other);
        free(j);
        free(p);
    }
    return NULL;
}

/* Two repositories write their statistics at the same time, each its own
 * (the writers once shared static name buffers: ThreadSanitizer, in make
 * tsan, sees any such race). */
static void stats_of_two_repositories(void **state)
{
    (void)state;
    int64_t org = new_org("st");
    int64_t id = new_user("st@st", "S", org);
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    memo_repo *a = test_open(&cfg), *b = test_open(&cfg);
    blog_org o = {0};
    assert_int_equal(blog_org_get(a, org, &o), MEMO_OK);
    blog_org_clear(&o);
    blog_user u = {0};
    assert_int_equal(blog_user_get(b, id, &u), MEMO_OK);
    blog_user_clear(&u);
    stats_thread ta = {a, "\"blog.org\"", "\"blog.user\"", 0},
                 tb = {b, "\"blog.user\"", "\"blog.org\"", 0};
    pthread_t x, y;
    pthread_create(&x, NULL, read_stats, &ta);
    pthread_create(&y, NULL, read_stats, &tb);
    pthread_join(x, NULL);
    pthread_join(y, NULL);
    assert_int_equal(ta.bad, 0);
    assert_int_equal(tb.bad, 0);
    memo_close(a);
    memo_close(b);
}

/* --------------------------------------------------- a lookup and its row */

/* A get_by miss caches the lookup only; the next get_by reads the row by its
 * key (get's own lease), and from then on both are hits. A write that keeps
 * the email leaves the lookup cached. */
static void get_by_fills_the_lookup(void **state)
{
    (void)state;
    int64_t org = new_org("pair");
    int64_t id = new_user("pair@x", "Pat", org);
    memo_stats_reset(repo);
    blog_user u = {0};
    const char *key = test_user_key(id);
    const char *ek = test_email_key("pair@x");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(blog_user_get_by_email(repo, "pair@x", &u), MEMO_OK);
        assert_int_equal(u.id, id);
        assert_string_equal(u.name, "Pat");
        blog_user_clear(&u);
        assert_true(test_redis_exists(ek));
        assert_true(test_redis_exists(key) == (i > 0));
        assert_int_equal(STAT("user", "db_queries"), i == 0 ? 1 : 2);
    }
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    u.karma = 7;
    assert_int_equal(blog_user_update(repo, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_true(test_redis_exists(ek));
    assert_false(test_redis_exists(key));
    memo_stats_reset(repo);
    assert_int_equal(blog_user_get_by_email(repo, "pair@x", &u), MEMO_OK);
    assert_int_equal(u.karma, 7);
    blog_user_clear(&u);
    assert_int_equal(STAT("user", "db_queries"), 1); /* the row only */
}

static memo_repo *other;
static int64_t pair_id;
static const char *pair_email; /* what the write sets, or NULL: a rename */

/* Between the reader's query and its fill, another process renames the
 * row, or changes its email too. */
static void write_before_fill(const char *key)
{
    (void)key;
    memop_test_hooks.before_fill = NULL;
    blog_user u = {0};
    assert_int_equal(blog_user_get(other, pair_id, &u), MEMO_OK);
    free(u.name);
    u.name = strdup("Renamed");
    if (pair_email) {
        free(u.email);
        u.email = strdup(pair_email);
    }
    assert_int_equal(blog_user_update(other, &u), MEMO_OK);
    blog_user_clear(&u);
}

/* The lookup read before a write is filled only if the write kept its
 * value (the mapping it caches still holds); the row read with it is never
 * cached, so the next read of the row is the new one. A write that moves
 * the email deletes the lookup, and with it the reader's lease. */
static void get_by_fill_after_a_write(void **state)
{
    (void)state;
    int64_t org = new_org("race");
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    other = test_open(&cfg);
    for (int moves = 0; moves < 2; moves++) {
        const char *email = moves ? "race2@x" : "race@x";
        pair_id = new_user(email, "Old", org);
        pair_email = moves ? "moved@x" : NULL;
        memo_stats_reset(repo);
        memop_test_hooks.before_fill = write_before_fill;
        blog_user u = {0};
        assert_int_equal(blog_user_get_by_email(repo, email, &u), MEMO_OK);
        memop_test_hooks.before_fill = NULL;
        assert_string_equal(u.name, "Old"); /* read before the write */
        blog_user_clear(&u);
        assert_int_equal(STAT("user", "fill_rejects"), moves);
        assert_int_equal(STAT("user", "fills"), 1 - moves);
        assert_false(test_redis_exists(test_user_key(pair_id)));
        assert_true(test_redis_exists(test_email_key(email)) == !moves);
        assert_int_equal(blog_user_get_by_email(repo, email, &u),
                         moves ? MEMO_NOT_FOUND : MEMO_OK);
        if (!moves)
            assert_string_equal(u.name, "Renamed");
        blog_user_clear(&u);
    }
    memo_close(other);
}

/* ------------------------------------------------------------ update_fields */

/* Caches the user's row, its email lookup, its org's list and count. */
static void warm_user(int64_t id, const char *email, int64_t org)
{
    blog_user u = {0};
    blog_user_list l = {0};
    int64_t n;
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(repo, email, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    blog_user_list_clear(&l);
    assert_int_equal(blog_user_by_org_count(repo, org, &n), MEMO_OK);
    memo_stats_reset(repo);
}

/* Which of the row, the lookup, the list and the count are cached: "rlnc"
 * with '-' for each one gone. */
static void assert_cached(int64_t id, const char *email, int64_t org, const char *want)
{
    char by_org_n[256];
    snprintf(by_org_n, sizeof by_org_n, "%s:n", test_by_org_key(org));
    const char *keys[] = {test_user_key(id), test_email_key(email), test_by_org_key(org),
                          by_org_n};
    char got[5] = "rlnc";
    for (int i = 0; i < 4; i++)
        if (!test_redis_exists(keys[i]))
            got[i] = '-';
    assert_string_equal(got, want);
}

/* A partial update writes the fields of its mask only (the others keep the
 * stored values, whatever the row holds) and deletes what those fields
 * move: a non-key field, exactly the row's key; the list's order field, the
 * list but not its count; the group, both groups' lists and counts; the
 * unique field, its old and new lookups. */
static void update_fields_moves_only_what_it_writes(void **state)
{
    (void)state;
    int64_t org = new_org("uf"), org2 = new_org("uf2");
    int64_t id = new_user("uf@x", "Una", org);
    blog_user u = {.id = id, .karma = 99}; /* every other field NULL or 0 */

    warm_user(id, "uf@x", org);
    assert_int_equal(blog_user_update_fields(repo, &u, BLOG_USER_KARMA), MEMO_OK);
    assert_int_equal(STAT("user", "invalidations"), 1); /* the row's DEL alone */
    assert_cached(id, "uf@x", org, "-lnc");
    blog_user got = {0};
    assert_int_equal(blog_user_get(repo, id, &got), MEMO_OK);
    assert_int_equal(got.karma, 99);
    assert_string_equal(got.name, "Una");
    assert_string_equal(got.email, "uf@x");
    assert_int_equal(got.org_id, org);
    assert_true(got.active);
    blog_user_clear(&got);

    warm_user(id, "uf@x", org);
    u.name = (char *)"Ursula"; /* by_org is ordered by name */
    assert_int_equal(blog_user_update_fields(repo, &u, BLOG_USER_NAME), MEMO_OK);
    assert_int_equal(STAT("user", "invalidations"), 2);
    assert_cached(id, "uf@x", org, "-l-c");

    warm_user(id, "uf@x", org);
    warm_user(id, "uf@x", org2);
    u.org_id = org2;
    u.name = NULL; /* not in the mask: not written */
    assert_int_equal(blog_user_update_fields(repo, &u, BLOG_USER_ORG_ID), MEMO_OK);
    assert_int_equal(STAT("user", "invalidations"), 5);
    assert_cached(id, "uf@x", org, "-l--");
    assert_cached(id, "uf@x", org2, "-l--");

    warm_user(id, "uf@x", org2);
    u.email = (char *)"uf2@x";
    assert_int_equal(blog_user_update_fields(repo, &u, BLOG_USER_EMAIL), MEMO_OK);
    assert_int_equal(STAT("user", "invalidations"), 3);
    assert_cached(id, "uf@x", org2, "--nc");
    assert_false(test_redis_exists(test_email_key("uf2@x")));
    /* each write changed its field, and none another's */
    char sql[160], want[64];
    snprintf(sql, sizeof sql,
             "SELECT name || ' ' || email || ' ' || karma || ' ' || org_id FROM users "
             "WHERE id = %lld",
             (long long)id);
    snprintf(want, sizeof want, "Ursula uf2@x 99 %lld", (long long)org2);
    test_assert_sql(sql, want);
}

/* Two writers of different fields, each from its own stale copy of the
 * row: partial updates keep both changes, where a full update would write
 * the second copy's old value over the first change. */
static void update_fields_of_two_writers(void **state)
{
    (void)state;
    int64_t org = new_org("two");
    int64_t id = new_user("two@x", "Tess", org);
    blog_user a = {0}, b = {0};
    assert_int_equal(blog_user_get(repo, id, &a), MEMO_OK);
    assert_int_equal(blog_user_get(repo, id, &b), MEMO_OK);
    a.karma = 7;
    free(b.bio);
    b.bio = strdup("hello");
    assert_int_equal(blog_user_update_fields(repo, &a, BLOG_USER_KARMA), MEMO_OK);
    assert_int_equal(blog_user_update_fields(repo, &b, BLOG_USER_BIO), MEMO_OK);
    blog_user got = {0};
    assert_int_equal(blog_user_get(repo, id, &got), MEMO_OK);
    assert_int_equal(got.karma, 7);
    assert_string_equal(got.bio, "hello");
    blog_user_clear(&got);
    /* the control: a full update from b's copy loses a's karma */
    assert_int_equal(blog_user_update(repo, &b), MEMO_OK);
    assert_int_equal(blog_user_get(repo, id, &got), MEMO_OK);
    assert_int_equal(got.karma, 1);
    blog_user_clear(&got);

    /* masks that write nothing, or name no field, or a NULL it needs */
    assert_int_equal(blog_user_update_fields(repo, &a, 0), MEMO_ERR_ARG);
    assert_int_equal(blog_user_update_fields(repo, &a, BLOG_USER_ID), MEMO_ERR_ARG);
    assert_non_null(strstr(memo_last_error(repo), "writes none of"));
    assert_int_equal(blog_user_update_fields(repo, &a, UINT64_C(1) << 8), MEMO_ERR_ARG);
    assert_non_null(strstr(memo_last_error(repo), "has bits past"));
    assert_int_equal(blog_user_update_fields(repo, &a, UINT64_MAX), MEMO_ERR_ARG);
    assert_int_equal(blog_user_update_fields(repo, &a, UINT64_C(1) << 63), MEMO_ERR_ARG);
    free(a.name);
    a.name = NULL;
    assert_int_equal(blog_user_update_fields(repo, &a, BLOG_USER_NAME), MEMO_ERR_ARG);
    assert_int_equal(blog_user_update_fields(repo, NULL, BLOG_USER_NAME), MEMO_ERR_ARG);
    /* in a transaction: written at once, invalidated at COMMIT */
    a.karma = 8;
    memo_tx *tx = NULL;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_int_equal(blog_user_get(repo, id, &got), MEMO_OK); /* cached */
    blog_user_clear(&got);
    assert_int_equal(blog_user_update_fields_tx(tx, &a, BLOG_USER_KARMA), MEMO_OK);
    assert_true(test_redis_exists(test_user_key(id)));
    assert_int_equal(memo_commit(tx), MEMO_OK);
    assert_false(test_redis_exists(test_user_key(id)));
    assert_int_equal(blog_user_get(repo, id, &got), MEMO_OK);
    assert_int_equal(got.karma, 8);
    assert_string_equal(got.name, "Tess");
    blog_user_clear(&got);
    blog_user_clear(&a);
    blog_user_clear(&b);
}

/* ------------------------------------------------ lists that say they are cut */

static int64_t add_comment(int64_t post, int64_t author, int64_t at)
{
    blog_comment c = {
        .post_id = post, .author_id = author, .body = (char *)"c", .created_at = at};
    assert_int_equal(blog_comment_insert(repo, &c), MEMO_OK);
    return c.id;
}

/* The post's comments, through the cache or (tx) the database: their
 * count, whether the list says it is cut, and that they are the first by
 * created_at, in order. */
static void assert_comments(memo_tx *tx, int64_t post, size_t len, bool more,
                            int64_t first_at)
{
    blog_comment_list cl = {.more = !more}; /* (overwritten) */
    assert_int_equal(tx ? blog_comment_by_post_tx(tx, post, &cl)
                        : blog_comment_by_post(repo, post, &cl),
                     MEMO_OK);
    assert_int_equal(cl.len, len);
    assert_true(cl.more == more);
    for (size_t i = 0; i < cl.len; i++)
        assert_int_equal(cl.items[i].created_at, first_at + (int64_t)i);
    blog_comment_list_clear(&cl);
    assert_false(cl.more);
}

static int64_t comment_count(memo_tx *tx, int64_t post)
{
    int64_t n = -1;
    assert_int_equal(tx ? blog_comment_by_post_count_tx(tx, post, &n)
                        : blog_comment_by_post_count(repo, post, &n),
                     MEMO_OK);
    return n;
}

/* 205 comments under a list of limit 200: 200 come back and `more` says
 * there are others, cached as such (the list holds the 201st key), and it
 * follows deletes and inserts; a short list and get_many say no more. The
 * count is 205, cached, and follows the group's inserts and deletes (and
 * a comment moved to another post), not an edit within the group. */
static void list_more_and_count(void **state)
{
    (void)state;
    int64_t org = new_org("cut");
    int64_t author = new_user("cut@x", "Cut", org);
    int64_t post = new_post(author, "Many"), few = new_post(author, "Few");
    int64_t ids[205];
    for (int i = 0; i < 205; i++)
        ids[i] = add_comment(post, author, 1000 + i);
    add_comment(few, author, 1);
    assert_comments(NULL, post, 200, true, 1000); /* filled */
    long long hits = STAT("comment", "hits");
    assert_comments(NULL, post, 200, true, 1000); /* hit */
    assert_true(STAT("comment", "hits") > hits);
    char *v = test_redis_get(test_by_post_key(post));
    assert_non_null(v);
    size_t commas = 0;
    for (char *c = v; *c; c++)
        commas += *c == ',';
    assert_int_equal(commas, 200); /* 201 keys */
    free(v);
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_comments(tx, post, 200, true, 1000);
    assert_int_equal(memo_rollback(tx), MEMO_OK);
    assert_comments(NULL, few, 1, false, 1);

    assert_int_equal(comment_count(NULL, post), 205);
    hits = STAT("comment", "hits");
    assert_int_equal(comment_count(NULL, post), 205); /* a hit */
    assert_int_equal(STAT("comment", "hits") - hits, 1);
    assert_true(test_redis_exists(test_by_post_key(post)));
    char nk[600];
    snprintf(nk, sizeof nk, "%s:n", test_by_post_key(post));
    test_assert_redis_value(nk, "205");
    assert_int_equal(comment_count(NULL, few), 1);
    assert_int_equal(comment_count(NULL, 424242), 0); /* no such post */
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_int_equal(comment_count(tx, post), 205);
    assert_int_equal(memo_rollback(tx), MEMO_OK);
    /* an edit within the group (its order field) keeps the count */
    blog_comment c = {0};
    assert_int_equal(blog_comment_get(repo, ids[204], &c), MEMO_OK);
    c.created_at = 999;
    assert_int_equal(blog_comment_update(repo, &c), MEMO_OK);
    test_assert_redis_value(nk, "205");
    /* moved to another post: both counts go */
    c.post_id = few;
    assert_int_equal(blog_comment_update(repo, &c), MEMO_OK);
    blog_comment_clear(&c);
    assert_false(test_redis_exists(nk));
    assert_int_equal(comment_count(NULL, post), 204);
    assert_int_equal(comment_count(NULL, few), 2);
    assert_int_equal(blog_comment_delete(repo, ids[204]), MEMO_OK);
    assert_int_equal(comment_count(NULL, few), 1);

    /* 200 left: all of them, nothing more */
    for (int i = 200; i < 204; i++)
        assert_int_equal(blog_comment_delete(repo, ids[i]), MEMO_OK);
    assert_int_equal(comment_count(NULL, post), 200);
    assert_comments(NULL, post, 200, false, 1000);
    assert_comments(NULL, post, 200, false, 1000);
    /* one more: cut again, counted */
    add_comment(post, author, 1200);
    assert_comments(NULL, post, 200, true, 1000);
    assert_int_equal(comment_count(NULL, post), 201);

    blog_comment_list cl = {.more = true};
    assert_int_equal(blog_comment_get_many(repo, ids, 205, &cl), MEMO_OK);
    assert_int_equal(cl.len, 200);
    assert_false(cl.more);
    blog_comment_list_clear(&cl);
}

/* ---------------------------------------------------------------- upsert */

/* calls of a user operation, from the statistics */
static long long op_calls(const char *op)
{
    char *text = memo_stats_json(repo);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    json_t *v = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(j, "entities"), "blog.user"),
                            "ops"),
            op),
        "calls");
    long long n = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    return n;
}

static blog_user upsert_row(int64_t id, const char *email, int64_t org, int32_t karma)
{
    return (blog_user){.id = id,
                       .email = (char *)email,
                       .name = (char *)"Up",
                       .org_id = org,
                       .karma = karma,
                       .created_at = 1700000000000000};
}

/* An upsert inserts (deleting the negative entries of the new row, its
 * lookup and its group's list and count) or updates (deleting the old
 * values' keys as an update does), in one statement; a taken email is
 * MEMO_CONFLICT and changes nothing; in a transaction it waits for COMMIT. */
static void upsert_both_ways(void **state)
{
    (void)state;
    int64_t org = new_org("up"), org2 = new_org("up2");
    new_user("taken@up", "T", org);
    blog_user u = {0};
    blog_user_list l = {0};
    int64_t count = -1;
    /* cached: nothing under 9001, no such email, org's list and count */
    assert_int_equal(blog_user_get(repo, 9001, &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "new@up", &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    blog_user_list_clear(&l);
    assert_int_equal(blog_user_by_org_count(repo, org, &count), MEMO_OK);
    assert_int_equal(count, 1);

    long long ins = op_calls("insert"), upd = op_calls("update");
    blog_user row = upsert_row(9001, "new@up", org, 1);
    assert_int_equal(blog_user_upsert(repo, &row), MEMO_OK); /* inserts */
    assert_int_equal(op_calls("insert") - ins, 1);
    assert_int_equal(op_calls("update") - upd, 0);
    assert_int_equal(blog_user_get(repo, 9001, &u), MEMO_OK);
    assert_string_equal(u.email, "new@up");
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(repo, "new@up", &u), MEMO_OK);
    assert_int_equal(u.id, 9001);
    blog_user_clear(&u);
    assert_int_equal(blog_user_by_org_count(repo, org, &count), MEMO_OK);
    assert_int_equal(count, 2);

    /* again, moved: an update of the old row's keys */
    row = upsert_row(9001, "moved@up", org2, 2);
    assert_int_equal(blog_user_upsert(repo, &row), MEMO_OK);
    assert_int_equal(op_calls("update") - upd, 1);
    assert_int_equal(blog_user_get_by_email(repo, "new@up", &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get(repo, 9001, &u), MEMO_OK);
    assert_string_equal(u.email, "moved@up");
    assert_int_equal(u.karma, 2);
    blog_user_clear(&u);
    assert_int_equal(blog_user_by_org_count(repo, org, &count), MEMO_OK);
    assert_int_equal(count, 1);
    assert_int_equal(blog_user_by_org_count(repo, org2, &count), MEMO_OK);
    assert_int_equal(count, 1);

    /* another row's email: a conflict, nothing changes */
    row = upsert_row(9001, "taken@up", org2, 3);
    assert_int_equal(blog_user_upsert(repo, &row), MEMO_CONFLICT);
    assert_int_equal(blog_user_get(repo, 9001, &u), MEMO_OK);
    assert_string_equal(u.email, "moved@up");
    blog_user_clear(&u);

    /* in a transaction: nothing until COMMIT, the update after it */
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    row = upsert_row(9001, "moved@up", org2, 4);
    assert_int_equal(blog_user_upsert_tx(tx, &row), MEMO_OK);
    assert_true(test_redis_exists(test_user_key(9001)));
    assert_int_equal(memo_commit(tx), MEMO_OK);
    assert_false(test_redis_exists(test_user_key(9001)));
    assert_int_equal(blog_user_get(repo, 9001, &u), MEMO_OK);
    assert_int_equal(u.karma, 4);
    blog_user_clear(&u);
}

static memo_status upsert_status;
static void *upsert_thread(void *arg)
{
    blog_user *row = arg;
    upsert_status = blog_user_upsert(repo, row);
    return NULL;
}

/* A row another transaction inserts while the upsert runs: the upsert
 * waits for that COMMIT, finds it had not read the row, leaves it, and runs
 * again, which reads and updates it: an update of known old values (the
 * email lookup of the other's row goes), no wholesale drop. */
static void upsert_racing_an_insert(void **state)
{
    (void)state;
    int64_t org = new_org("race-up");
    int64_t bystander = new_user("by@up", "By", org);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, bystander, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_true(test_redis_exists(test_user_key(bystander)));
    /* the other's email, missing for now: a negative entry */
    assert_int_equal(blog_user_get_by_email(repo, "first@up", &u), MEMO_NOT_FOUND);
    assert_true(test_redis_exists(test_email_key("first@up")));
    PGconn *pg = PQconnectdb(getenv("DATABASE_URL")); /* a client of its own */
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    PGresult *r = PQexec(pg, "BEGIN");
    PQclear(r);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO users (id, email, name, org_id, karma, active, created_at) "
             "VALUES (9100, 'first@up', 'First', %lld, 1, true, now())",
             (long long)org);
    r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    blog_user row = upsert_row(9100, "second@up", org, 7);
    long long upd = op_calls("update");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, upsert_thread, &row), 0);
    /* until the upsert waits on the uncommitted key (bounded) */
    bool waiting = false;
    for (int i = 0; i < 1000 && !waiting; i++) {
        char *w = test_sql_value("SELECT count(*) FROM pg_locks WHERE NOT granted");
        waiting = w && strcmp(w, "0") != 0;
        free(w);
        if (!waiting)
            nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    assert_true(waiting);
    r = PQexec(pg, "COMMIT");
    PQclear(r);
    pthread_join(t, NULL);
    PQfinish(pg);
    assert_int_equal(upsert_status, MEMO_OK);
    assert_int_equal(op_calls("update") - upd, 1); /* it read the other's row */
    assert_false(test_redis_exists(test_email_key("first@up"))); /* its old email */
    assert_true(test_redis_exists(test_user_key(bystander)));    /* nothing dropped */
    assert_int_equal(blog_user_get(repo, 9100, &u), MEMO_OK);
    assert_string_equal(u.email, "second@up");
    blog_user_clear(&u);
}

/* ------------------------------------------- keys that could not be collected */

/* A committed write whose keys could not all be collected (out of memory)
 * still succeeds, sends what it has, and drops every entry of the entity
 * and of its rules' targets: no old value survives. */
static void lost_invalidation_drops_the_entity(void **state)
{
    (void)state;
    int64_t org = new_org("lost");
    int64_t a = new_user("a@lost", "A", org), b = new_user("b@lost", "B", org);
    int64_t p = new_post(a, "T");
    blog_user u = {0};
    blog_post po = {0};
    assert_int_equal(blog_user_get(repo, a, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get(repo, b, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_post_get(repo, p, &po), MEMO_OK);
    const char *kb = test_user_key(b);
    const char *kp = test_post_key(p);
    assert_true(test_redis_exists(kb));

    /* a post: its own entity and the rule's target (users) are dropped */
    free(po.title);
    po.title = strdup("New");
    memop_test_hooks.fail_collect = true;
    assert_int_equal(blog_post_update(repo, &po), MEMO_OK);
    memop_test_hooks.fail_collect = false;
    blog_post_clear(&po);
    assert_true(test_redis_gone(kp));
    assert_true(test_redis_gone(kb)); /* a row no rule names: dropped with the rest */
    assert_int_equal(blog_post_get(repo, p, &po), MEMO_OK);
    assert_string_equal(po.title, "New");
    blog_post_clear(&po);

    /* in a transaction: at its commit. First b cached again: reads bypass
     * the cache until the drop is done (its keys gone is not yet done) */
    double t0 = test_now_ms();
    for (;;) {
        assert_int_equal(blog_user_get(repo, b, &u), MEMO_OK);
        blog_user_clear(&u);
        if (test_redis_exists(kb) || test_now_ms() - t0 > 5000)
            break;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    assert_true(test_redis_exists(kb));
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_int_equal(blog_user_get_tx(tx, a, &u), MEMO_OK);
    free(u.name);
    u.name = strdup("A2");
    memop_test_hooks.fail_collect = true;
    assert_int_equal(blog_user_update_tx(tx, &u), MEMO_OK);
    memop_test_hooks.fail_collect = false;
    blog_user_clear(&u);
    assert_true(test_redis_exists(kb)); /* nothing before COMMIT */
    assert_int_equal(memo_commit(tx), MEMO_OK);
    assert_true(test_redis_gone(kb));
    assert_int_equal(blog_user_get(repo, a, &u), MEMO_OK);
    assert_string_equal(u.name, "A2");
    blog_user_clear(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(get_miss_then_hit, setup),
        cmocka_unit_test_setup(negative_cache, setup),
        cmocka_unit_test_setup(ttl_with_jitter, setup),
        cmocka_unit_test_setup(unique_field_moved, setup),
        cmocka_unit_test_setup(list_group_moved, setup),
        cmocka_unit_test_setup(order_field_changed, setup),
        cmocka_unit_test_setup(edit_keeps_list, setup),
        cmocka_unit_test_setup(insert_and_delete_in_list, setup),
        cmocka_unit_test_setup(rules_across_entities, setup),
        cmocka_unit_test_setup(get_many_order_and_batching, setup),
        cmocka_unit_test_setup(hostile_keys, setup),
        cmocka_unit_test_setup(corrupt_value_heals, setup),
        cmocka_unit_test_setup(conflicts_and_errors, setup),
        cmocka_unit_test_setup(stats_are_exact, setup),
        cmocka_unit_test_setup(every_function, setup),
        cmocka_unit_test_setup(stats_of_two_repositories, setup),
        cmocka_unit_test_setup(get_by_fills_the_lookup, setup),
        cmocka_unit_test_setup(get_by_fill_after_a_write, setup),
        cmocka_unit_test_setup(update_fields_moves_only_what_it_writes, setup),
        cmocka_unit_test_setup(update_fields_of_two_writers, setup),
        cmocka_unit_test_setup(lost_invalidation_drops_the_entity, setup),
        cmocka_unit_test_setup(list_more_and_count, setup),
        cmocka_unit_test_setup(upsert_both_ways, setup),
        cmocka_unit_test_setup(upsert_racing_an_insert, setup),
    };
    return cmocka_run_group_tests_name("blog repository", tests, group_setup,
                                       test_group_close);
}
