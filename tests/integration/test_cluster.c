/* Redis Cluster (issue 13): a real cluster of 3 masters and 3 replicas,
 * started by tests/servers.sh cluster-start and stopped after. memo agrees
 * with the cluster on the slot of every key it builds; a repository pointed
 * at one node or at several reaches every master, splits its multi-key
 * commands by slot, follows MOVED and ASK while a slot migrates, and a
 * cluster that comes up after a degraded open is used once it serves every
 * slot. (tests/on-cluster.sh runs the blog and wiki suites on a cluster.) */

#define _DEFAULT_SOURCE 1 /* usleep */
#include "test.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
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

/* The masters, as CLUSTER SLOTS said at the start. */
static struct master {
    char host[64];
    int port;
    char id[64];
    redisContext *c;
} masters[3];

static redisContext *connect_to(const char *host, int port)
{
    redisContext *c = redisConnect(host, port);
    if (!c || c->err)
        fail_msg("cannot connect to %s:%d", host, port);
    return c;
}

static redisReply *on(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("Redis: %s", c->errstr);
    return r;
}

static void find_masters(void)
{
    redisReply *r = on(node, "CLUSTER SLOTS");
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i]->element[2];
        bool seen = false;
        for (size_t k = 0; k < n; k++)
            seen |= masters[k].port == (int)m->element[1]->integer;
        if (seen)
            continue;
        if (n == 3)
            fail_msg("more than 3 masters");
        snprintf(masters[n].host, sizeof masters[n].host, "%s", m->element[0]->str);
        masters[n].port = (int)m->element[1]->integer;
        snprintf(masters[n].id, sizeof masters[n].id, "%s", m->element[2]->str);
        masters[n].c = connect_to(masters[n].host, masters[n].port);
        n++;
    }
    freeReplyObject(r);
    if (n != 3)
        fail_msg("%zu masters, want 3", n);
}

static int slot_port(redisContext *c, unsigned slot);

/* The master serving a slot now. */
static struct master *owner(unsigned slot)
{
    int port = slot_port(node, slot);
    for (int i = 0; i < 3; i++)
        if (masters[i].port == port)
            return &masters[i];
    fail_msg("no master serves slot %u", slot);
    return NULL;
}

/* FLUSHALL on every master the cluster has now (after a failover, a
 * promoted replica; masters[0] lives through every test). */
static void cluster_flush(void)
{
    redisReply *r = on(masters[0].c, "CLUSTER SLOTS");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i]->element[2];
        redisContext *c = connect_to(m->element[0]->str, (int)m->element[1]->integer);
        freeReplyObject(on(c, "FLUSHALL"));
        redisFree(c);
    }
    freeReplyObject(r);
}

static long long dbsize(const struct master *m)
{
    redisReply *r = on(m->c, "DBSIZE");
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* A member of memo_stats_json's "redis": {"cluster": {...}}; -1 if none. */
static long long cluster_stat(memo_repo *repo, const char *member)
{
    char *s = memo_stats_json(repo);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    json_t *v =
        json_object_get(json_object_get(json_object_get(j, "redis"), "cluster"), member);
    long long n = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    return n;
}

static memo_repo *open_on(const char *u)
{
    memo_config cfg = {.redis_url = u,
                       .database_url = test_env("DATABASE_URL"),
                       .flags = MEMO_STATS_PRIVATE};
    memo_repo *repo = NULL;
    memo_error err;
    if (memo_open(&repo, &cfg, &err) != MEMO_OK)
        fail_msg("memo_open %s: %s", u, err.message);
    return repo;
}

/* Renames a user through repo (read, then update). */
static void rename_user(memo_repo *repo, int64_t id, const char *name)
{
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    free(u.name);
    u.name = strdup(name);
    assert_int_equal(blog_user_update(repo, &u), MEMO_OK);
    blog_user_clear(&u);
}

static const char *const tables[] = {"users", "orgs", NULL};
enum { USERS = 60 };

static void seed(bool flush)
{
    test_reset(tables);
    if (flush)
        cluster_flush();
    test_sql(
        "INSERT INTO orgs (slug, name, plan, created_at) VALUES ('c', 'C', 'p', now())");
    test_sql("INSERT INTO users (email, name, org_id, karma, active, created_at) SELECT "
             "'u' || i || '@c', 'U' || i, (SELECT id FROM orgs), 0, true, now() FROM "
             "generate_series(1, 60) i");
}

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
    node = connect_to(host, port);
    find_masters();
    return 0;
}

