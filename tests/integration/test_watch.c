/* memo watch on the private servers: writes made with plain SQL (another
 * libpq connection, never memo) reach the cache through PostgreSQL's change
 * stream.
 *
 *  1. every kind of key a change makes wrong (a row, a unique lookup, a
 *     list's group and order, a rule's target), for INSERT, UPDATE, DELETE,
 *     a multi-row UPDATE and TRUNCATE; an unchanged TOASTed key field; a
 *     table that no longer matches its entity; a table of no entity;
 *  2. readers through memo against writers through SQL: zero stale entries
 *     once the watch caught up, and stale entries without it (the control);
 *  3. the same with the watch killed -9 and restarted, and with Redis frozen
 *     and killed; PostgreSQL restarted under a watch;
 *  4. a second watch stands by and takes over when the first dies;
 *  5. memo ping shows the slot and what it retains; --drop-slot drops it.
 *
 * A watch runs in a thread (the library call) or as `memo watch` (the
 * tool, a process to kill). MEMO_TORTURE=1 makes the races longer. */
#define _GNU_SOURCE 1 /* mkostemp */
#include "test.h"
#include "schema_keys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blog.h"
#include "internal.h"

static const char *const tables[] = {"comments", "posts", "users", "orgs", NULL};

/* ------------------------------------------------------------- the slot */

/* No slot memo_blog: its walsender ended first, bounded. */
static void drop_slot(void)
{
    for (int i = 0; i < 100; i++) {
        char *n = test_sql_value("SELECT count(pg_terminate_backend(active_pid)) FROM "
                                 "pg_replication_slots WHERE slot_name = 'memo_blog' AND "
                                 "active_pid IS NOT NULL");
        free(n);
        char *left = test_sql_value("SELECT count(*) FROM pg_replication_slots WHERE "
                                    "slot_name = 'memo_blog' AND NOT active");
        bool idle = strcmp(left, "1") == 0;
        free(left);
        if (idle) {
            test_sql("SELECT pg_drop_replication_slot('memo_blog')");
            return;
        }
        char *any = test_sql_value("SELECT count(*) FROM pg_replication_slots WHERE "
                                   "slot_name = 'memo_blog'");
        bool none = strcmp(any, "0") == 0;
        free(any);
        if (none)
            return;
        memop_sleep_us(50000);
    }
    fail_msg("the slot memo_blog stays active");
}

/* Waits until the slot confirmed all WAL written so far, that is until the
 * watch deleted the keys of every change committed before the call.
 * Milliseconds it took; fails the test past limit_ms. */
static double caught_up(double limit_ms)
{
    char *target = test_sql_value("SELECT pg_current_wal_lsn()");
    double t0 = test_now_ms();
    for (;;) {
        char *done =
            test_sql_value_param("SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, "
                                 "false) FROM pg_replication_slots WHERE slot_name = "
                                 "'memo_blog'",
                                 target);
        bool ok = done && strcmp(done, "t") == 0;
        free(done);
        if (ok)
            break;
        if (test_now_ms() - t0 > limit_ms)
            fail_msg("the watch did not confirm %s within %.0f ms", target, limit_ms);
        memop_sleep_us(5000);
    }
    free(target);
    return test_now_ms() - t0;
}

/* ----------------------------------------------- a watch in a thread */

typedef struct thread_watch {
    memo_repo *repo;
    memo_watch *w;
    pthread_t thread;
    memo_status st;
    pthread_mutex_t lock;
    char log[8192]; /* what it said, one message a line */
} thread_watch;

static void keep_log(void *arg, const char *message)
{
    thread_watch *t = arg;
    pthread_mutex_lock(&t->lock);
    size_t n = strlen(t->log);
    snprintf(t->log + n, sizeof t->log - n, "%s\n", message);
    pthread_mutex_unlock(&t->lock);
}

static bool said(thread_watch *t, const char *needle)
{
    pthread_mutex_lock(&t->lock);
    bool found = strstr(t->log, needle) != NULL;
    pthread_mutex_unlock(&t->lock);
    return found;
}

static int times_said(thread_watch *t, const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&t->lock);
    for (const char *p = t->log; (p = strstr(p, needle)); p++)
        n++;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* The watch a test started in a thread: a failed test leaves it running
 * until cleanup stops it. */
static thread_watch *running;

static void *run_watch(void *arg)
{
    thread_watch *t = arg;
    t->st = memo_watch_run(t->w);
    return NULL;
}

/* A watch on the blog schema in a thread, streaming when this returns. */
static thread_watch *watch_start(void)
{
    thread_watch *t = calloc(1, sizeof *t);
    assert_non_null(t);
    pthread_mutex_init(&t->lock, NULL);
    t->repo = test_open(NULL);
    memo_watch_config cfg = MEMO_WATCH_CONFIG_INIT;
    cfg.schema = &blog_schema_desc;
    cfg.retry_ms = 100;
    cfg.log = keep_log;
    cfg.log_arg = t;
    assert_int_equal(memo_watch_open(t->repo, &cfg, &t->w), MEMO_OK);
    assert_int_equal(pthread_create(&t->thread, NULL, run_watch, t), 0);
    running = t;
    double t0 = test_now_ms();
    while (!said(t, "streaming from the replication slot memo_blog") &&
           !said(t, "took over"))
        if (test_now_ms() - t0 > 10000)
            fail_msg("the watch did not stream within 10 s: %s", t->log);
        else
            memop_sleep_us(10000);
    return t;
}

static void watch_finish(thread_watch *t)
{
    running = NULL;
    memo_watch_stop(t->w);
    pthread_join(t->thread, NULL);
    assert_int_equal(t->st, MEMO_OK);
    memo_watch_close(t->w);
    memo_close(t->repo);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* A counter of the watch's statistics, as memo_stats_json has it. */
static long long watch_stat(memo_repo *repo, const char *name)
{
    char *s = memo_stats_json(repo);
    assert_non_null(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    json_t *v = json_object_get(json_object_get(j, "watch"), name);
    assert_true(json_is_integer(v));
    long long n = json_integer_value(v);
    json_decref(j);
    return n;
}

/* ------------------------------------------ a watch as a process (the tool) */

static const char *schema_file(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/schemas/blog.memo", test_env("MEMO_TOP"));
    return path;
}

/* The watches this test started and has not waited for: a failed test
 * leaves none running (cleanup kills them). */
static pid_t spawned[16];

/* `memo watch` with its stderr in log (appended). */
static pid_t watch_spawn(const char *log)
{
    const char *tool = test_env("MEMO_TOOL"), *schema = schema_file();
    pid_t pid = test_fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600),
            null = open("/dev/null", O_WRONLY);
        if (fd < 0 || null < 0)
            _exit(126);
        dup2(fd, 2);
        dup2(null, 1);
        close(fd);
        close(null);
        execl(tool, "memo", "--schema", schema, "watch", (char *)NULL);
        _exit(127);
    }
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++)
        if (!spawned[i]) {
            spawned[i] = pid;
            break;
        }
    return pid;
}

