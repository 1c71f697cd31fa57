/* Correct under concurrency: the races hand-written cache-aside loses, run
 * for real across processes and threads on the private servers.
 *
 *  - stale-set race: readers and writers over a few hot keys, with a pause
 *    between a filler's query and its fill; zero stale entries after, and the
 *    same run without leases finds stale entries (so the test can see it);
 *  - stampede: 64 threads in each of 2 processes miss one key at once: one
 *    query, counted by the stats and by pg_stat_statements;
 *  - a lease holder killed mid-fill blocks the others for the lease at most;
 *  - transactions: rollback invalidates nothing, commit exactly once.
 *
 * MEMO_TORTURE=1 makes the runs longer (make torture). */
#define _DEFAULT_SOURCE 1 /* usleep */
#include "test.h"
#include "schema_keys.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blog.h"
#include "internal.h"

static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};

enum { HOT = 8 };

/* What the children of a run report, in memory shared across fork. */
typedef struct shared {
    _Atomic long reads, writes, failures, queries;
    _Atomic int ready;
    double start_ms;
} shared;

static shared *shm;

static int64_t hot_ids[HOT];

static void seed_hot(void)
{
    test_reset(tables);
    memo_repo *repo = test_open(NULL);
    char slug[] = "race", name[] = "Race", plan[] = "p";
    blog_org o = {.slug = slug, .name = name, .plan = plan};
    assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
    for (int i = 0; i < HOT; i++) {
        char email[32], uname[32];
        snprintf(email, sizeof email, "hot%d@race", i);
        snprintf(uname, sizeof uname, "Hot %d", i);
        blog_user u = {.email = email, .name = uname, .org_id = o.id};
        assert_int_equal(blog_user_insert(repo, &u), MEMO_OK);
        hot_ids[i] = u.id;
    }
    memo_close(repo);
}

/* --------------------------------------------------------- stale-set race */

static _Atomic bool stop;
static memo_repo *child_repo;

/* The pause that makes the race happen often: a reader has read the row and
 * has not filled yet, and a writer commits and invalidates meanwhile. */
static void pause_before_fill(const char *key)
{
    (void)key;
    memop_sleep_us(500 + memop_random() % 3000);
}

static void *race_reader(void *arg)
{
    (void)arg;
    while (!stop) {
        blog_user u = {0};
        int64_t id = hot_ids[memop_random() % HOT];
        memo_status st = blog_user_get(child_repo, id, &u);
        if (st != MEMO_OK || u.id != id)
            atomic_fetch_add(&shm->failures, 1);
        blog_user_clear(&u);
        atomic_fetch_add(&shm->reads, 1);
    }
    return NULL;
}

static void *race_writer(void *arg)
{
    (void)arg;
    char email[32], name[32];
    while (!stop) {
        int i = (int)(memop_random() % HOT);
        snprintf(email, sizeof email, "hot%d@race", i);
        snprintf(name, sizeof name, "Hot %d", i);
        blog_user u = {.id = hot_ids[i],
                       .email = email,
                       .name = name,
                       .org_id = 1,
                       .karma = (int32_t)(memop_random() % 1000000)};
        if (blog_user_update(child_repo, &u) != MEMO_OK)
            atomic_fetch_add(&shm->failures, 1);
        atomic_fetch_add(&shm->writes, 1);
        memop_sleep_us(200 + memop_random() % 1000);
    }
    return NULL;
}

static void race_child(int seconds)
{
    child_repo = test_child_open(NULL);
    enum { READERS = 3 };
    pthread_t t[READERS + 1];
    for (int i = 0; i < READERS; i++)
        pthread_create(&t[i], NULL, race_reader, NULL);
    pthread_create(&t[READERS], NULL, race_writer, NULL);
    memop_sleep_us((uint64_t)seconds * 1000000u);
    stop = true;
    for (int i = 0; i <= READERS; i++)
        pthread_join(t[i], NULL);
    memo_close(child_repo);
    _exit(0);
}

/* The race made certain, once per key: a reader has read the row and waits
 * before its fill while a write commits and invalidates; then it fills. */