static int stop(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        redisFree(masters[i].c);
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

/* One node's URL or all of them: the whole cluster either way. Every
 * read and write of the blog lands on the master of its key's slot (no
 * MOVED), the rows spread over the three, get_many's MGET is split by slot
 * and joined in the order asked, and memo_flush empties every master. */
static void every_master_is_reached(void **state)
{
    (void)state;
    seed(true);
    memo_repo *one = open_on(first), *all = open_on(url);
    assert_int_equal(cluster_stat(one, "masters"), 3);
    assert_int_equal(cluster_stat(all, "masters"), 3);
    for (int64_t id = 1; id <= USERS; id++) {
        blog_user u = {0};
        assert_int_equal(blog_user_get(id % 2 ? one : all, id, &u), MEMO_OK);
        char want[16];
        snprintf(want, sizeof want, "U%lld", (long long)id);
        assert_string_equal(u.name, want);
        blog_user_clear(&u);
    }
    for (int i = 0; i < 3; i++) /* USERS rows over 16384 slots: each master has some */
        assert_true(dbsize(&masters[i]) > 0);
    /* get_many: every row a hit, in the order asked, from one split MGET */
    int64_t ids[USERS + 1];
    for (int i = 0; i < USERS; i++)
        ids[i] = USERS - i;
    ids[USERS] = 999; /* no such user */
    long long hits = test_stat(one, "blog.user", "hits");
    blog_user_list l = {0};
    assert_int_equal(blog_user_get_many(one, ids, USERS + 1, &l), MEMO_OK);
    assert_int_equal(l.len, USERS);
    for (size_t i = 0; i < l.len; i++)
        assert_int_equal(l.items[i].id, ids[i]);
    blog_user_list_clear(&l);
    assert_int_equal(test_stat(one, "blog.user", "hits") - hits, USERS);
    /* a lookup: the lookup key, then the row as by get (two slots) */
    blog_user u = {0};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(blog_user_get_by_email(all, "u7@c", &u), MEMO_OK);
        assert_int_equal(u.id, 7);
        blog_user_clear(&u);
    }
    /* a list and its rows */
    blog_user_list byorg = {0};
    assert_int_equal(blog_user_by_org(all, 1, &byorg), MEMO_OK);
    assert_int_equal(byorg.len, USERS);
    blog_user_list_clear(&byorg);
    /* a write invalidates where the keys live: the other repository sees it */
    rename_user(one, 5, "Renamed");
    assert_int_equal(blog_user_get(all, 5, &u), MEMO_OK);
    assert_string_equal(u.name, "Renamed");
    blog_user_clear(&u);
    int64_t every[USERS];
    for (int i = 0; i < USERS; i++)
        every[i] = i + 1;
    assert_int_equal(test_stale_rows(all, &blog_user_desc, every, USERS), 0);
    assert_int_equal(cluster_stat(one, "moved") + cluster_stat(all, "moved"), 0);
    assert_int_equal(test_stat(one, "blog.user", "degraded") +
                         test_stat(all, "blog.user", "degraded"),
                     0);
    /* memo_flush: SCAN and UNLINK on every master */
    long removed = 0;
    assert_int_equal(memo_flush(all, &blog_user_desc, NULL, NULL, NULL, &removed),
                     MEMO_OK);
    assert_true(removed >= USERS);
    for (int i = 0; i < 3; i++)
        assert_int_equal(dbsize(&masters[i]), 0);
    memo_close(one);
    memo_close(all);
}

/* Nodes a cluster names come and go (addresses change under orchestrators,
 * a hostile server names any): the table keeps at most MEMOP_NODES_MAX,
 * gives a new node the place of one that serves no slot, refuses an
 * address that is no host name, and the masters stay reachable. */
