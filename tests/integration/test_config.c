/* memo_open with bad or unreachable configuration: a clear status and a
 * message naming what failed, never a password, never a crash or a leak. */
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blog.h"

/* A loopback port nothing listens on: bind one, read it, close it. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static memo_status try_open(const char *redis, const char *db, memo_error *err)
{
    memo_config cfg = {
        .redis_url = redis, .database_url = db, .connect_timeout_ms = 1000};
    memo_repo *repo = (memo_repo *)&cfg; /* must come back NULL on failure */
    memo_status st = memo_open(&repo, &cfg, err);
    if (st == MEMO_OK)
        memo_close(repo);
    else
        assert_null(repo);
    assert_int_equal(err->status, st);
    return st;
}

static void bad_redis_urls(void **state)
{
    (void)state;
    const char *db = test_env("DATABASE_URL");
    static const struct {
        const char *url, *says;
    } cases[] = {
        {"", "no Redis URL"},
        {"http://localhost", "redis:// or unix://"},
        {"rediss://localhost", "TLS"},
        {"redis://localhost:99999", "invalid port"},
        {"redis://localhost:abc", "invalid port"},
        {"redis://localhost/x", "invalid database"},
        {"redis://localhost/1/2", "invalid database number '1/2'"},
        {"redis://localhost/1?x", "unexpected"},
        {"redis://:pa%zzss@localhost", "escape"},
        {"unix://relative.sock", "absolute"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memo_error err;
        assert_int_equal(try_open(cases[i].url, db, &err), MEMO_ERR_CONFIG);
        if (!strstr(err.message, cases[i].says))
            fail_msg("%s: message \"%s\" does not say \"%s\"", cases[i].url, err.message,
                     cases[i].says);
    }
    memo_error err;
    assert_int_equal(try_open(NULL, db, &err), MEMO_ERR_CONFIG);
}

static void unreachable_redis(void **state)
{
    (void)state;
    char url[128];
    int port = dead_port();
    snprintf(url, sizeof url, "redis://someone:s3cretpw@127.0.0.1:%d/0", port);
    memo_error err;
    assert_int_equal(try_open(url, test_env("DATABASE_URL"), &err), MEMO_ERR_REDIS);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    assert_non_null(strstr(err.message, where));
    assert_non_null(strstr(err.message, "refused"));
    assert_null(strstr(err.message, "s3cretpw"));
}

static void wrong_redis_password(void **state)
{
    (void)state;
    /* the private Redis has no password: AUTH fails, and says so */
    char url[256];
    const char *real = test_env("REDIS_URL");
    snprintf(url, sizeof url, "redis://:hunter2@%s", real + strlen("redis://"));
    memo_error err;
    /* Redis answered and refused: a mistake to fix, not an outage */
    assert_int_equal(try_open(url, test_env("DATABASE_URL"), &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "AUTH"));
    assert_null(strstr(err.message, "hunter2"));
    /* so it is refused even by a service that may start without Redis */
    memo_config cfg = {.redis_url = url,
                       .database_url = test_env("DATABASE_URL"),
                       .flags = MEMO_OPEN_DEGRADED};
    memo_repo *repo = NULL;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_null(repo);
    assert_non_null(strstr(err.message, "AUTH"));
}

static void unreachable_database(void **state)
{
    (void)state;
    char url[128];
    int port = dead_port();
    snprintf(url, sizeof url, "postgresql://memo:t0psecret@127.0.0.1:%d/memo", port);
    memo_error err;
    assert_int_equal(try_open(test_env("REDIS_URL"), url, &err), MEMO_ERR_DB_CONN);
    assert_non_null(strstr(err.message, "PostgreSQL"));
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    assert_non_null(strstr(err.message, p));
    assert_null(strstr(err.message, "t0psecret"));

    /* a database that does not exist, on a server that does */
    const char *real = test_env("DATABASE_URL");
    char nodb[256];
    snprintf(nodb, sizeof nodb, "%.*s/no_such_db", (int)(strrchr(real, '/') - real),
             real);
    assert_int_equal(try_open(test_env("REDIS_URL"), nodb, &err), MEMO_ERR_DB_CONN);
    assert_non_null(strstr(err.message, "no_such_db"));

    /* libpq quotes what it cannot use; memo masks the password in it */
    char typo[256];
    snprintf(typo, sizeof typo, "postgresql://memo:Sup3rS%%zzecret@%s",
             strchr(real + strlen("postgresql://"), '@') + 1);
    assert_int_equal(try_open(test_env("REDIS_URL"), typo, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "percent-encoded"));
    assert_null(strstr(err.message, "Sup3rS"));
    assert_null(strstr(err.message, "zzecret"));
    snprintf(typo, sizeof typo, "postgres//memo:Sup3rSecret@%s",
             strchr(real + strlen("postgresql://"), '@') + 1);
    memo_status st = try_open(test_env("REDIS_URL"), typo, &err);
    assert_true(st == MEMO_ERR_DB_CONN || st == MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "PostgreSQL"));
    assert_null(strstr(err.message, "Sup3rSecret"));

    assert_int_equal(
        try_open(test_env("REDIS_URL"), "host=127.0.0.1 bogus_option=1", &err),
        MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "bogus_option"));
    assert_int_equal(try_open(test_env("REDIS_URL"), NULL, &err), MEMO_ERR_CONFIG);
}

