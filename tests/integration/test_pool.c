/* Connection pools under pressure: every wait for a connection is bounded
 * and ends in a status that says why, and no call ever needs a second
 * connection of a pool while it holds one (with one connection in the pool,
 * that would wait forever). Each test runs under an alarm: a hang fails it. */
#define _DEFAULT_SOURCE 1 /* alarm */
#include "test.h"
#include "schema_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blog.h"

static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};
static int64_t org_id, user_ids[3];

static int setup(void **state)
{
    (void)state;
    test_schema_sql("blog");
    test_reset(tables);
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    memo_repo *repo = test_open(&cfg);
    blog_org o = {.slug = (char *)"pool", .name = (char *)"Pool", .plan = (char *)"p"};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    org_id = o.id;
    for (int i = 0; i < 3; i++) {
        char email[32];
        snprintf(email, sizeof email, "p%d@pool", i);
        blog_user u = {.email = email, .name = (char *)"P", .org_id = o.id};
        assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
        user_ids[i] = u.id;
    }
    memo_close(repo);
    alarm(60); /* a hang is a failure, not a stuck suite */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* One connection, held by a transaction: a read outside it that must go to
 * the database waits pool_wait_ms, then fails and says why. */
static void transaction_holds_the_only_connection(void **state)
{
    (void)state;
    memo_config cfg = {.pool_size = 1, .pool_wait_ms = 200, .flags = MEMO_STATS_PRIVATE};
    memo_repo *repo = test_open(&cfg);
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_non_null(tx);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org_id, &o), MEMO_ERR_TIMEOUT);
    const char *msg = memo_last_error(repo);
    assert_non_null(strstr(msg, "no free connection within 200 ms"));
    assert_non_null(strstr(msg, "1 of them by open transactions"));
    /* the reader gave its lease back: the next reader is not kept waiting */
    assert_false(test_redis_exists(test_org_key(org_id))); /* nor a value */
    /* a second transaction cannot start either */
    memo_tx *second = (memo_tx *)repo; /* must come back NULL */
    assert_int_equal(memo_begin(repo, &second), MEMO_ERR_TIMEOUT);
    assert_null(second);
    assert_non_null(strstr(memo_last_error(repo), "no free connection"));
    /* the transaction itself works, and once it ends so does everything */
    blog_org in = {0};
    assert_int_equal(blog_org_get_tx(tx, org_id, &in), MEMO_OK);
    blog_org_clear(&in);
    assert_int_equal(memo_commit(tx), MEMO_OK);
    assert_int_equal(blog_org_get(repo, org_id, &o), MEMO_OK);
    assert_string_equal(o.slug, "pool");
    blog_org_clear(&o);
    memo_close(repo);
}

/* The default pool: eight open transactions and one more read. */
static void eight_transactions_and_a_read(void **state)
{
    (void)state;
    memo_config cfg = {.pool_wait_ms = 200, .flags = MEMO_STATS_PRIVATE};
    memo_repo *repo = test_open(&cfg);
    memo_tx *tx[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(memo_begin(repo, &tx[i]), MEMO_OK);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, user_ids[0], &u), MEMO_ERR_TIMEOUT);
    assert_non_null(strstr(memo_last_error(repo), "8 of them by open transactions"));
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(repo, user_ids, 3, &l), MEMO_ERR_TIMEOUT);
    assert_int_equal(l.len, 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(memo_rollback(tx[i]), MEMO_OK);
    assert_int_equal(blog_user_get_many(repo, user_ids, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 3);
    blog_user_list_clear(&l);
    memo_close(repo);
}

/* A corrupt cached row in a batch, with one Redis connection in the pool:
 * the batch deletes it on the connection it holds (asking the pool for a
 * second one would wait forever), reads PostgreSQL, and refills it. */
static void corrupt_row_in_a_batch_with_one_connection(void **state)
{
    (void)state;
    memo_config cfg = {.pool_size = 1, .pool_wait_ms = 2000, .flags = MEMO_STATS_PRIVATE};
    memo_repo *repo = test_open(&cfg);
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(repo, user_ids, 3, &l), MEMO_OK); /* fills */
    blog_user_list_clear(&l);
    const char *key = test_user_key(user_ids[1]);
    freeReplyObject(test_redis_cmd("SET %s %s", key, "{\"id\": oops"));
    long long corrupt = test_stat(repo, "blog.user", "corrupt");
    assert_int_equal(blog_user_get_many(repo, user_ids, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 3);
    assert_int_equal(l.items[1].id, user_ids[1]);
    blog_user_list_clear(&l);
    assert_int_equal(test_stat(repo, "blog.user", "corrupt") - corrupt, 1);
    char *v = test_redis_get(key);
    assert_non_null(v); /* refilled with the row */
    assert_non_null(strstr(v, "\"email\":\"p1@pool\""));
    free(v);
    /* the same through a list, whose rows are read as a batch */
    freeReplyObject(test_redis_cmd("SET %s %s", key, "[1,2,3]"));
    assert_int_equal(blog_user_by_org(repo, org_id, &l), MEMO_OK);
    assert_int_equal(l.len, 3);
    blog_user_list_clear(&l);
    assert_int_equal(test_stat(repo, "blog.user", "corrupt") - corrupt, 2);
    memo_close(repo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(transaction_holds_the_only_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(eight_transactions_and_a_read, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_row_in_a_batch_with_one_connection, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("connection pools", tests, NULL, NULL);
}