static void node_table_is_bounded(void **state)
{
    (void)state;
    seed(true);
    memo_repo *repo = open_on(url);
    for (int i = 0; i < 3 * MEMOP_NODES_MAX; i++) {
        char host[32];
        snprintf(host, sizeof host, "10.9.%d.%d", i / 250, i % 250);
        int k = memop_cluster_node(repo, host, strlen(host), 7000);
        assert_true(k >= 0 && k < MEMOP_NODES_MAX);
        assert_int_equal(memop_cluster_node(repo, host, strlen(host), 7000),
                         k); /* kept */
    }
    assert_true(atomic_load(&repo->cluster.nnodes) <= MEMOP_NODES_MAX);
    assert_int_equal(memop_cluster_node(repo, "a\nb", 3, 7000), -1);
    assert_int_equal(memop_cluster_node(repo, "a b", 3, 7000), -1);
    assert_int_equal(memop_cluster_node(repo, "", 0, 7000), -1);
    assert_int_equal(memop_cluster_node(repo, "h", 1, 0), -1);
    assert_int_equal(cluster_stat(repo, "masters"), 3);
    for (int k = 0; k < 2; k++)
        for (int64_t id = 1; id <= USERS; id++) {
            blog_user u = {0};
            assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
            blog_user_clear(&u);
        }
    assert_int_equal(test_stat(repo, "blog.user", "hits"), USERS);
    assert_int_equal(test_stat(repo, "blog.user", "degraded"), 0);
    memo_close(repo);
}

static void cluster_is_refused_with_a_reason(void **state)
{
    (void)state;
    memo_config cfg = {.redis_url = NULL, .database_url = test_env("DATABASE_URL")};
    memo_repo *repo = NULL;
    memo_error err;
    /* several nodes that are no cluster: the private single Redis, twice */
    char host[64], twice[256];
    int port;
    if (sscanf(test_env("REDIS_URL"), "redis://%63[^:]:%d", host, &port) != 2)
        fail_msg("REDIS_URL");
    snprintf(twice, sizeof twice, "redis://%s:%d,%s:%d/", host, port, host, port);
    cfg.redis_url = twice;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_null(repo);
    assert_non_null(strstr(err.message, "no Redis Cluster node"));
    /* even for a service that may start without Redis: it is no outage */
    cfg.flags = MEMO_OPEN_DEGRADED;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    /* a cluster has database 0 only (SELECT says so) */
    char db1[160];
    snprintf(db1, sizeof db1, "%.*s1", (int)strlen(first), first);
    cfg.redis_url = db1;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "SELECT 1 failed"));
    assert_non_null(strstr(err.message, "cluster mode"));
}

/* A slot migrates from its master to another under a repository that
 * knows the old map: while the key has moved but the slot has not, the
 * old master answers ASK and memo asks the new one (ASKING); once the slot
 * has moved, MOVED, which corrects the slot at once and has the prober
 * read the whole map. Every read is a hit, none degraded, and a write
 * after invalidates on the new master. */
static void moved_and_ask_are_followed(void **state)
{
    (void)state;
    seed(true);
    memo_repo *repo = open_on(url);
    const int64_t id = 42;
    memop_key k;
    memop_key_row(repo, &blog_user_desc, &id, &k);
    unsigned slot = memop_key_slot(k.s, k.len);
    struct master *from = owner(slot),
                  *to = from == &masters[0] ? &masters[1] : &masters[0];
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK); /* fills, on `from` */
    blog_user_clear(&u);
    long long hits = test_stat(repo, "blog.user", "hits");

    /* migrating: the key goes over, the slot stays */
    freeReplyObject(on(to->c, "CLUSTER SETSLOT %u IMPORTING %s", slot, from->id));
    freeReplyObject(on(from->c, "CLUSTER SETSLOT %u MIGRATING %s", slot, to->id));
    redisReply *r =
        on(from->c, "MIGRATE %s %d %s 0 5000 KEYS %s", to->host, to->port, "", k.s);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_string_equal(u.name, "U42");
    blog_user_clear(&u);
    assert_int_equal(test_stat(repo, "blog.user", "hits") - hits, 1);
    assert_true(cluster_stat(repo, "asked") >= 1);

    /* moved: every master is told */
    for (int i = 0; i < 3; i++)
        freeReplyObject(on(masters[i].c, "CLUSTER SETSLOT %u NODE %s", slot, to->id));
    long long refreshes = cluster_stat(repo, "refreshes");
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    blog_user_clear(&u);
    assert_int_equal(test_stat(repo, "blog.user", "hits") - hits, 2);
    assert_true(cluster_stat(repo, "moved") >= 1);
    double t0 = test_now_ms();
    while (cluster_stat(repo, "refreshes") == refreshes && test_now_ms() - t0 < 5000)
        usleep(10000);
    assert_true(cluster_stat(repo, "refreshes") >
                refreshes); /* the prober read the map */
    long long moved = cluster_stat(repo, "moved");
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_int_equal(cluster_stat(repo, "moved"), moved); /* it goes straight there */
    blog_user_clear(&u);
    /* a write's DEL goes to the new master */
    rename_user(repo, id, "Moved");
    r = on(to->c, "EXISTS %s", k.s);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
    assert_string_equal(u.name, "Moved");
    blog_user_clear(&u);
    r = on(to->c, "EXISTS %s", k.s); /* filled there */
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(test_stat(repo, "blog.user", "degraded"), 0);
    memo_close(repo);
}