static char *log_text(const char *log)
{
    static char buf[1 << 16];
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static int log_count(const char *log, const char *needle)
{
    const char *buf = log_text(log);
    int count = 0;
    for (const char *p = buf; (p = strstr(p, needle)); p++)
        count++;
    return count;
}

/* How many times watches of this log began streaming. */
static int streams_in(const char *log)
{
    return log_count(log, "streaming from the replication slot") +
           log_count(log, "took over the replication slot");
}

/* Waits until the log says needle `count` times; milliseconds it took. */
static double wait_log(const char *log, const char *needle, int count, double limit_ms)
{
    double t0 = test_now_ms();
    while (log_count(log, needle) < count)
        if (test_now_ms() - t0 > limit_ms)
            fail_msg("%s does not say '%s' %d times within %.0f ms:\n%s", log, needle,
                     count, limit_ms, log_text(log));
        else
            memop_sleep_us(10000);
    return test_now_ms() - t0;
}

static char *new_log(void)
{
    char *path = strdup("/tmp/memo-watch-XXXXXX");
    int fd = mkostemp(path, O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    return path;
}

static int exit_status(pid_t pid)
{
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++)
        if (spawned[i] == pid)
            spawned[i] = 0;
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* ============================================== 1. every kind of key */

static int64_t sql_id(const char *sql)
{
    char *v = test_sql_value(sql);
    assert_non_null(v);
    int64_t id = strtoll(v, NULL, 10);
    free(v);
    return id;
}

/* An org made with SQL; its id. */
static int64_t new_org(const char *slug, const char *name)
{
    char sql[256];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO orgs (slug, name, plan, created_at) VALUES ('%s', '%s', 'free', "
        "now()) RETURNING id",
        slug, name);
    return sql_id(sql);
}

/* Empty tables and Redis, and no slot: each test starts from nothing. */
static void fresh(void)
{
    test_reset(tables);
    drop_slot();
}

/* The ids of list, in order, as "1,2,3". */
static void ids_of(const blog_user_list *l, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < l->len; i++) {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%" PRId64, i ? "," : "", l->items[i].id);
    }
}

static void assert_by_org(memo_repo *repo, int64_t org, const char *want)
{
    blog_user_list l = {0};
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    char got[256];
    ids_of(&l, got, sizeof got);
    blog_user_list_clear(&l);
    assert_string_equal(got, want);
}

static void sql_writes_reach_the_cache(void **state)
{
    (void)state;
    fresh();
    thread_watch *t = watch_start();
    memo_repo *repo = test_open(NULL);
    int64_t o1 = new_org("acme", "Acme");
    int64_t o2 = new_org("beta", "Beta");
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO users (email, name, org_id, karma, active, created_at) VALUES "
             "('bob@x', 'Bob', %" PRId64 ", 1, true, now()) RETURNING id",
             o1);
    int64_t bob = sql_id(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO users (email, name, org_id, karma, active, created_at) VALUES "
             "('alice@x', 'Alice', %" PRId64 ", 1, true, now()) RETURNING id",
             o1);
    int64_t alice = sql_id(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO users (email, name, org_id, karma, active, created_at) VALUES "
             "('carol@x', 'Carol', %" PRId64 ", 1, true, now()) RETURNING id",
             o2);
    int64_t carol = sql_id(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO posts (author_id, title, body, score) VALUES (%" PRId64
             ", 'P', 'b', 1) RETURNING id",
             bob);
    int64_t post = sql_id(sql);
    snprintf(
        sql, sizeof sql,
        "INSERT INTO comments (post_id, author_id, body, created_at) VALUES (%" PRId64
        ", %" PRId64 ", 'c', now()) RETURNING id",
        post, alice);
    int64_t comment = sql_id(sql);
    caught_up(10000);

    /* warm every kind of key */
    blog_org o = {0};
    blog_user u = {0};
    char a1[64], a2[64];
    assert_int_equal(blog_org_get(repo, o1, &o), MEMO_OK);
    blog_org_clear(&o);
    assert_int_equal(blog_org_get(repo, o2 + 100, &o), MEMO_NOT_FOUND); /* negative */
    assert_int_equal(blog_user_get_by_email(repo, "bob@x", &u), MEMO_OK);
    blog_user_clear(&u);
    snprintf(a1, sizeof a1, "%" PRId64 ",%" PRId64, alice, bob);
    assert_by_org(repo, o1, a1);
    snprintf(a2, sizeof a2, "%" PRId64, carol);
    assert_by_org(repo, o2, a2);
    assert_int_equal(blog_user_get(repo, bob, &u), MEMO_OK);
    blog_user_clear(&u);
    blog_post_list pl = {0};
    assert_int_equal(blog_post_by_author(repo, bob, &pl), MEMO_OK);
    assert_int_equal(pl.len, 1);
    blog_post_list_clear(&pl);
    blog_post p = {0};
    assert_int_equal(blog_post_get(repo, post, &p), MEMO_OK);
    blog_post_clear(&p);
    blog_comment_list cl = {0};
    assert_int_equal(blog_comment_by_post(repo, post, &cl), MEMO_OK);
    assert_int_equal(cl.len, 1);
    blog_comment_list_clear(&cl);
    long long deleted = watch_stat(t->repo, "keys_deleted");

    /* a row */
    snprintf(sql, sizeof sql, "UPDATE orgs SET name = 'Acme Two' WHERE id = %" PRId64,
             o1);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_org_get(repo, o1, &o), MEMO_OK);
    assert_string_equal(o.name, "Acme Two");
    blog_org_clear(&o);
    assert_true(watch_stat(t->repo, "keys_deleted") > deleted);

    /* a unique field: the old value no longer finds the row, the new one does */
    snprintf(sql, sizeof sql, "UPDATE users SET email = 'bob2@x' WHERE id = %" PRId64,
             bob);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_user_get_by_email(repo, "bob@x", &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "bob2@x", &u), MEMO_OK);
    assert_int_equal(u.id, bob);
    blog_user_clear(&u);

    /* a list's group: Alice moves from o1 to o2 */
    snprintf(sql, sizeof sql, "UPDATE users SET org_id = %" PRId64 " WHERE id = %" PRId64,
             o2, alice);
    test_sql(sql);
    caught_up(10000);
    snprintf(a1, sizeof a1, "%" PRId64, bob);
    assert_by_org(repo, o1, a1);
    snprintf(a2, sizeof a2, "%" PRId64 ",%" PRId64, alice, carol);
    assert_by_org(repo, o2, a2);

    /* a list's order: Carol renamed Aaron goes first */
    snprintf(sql, sizeof sql, "UPDATE users SET name = 'Aaron' WHERE id = %" PRId64,
             carol);
    test_sql(sql);
    caught_up(10000);
    snprintf(a2, sizeof a2, "%" PRId64 ",%" PRId64, carol, alice);
    assert_by_org(repo, o2, a2);

    /* a rule's target: a new post invalidates its author's row */
    assert_int_equal(blog_user_get(repo, bob, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_true(test_redis_exists(test_user_key(bob)));
    snprintf(sql, sizeof sql,
             "INSERT INTO posts (author_id, title, body, score) VALUES (%" PRId64
             ", 'Q', 'b', 2)",
             bob);
    test_sql(sql);
    caught_up(10000);
    assert_false(test_redis_exists(test_user_key(bob)));
    assert_int_equal(blog_post_by_author(repo, bob, &pl), MEMO_OK);
    assert_int_equal(pl.len, 2);
    blog_post_list_clear(&pl);

    /* a DELETE, with its rule: the comment's post goes too */
    assert_true(test_redis_exists(test_post_key(post)));
    snprintf(sql, sizeof sql, "DELETE FROM comments WHERE id = %" PRId64, comment);
    test_sql(sql);
    caught_up(10000);
    assert_false(test_redis_exists(test_post_key(post)));
    assert_int_equal(blog_comment_by_post(repo, post, &cl), MEMO_OK);
    assert_int_equal(cl.len, 0);
    blog_comment_list_clear(&cl);

    /* an INSERT where a negative entry was */
    snprintf(sql, sizeof sql,
             "INSERT INTO orgs (id, slug, name, plan, created_at) VALUES (%" PRId64
             ", 'late', 'Late', 'free', now())",
             o2 + 100);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_org_get(repo, o2 + 100, &o), MEMO_OK);
    assert_string_equal(o.slug, "late");
    blog_org_clear(&o);

    /* a multi-row UPDATE: every row it changed, every list it reordered */
    int64_t users[] = {alice, carol};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(blog_user_get(repo, users[i], &u), MEMO_OK);
        blog_user_clear(&u);
    }
    snprintf(
        sql, sizeof sql,
        "UPDATE users SET karma = karma + 41, name = 'Z' || name WHERE org_id = %" PRId64,
        o2);
    test_sql(sql);
    caught_up(10000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(blog_user_get(repo, users[i], &u), MEMO_OK);
        assert_int_equal(u.karma, 42);
        assert_int_equal(u.name[0], 'Z');
        blog_user_clear(&u);
    }
    snprintf(a2, sizeof a2, "%" PRId64 ",%" PRId64, carol, alice); /* ZAaron, ZAlice */
    assert_by_org(repo, o2, a2);

    /* a DELETE of a row: gone from its lists */
    snprintf(sql, sizeof sql, "DELETE FROM users WHERE id = %" PRId64, carol);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_user_get(repo, carol, &u), MEMO_NOT_FOUND);
    snprintf(a2, sizeof a2, "%" PRId64, alice);
    assert_by_org(repo, o2, a2);

    /* TRUNCATE: the entity's entries go whole */
    snprintf(
        sql, sizeof sql,
        "INSERT INTO comments (post_id, author_id, body, created_at) VALUES (%" PRId64
        ", %" PRId64 ", 'd', now()) RETURNING id",
        post, alice);
    int64_t c2 = sql_id(sql);
    caught_up(10000);
    blog_comment c = {0};
    assert_int_equal(blog_comment_get(repo, c2, &c), MEMO_OK);
    blog_comment_clear(&c);
    assert_int_equal(blog_post_get(repo, post, &p), MEMO_OK);
    blog_post_clear(&p);
    assert_true(test_redis_exists(test_post_key(post)));
    long long truncates = watch_stat(t->repo, "truncates");
    test_sql("TRUNCATE comments");
    caught_up(10000);
    assert_int_equal(blog_comment_get(repo, c2, &c), MEMO_NOT_FOUND);
    /* a comment's delete invalidates its post: a TRUNCATE deletes them all */
    assert_false(test_redis_exists(test_post_key(post)));
    assert_int_equal(watch_stat(t->repo, "truncates"), truncates + 1);
    assert_true(watch_stat(t->repo, "entity_drops") >= 1);
    assert_int_equal(watch_stat(t->repo, "drops"), 0); /* every key was known */
    char *prom = memo_stats_prometheus(t->repo);
    assert_non_null(prom);
    assert_non_null(strstr(prom, "memo_watch_streaming 1\n"));
    char line[64];
    snprintf(line, sizeof line, "memo_watch_truncates_total %lld\n", truncates + 1);
    assert_non_null(strstr(prom, line));
    free(prom);

    memo_close(repo);
    watch_finish(t);
}