static void bad_values(void **state)
{
    (void)state;
    memo_config cfg = {.redis_url = test_env("REDIS_URL"),
                       .database_url = test_env("DATABASE_URL")};
    memo_error err;
    memo_repo *repo;
    cfg.pool_size = -1;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "pool_size"));
    cfg.pool_size = 0;
    cfg.key_prefix = "app{1}:";
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "key_prefix"));
    cfg.key_prefix = NULL;
    cfg.near_max_bytes = (size_t)1 << 41;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "near_max_bytes"));
    cfg.near_max_bytes = 0;
    /* an application built with a newer memo.h: refused, not misread */
    cfg.size = sizeof cfg + 8;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "memo_config.size"));
    cfg.size = 0;
    assert_int_equal(memo_open(NULL, &cfg, &err), MEMO_ERR_ARG);
    assert_int_equal(memo_open(&repo, NULL, NULL), MEMO_ERR_ARG);
    memo_close(NULL);
    assert_string_equal(memo_last_error(NULL), "no repository");
}

static void degraded_start(void **state)
{
    (void)state;
    /* with MEMO_OPEN_DEGRADED a dead Redis does not stop the service */
    test_schema_sql("blog");
    test_sql("TRUNCATE orgs RESTART IDENTITY CASCADE");
    test_sql(
        "INSERT INTO orgs (slug, name, plan, created_at) VALUES ('d', 'D', 'p', now())");
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", dead_port());
    memo_config cfg = {.redis_url = url,
                       .database_url = test_env("DATABASE_URL"),
                       .flags = MEMO_OPEN_DEGRADED};
    memo_repo *repo = test_open(&cfg);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, 1, &o), MEMO_OK);
    assert_string_equal(o.slug, "d");
    blog_org_clear(&o);
    assert_int_equal(blog_org_get(repo, 2, &o), MEMO_NOT_FOUND);
    assert_int_equal(test_stat(repo, "blog.org", "degraded"), 2);
    assert_int_equal(test_stat(repo, "blog.org", "db_queries"), 2);
    /* writes still commit */
    blog_org n = {.slug = (char *)"n", .name = (char *)"N", .plan = (char *)"p"};
    assert_int_equal(blog_org_insert(repo, &n), MEMO_OK);
    test_assert_sql("SELECT count(*) FROM orgs", "2");
    memo_close(repo);
}

static void key_prefix(void **state)
{
    (void)state;
    test_schema_sql("blog");
    test_sql("TRUNCATE orgs RESTART IDENTITY CASCADE");
    test_sql(
        "INSERT INTO orgs (slug, name, plan, created_at) VALUES ('p', 'P', 'p', now())");
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    memo_config cfg = {.key_prefix = "tenant-7:"};
    memo_repo *repo = test_open(&cfg);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, 1, &o), MEMO_OK);
    blog_org_clear(&o);
    char key[128];
    snprintf(key, sizeof key, "tenant-7:blog:{org:1}:%s", blog_org_desc.row.key.tag);
    assert_true(test_redis_exists(key));
    assert_int_equal(test_redis_count("blog:*"), 0);
    memo_close(repo);
}

/* A table of an older shape: memo says which column differs and what to
 * run, since the schema's .sql file leaves existing tables alone. */