/* ------------------------------------------------- resharding under load */

enum { RESHARD_USERS = 1000 };
static memo_repo *reshard_repo;
static _Atomic bool resharding;
static _Atomic long reshard_ops, reshard_failed;

static void *reshard_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (atomic_load(&resharding)) {
        int64_t ids[10];
        for (int i = 0; i < 10; i++)
            ids[i] = 1 + rand_r(&seed) % RESHARD_USERS;
        blog_user u = {0};
        blog_user_list l = {0};
        memo_status a = blog_user_get(reshard_repo, ids[0], &u),
                    b = blog_user_get_many(reshard_repo, ids, 10, &l);
        blog_user_clear(&u);
        blog_user_list_clear(&l);
        atomic_fetch_add(&reshard_failed, (a != MEMO_OK) + (b != MEMO_OK));
        atomic_fetch_add(&reshard_ops, 2);
    }
    return NULL;
}

static void *reshard_writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (long n = 0; atomic_load(&resharding); n++) {
        int64_t id = 1 + rand_r(&seed) % RESHARD_USERS;
        blog_user u = {0};
        memo_status st = blog_user_get(reshard_repo, id, &u);
        if (st == MEMO_OK) {
            char name[32];
            snprintf(name, sizeof name, "W%ld", n);
            free(u.name);
            u.name = strdup(name);
            st = blog_user_update(reshard_repo, &u);
        }
        blog_user_clear(&u);
        atomic_fetch_add(&reshard_failed, st != MEMO_OK);
        atomic_fetch_add(&reshard_ops, 1);
    }
    return NULL;
}

/* Slots move from one master to another (redis-cli --cluster reshard:
 * SETSLOT and MIGRATE, the real tool) while threads read and write: no
 * call fails, and once quiet no cached row differs from the database. */
static void resharding_under_load(void **state)
{
    (void)state;
    seed(true);
    test_sql("INSERT INTO users (email, name, org_id, karma, active, created_at) SELECT "
             "'r' || i || '@c', 'R' || i, (SELECT id FROM orgs), 0, true, now() FROM "
             "generate_series(61, 1000) i");
    reshard_repo = open_on(url);
    atomic_store(&reshard_ops, 0);
    atomic_store(&reshard_failed, 0);
    atomic_store(&resharding, true);
    pthread_t t[3];
    for (uintptr_t i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, i < 2 ? reshard_reader : reshard_writer,
                       (void *)(i + 1));
    char cmd[1024];
    int slots = test_torture() ? 5461 : 1000;
    double t0 = test_now_ms();
    for (int back = 0; back < (test_torture() ? 2 : 1); back++) {
        const struct master *from = &masters[back], *to = &masters[1 - back];
        snprintf(cmd, sizeof cmd,
                 "redis-cli --cluster reshard %s:%d --cluster-from %s --cluster-to %s "
                 "--cluster-slots %d --cluster-yes --cluster-pipeline 20 >/dev/null 2>&1",
                 from->host, from->port, from->id, to->id, slots);
        assert_int_equal(system(cmd), 0);
    }
    atomic_store(&resharding, false);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    long ops = atomic_load(&reshard_ops), failed = atomic_load(&reshard_failed);
    int64_t every[RESHARD_USERS];
    for (int i = 0; i < RESHARD_USERS; i++)
        every[i] = i + 1;
    long stale = test_stale_rows(reshard_repo, &blog_user_desc, every, RESHARD_USERS);
    test_metric("cluster resharding", ops, stale, failed, 0, test_now_ms() - t0);
    assert_int_equal(failed, 0);
    assert_int_equal(stale, 0);
    assert_true(ops > 100);
    /* the calls met the moving slots */
    assert_true(
        cluster_stat(reshard_repo, "moved") + cluster_stat(reshard_repo, "asked") > 0);
    memo_close(reshard_repo);
}