/* An update that leaves a TOASTed key field alone sends it as 'u': the old
 * row's value stands in, and the keys are known (no drop). */
static void unchanged_toast(void **state)
{
    (void)state;
    fresh();
    thread_watch *t = watch_start();
    memo_repo *repo = test_open(NULL);
    int64_t org = new_org("t", "T");
    char sql[512];
    /* 2400 bytes, uncompressed (EXTERNAL): more than the 2 kB PostgreSQL
     * keeps in a row, so out of line, and less than an index entry's limit */
    test_sql("ALTER TABLE users ALTER COLUMN name SET STORAGE EXTERNAL");
    snprintf(sql, sizeof sql,
             "INSERT INTO users (email, name, org_id, karma, active, created_at) SELECT "
             "'toast@x', string_agg(md5(g::text), ''), %" PRId64
             ", 1, true, now() FROM generate_series(1, 75) g RETURNING id",
             org);
    int64_t id = sql_id(sql);
    test_sql("ALTER TABLE users ALTER COLUMN name SET STORAGE EXTENDED");
    /* out of line: in the table's TOAST table */
    char *toast =
        test_sql_value("SELECT reltoastrelid::regclass FROM pg_class WHERE relname "
                       "= 'users'");
    snprintf(sql, sizeof sql, "SELECT count(*) > 0 FROM %s", toast);
    free(toast);
    test_assert_sql(sql, "t");
    caught_up(10000);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    blog_user_clear(&u);
    long long drops = watch_stat(t->repo, "drops"),
              changes = watch_stat(t->repo, "changes");
    snprintf(sql, sizeof sql, "UPDATE users SET karma = 7 WHERE id = %" PRId64, id);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_int_equal(u.karma, 7);
    assert_int_equal(strlen(u.name), 2400);
    blog_user_clear(&u);
    assert_int_equal(watch_stat(t->repo, "changes"), changes + 1);
    assert_int_equal(watch_stat(t->repo, "drops"), drops);
    assert_int_equal(watch_stat(t->repo, "entity_drops"), 0);
    memo_close(repo);
    watch_finish(t);
}