static pthread_mutex_t hs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hs_cond = PTHREAD_COND_INITIALIZER;
static int hs_state; /* 0 idle, 1 reader paused, 2 write done */

static void handshake_before_fill(const char *key)
{
    (void)key;
    pthread_mutex_lock(&hs_lock);
    hs_state = 1;
    pthread_cond_broadcast(&hs_cond);
    while (hs_state != 2)
        pthread_cond_wait(&hs_cond, &hs_lock);
    pthread_mutex_unlock(&hs_lock);
}

typedef struct reader_arg {
    memo_repo *repo;
    int64_t id;
} reader_arg;

static void *paused_reader(void *p)
{
    reader_arg *a = p;
    blog_user u = {0};
    blog_user_get(a->repo, a->id, &u);
    blog_user_clear(&u);
    return NULL;
}

static void certain_race(memo_repo *repo)
{
    memop_test_hooks.before_fill = handshake_before_fill;
    for (int i = 0; i < HOT; i++) {
        char email[32], name[32];
        snprintf(email, sizeof email, "hot%d@race", i);
        snprintf(name, sizeof name, "Hot %d", i);
        blog_user w = {
            .id = hot_ids[i], .email = email, .name = name, .org_id = 1, .karma = -1 - i};
        /* a miss first: the write deletes whatever is cached */
        assert_int_equal(blog_user_update(repo, &w), MEMO_OK);
        hs_state = 0;
        reader_arg a = {repo, hot_ids[i]};
        pthread_t t;
        pthread_create(&t, NULL, paused_reader, &a);
        pthread_mutex_lock(&hs_lock);
        while (hs_state != 1)
            pthread_cond_wait(&hs_cond, &hs_lock);
        pthread_mutex_unlock(&hs_lock);
        w.karma = 1000 + i; /* commits and invalidates while the reader waits */
        assert_int_equal(blog_user_update(repo, &w), MEMO_OK);
        pthread_mutex_lock(&hs_lock);
        hs_state = 2;
        pthread_cond_broadcast(&hs_cond);
        pthread_mutex_unlock(&hs_lock);
        pthread_join(t, NULL);
    }
    memop_test_hooks.before_fill = NULL;
}

/* Runs the race with or without leases: the random phase's stale entries go
 * to *random_stale, the certain round's are returned. */
static long race(bool leases, int processes, int seconds, long *random_stale)
{
    seed_hot();
    shm = test_shared_new(sizeof *shm);
    memop_test_hooks.no_leases = !leases;
    memop_test_hooks.before_fill = pause_before_fill;
    pid_t pids[8];
    for (int p = 0; p < processes; p++) {
        pids[p] = test_fork();
        if (pids[p] == 0)
            race_child(seconds);
    }
    test_wait_children(pids, processes);
    memop_test_hooks.before_fill = NULL;

    /* quiet now: every cached row must equal the database */
    memo_repo *repo = test_open(NULL);
    long stale = test_stale_rows(repo, &blog_user_desc, hot_ids, HOT);
    test_metric(leases ? "stale-set race, random (leases)"
                       : "stale-set race, random (no leases)",
                shm->reads + shm->writes, stale, shm->failures, 0, 0);
    *random_stale = stale;
    /* then the same race on every key, certain to happen */
    certain_race(repo);
    memop_test_hooks.no_leases = false;
    stale = test_stale_rows(repo, &blog_user_desc, hot_ids, HOT);
    memo_close(repo);
    long reads = shm->reads, writes = shm->writes, failures = shm->failures;
    test_shared_free(shm, sizeof *shm);
    assert_int_equal(failures, 0);
    assert_true(reads > 100 && writes > 20);
    test_metric(leases ? "stale-set race, certain (leases)"
                       : "stale-set race, certain (no leases)",
                HOT, stale, 0, 0, 0);
    return stale;
}

static void stale_set_race(void **state)
{
    (void)state;
    int seconds = test_torture() ? 20 : 3;
    long random_stale;
    assert_int_equal(race(true, 3, seconds, &random_stale), 0);
    assert_int_equal(random_stale, 0);
}