/* The PID of the cluster node on port. */
static int node_pid(int port)
{
    char pidfile[64];
    snprintf(pidfile, sizeof pidfile, "cluster/%d/redis.pid", port);
    return test_server_pid(pidfile);
}

/* A master is killed (SIGKILL). Until its replica takes over, its keys read
 * PostgreSQL while every other key keeps hitting (a hit, each one); a write
 * of its keys succeeds and its invalidation waits. After the failover memo
 * empties the new master of its keys before using it, sends what waited,
 * and its keys hit again. No call fails, no read is stale, during or
 * after. */
static void a_dead_master_degrades_its_keys_only(void **state)
{
    (void)state;
    seed(true);
    memo_config cfg = {.redis_url = url,
                       .database_url = test_env("DATABASE_URL"),
                       .flags = MEMO_STATS_PRIVATE,
                       .command_timeout_ms = 300,
                       .connect_timeout_ms = 300};
    memo_repo *repo = NULL;
    memo_error err;
    assert_int_equal(memo_open(&repo, &cfg, &err), MEMO_OK);
    struct master *victim = &masters[2];
    bool on_victim[USERS + 1];
    char names[USERS + 1][32];
    size_t nvictim = 0;
    for (int64_t id = 1; id <= USERS; id++) {
        memop_key k;
        memop_key_row(repo, &blog_user_desc, &id, &k);
        on_victim[id] = owner(memop_key_slot(k.s, k.len)) == victim;
        nvictim += on_victim[id];
        snprintf(names[id], sizeof names[id], "U%lld", (long long)id);
        blog_user u = {0};
        assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK); /* filled */
        blog_user_clear(&u);
    }
    assert_true(nvictim > 0 && nvictim < USERS);
    assert_int_equal(kill(node_pid(victim->port), SIGKILL), 0);

    long failed = 0, stale = 0, others = 0, rounds = 0;
    bool back = false;
    double t0 = test_now_ms();
    while (!back && test_now_ms() - t0 < 30000) {
        rounds++;
        for (int64_t id = 1; id <= USERS; id++) {
            if (on_victim[id] && rounds % 5 == 0 && id % 3 == 0) {
                /* a write of a dead master's key: PostgreSQL takes it */
                snprintf(names[id], sizeof names[id], "V%ld", rounds);
                blog_user w = {0};
                failed += blog_user_get(repo, id, &w) != MEMO_OK;
                free(w.name);
                w.name = strdup(names[id]);
                failed += blog_user_update(repo, &w) != MEMO_OK;
                blog_user_clear(&w);
            }
            long long hits = test_stat(repo, "blog.user", "hits");
            blog_user u = {0};
            if (blog_user_get(repo, id, &u) != MEMO_OK) {
                failed++;
                continue;
            }
            stale += strcmp(u.name, names[id]) != 0;
            blog_user_clear(&u);
            bool hit = test_stat(repo, "blog.user", "hits") == hits + 1;
            if (!on_victim[id]) {
                others++;
                if (!hit)
                    fail_msg("user %lld (a live master's) missed in round %ld",
                             (long long)id, rounds);
            } else if (hit && cluster_stat(repo, "failovers") >= 1) {
                back = true; /* the new master serves its keys */
            }
        }
        usleep(20 * 1000);
    }
    test_metric("cluster master killed", rounds * USERS, stale, failed, 0,
                test_now_ms() - t0);
    assert_true(back);
    assert_int_equal(failed, 0);
    assert_int_equal(stale, 0);
    assert_true(others > 0);
    /* quiet: every row as the database has it, the dead node no longer held */
    int64_t every[USERS];
    for (int i = 0; i < USERS; i++)
        every[i] = i + 1;
    assert_int_equal(test_stale_rows(repo, &blog_user_desc, every, USERS), 0);
    t0 = test_now_ms();
    while (cluster_stat(repo, "masters") != 3 && test_now_ms() - t0 < 5000)
        usleep(10000);
    assert_int_equal(cluster_stat(repo, "masters"), 3);
    memo_close(repo);
}

/* The port of the master serving slot, as the node c says. */
static int slot_port(redisContext *c, unsigned slot)
{
    redisReply *r = on(c, "CLUSTER SLOTS");
    int port = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (slot >= (unsigned)r->element[i]->element[0]->integer &&
            slot <= (unsigned)r->element[i]->element[1]->integer)
            port = (int)r->element[i]->element[2]->element[1]->integer;
    freeReplyObject(r);
    return port;
}