/* An UPDATE of a primary key, made outside memo (memo's writes never move a
 * key): the old key's row, the email lookup (which names the old key) and
 * the org's list go, so every read gives the row under its new key. */
static void key_changed(void **state)
{
    (void)state;
    fresh();
    thread_watch *t = watch_start();
    memo_repo *repo = test_open(NULL);
    int64_t org = new_org("pk", "PK");
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO users (email, name, org_id, karma, active, created_at) VALUES "
             "('pk@x', 'Pk', %" PRId64 ", 1, true, now()) RETURNING id",
             org);
    int64_t id = sql_id(sql), moved = id + 1000000;
    caught_up(10000);
    blog_user u = {0};
    blog_user_list l = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(repo, "pk@x", &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    blog_user_list_clear(&l);
    snprintf(sql, sizeof sql, "UPDATE users SET id = %" PRId64 " WHERE id = %" PRId64,
             moved, id);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "pk@x", &u), MEMO_OK);
    assert_int_equal(u.id, moved);
    blog_user_clear(&u);
    assert_int_equal(blog_user_by_org(repo, org, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    assert_int_equal(l.items[0].id, moved);
    blog_user_list_clear(&l);
    assert_int_equal(watch_stat(t->repo, "drops"), 0); /* keys, not wholesale */
    memo_close(repo);
    watch_finish(t);
}

/* A first start killed between creating its slot and dropping the cached
 * entries leaves a slot without the record of that drop: the next start
 * drops them. (Made here as an operator would: the slot by hand.) */
static void first_drop_is_recorded(void **state)
{
    (void)state;
    fresh();
    memo_repo *repo = test_open(NULL);
    int64_t org = new_org("fd", "Before");
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    blog_org_clear(&o);
    test_sql("SELECT pg_create_logical_replication_slot('memo_blog', 'pgoutput')");
    /* an entry the slot cannot vouch for: it holds what no stream will say */
    test_doctor(test_org_key(org), "name", "Stale");
    thread_watch *t = watch_start();
    assert_true(said(t, "has no record of its first drop of the cached entries"));
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.name, "Before");
    blog_org_clear(&o);
    assert_true(test_redis_exists("memo:watch:{memo_blog}"));
    watch_finish(t);

    /* recorded: the next start drops nothing */
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    blog_org_clear(&o);
    t = watch_start();
    assert_false(said(t, "dropping"));
    assert_true(test_redis_exists(test_org_key(org)));
    watch_finish(t);

    /* dropping the slot forgets the record */
    assert_int_equal(memo_watch_drop_slot(repo, "memo_blog"), MEMO_OK);
    assert_false(test_redis_exists("memo:watch:{memo_blog}"));
    assert_int_equal(memo_watch_drop_slot(repo, "memo_blog"), MEMO_NOT_FOUND);
    memo_close(repo);
}

/* The replica identity decides which old values PostgreSQL logs. A unique
 * index holding every key field (USING INDEX) logs them only when one
 * changed: an update that logged none left them as they were, and no
 * entry is dropped. The default identity (the primary key) cannot say what
 * an email was: the entity is dropped, and nothing stale stays. */
static void replica_identities(void **state)
{
    (void)state;
    fresh();
    test_sql("CREATE UNIQUE INDEX IF NOT EXISTS users_memo_identity ON users (id, email, "
             "name, "
             "org_id)");
    test_sql("ALTER TABLE users REPLICA IDENTITY USING INDEX users_memo_identity");
    thread_watch *t = watch_start();
    memo_repo *repo = test_open(NULL);
    int64_t org = new_org("ri", "RI");
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO users (email, name, org_id, karma, active, created_at) VALUES "
             "('ri@x', 'Ri', %" PRId64 ", 1, true, now()) RETURNING id",
             org);
    int64_t id = sql_id(sql);
    caught_up(10000);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(repo, "ri@x", &u), MEMO_OK);
    blog_user_clear(&u);

    snprintf(sql, sizeof sql, "UPDATE users SET karma = 2 WHERE id = %" PRId64, id);
    test_sql(sql); /* no identity column changed: no old values logged */
    snprintf(sql, sizeof sql, "UPDATE users SET email = 'ri2@x' WHERE id = %" PRId64, id);
    test_sql(sql); /* the old email logged with the identity */
    caught_up(10000);
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_int_equal(u.karma, 2);
    blog_user_clear(&u);
    assert_int_equal(blog_user_get_by_email(repo, "ri@x", &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "ri2@x", &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(watch_stat(t->repo, "drops"), 0);
    assert_int_equal(watch_stat(t->repo, "entity_drops"), 0);

    /* the primary key alone: the old email is not known */
    test_sql("ALTER TABLE users REPLICA IDENTITY DEFAULT");
    snprintf(sql, sizeof sql, "UPDATE users SET email = 'ri3@x' WHERE id = %" PRId64, id);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_user_get_by_email(repo, "ri2@x", &u), MEMO_NOT_FOUND);
    assert_int_equal(blog_user_get_by_email(repo, "ri3@x", &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(watch_stat(t->repo, "drops"), 1);
    assert_true(watch_stat(t->repo, "entity_drops") >= 1);

    test_sql("ALTER TABLE users REPLICA IDENTITY FULL");
    test_sql("DROP INDEX users_memo_identity");
    memo_close(repo);
    watch_finish(t);
}

/* A migration renames a column the entity's keys need: the entity's entries
 * are dropped, and it is said once; renamed back, keys are known again.
 * A table of no entity, even in the publication, changes nothing. */
static void tables_that_do_not_match(void **state)
{
    (void)state;
    fresh();
    thread_watch *t = watch_start();
    memo_repo *repo = test_open(NULL);
    int64_t org = new_org("m", "M");
    caught_up(10000);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    blog_org_clear(&o);

    test_sql("ALTER TABLE orgs RENAME COLUMN slug TO handle");
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE orgs SET plan = 'pro' WHERE id = %" PRId64, org);
    test_sql(sql);
    test_sql(sql);
    caught_up(10000);
    test_sql("ALTER TABLE orgs RENAME COLUMN handle TO slug");
    assert_false(test_redis_exists(test_org_key(org)));
    assert_int_equal(watch_stat(t->repo, "mismatches"), 1);
    assert_int_equal(times_said(t, "no longer matches entity blog.org"), 1);
    assert_true(said(t, "column slug is missing"));
    long long drops = watch_stat(t->repo, "entity_drops"); /* one a batch */
    assert_true(drops >= 1);

    /* back in shape: its keys again, no drop */
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.plan, "pro");
    blog_org_clear(&o);
    snprintf(sql, sizeof sql, "UPDATE orgs SET name = 'M2' WHERE id = %" PRId64, org);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.name, "M2");
    blog_org_clear(&o);
    assert_int_equal(watch_stat(t->repo, "entity_drops"), drops);

    /* a table of no entity: streamed, since it is published, and ignored */
    test_sql("CREATE TABLE IF NOT EXISTS watch_other (id int PRIMARY KEY, v text)");
    test_sql("ALTER PUBLICATION memo_blog ADD TABLE watch_other");
    long long changes = watch_stat(t->repo, "changes"),
              tx = watch_stat(t->repo, "transactions");
    test_sql("INSERT INTO watch_other SELECT g, 'x' FROM generate_series(1, 100) g");
    test_sql("UPDATE watch_other SET v = 'y'");
    caught_up(10000);
    assert_int_equal(watch_stat(t->repo, "changes"), changes);
    assert_true(watch_stat(t->repo, "transactions") >= tx + 2);
    assert_int_equal(times_said(t,
                                "table public.watch_other is published in memo_blog but "
                                "is no entity of schema blog"),
                     1);
    test_sql("ALTER PUBLICATION memo_blog DROP TABLE watch_other");
    test_sql("DROP TABLE watch_other");

    memo_close(repo);
    watch_finish(t);
}