/* Without leases the same run must end stale, else the test proves nothing:
 * the certain round leaves every key stale. */
static void race_is_visible_without_leases(void **state)
{
    (void)state;
    long random_stale;
    assert_int_equal(race(false, 3, 2, &random_stale), HOT);
}

/* --------------------------------------------------------------- stampede */

enum { STAMPEDE_THREADS = 64 };

static pthread_barrier_t barrier;

static void slow_fill(const char *key)
{
    (void)key;
    memop_sleep_us(50000); /* the holder is slow: everybody else is waiting */
}

static void *stampede_thread(void *arg)
{
    int64_t id = *(int64_t *)arg;
    pthread_barrier_wait(&barrier);
    while (test_now_ms() < shm->start_ms)
        ;
    blog_user u = {0};
    if (blog_user_get(child_repo, id, &u) != MEMO_OK || u.id != id)
        atomic_fetch_add(&shm->failures, 1);
    blog_user_clear(&u);
    atomic_fetch_add(&shm->reads, 1);
    return NULL;
}

/* A child process of a stampede: `threads` readers (at most
 * STAMPEDE_THREADS) of one row, starting together. */
static void stampede_child(int64_t id, int threads)
{
    child_repo = test_child_open(NULL);
    pthread_t t[STAMPEDE_THREADS];
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, stampede_thread, &id);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    atomic_fetch_add(&shm->queries, test_stat(child_repo, "blog.user", "db_queries"));
    memo_close(child_repo);
    _exit(0);
}

static void stampede(void **state)
{
    (void)state;
    seed_hot();
    test_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    test_sql("SELECT pg_stat_statements_reset()");
    shm = test_shared_new(sizeof *shm);
    shm->start_ms = test_now_ms() + 700; /* all threads of both start together */
    memop_test_hooks.before_fill = slow_fill;
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = test_fork();
        if (pids[p] == 0)
            stampede_child(hot_ids[0], STAMPEDE_THREADS);
    }
    test_wait_children(pids, 2);
    memop_test_hooks.before_fill = NULL;
    assert_int_equal(shm->failures, 0);
    assert_int_equal(shm->reads, 2 * STAMPEDE_THREADS);
    assert_int_equal(shm->queries, 1);
    test_assert_sql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                    "WHERE query LIKE 'SELECT %FROM \"users\" WHERE \"id\" = $1'",
                    "1");
    test_metric("stampede (2 x 64 threads)", shm->reads, 0, shm->failures, 0, 0);
    test_shared_free(shm, sizeof *shm);
}

/* ---------------------------------------------------- a query slower than a lease */

/* A row whose query takes longer than a lease (1.2 s against 1 s): its
 * filler keeps the lease alive while the query runs, so 200 readers in 4
 * processes still cost one query, and the row is cached by the first read. */
enum { SLOW_PROCS = 4, SLOW_THREADS = 50 };
_Static_assert((int)SLOW_THREADS <= (int)STAMPEDE_THREADS, "stampede_child's threads");

static void slow_query_stampede(void **state)
{
    (void)state;
    seed_hot();
    test_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    test_sql("SELECT pg_stat_statements_reset()");
    shm = test_shared_new(sizeof *shm);
    shm->start_ms = test_now_ms() + 500;
    /* the query waits for this lock: it takes 1.2 s, longer than a lease */
    test_sql("BEGIN");
    test_sql("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    pid_t pids[SLOW_PROCS];
    for (int p = 0; p < SLOW_PROCS; p++) {
        pids[p] = test_fork();
        if (pids[p] == 0)
            stampede_child(hot_ids[3], SLOW_THREADS);
    }
    while (test_now_ms() < shm->start_ms + 1200)
        usleep(10000);
    test_sql("COMMIT");
    test_wait_children(pids, SLOW_PROCS);
    assert_int_equal(shm->failures, 0);
    assert_int_equal(shm->reads, SLOW_PROCS * SLOW_THREADS);
    assert_int_equal(shm->queries, 1);
    test_assert_sql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                    "WHERE query LIKE 'SELECT %FROM \"users\" WHERE \"id\" = $1'",
                    "1");
    /* cached by that one query */
    assert_true(test_redis_exists(test_user_key(hot_ids[3])));
    test_metric("slow query stampede (4 x 50 threads)", shm->reads, 0, shm->failures, 0,
                0);
    test_shared_free(shm, sizeof *shm);
}

