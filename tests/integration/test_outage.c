/* Outages on the private servers: Redis killed, Redis frozen, the queue of
 * invalidations overflowing, PostgreSQL restarted. The service keeps
 * answering, from PostgreSQL or the cache, and nothing stale survives.
 * MEMO_TORTURE=1 makes the runs longer (make torture). */
#define _GNU_SOURCE 1 /* mkostemp */
#include "test.h"
#include "schema_keys.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blog.h"
#include "internal.h"

static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};

enum { KEYS = 20 };
static int64_t ids[KEYS];
static int64_t org_id;

static void seed(void)
{
    test_reset(tables);
    memo_repo *repo = test_open(NULL);
    char slug[] = "out", name[] = "Out", plan[] = "p";
    blog_org o = {.slug = slug, .name = name, .plan = plan};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    org_id = o.id;
    for (int i = 0; i < KEYS; i++) {
        char email[32];
        snprintf(email, sizeof email, "k%d@out", i);
        blog_user u = {.email = email, .name = name, .org_id = o.id};
        assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
        ids[i] = u.id;
    }
    memo_close(repo);
}

/* Cached users that differ from PostgreSQL. */
static long stale_rows(memo_repo *repo)
{
    return test_stale_rows(repo, &blog_user_desc, ids, KEYS);
}

static void user_of(int i, int32_t karma, blog_user *u, char *email, size_t size)
{
    snprintf(email, size, "k%d@out", i);
    static char name[] = "Out";
    *u = (blog_user){
        .id = ids[i], .email = email, .name = name, .org_id = org_id, .karma = karma};
}

/* ------------------------------------------------------- mixed load */

/* Readers check what they get against what the writer committed: a value
 * older than the last commit before the read began is stale, one newer than
 * the last write begun is wrong. */
typedef struct load {
    memo_repo *repo;
    _Atomic int committed[KEYS], started[KEYS];
    _Atomic long reads, writes, failed, wrong;
    _Atomic bool stop;
} load;

/* Where redis_killed is, for the messages of a wrong read. */
static _Atomic int phase;
static _Atomic double phase_ms;
static const char *const phase_names[] = {"before the kill", "Redis killed",
                                          "Redis restarted"};

static void *reader(void *p)
{
    load *l = p;
    while (!l->stop) {
        int k = (int)(memop_random() % KEYS);
        int lo = atomic_load(&l->committed[k]);
        blog_user u = {0};
        memo_status st = blog_user_get(l->repo, ids[k], &u);
        int hi = atomic_load(&l->started[k]);
        if (st != MEMO_OK) {
            fprintf(stderr, "read failed: %s: %s\n", memo_status_str(st),
                    memo_last_error(l->repo));
            atomic_fetch_add(&l->failed, 1);
        } else if (u.karma < lo || u.karma > hi) {
            fprintf(stderr,
                    "read of key %d: karma %d, committed %d before the read, "
                    "%d begun after it (%s, %.0f ms after)\n",
                    k, u.karma, lo, hi, phase_names[atomic_load(&phase)],
                    test_now_ms() - phase_ms);
            atomic_fetch_add(&l->wrong, 1);
        }
        blog_user_clear(&u);
        atomic_fetch_add(&l->reads, 1);
    }
    return NULL;
}

static void *writer(void *p)
{
    load *l = p;
    int version[KEYS] = {0};
    char email[32];
    while (!l->stop) {
        int k = (int)(memop_random() % KEYS);
        blog_user u;
        user_of(k, ++version[k], &u, email, sizeof email);
        atomic_store(&l->started[k], version[k]);
        memo_status st = blog_user_update(l->repo, &u);
        if (st != MEMO_OK) {
            fprintf(stderr, "write failed: %s: %s\n", memo_status_str(st),
                    memo_last_error(l->repo));
            atomic_fetch_add(&l->failed, 1);
        } else
            atomic_store(&l->committed[k], version[k]);
        atomic_fetch_add(&l->writes, 1);
        usleep(2000);
    }
    return NULL;
}

enum { READERS = 3 };

static void load_start(load *l, pthread_t *t)
{
    for (int i = 0; i < READERS; i++)
        pthread_create(&t[i], NULL, reader, l);
    pthread_create(&t[READERS], NULL, writer, l);
}

static void load_stop(load *l, pthread_t *t)
{
    l->stop = true;
    for (int i = 0; i <= READERS; i++)
        pthread_join(t[i], NULL);
}

/* ------------------------------------------------------------- tests */