/* What cannot work gets a clear status: a bad slot name, a publication
 * that does not exist, a role that may not replicate. */
static void refusals(void **state)
{
    (void)state;
    memo_repo *repo = test_open(NULL);
    memo_watch *w = NULL;
    memo_watch_config cfg = MEMO_WATCH_CONFIG_INIT;
    cfg.schema = &blog_schema_desc;
    cfg.slot = "Bad-Name";
    assert_int_equal(memo_watch_open(repo, &cfg, &w), MEMO_ERR_CONFIG);
    assert_null(w);
    assert_non_null(strstr(memo_last_error(repo), "a-z, 0-9"));
    /* too long: refused, not cut to the name of another slot */
    cfg.slot = "memo_blog_and_then_some_more_characters_than_a_slot_name_may_have_x";
    assert_int_equal(memo_watch_open(repo, &cfg, &w), MEMO_ERR_CONFIG);
    assert_int_equal(memo_watch_open(repo, NULL, &w), MEMO_ERR_ARG);
    memo_watch_config big = cfg;
    big.size = sizeof big + 8;
    assert_int_equal(memo_watch_open(repo, &big, &w), MEMO_ERR_CONFIG);

    cfg.slot = "memo_refusals";
    cfg.publication = "memo_nope";
    assert_int_equal(memo_watch_open(repo, &cfg, &w), MEMO_OK);
    assert_int_equal(memo_watch_run(w), MEMO_ERR_CONFIG);
    assert_non_null(
        strstr(memo_last_error(repo), "publication memo_nope does not exist"));
    memo_watch_close(w);
    test_assert_sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                    "'memo_refusals'",
                    "0");
    memo_close(repo);

    /* a role without REPLICATION */
    test_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
             "'memo_norepl') THEN CREATE ROLE memo_norepl LOGIN NOREPLICATION; END IF; "
             "END $$");
    char url[512];
    snprintf(url, sizeof url, "%s", test_env("DATABASE_URL"));
    char *at = strstr(url, "://memo@");
    assert_non_null(at);
    char rest[512];
    snprintf(rest, sizeof rest, "%s", at + strlen("://memo@"));
    snprintf(at, sizeof url - (size_t)(at - url), "://memo_norepl@%s", rest);
    memo_config c = {.database_url = url};
    repo = test_open(&c);
    cfg.publication = NULL;
    assert_int_equal(memo_watch_open(repo, &cfg, &w), MEMO_OK);
    assert_int_equal(memo_watch_run(w), MEMO_ERR_CONFIG);
    assert_non_null(strstr(memo_last_error(repo), "REPLICATION"));
    memo_watch_close(w);
    memo_close(repo);
    assert_int_equal(memo_watch_drop_slot(NULL, "x"), MEMO_ERR_ARG);
}

/* Creating the slot waits for the transactions running at that moment: a
 * stop meanwhile ends memo_watch_run at once, and leaves no slot. */