/* A master dies and its replica takes over before this repository has
 * sent it anything, so it never saw the old one down: it reads the new
 * map, and the promoted replica holds a row a lost DEL should have
 * removed (written there by hand: a DEL the old master acknowledged and
 * never replicated). memo empties the new master before it uses it: the
 * row read is the database's, never that one. */
static void a_promoted_replica_is_emptied_first(void **state)
{
    (void)state;
    seed(true);
    memo_repo *repo = open_on(url);
    struct master *victim = &masters[1];
    int64_t id = 0;
    memop_key k;
    for (int64_t i = 1; i <= USERS && !id; i++) {
        memop_key_row(repo, &blog_user_desc, &i, &k);
        if (slot_port(masters[0].c, memop_key_slot(k.s, k.len)) == victim->port)
            id = i;
    }
    assert_true(id > 0);
    unsigned slot = memop_key_slot(k.s, k.len);
    blog_user u = {0};
    assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK); /* cached on the victim */
    blog_user_clear(&u);
    assert_int_equal(kill(node_pid(victim->port), SIGKILL), 0);
    double t0 = test_now_ms();
    int port = victim->port;
    while ((port = slot_port(masters[0].c, slot)) == victim->port &&
           test_now_ms() - t0 < 20000)
        usleep(50 * 1000);
    assert_int_not_equal(port, victim->port); /* promoted */
    /* the stale row, on the new master */
    redisContext *promoted = connect_to("127.0.0.1", port);
    redisReply *r = on(promoted, "GET %s", k.s);
    assert_int_equal(r->type, REDIS_REPLY_STRING); /* replicated before the kill */
    char *doctored = malloc(r->len + 16);
    assert_non_null(doctored);
    char *name = strstr(r->str, "\"name\":\"");
    assert_non_null(name);
    int at = (int)(name - r->str) + 8;
    snprintf(doctored, r->len + 16, "%.*sSTALE%s", at, r->str, r->str + at);
    freeReplyObject(r);
    freeReplyObject(on(promoted, "SET %s %s", k.s, doctored));
    free(doctored);
    /* the new map, read before any call went to the old master */
    char err[512];
    memop_cluster_refresh(repo, err, sizeof err);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(blog_user_get(repo, id, &u), MEMO_OK);
        assert_null(strstr(u.name, "STALE"));
        blog_user_clear(&u);
        usleep(20 * 1000);
    }
    assert_true(cluster_stat(repo, "failovers") >= 1);
    r = on(promoted, "GET %s", k.s); /* emptied, then filled from the database */
    assert_true(r->type == REDIS_REPLY_NIL || !strstr(r->str, "STALE"));
    freeReplyObject(r);
    redisFree(promoted);
    memo_close(repo);
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
 * cluster node: the breaker stays open while it serves no slot (no cluster
 * yet: an outage), and closes once it serves them all; then the cache is
 * used there. */
static void cluster_that_comes_later_is_used(void **state)
{
    (void)state;
    seed(false); /* (this one does not use the cluster) */
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
    usleep(500 * 1000); /* the prober tried it a few times */
    test_assert_redis_state(repo, "breaker", "open");
    redisContext *lone = connect_to("127.0.0.1", port);
    redisReply *r = on(lone, "CLUSTER ADDSLOTSRANGE 0 16383");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_true(test_wait_breaker(repo, "closed", 5000) >= 0);
    assert_int_equal(cluster_stat(repo, "masters"), 1);
    blog_user got = {0};
    assert_int_equal(blog_user_get(repo, 3, &got), MEMO_OK);
    blog_user_clear(&got);
    r = on(lone, "DBSIZE");
    assert_true(r->integer >= 1);
    freeReplyObject(r);
    redisFree(lone);
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
        cmocka_unit_test(every_master_is_reached),
        cmocka_unit_test(node_table_is_bounded),
        cmocka_unit_test(cluster_is_refused_with_a_reason),
        cmocka_unit_test(moved_and_ask_are_followed),
        cmocka_unit_test(resharding_under_load),
        cmocka_unit_test(a_dead_master_degrades_its_keys_only),
        cmocka_unit_test(a_promoted_replica_is_emptied_first),
        cmocka_unit_test(cluster_that_comes_later_is_used),
    };
    return cmocka_run_group_tests_name("redis cluster", tests, start, stop);
}