static void redis_killed(void **state)
{
    (void)state;
    seed();
    memo_config cfg = {.command_timeout_ms = 200};
    load l = {.repo = test_open(&cfg)};
    pthread_t t[READERS + 1];
    int phase_len = test_torture() ? 5000 : 1000;
    phase = 0;
    phase_ms = test_now_ms();
    load_start(&l, t);
    usleep((useconds_t)phase_len * 1000);

    phase_ms = test_now_ms();
    phase = 1;
    kill(test_redis_pid(), SIGKILL);
    usleep((useconds_t)phase_len * 1000);
    long degraded = test_stat(l.repo, "blog.user", "degraded");
    long writes_during = l.writes;

    test_servers("redis-start");
    double restarted = test_now_ms();
    phase_ms = restarted;
    phase = 2;
    long long hits = test_stat(l.repo, "blog.user", "hits");
    double resumed = -1;
    while (test_now_ms() - restarted < 3000) {
        if (test_stat(l.repo, "blog.user", "hits") > hits) {
            resumed = test_now_ms() - restarted;
            break;
        }
        usleep(5000);
    }
    usleep((useconds_t)phase_len * 1000);
    load_stop(&l, t);

    long stale = stale_rows(l.repo);
    test_metric("redis killed", l.reads + l.writes, stale, l.failed + l.wrong,
                test_stat(l.repo, "blog.user", "degraded"), resumed);
    assert_int_equal(l.failed, 0); /* no read or write failed */
    assert_int_equal(l.wrong, 0);  /* no read returned a stale or unknown value */
    assert_true(degraded > 0);     /* they were served by PostgreSQL */
    assert_true(writes_during > 0);
    assert_true(resumed >= 0 && resumed < 1000); /* hits resume within a second */
    assert_int_equal(stale, 0);
    memo_close(l.repo);
}

static void redis_frozen(void **state)
{
    (void)state;
    seed();
    memo_config cfg = {.command_timeout_ms = 200};
    memo_repo *repo = test_open(&cfg);
    blog_user u = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(blog_user_get(repo, ids[i], &u), MEMO_OK);
        blog_user_clear(&u);
    }
    int pid = test_redis_pid();
    kill(pid, SIGSTOP);

    /* the first call pays the time-out once, and degrades */
    double t0 = test_now_ms();
    assert_int_equal(blog_user_get(repo, ids[0], &u), MEMO_OK);
    double first = test_now_ms() - t0;
    blog_user_clear(&u);
    test_assert_redis_state(repo, "breaker", "open");
    /* then the breaker is open: no more time-outs */
    t0 = test_now_ms();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(blog_user_get(repo, ids[i % 3], &u), MEMO_OK);
        blog_user_clear(&u);
    }
    double ten = test_now_ms() - t0;
    /* a write while frozen: its invalidation waits in the queue, and the old
     * value is still in the frozen Redis */
    char email[32];
    blog_user w;
    user_of(1, 4242, &w, email, sizeof email);
    assert_int_equal(blog_user_update(repo, &w), MEMO_OK);
    /* the row (its email lookup still holds) */
    test_assert_redis_state(repo, "pending", "1");
    long degraded = test_stat(repo, "blog.user", "degraded");

    kill(pid, SIGCONT);
    double closed = test_wait_breaker(repo, "closed", 3000);
    test_assert_redis_state(repo, "pending", "0");
    assert_int_equal(blog_user_get(repo, ids[1], &u), MEMO_OK);
    assert_int_equal(u.karma, 4242); /* the queued DEL removed the old value */
    blog_user_clear(&u);
    long stale = stale_rows(repo);
    test_metric("redis frozen", 12, stale, 0, degraded, closed);
    assert_true(first < 200 + 300);
    assert_true(ten < 100);
    assert_int_equal(degraded, 11);
    assert_true(closed >= 0 && closed < 1000);
    assert_int_equal(stale, 0);
    memo_close(repo);
}

static void queue_overflow_drops_entity(void **state)
{
    (void)state;
    seed();
    memo_config cfg = {.command_timeout_ms = 200};
    memo_repo *repo = test_open(&cfg);
    blog_user u = {0};
    for (int i = 0; i < KEYS; i++) {
        assert_int_equal(blog_user_get(repo, ids[i], &u), MEMO_OK);
        blog_user_clear(&u);
    }
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org_id, &o), MEMO_OK);
    blog_org_clear(&o);
    char pattern[128];
    snprintf(pattern, sizeof pattern, "blog:{user:*}:%s", blog_user_desc.row.key.tag);
    assert_int_equal(test_redis_count(pattern), KEYS);

    memop_test_hooks.pending_max = 4;
    int pid = test_redis_pid();
    kill(pid, SIGSTOP);
    char email[32];
    for (int i = 0; i < 6; i++) {
        blog_user w;
        user_of(i, 100 + i, &w, email, sizeof email);
        assert_int_equal(blog_user_update(repo, &w), MEMO_OK);
    }
    kill(pid, SIGCONT);
    double closed = test_wait_breaker(repo, "closed", 3000);
    memop_test_hooks.pending_max = 0;
    assert_true(closed >= 0);
    /* every user entry went, the other entities' stayed */
    assert_int_equal(test_redis_count(pattern), 0);
    assert_true(test_redis_exists(test_org_key(org_id)));
    assert_int_equal(stale_rows(repo), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(blog_user_get(repo, ids[i], &u), MEMO_OK);
        assert_int_equal(u.karma, 100 + i);
        blog_user_clear(&u);
    }
    test_metric("invalidation queue overflow", 6, 0, 0, 6, closed);
    memo_close(repo);
}