static void stop_while_creating_the_slot(void **state)
{
    (void)state;
    fresh();
    PGconn *open_tx = PQconnectdb(test_env("DATABASE_URL"));
    assert_int_equal(PQstatus(open_tx), CONNECTION_OK);
    PQclear(PQexec(open_tx, "BEGIN"));
    PQclear(PQexec(open_tx, "SELECT txid_current()")); /* it holds an xid */
    thread_watch *t = calloc(1, sizeof *t);
    assert_non_null(t);
    pthread_mutex_init(&t->lock, NULL);
    t->repo = test_open(NULL);
    memo_watch_config cfg = MEMO_WATCH_CONFIG_INIT;
    cfg.schema = &blog_schema_desc;
    assert_int_equal(memo_watch_open(t->repo, &cfg, &t->w), MEMO_OK);
    assert_int_equal(pthread_create(&t->thread, NULL, run_watch, t), 0);
    running = t;
    /* the walsender is waiting for open_tx */
    double t0 = test_now_ms();
    for (;;) {
        char *n = test_sql_value("SELECT count(*) FROM pg_stat_activity WHERE "
                                 "application_name = 'memo watch' AND query LIKE "
                                 "'CREATE_REPLICATION_SLOT%'");
        bool waiting = strcmp(n, "1") == 0;
        free(n);
        if (waiting)
            break;
        if (test_now_ms() - t0 > 10000)
            fail_msg("the watch did not start creating its slot");
        memop_sleep_us(10000);
    }
    memop_sleep_us(200000);
    double stop = test_now_ms();
    watch_finish(t); /* stops, joins, MEMO_OK */
    double ms = test_now_ms() - stop;
    printf("stopped %.0f ms after the stop, while creating its slot\n", ms);
    assert_true(ms < 2000);
    PQclear(PQexec(open_tx, "COMMIT"));
    PQfinish(open_tx);
    /* the walsender saw its client go: the slot it was making is gone */
    t0 = test_now_ms();
    for (;;) {
        char *n =
            test_sql_value("SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                           "'memo_blog'");
        bool none = strcmp(n, "0") == 0;
        free(n);
        if (none)
            break;
        if (test_now_ms() - t0 > 10000)
            fail_msg("a half-made slot stayed");
        memop_sleep_us(10000);
    }
}

/* ======================================== 2, 3. readers against SQL writers */

enum { HOT = 8 };
static int64_t hot_ids[HOT], orgs[2];
static _Atomic bool stop;

typedef struct shared {
    _Atomic long reads, writes, failures;
} shared;
static shared *shm;

static void seed_hot(void)
{
    test_reset(tables);
    orgs[0] = new_org("ra", "A");
    orgs[1] = new_org("rb", "B");
    for (int i = 0; i < HOT; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT INTO users (email, name, org_id, karma, active, created_at) "
                 "VALUES ('hot%d@w', 'Hot %d', %" PRId64 ", 0, true, now()) RETURNING id",
                 i, i, orgs[i % 2]);
        hot_ids[i] = sql_id(sql);
    }
}

/* Widens the race: a reader has read its row and has not filled yet. */
static void pause_before_fill(const char *key)
{
    (void)key;
    memop_sleep_us(500 + memop_random() % 3000);
}

static memo_repo *child_repo;

static void *race_reader(void *arg)
{
    (void)arg;
    while (!stop) {
        int i = (int)(memop_random() % HOT);
        memo_status st;
        switch (memop_random() % 3) {
        case 0: {
            blog_user u = {0};
            st = blog_user_get(child_repo, hot_ids[i], &u);
            blog_user_clear(&u);
            break;
        }
        case 1: {
            char email[32];
            snprintf(email, sizeof email, "%s%d@w", memop_random() % 2 ? "hot" : "alt",
                     i);
            blog_user u = {0};
            st = blog_user_get_by_email(child_repo, email, &u);
            st = st == MEMO_NOT_FOUND ? MEMO_OK : st;
            blog_user_clear(&u);
            break;
        }
        default: {
            blog_user_list l = {0};
            st = blog_user_by_org(child_repo, orgs[memop_random() % 2], &l);
            blog_user_list_clear(&l);
        }
        }
        /* Redis away is answered from PostgreSQL; a database error is not */
        if (st != MEMO_OK)
            atomic_fetch_add(&shm->failures, 1);
        atomic_fetch_add(&shm->reads, 1);
    }
    return NULL;
}

static void reader_child(int ms)
{
    child_repo = test_child_open(NULL);
    memop_test_hooks.before_fill = pause_before_fill;
    enum { READERS = 3 };
    pthread_t t[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&t[i], NULL, race_reader, NULL);
    memop_sleep_us((uint64_t)ms * 1000u);
    stop = true;
    for (int i = 0; i < READERS; i++)
        pthread_join(t[i], NULL);
    memo_close(child_repo);
    _exit(0);
}

/* Plain SQL, as another service would write: any field of a hot user, and
 * now and then many rows at once. */