static void table_differs_from_entity(void **state)
{
    (void)state;
    test_schema_sql("blog");
    test_sql("TRUNCATE orgs RESTART IDENTITY CASCADE");
    test_sql(
        "INSERT INTO orgs (slug, name, plan, created_at) VALUES ('t', 'T', 'p', now())");
    test_sql("INSERT INTO users (email, name, org_id, karma, active, created_at) "
             "VALUES ('t@t', 'T', 1, 3, true, now())");
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};

    test_sql("ALTER TABLE orgs DROP COLUMN plan");
    memo_repo *repo = test_open(&cfg);
    blog_org o = {0};
    assert_int_equal(blog_org_get(repo, 1, &o), MEMO_ERR_SCHEMA);
    const char *msg = memo_last_error(repo);
    assert_non_null(strstr(msg, "column \"plan\" is missing"));
    assert_non_null(strstr(msg, "ALTER TABLE \"orgs\" ADD COLUMN \"plan\" text"));
    assert_non_null(strstr(msg, "does not change a table that exists"));
    memo_close(repo);
    test_sql("ALTER TABLE orgs ADD COLUMN plan text NOT NULL DEFAULT 'p'");

    test_sql("ALTER TABLE users ALTER COLUMN karma TYPE bigint");
    repo = test_open(&cfg);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, 1, &u), MEMO_ERR_SCHEMA);
    msg = memo_last_error(repo);
    assert_non_null(strstr(msg, "column \"karma\" is bigint, the entity says integer"));
    assert_non_null(strstr(msg, "ALTER COLUMN \"karma\" TYPE integer"));
    test_sql("ALTER TABLE users ALTER COLUMN karma TYPE integer");
    memo_close(repo);

    test_sql("ALTER TABLE comments RENAME TO comments_moved");
    repo = test_open(&cfg);
    blog_comment c = {0};
    assert_int_equal(blog_comment_get(repo, 1, &c), MEMO_ERR_SCHEMA);
    assert_non_null(strstr(memo_last_error(repo), "does not exist"));
    assert_non_null(strstr(memo_last_error(repo), "psql -f blog.sql"));
    memo_close(repo);
    test_sql("ALTER TABLE comments_moved RENAME TO comments");

    repo = test_open(&cfg);
    assert_int_equal(blog_user_get(repo, 1, &u), MEMO_OK);
    assert_int_equal(u.karma, 3);
    blog_user_clear(&u);
    memo_close(repo);
}

/* A thread's last error is its own, and memo_close frees the message
 * buffers of threads that are still running (LeakSanitizer, in make
 * sanitize, finds one left behind). */
typedef struct err_thread {
    memo_repo *repo;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int step; /* 1: failed a call, 2: the repository is closed */
    char seen[128];
} err_thread;

static void *fail_and_wait(void *arg)
{
    err_thread *t = arg;
    blog_org o = {0};
    memo_status st = blog_org_get_by_slug(t->repo, NULL, &o);
    pthread_mutex_lock(&t->lock);
    snprintf(t->seen, sizeof t->seen, "%d %s", st, memo_last_error(t->repo));
    t->step = 1;
    pthread_cond_broadcast(&t->cond);
    while (t->step < 2)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void error_messages_per_thread(void **state)
{
    (void)state;
    memo_config cfg = {.flags = MEMO_STATS_PRIVATE};
    err_thread t = {.repo = test_open(&cfg)};
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.cond, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fail_and_wait, &t), 0);
    pthread_mutex_lock(&t.lock);
    while (t.step < 1)
        pthread_cond_wait(&t.cond, &t.lock);
    pthread_mutex_unlock(&t.lock);
    assert_non_null(strstr(t.seen, "NULL key"));
    assert_string_equal(memo_last_error(t.repo), ""); /* not this thread's */
    memo_close(t.repo);                               /* the other thread still runs */
    pthread_mutex_lock(&t.lock);
    t.step = 2;
    pthread_cond_broadcast(&t.cond);
    pthread_mutex_unlock(&t.lock);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&t.lock);
    pthread_cond_destroy(&t.cond);
}

/* A repository told it is behind a transaction-mode pooler
 * (MEMO_DB_UNNAMED) works with unnamed statements and says so in its
 * statistics; one that is not prepares them. */
static void unnamed_statements(void **state)
{
    (void)state;
    test_schema_sql("blog");
    for (int unnamed = 0; unnamed < 2; unnamed++) {
        memo_config cfg = {.flags = MEMO_STATS_PRIVATE | (unnamed ? MEMO_DB_UNNAMED : 0)};
        memo_repo *repo = test_open(&cfg);
        blog_org o = {
            .slug = (char *)"unnamed", .name = (char *)"U", .plan = (char *)"p"};
        assert_int_equal(blog_org_insert(repo, &o), MEMO_OK);
        blog_org got = {0};
        assert_int_equal(blog_org_get(repo, o.id, &got), MEMO_OK);
        assert_string_equal(got.slug, "unnamed");
        blog_org_clear(&got);
        char *s = memo_stats_json(repo);
        assert_non_null(strstr(s, unnamed ? "\"statements\":\"unnamed\""
                                          : "\"statements\":\"prepared\""));
        free(s);
        assert_int_equal(blog_org_delete(repo, o.id), MEMO_OK);
        memo_close(repo);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_redis_urls),
        cmocka_unit_test(unreachable_redis),
        cmocka_unit_test(wrong_redis_password),
        cmocka_unit_test(unreachable_database),
        cmocka_unit_test(bad_values),
        cmocka_unit_test(unnamed_statements),
        cmocka_unit_test(degraded_start),
        cmocka_unit_test(key_prefix),
        cmocka_unit_test(table_differs_from_entity),
        cmocka_unit_test(error_messages_per_thread),
    };
    return cmocka_run_group_tests_name("configuration", tests, NULL, NULL);
}