/* ------------------------------------------------------ crashed lease holder */

static void die_before_fill(const char *key)
{
    (void)key;
    raise(SIGKILL); /* holding the lease, with the row read and not filled */
}

static void crashed_lease_holder(void **state)
{
    (void)state;
    seed_hot();
    pid_t pid = test_fork();
    if (pid == 0) {
        memop_test_hooks.before_fill = die_before_fill;
        memo_repo *r = test_child_open(NULL);
        blog_user u = {0};
        blog_user_get(r, hot_ids[1], &u);
        _exit(4); /* not reached */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    const char *key = test_user_key(hot_ids[1]);
    assert_true(test_redis_leased(key)); /* the dead process holds it */

    memo_config cfg = {.lease_ms = 800};
    memo_repo *repo = test_open(&cfg);
    double t0 = test_now_ms();
    blog_user u = {0};
    /* the lease was taken with the default 1000 ms; this reader waits for it
     * to expire, takes a lease of its own and fills */
    assert_int_equal(blog_user_get(repo, hot_ids[1], &u), MEMO_OK);
    double waited = test_now_ms() - t0;
    assert_int_equal(u.id, hot_ids[1]);
    blog_user_clear(&u);
    assert_true(waited < 1000 + 700);
    assert_true(test_redis_exists(key));
    assert_false(test_redis_leased(key)); /* filled */
    assert_int_equal(test_stat(repo, "blog.user", "lease_waits"), 1);
    test_metric("crashed lease holder", 1, 0, 0, 0, waited);
    memo_close(repo);
}

/* ----------------------------------------------------------- transactions */

static void transactions(void **state)
{
    (void)state;
    seed_hot();
    memo_repo *repo = test_open(NULL);
    int64_t id = hot_ids[2];
    const char *key = test_user_key(id);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_true(test_redis_exists(key));
    char *before = test_redis_get(key);

    /* rollback: no invalidation, the cache as it was, the database too */
    long long dels = test_redis_calls("del");
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_non_null(tx);
    free(u.name);
    u.name = strdup("Renamed in a transaction");
    assert_int_equal(blog_user_update_tx(tx, &u), MEMO_OK);
    blog_user in = {0};
    assert_int_equal(blog_user_get_tx(tx, id, &in), MEMO_OK); /* reads its own write */
    assert_string_equal(in.name, "Renamed in a transaction");
    blog_user_clear(&in);
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org_tx(tx, 1, &l), MEMO_OK);
    assert_int_equal(l.len, HOT);
    blog_user_list_clear(&l);
    /* not invalidated before COMMIT: others still see the committed row */
    assert_true(test_redis_exists(key));
    blog_user out = {0};
    assert_int_equal(blog_user_get(repo, id, &out), MEMO_OK);
    assert_string_equal(out.name, "Hot 2");
    blog_user_clear(&out);
    assert_int_equal(memo_rollback(tx), MEMO_OK);
    assert_int_equal(test_redis_calls("del"), dels);
    test_assert_redis_value(key, before);
    test_assert_sql("SELECT name FROM users WHERE id = 3", "Hot 2");

    /* commit: two writes, one DEL, after COMMIT */
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_non_null(tx);
    assert_int_equal(blog_user_update_tx(tx, &u), MEMO_OK);
    char email[] = "new@race", nname[] = "New";
    blog_user n = {.email = email, .name = nname, .org_id = 1};
    assert_int_equal(blog_user_insert_tx(tx, &n), MEMO_OK);
    assert_true(n.id > 0);
    assert_true(test_redis_exists(key));
    assert_int_equal(test_redis_calls("del"), dels);
    assert_int_equal(memo_commit(tx), MEMO_OK);
    /* (on a cluster, a DEL per slot the keys are in, in one pipeline) */
    if (test_on_cluster())
        assert_true(test_redis_calls("del") > dels + 1);
    else
        assert_int_equal(test_redis_calls("del"), dels + 1);
    assert_false(test_redis_exists(key));
    assert_int_equal(blog_user_get(repo, id, &out), MEMO_OK);
    assert_string_equal(out.name, "Renamed in a transaction");
    blog_user_clear(&out);

    /* a failed statement: commit rolls back, returns MEMO_ERR_TX, and
     * invalidates nothing */
    assert_int_equal(blog_user_get(repo, id, &out), MEMO_OK);
    blog_user_clear(&out);
    /* (a new baseline after that read) */
    dels = test_redis_calls("del");
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    u.karma = 77;
    assert_int_equal(blog_user_update_tx(tx, &u), MEMO_OK);
    blog_user dup = {.email = email, .name = nname, .org_id = 1};
    assert_int_equal(blog_user_insert_tx(tx, &dup), MEMO_CONFLICT);
    assert_int_equal(blog_user_get_tx(tx, id, &out), MEMO_ERR_TX);
    assert_int_equal(memo_commit(tx), MEMO_ERR_TX);
    assert_true(test_redis_exists(key));
    test_assert_sql("SELECT karma FROM users WHERE id = 3", "0");
    assert_int_equal(test_redis_calls("del"), dels);

    free(before);
    blog_user_clear(&u);
    memo_close(repo);
    test_metric("transactions", 3, 0, 0, 0, 0);
}