static void writer_child(int ms)
{
    PGconn *pg = PQconnectdb(getenv("DATABASE_URL"));
    if (PQstatus(pg) != CONNECTION_OK)
        _exit(3);
    double end = test_now_ms() + ms;
    while (test_now_ms() < end) {
        int i = (int)(memop_random() % HOT);
        char sql[512];
        if (memop_random() % 20 == 0)
            snprintf(sql, sizeof sql,
                     "UPDATE users SET karma = karma + 1 WHERE org_id = %" PRId64,
                     orgs[memop_random() % 2]);
        else
            snprintf(sql, sizeof sql,
                     "UPDATE users SET karma = %u, name = 'Hot %d %u', email = '%s%d@w', "
                     "org_id = %" PRId64 " WHERE id = %" PRId64,
                     (unsigned)(memop_random() % 1000000), i,
                     (unsigned)(memop_random() % 100), memop_random() % 2 ? "hot" : "alt",
                     i, orgs[memop_random() % 2], hot_ids[i]);
        PGresult *r = PQexec(pg, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            atomic_fetch_add(&shm->failures, 1);
        PQclear(r);
        atomic_fetch_add(&shm->writes, 1);
        memop_sleep_us(200 + memop_random() % 1000);
    }
    PQfinish(pg);
    _exit(0);
}

/* Cached entries that differ from PostgreSQL: every hot row, both emails
 * of every hot user, both orgs' lists, read through memo (a stale entry is
 * what a read returns) and compared with the same read in SQL. */
static long stale_entries(void)
{
    memo_repo *repo = test_open(NULL);
    long stale = test_stale_rows(repo, &blog_user_desc, hot_ids, HOT);
    for (int i = 0; i < HOT; i++)
        for (int v = 0; v < 2; v++) {
            char email[32];
            snprintf(email, sizeof email, "%s%d@w", v ? "alt" : "hot", i);
            blog_user u = {0};
            memo_status st = blog_user_get_by_email(repo, email, &u);
            assert_true(st == MEMO_OK || st == MEMO_NOT_FOUND);
            char got[128] = "", *want = test_sql_value_param(
                                    "SELECT (SELECT id || ' ' || karma || ' ' || name "
                                    "FROM users WHERE email = $1)",
                                    email);
            if (st == MEMO_OK)
                snprintf(got, sizeof got, "%" PRId64 " %d %s", u.id, u.karma, u.name);
            blog_user_clear(&u);
            stale += strcmp(got, want ? want : "") != 0;
            free(want);
        }
    for (int k = 0; k < 2; k++) {
        blog_user_list l = {0};
        assert_int_equal(blog_user_by_org(repo, orgs[k], &l), MEMO_OK);
        char got[512] = "";
        for (size_t i = 0; i < l.len; i++) {
            size_t n = strlen(got);
            snprintf(got + n, sizeof got - n, "%s%" PRId64 ":%d", i ? "," : "",
                     l.items[i].id, l.items[i].karma);
        }
        blog_user_list_clear(&l);
        char id[32];
        snprintf(id, sizeof id, "%" PRId64, orgs[k]);
        char *want =
            test_sql_value_param("SELECT coalesce(string_agg(id || ':' || karma, ',' "
                                 "ORDER BY name, id), '') FROM users WHERE org_id = "
                                 "$1::bigint",
                                 id);
        stale += strcmp(got, want) != 0;
        free(want);
    }
    memo_close(repo);
    return stale;
}

enum fault { NONE, KILL_WATCH, FREEZE_REDIS, KILL_REDIS };

/* Readers and a writer for ms; the watch (a process) throughout unless
 * `watch` is false, with a fault in the middle. Stale entries after. */
static long race(bool watch, enum fault fault, int ms, const char *name)
{
    seed_hot();
    drop_slot();
    char *log = new_log();
    pid_t w = 0;
    if (watch) {
        w = watch_spawn(log);
        wait_log(log, "streaming from", 1, 10000);
        caught_up(10000); /* the seed's changes: nothing cached was older */
    }
    shm = test_shared_new(sizeof *shm);
    pid_t pids[3];
    for (int p = 0; p < 2; p++)
        if ((pids[p] = test_fork()) == 0)
            reader_child(ms);
    if ((pids[2] = test_fork()) == 0)
        writer_child(ms);
    double t0 = test_now_ms();
    int kills = 0;
    if (fault == KILL_WATCH) {
        /* killed at random points of its streaming, restarted at once or
         * after a while; each restart streams again (from the slot) before
         * the next kill */
        for (int k = 0; k < 3; k++) {
            memop_sleep_us((uint64_t)(ms / 4) * 1000u + memop_random() % 200000u);
            kill(w, SIGKILL);
            assert_int_equal(exit_status(w), -SIGKILL);
            kills++;
            memop_sleep_us(memop_random() % 300000u);
            w = watch_spawn(log);
            double t1 = test_now_ms();
            while (streams_in(log) < 2 + k)
                if (test_now_ms() - t1 > 10000)
                    fail_msg("a restarted watch did not stream within 10 s:\n%s",
                             log_text(log));
                else
                    memop_sleep_us(10000);
        }
    } else if (fault == FREEZE_REDIS) {
        memop_sleep_us((uint64_t)(ms / 3) * 1000u);
        kill(test_redis_pid(), SIGSTOP);
        memop_sleep_us(1000000);
        kill(test_redis_pid(), SIGCONT);
    } else if (fault == KILL_REDIS) {
        memop_sleep_us((uint64_t)(ms / 3) * 1000u);
        kill(test_redis_pid(), SIGKILL);
        memop_sleep_us(300000);
        test_servers("redis-start");
        test_redis_reconnect();
    }
    test_wait_children(pids, 3);
    double recovery = 0;
    if (watch)
        recovery = caught_up(30000);
    (void)t0;
    long stale = stale_entries();
    long reads = shm->reads, writes = shm->writes, failures = shm->failures;
    test_shared_free(shm, sizeof *shm);
    test_metric(name, reads + writes, stale, failures, 0, recovery);
    if (watch) {
        kill(w, SIGTERM);
        assert_int_equal(exit_status(w), 0);
        assert_int_equal(log_count(log, "stopped:"), 1);
        if (fault == KILL_WATCH) /* each restart resumed the slot, at once or after
                                  * PostgreSQL noticed the killed one's end */
            if (streams_in(log) != 1 + kills)
                fail_msg("%d watches did not all stream:\n%s", 1 + kills, log_text(log));
        if (fault == FREEZE_REDIS || fault == KILL_REDIS)
            assert_true(log_count(log, "Redis takes the invalidations again") >= 1);
        assert_int_equal(log_count(log, "memo watch: ; again"),
                         0); /* every retry says why */
    }
    unlink(log);
    free(log);
    assert_true(reads > 100 && writes > 100);
    /* a database error is a failure; Redis away is not (it degrades) */
    assert_int_equal(failures, 0);
    return stale;
}

static int race_ms(void)
{
    return test_torture() ? 20000 : 3000;
}

static void race_without_watch_is_stale(void **state)
{
    (void)state;
    /* the control: nothing tells the cache, so the test can see staleness */
    assert_true(race(false, NONE, race_ms(), "sql writers, no watch") > 0);
}

static void race_with_watch(void **state)
{
    (void)state;
    assert_int_equal(race(true, NONE, race_ms(), "sql writers, watch"), 0);
}

static void race_watch_killed(void **state)
{
    (void)state;
    assert_int_equal(race(true, KILL_WATCH, race_ms(), "sql writers, watch kill -9 x3"),
                     0);
}

static void race_redis_frozen(void **state)
{
    (void)state;
    assert_int_equal(race(true, FREEZE_REDIS, race_ms(), "sql writers, Redis frozen 1 s"),
                     0);
}

static void race_redis_killed(void **state)
{
    (void)state;
    assert_int_equal(race(true, KILL_REDIS, race_ms(), "sql writers, Redis killed"), 0);
}

/* PostgreSQL restarted under a watch: it reconnects and catches up. */
static void postgres_restarted(void **state)
{
    (void)state;
    fresh();
    int64_t org = new_org("pg", "Before");
    thread_watch *t = watch_start();
    caught_up(10000);
    memo_repo *repo = test_open(NULL);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    blog_org_clear(&o);
    test_servers("pg-stop");
    test_servers("pg-start");
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE orgs SET name = 'After' WHERE id = %" PRId64, org);
    test_sql(sql);
    double ms = caught_up(30000);
    printf("caught up %.0f ms after PostgreSQL came back\n", ms);
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.name, "After");
    blog_org_clear(&o);
    assert_true(watch_stat(t->repo, "reconnects") >= 1);
    memo_close(repo);
    watch_finish(t);
}

/* ========================================================== 4. standby */

