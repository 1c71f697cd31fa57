/* Locks for applications, on the private Redis: two processes contend and
 * the loser waits, then wins; an expired holder cannot release or extend the
 * new holder's lock; extend keeps a lock alive; waiting is bounded. */
#define _DEFAULT_SOURCE 1
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

static memo_repo *repo;

/* The other process: takes the lock, says so on fd 3, holds it 400 ms. It
 * is this binary run again (a fork of a process with threads must not go on
 * running library code). */
static int holder(void)
{
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    memo_repo *r = test_child_open(&cfg);
    memo_lock *l;
    if (memo_lock_acquire(r, "jobs:nightly", 5000, 0, &l) != MEMO_OK)
        return 3;
    if (write(3, "x", 1) != 1)
        return 4;
    usleep(400000);
    int rc = memo_lock_release(l) == MEMO_OK ? 0 : 5;
    memo_close(r);
    return rc;
}

static void two_processes_contend(void **state)
{
    (void)state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = test_spawn_self((const char *const[]){"test_lock", "--holder", NULL}, -1,
                                ready[1]);
    close(ready[1]);
    struct pollfd p = {ready[0], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 10000), 1); /* bounded: never hang the suite */
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1); /* the other holds it now */
    memo_lock *mine;
    double t0 = test_now_ms();
    /* without waiting: refused at once */
    assert_int_equal(memo_lock_acquire(repo, "jobs:nightly", 1000, 0, &mine),
                     MEMO_ERR_LOCKED);
    assert_null(mine);
    assert_non_null(strstr(memo_last_error(repo), "jobs:nightly"));
    assert_true(test_now_ms() - t0 < 100);
    /* waiting: wins once the child releases */
    assert_int_equal(memo_lock_acquire(repo, "jobs:nightly", 1000, 3000, &mine), MEMO_OK);
    double waited = test_now_ms() - t0;
    assert_true(waited >= 300 && waited < 1500);
    test_wait_children(&pid, 1);
    assert_int_equal(memo_lock_release(mine), MEMO_OK);
    assert_int_equal(test_redis_count("memo:lock:*"), 0);
    close(ready[0]);
}

static void expired_holder_cannot_release(void **state)
{
    (void)state;
    memo_lock *old, *now;
    assert_int_equal(memo_lock_acquire(repo, "report", 150, 0, &old), MEMO_OK);
    usleep(250000); /* it expired */
    assert_int_equal(memo_lock_acquire(repo, "report", 5000, 0, &now), MEMO_OK);
    assert_int_equal(memo_lock_extend(old, 5000), MEMO_ERR_LOCKED);
    assert_int_equal(memo_lock_release(old),
                     MEMO_ERR_LOCKED); /* frees it, touches nothing */
    assert_non_null(strstr(memo_last_error(repo), "no longer held"));
    /* the new holder's lock is intact */
    memo_lock *third;
    assert_int_equal(memo_lock_acquire(repo, "report", 1000, 0, &third), MEMO_ERR_LOCKED);
    assert_int_equal(memo_lock_release(now), MEMO_OK);
    assert_int_equal(memo_lock_acquire(repo, "report", 1000, 0, &third), MEMO_OK);
    assert_int_equal(memo_lock_release(third), MEMO_OK);
}

static void extend_keeps_it(void **state)
{
    (void)state;
    memo_lock *l, *other;
    assert_int_equal(memo_lock_acquire(repo, "migrate", 300, 0, &l), MEMO_OK);
    for (int i = 0; i < 6; i++) { /* 900 ms in all, three times the TTL */
        usleep(150000);
        assert_int_equal(memo_lock_extend(l, 300), MEMO_OK);
        assert_int_equal(memo_lock_acquire(repo, "migrate", 300, 0, &other),
                         MEMO_ERR_LOCKED);
    }
    redisReply *r = test_redis_cmd("PTTL memo:lock:{migrate}");
    assert_in_range(r->integer, 200, 300);
    freeReplyObject(r);
    assert_int_equal(memo_lock_release(l), MEMO_OK);
    assert_false(test_redis_exists("memo:lock:{migrate}"));
}

static void bounded_wait(void **state)
{
    (void)state;
    memo_lock *l, *other;
    assert_int_equal(memo_lock_acquire(repo, "busy", 5000, 0, &l), MEMO_OK);
    double t0 = test_now_ms();
    assert_int_equal(memo_lock_acquire(repo, "busy", 1000, 250, &other), MEMO_ERR_LOCKED);
    double waited = test_now_ms() - t0;
    assert_true(waited >= 240 && waited < 600);
    assert_int_equal(memo_lock_release(l), MEMO_OK);
    /* names are escaped like every key part */
    assert_int_equal(memo_lock_acquire(repo, "a:{b}*", 1000, 0, &l), MEMO_OK);
    assert_true(test_redis_exists("memo:lock:{a%3A%7Bb%7D%2A}"));
    assert_int_equal(memo_lock_release(l), MEMO_OK);
    assert_int_equal(memo_lock_acquire(repo, NULL, 1000, 0, &l), MEMO_ERR_ARG);
    assert_int_equal(memo_lock_acquire(repo, "x", 0, 0, &l), MEMO_ERR_ARG);
    assert_int_equal(memo_lock_release(NULL), MEMO_OK);
}

static int group_setup(void **state)
{
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    repo = *state = test_open(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--holder") == 0)
        return holder();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_processes_contend),
        cmocka_unit_test(expired_holder_cannot_release),
        cmocka_unit_test(extend_keeps_it),
        cmocka_unit_test(bounded_wait),
    };
    return cmocka_run_group_tests_name("locks", tests, group_setup, test_group_close);
}