static void postgres_restarted(void **state)
{
    (void)state;
    seed();
    memo_config cfg = {.query_timeout_ms = 2000, .connect_timeout_ms = 1000};
    memo_repo *repo = test_open(&cfg);
    blog_user u = {0};
    for (int i = 0; i < 5; i++) { /* warm: these stay available */
        assert_int_equal(blog_user_get(repo, ids[i], &u), MEMO_OK);
        blog_user_clear(&u);
    }
    test_servers("pg-stop");
    double down = test_now_ms();
    /* PostgreSQL's goodbye ("FATAL: terminating connection ...") reaches the
     * idle pooled connections as a notice: never the application's stderr */
    char errlog[] = "/tmp/memo-stderr-XXXXXX";
    /* close-on-exec: the PostgreSQL that pg-start starts below must not
     * inherit them (it would hold this process's stderr open for its life) */
    int logfd = mkostemp(errlog, O_CLOEXEC), saved = fcntl(2, F_DUPFD_CLOEXEC, 0);
    assert_true(logfd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(logfd, 2);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(blog_user_get(repo, ids[i], &u), MEMO_OK);
        blog_user_clear(&u);
    }
    long failed = 0;
    memo_status st = blog_user_get(repo, ids[10], &u);
    failed += st != MEMO_OK;
    assert_int_equal(st, MEMO_ERR_DB_CONN);
    assert_non_null(strstr(memo_last_error(repo), "PostgreSQL"));
    char email[32];
    blog_user w;
    user_of(11, 5, &w, email, sizeof email);
    st = blog_user_update(repo, &w);
    failed += st != MEMO_OK;
    assert_int_equal(st, MEMO_ERR_DB_CONN);
    assert_int_equal(blog_user_get(repo, ids[12], &u), MEMO_ERR_DB_CONN);
    failed++;

    test_servers("pg-start");
    double up = test_now_ms();
    /* no action needed: the pool replaces its dead connections */
    assert_int_equal(blog_user_get(repo, ids[10], &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_update(repo, &w), MEMO_OK);
    assert_int_equal(blog_user_get(repo, ids[11], &u), MEMO_OK);
    assert_int_equal(u.karma, 5);
    blog_user_clear(&u);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t printed = lseek(logfd, 0, SEEK_END);
    close(logfd);
    unlink(errlog);
    assert_int_equal(printed, 0);
    test_metric("postgres restarted", 14, stale_rows(repo), failed, 0,
                test_now_ms() - up);
    (void)down;
    assert_int_equal(stale_rows(repo), 0);
    memo_close(repo);
}

/* PostgreSQL restarted while the pool's connections sat idle: the first
 * call after is answered, on a fresh connection (the old one's end is seen
 * before it is used: the server's goodbye, then the closed socket). */
static void postgres_restarted_while_idle(void **state)
{
    (void)state;
    seed();
    memo_repo *repo = test_open(NULL);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, ids[0], &u), MEMO_OK);
    blog_user_clear(&u);
    test_servers("pg-stop");
    test_servers("pg-start");
    assert_int_equal(blog_user_get(repo, ids[1], &u), MEMO_OK); /* a miss: a query */
    assert_int_equal(u.id, ids[1]);
    blog_user_clear(&u);
    memo_close(repo);
}

/* Whatever a test did to the servers, the next one finds them running. */
static int restore(void **state)
{
    (void)state;
    test_servers_restore();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(redis_killed, restore),
        cmocka_unit_test_teardown(redis_frozen, restore),
        cmocka_unit_test_teardown(queue_overflow_drops_entity, restore),
        cmocka_unit_test_teardown(postgres_restarted, restore),
        cmocka_unit_test_teardown(postgres_restarted_while_idle, restore),
    };
    return cmocka_run_group_tests_name("outages", tests, test_group_blog_tables, NULL);
}