static void standby_takes_over(void **state)
{
    (void)state;
    fresh();
    int64_t org = new_org("sb", "One");
    char *log1 = new_log(), *log2 = new_log();
    pid_t first = watch_spawn(log1);
    wait_log(log1, "streaming from", 1, 10000);
    pid_t second = watch_spawn(log2);
    wait_log(log2, "standing by: another memo watch streams from memo_blog", 1, 10000);
    caught_up(10000);
    memo_repo *repo = test_open(NULL);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    blog_org_clear(&o);

    /* memo stats sums what both publish: two watches, one streaming */
    const char *tool = test_env("MEMO_TOOL");
    const char *stats[] = {tool, "stats", "--json", NULL};
    double t0 = test_now_ms();
    json_t *sum = NULL;
    for (;;) {
        char *out = NULL;
        assert_int_equal(test_run(stats, NULL, &out), 0);
        json_t *j = json_loads(out, 0, NULL);
        free(out);
        assert_non_null(j);
        json_t *w = json_object_get(j, "watch");
        if (json_integer_value(json_object_get(w, "processes")) == 2) {
            assert_int_equal(json_integer_value(json_object_get(w, "streaming")), 1);
            sum = json_incref(json_object_get(w, "sum"));
            json_decref(j);
            break;
        }
        json_decref(j);
        if (test_now_ms() - t0 > 5000)
            fail_msg("memo stats did not see both watches");
        memop_sleep_us(100000);
    }
    assert_true(json_is_integer(json_object_get(sum, "changes")));
    assert_true(json_is_object(json_object_get(sum, "lag_us")));
    json_decref(sum);
    const char *prom[] = {tool, "stats", "--prom", NULL};
    char *text = NULL;
    assert_int_equal(test_run(prom, NULL, &text), 0);
    assert_non_null(strstr(text, "memo_watch_processes 2\n"));
    assert_non_null(strstr(text, "memo_watch_streaming 1\n"));
    assert_non_null(strstr(text, "# TYPE memo_watch_lag_seconds histogram\n"));
    const char *check[] = {"promtool", "check", "metrics", NULL};
    assert_int_equal(test_run(check, text, NULL), 0);
    free(text);

    kill(first, SIGKILL);
    assert_int_equal(exit_status(first), -SIGKILL);
    double ms = wait_log(log2, "took over the replication slot memo_blog", 1, 10000);
    printf("the standby took over %.0f ms after the first watch died\n", ms);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE orgs SET name = 'Two' WHERE id = %" PRId64, org);
    test_sql(sql);
    caught_up(10000);
    assert_int_equal(blog_org_get(repo, org, &o), MEMO_OK);
    assert_string_equal(o.name, "Two");
    blog_org_clear(&o);
    memo_close(repo);

    kill(second, SIGTERM);
    assert_int_equal(exit_status(second), 0);
    assert_int_equal(log_count(log2, "stopped:"), 1);
    unlink(log1);
    unlink(log2);
    free(log1);
    free(log2);
}

/* ================================================ 5. ping and drop-slot */

static void ping_and_drop_slot(void **state)
{
    (void)state;
    fresh();
    thread_watch *t = watch_start();
    watch_finish(t); /* the slot stays, idle */
    test_sql("INSERT INTO orgs (slug, name, plan, created_at) SELECT 'idle' || g, 'I', "
             "'free', now() FROM generate_series(1, 1000) g");
    const char *tool = test_env("MEMO_TOOL"), *schema = schema_file();
    const char *ping[] = {tool, "--schema", schema, "ping", "--json", NULL};
    char *out = NULL;
    assert_int_equal(test_run(ping, NULL, &out), 0);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(j);
    json_t *cs = json_object_get(j, "change_stream");
    assert_string_equal(json_string_value(json_object_get(cs, "wal_level")), "logical");
    assert_true(json_is_true(json_object_get(cs, "may_replicate")));
    assert_true(json_is_true(json_object_get(cs, "publication")));
    json_t *slot = NULL, *s;
    size_t i;
    json_array_foreach(json_object_get(cs, "slots"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), "memo_blog") == 0)
            slot = s;
    }
    assert_non_null(slot);
    assert_true(json_is_false(json_object_get(slot, "active")));
    json_int_t retained = json_integer_value(json_object_get(slot, "retained_bytes"));
    assert_true(retained > 1000); /* a thousand rows of WAL at least */
    json_decref(j);

    /* past the threshold: a warning and exit status 1 */
    const char *warn[] = {tool,   "--schema", schema, "ping", "--warn-retained",
                          "1000", NULL};
    assert_int_equal(test_run(warn, NULL, &out), 1);
    assert_non_null(strstr(out, "slot memo_blog"));
    assert_non_null(strstr(out, "idle"));
    free(out);

    const char *drop[] = {tool, "--schema", schema, "watch", "--drop-slot", NULL};
    assert_int_equal(test_run(drop, NULL, &out), 0);
    assert_non_null(strstr(out, "dropped the replication slot memo_blog"));
    free(out);
    test_assert_sql(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'memo_blog'", "0");
    assert_int_equal(test_run(drop, NULL, NULL), 1);            /* none left */
    const char *usage[] = {tool, "watch", "--drop-slot", NULL}; /* which slot? */
    assert_int_equal(test_run(usage, NULL, NULL), 2);
}

static int cleanup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++)
        if (spawned[i]) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
            spawned[i] = 0;
        }
    if (running) {
        thread_watch *t = running;
        running = NULL;
        memo_watch_stop(t->w);
        pthread_join(t->thread, NULL);
        memo_watch_close(t->w);
        memo_close(t->repo);
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
    test_servers_restore();
    drop_slot();
    /* what a failed test may have left changed */
    test_sql("ALTER TABLE users REPLICA IDENTITY FULL");
    test_sql("DROP INDEX IF EXISTS users_memo_identity");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(sql_writes_reach_the_cache, cleanup),
        cmocka_unit_test_teardown(key_changed, cleanup),
        cmocka_unit_test_teardown(unchanged_toast, cleanup),
        cmocka_unit_test_teardown(first_drop_is_recorded, cleanup),
        cmocka_unit_test_teardown(replica_identities, cleanup),
        cmocka_unit_test_teardown(tables_that_do_not_match, cleanup),
        cmocka_unit_test_teardown(refusals, cleanup),
        cmocka_unit_test_teardown(stop_while_creating_the_slot, cleanup),
        cmocka_unit_test_teardown(race_without_watch_is_stale, cleanup),
        cmocka_unit_test_teardown(race_with_watch, cleanup),
        cmocka_unit_test_teardown(race_watch_killed, cleanup),
        cmocka_unit_test_teardown(race_redis_frozen, cleanup),
        cmocka_unit_test_teardown(race_redis_killed, cleanup),
        cmocka_unit_test_teardown(postgres_restarted, cleanup),
        cmocka_unit_test_teardown(standby_takes_over, cleanup),
        cmocka_unit_test_teardown(ping_and_drop_slot, cleanup),
    };
    if (getenv("MEMO_TEST_FILTER"))
        cmocka_set_test_filter(getenv("MEMO_TEST_FILTER"));
    return cmocka_run_group_tests_name("memo watch", tests, test_group_blog_tables, NULL);
}
