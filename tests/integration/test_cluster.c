/* Redis Cluster, as far as memo goes today (issue 13): a real cluster of 3
 * masters and 3 replicas, started by tests/servers.sh cluster-start and
 * stopped after, agrees with memo on the slot of every key memo builds, and
 * a repository pointed at a cluster node, or at several seed nodes, is
 * refused at memo_open with a message that says why, rather than degrading
 * call after call on MOVED replies. */

#define _DEFAULT_SOURCE 1 /* usleep */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blog.h"
#include "internal.h"

static char url[512];      /* the masters, comma-separated */
static char first[128];    /* redis://<the first master>/ */
static redisContext *node; /* a connection to that master */

static int start(void **state)
{
    (void)state;
    test_schema_sql("blog");
    test_servers("cluster-start");
    char path[512];
    snprintf(path, sizeof path, "%s/cluster/url", test_env("MEMO_TEST_SERVERS_DIR"));
    FILE *f = fopen(path, "r");
    if (!f || !fgets(url, sizeof url, f))
        fail_msg("cannot read %s", path);
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    /* redis://h:p,h:p,h:p/ -> redis://h:p/ and a connection to it */
    char host[64];
    int port;
    if (sscanf(url, "redis://%63[^:]:%d", host, &port) != 2)
        fail_msg("cluster URL %s", url);
    snprintf(first, sizeof first, "redis://%s:%d/", host, port);
    node = redisConnect(host, port);
    if (!node || node->err)
        fail_msg("cannot connect to %s", first);
    return 0;
}

static int stop(void **state)
{
    (void)state;
    redisFree(node);
    test_servers("cluster-stop");
    return 0;
}

static unsigned keyslot(const char *key)
{
    redisReply *r = redisCommand(node, "CLUSTER KEYSLOT %s", key);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        fail_msg("CLUSTER KEYSLOT %s", key);
    unsigned s = (unsigned)r->integer;
    freeReplyObject(r);
    return s;
}

/* Every kind of key memo builds (rows, lookups with escaped text, lists,
 * counts, memo's own), and keys with braces in odd places: memo's slot is
 * the cluster's. */
static void slots_agree_with_the_cluster(void **state)
{
    (void)state;
    memo_repo *repo = test_open(NULL); /* for its key prefix: none */
    const char *const odd[] = {"foo",        "{user1000}.following",
                               "foo{}{bar}", "foo{{bar}}zap",
                               "a{b",        "}{x}",
                               "{}",         "x{y}z{w}"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        assert_int_equal(memop_key_slot(odd[i], strlen(odd[i])), keyslot(odd[i]));
    static bool seen[16384];
    size_t distinct = 0;
    for (int64_t id = 1; id <= 300; id++) {
        memop_key k[4];
        memop_key_row(repo, &blog_user_desc, &id, &k[0]);
        char email[64], *pe = email;
        snprintf(email, sizeof email, "user %lld {x}@example.com", (long long)id);
        memop_key_of(repo, &blog_user_desc, &blog_user_desc.uniques[0].key,
                     &blog_user_desc.fields[blog_user_desc.uniques[0].field], &pe, &k[1]);
        memop_key_of(repo, &blog_user_desc, &blog_user_desc.lists[0].key,
                     &blog_user_desc.fields[blog_user_desc.lists[0].group], &id, &k[2]);
        memop_key_count(&k[2], &k[3]);
        for (int j = 0; j < 4; j++) {
            unsigned s = memop_key_slot(k[j].s, k[j].len);
            assert_int_equal(s, keyslot(k[j].s));
            distinct += !seen[s];
            seen[s] = true;
        }
        /* a list and its count share a slot */
        assert_int_equal(memop_key_slot(k[2].s, k[2].len),
                         memop_key_slot(k[3].s, k[3].len));
    }
    assert_true(distinct > 100); /* the keys spread over the slots */
    memo_close(repo);
}

static void cluster_is_refused_with_a_reason(void **state)
{
    (void)state;
    memo_config cfg = {.redis_url = first, .database_url = test_env("DATABASE_URL")};
    memo_repo *repo = NULL;
    memo_error err;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_null(repo);
    assert_non_null(strstr(err.message, "Redis Cluster"));
    /* even for a service that may start without Redis: it is no outage */
    cfg.flags = MEMO_OPEN_DEGRADED;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    /* several seed nodes */
    cfg.redis_url = url;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "Redis Cluster"));
}

/* Whether a loopback port can be bound now. */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A port for a cluster node: free, and its bus port (+10000) too, both
 * below the ephemeral range (as tests/servers.sh picks them). */
static int free_port(void)
{
    for (int i = 0; i < 200; i++) {
        int p = 20000 + (int)(memop_random() % 2700);
        if (port_free(p) && port_free(p + 10000))
            return p;
    }
    fail_msg("no free port");
    return 0;
}

/* Opened degraded while nothing answers, the Redis that comes up is a
 * cluster node: the prober runs memo_open's checks before it closes the
 * breaker, keeps it open, and the statistics say why. */
static void cluster_that_comes_later_is_refused(void **state)
{
    (void)state;
    int port = free_port();
    char u[64], cmd[1024], pidfile[512];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d/", port);
    memo_config cfg = {.redis_url = u,
                       .database_url = test_env("DATABASE_URL"),
                       .flags = MEMO_OPEN_DEGRADED | MEMO_STATS_PRIVATE,
                       .connect_timeout_ms = 200};
    memo_repo *repo = NULL;
    memo_error err;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_OK);
    test_assert_redis_state(repo, "breaker", "open");
    const char *dir = test_env("MEMO_TEST_SERVERS_DIR");
    /* in the cluster's directory, so that cluster-stop stops it too */
    snprintf(pidfile, sizeof pidfile, "%s/cluster/late/redis.pid", dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/cluster/late && redis-server --port %d --bind 127.0.0.1 "
             "--cluster-enabled yes --cluster-config-file %s/cluster/late/nodes.conf "
             "--save '' --appendonly no --dir %s/cluster/late --daemonize yes "
             "--pidfile %s --logfile %s/cluster/late/redis.log",
             dir, port, dir, dir, pidfile, dir);
    assert_int_equal(system(cmd), 0);
    double t0 = test_now_ms();
    while (port_free(port) && test_now_ms() - t0 < 5000) /* listening */
        usleep(10 * 1000);
    assert_false(port_free(port));
    char *why = test_redis_state(repo, "refused");
    while (!*why && test_now_ms() - t0 < 5000) {
        free(why);
        usleep(20 * 1000);
        why = test_redis_state(repo, "refused");
    }
    assert_non_null(strstr(why, "Redis Cluster"));
    free(why);
    test_assert_redis_state(repo, "breaker", "open"); /* and it stays so */
    memo_close(repo);
    FILE *f = fopen(pidfile, "r");
    int pid = 0;
    if (f && fscanf(f, "%d", &pid) == 1 && pid > 0)
        kill(pid, SIGTERM);
    if (f)
        fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slots_agree_with_the_cluster),
        cmocka_unit_test(cluster_is_refused_with_a_reason),
        cmocka_unit_test(cluster_that_comes_later_is_refused),
    };
    return cmocka_run_group_tests_name("redis cluster", tests, start, stop);
}