/* ------------------------------------------------- a flight and a write */

/* A flight's leader read the row, then a write of this process committed
 * and returned, then a reader began and joined the flight: it must not get
 * what the leader read before the write. The hook holds the leader between
 * its query and its sharing while the write and the join happen (all reads
 * go without Redis here: the pool's only connection is held). */
static memo_repo *flight_repo;
static int64_t flight_id;
static int32_t joined_karma = -1;

static void *join_flight(void *arg)
{
    (void)arg;
    blog_user u = {0};
    if (blog_user_get(flight_repo, flight_id, &u) == MEMO_OK)
        joined_karma = u.karma;
    blog_user_clear(&u);
    return NULL;
}

static pthread_t joiner;

static void write_then_join(const char *key)
{
    (void)key;
    memop_test_hooks.before_share = NULL;
    char email[] = "hot0@race", name[] = "Hot 0";
    blog_user u = {
        .id = flight_id, .email = email, .name = name, .org_id = 1, .karma = 99};
    assert_int_equal(blog_user_update_fields(flight_repo, &u, BLOG_USER_KARMA), MEMO_OK);
    /* the write returned: a reader begins, finds the flight, waits on it */
    pthread_create(&joiner, NULL, join_flight, NULL);
    memop_sleep_us(200 * 1000);
}

static void flight_shares_nothing_older_than_a_write(void **state)
{
    (void)state;
    seed_hot();
    memo_config cfg = {.pool_size = 1, .pool_wait_ms = 20};
    flight_repo = test_open(&cfg);
    flight_id = hot_ids[0];
    memop_rconn *held = memop_redis_acquire(flight_repo);
    assert_non_null(held);
    memop_test_hooks.before_share = write_then_join;
    blog_user u = {0};
    assert_int_equal(blog_user_get(flight_repo, flight_id, &u), MEMO_OK);
    assert_int_equal(u.karma, 0); /* the leader began before the write */
    blog_user_clear(&u);
    pthread_join(joiner, NULL);
    assert_int_equal(joined_karma, 99); /* the joiner began after it */
    memop_redis_release(flight_repo, held, false);
    memo_close(flight_repo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stale_set_race),
        cmocka_unit_test(race_is_visible_without_leases),
        cmocka_unit_test(stampede),
        cmocka_unit_test(slow_query_stampede),
        cmocka_unit_test(crashed_lease_holder),
        cmocka_unit_test(transactions),
        cmocka_unit_test(flight_shares_nothing_older_than_a_write),
    };
    return cmocka_run_group_tests_name("concurrency", tests, test_group_blog_tables,
                                       NULL);
}
