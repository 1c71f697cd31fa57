/* The blog demo: a repository generated from schemas/blog.memo, seeded with a
 * few thousand rows, a read-mostly workload with some writes, then a table of
 * what the cache did and a check that every cached row equals PostgreSQL.
 *
 *   REDIS_URL=redis://... DATABASE_URL=postgresql://... blog-demo [OPERATIONS]
 *
 * `make demo` sets up everything (packages, private servers, tables) and
 * runs it. Exit status 1 if any cached row is stale. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blog.h"

enum { ORGS = 20, USERS = 2000, POSTS = 4000 };

static memo_repo *repo;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fixed-seed generator, so every run does the same work. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Zipf(s = 1.1) over 1..n: a few rows are hot, most are cold, as in real
 * traffic. */
typedef struct zipf {
    double *cdf;
    size_t n;
} zipf;

static void zipf_init(zipf *z, size_t n)
{
    z->n = n;
    z->cdf = malloc(n * sizeof *z->cdf);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += 1.0 / pow((double)(i + 1), 1.1);
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += 1.0 / pow((double)(i + 1), 1.1) / sum;
        z->cdf[i] = acc;
    }
}

static int64_t zipf_draw(const zipf *z)
{
    double u = (double)(next() >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo + 1;
}

static void die(const char *what, memo_status st)
{
    fprintf(stderr, "blog-demo: %s: %s: %s\n", what, memo_status_str(st),
            memo_last_error(repo));
    exit(2);
}

#define CHECK(what, call)                                                                \
    do {                                                                                 \
        memo_status st_ = (call);                                                        \
        if (st_ < 0)                                                                     \
            die(what, st_);                                                              \
    } while (0)

/* Rows own their strings (char *), so rows built for an insert point at
 * writable buffers, not at string literals. */
static char plan_free[] = "free", plan_pro[] = "pro", bio[] = "Writes about caches.",
            body[] = "Cache-aside, done once, for everybody.", short_body[] = "New.";

static void seed(void)
{
    char a[64], b[64];
    for (int i = 1; i <= ORGS; i++) {
        snprintf(a, sizeof a, "org-%d", i);
        snprintf(b, sizeof b, "Organisation %d", i);
        blog_org o = {.slug = a,
                      .name = b,
                      .plan = i % 3 ? plan_free : plan_pro,
                      .created_at = 1600000000000000 + i};
        CHECK("insert org", blog_org_insert(repo, &o));
    }
    for (int i = 1; i <= USERS; i++) {
        snprintf(a, sizeof a, "user%d@example.com", i);
        snprintf(b, sizeof b, "User %04d", (i * 7919) % USERS);
        blog_user u = {.email = a,
                       .name = b,
                       .org_id = 1 + i % ORGS,
                       .karma = i % 100,
                       .active = i % 10 != 0,
                       .created_at = 1650000000000000 + i,
                       .bio = i % 4 ? NULL : bio};
        CHECK("insert user", blog_user_insert(repo, &u));
    }
    for (int i = 1; i <= POSTS; i++) {
        snprintf(a, sizeof a, "Post number %d", i);
        blog_post p = {.author_id = 1 + (i * 31) % USERS,
                       .title = a,
                       .body = body,
                       .score = i * 0.25,
                       .published_at = 1690000000000000 + i,
                       .published_at_is_null = i % 5 == 0};
        CHECK("insert post", blog_post_insert(repo, &p));
    }
}

typedef struct counts {
    long reads, writes;
} counts;

static void workload(long ops, counts *c)
{
    zipf users, posts;
    zipf_init(&users, USERS);
    zipf_init(&posts, POSTS);
    char email[64], title[64];
    for (long i = 0; i < ops; i++) {
        unsigned r = (unsigned)(next() % 100);
        if (r < 50) {
            blog_user u = {0};
            CHECK("get user", blog_user_get(repo, zipf_draw(&users), &u));
            blog_user_clear(&u);
        } else if (r < 60) {
            snprintf(email, sizeof email, "user%" PRId64 "@example.com",
                     zipf_draw(&users));
            blog_user u = {0};
            CHECK("get user by email", blog_user_get_by_email(repo, email, &u));
            blog_user_clear(&u);
        } else if (r < 75) {
            blog_post p = {0};
            CHECK("get post", blog_post_get(repo, zipf_draw(&posts), &p));
            blog_post_clear(&p);
        } else if (r < 80) {
            blog_user_list l = {0};
            CHECK("users by org",
                  blog_user_by_org(repo, 1 + (int64_t)(next() % ORGS), &l));
            blog_user_list_clear(&l);
        } else if (r < 88) {
            blog_post_list l = {0};
            CHECK("posts by author", blog_post_by_author(repo, zipf_draw(&users), &l));
            blog_post_list_clear(&l);
        } else if (r < 95) {
            int64_t ids[20];
            for (int k = 0; k < 20; k++)
                ids[k] = zipf_draw(&users);
            blog_user_list l = {0};
            CHECK("get many users", blog_user_get_many(repo, ids, 20, &l));
            blog_user_list_clear(&l);
        } else {
            /* writes: each invalidates exactly what it changed */
            c->writes++;
            c->reads--;
            blog_user u = {0};
            int64_t id = zipf_draw(&users);
            if (r < 97) {
                CHECK("get user", blog_user_get(repo, id, &u));
                u.karma++;
                CHECK("update user", blog_user_update(repo, &u));
                blog_user_clear(&u);
            } else if (r < 98) {
                CHECK("get user", blog_user_get(repo, id, &u));
                free(u.name);
                u.name = strdup(next() % 2 ? "Renamed Reader" : "Another Name");
                CHECK("update user", blog_user_update(repo, &u));
                blog_user_clear(&u);
            } else if (r < 99) {
                snprintf(title, sizeof title, "Fresh post %ld", i);
                blog_post p = {.author_id = id,
                               .title = title,
                               .body = short_body,
                               .published_at_is_null = true};
                CHECK("insert post", blog_post_insert(repo, &p));
            } else {
                blog_post p = {0};
                memo_status st = blog_post_get(repo, zipf_draw(&posts), &p);
                if (st == MEMO_OK) {
                    p.score += 1;
                    CHECK("update post", blog_post_update(repo, &p));
                }
                blog_post_clear(&p);
            }
        }
        c->reads++;
    }
    free(users.cdf);
    free(posts.cdf);
}

/* The table: per entity, from memo_stats_entity. */
static void report(double secs, const counts *c)
{
    const memo_entity_desc *const entities[] = {&blog_org_desc, &blog_user_desc,
                                                &blog_post_desc, &blog_comment_desc};
    printf("\n%-14s %8s %8s %7s %8s %9s %9s %8s\n", "entity", "calls", "keys", "hit %",
           "queries", "hit p50", "miss p50", "fills");
    unsigned long long keys = 0, hits = 0, queries = 0, calls = 0;
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        memo_entity_stats s = MEMO_ENTITY_STATS_INIT;
        CHECK("stats", memo_stats_entity(repo, entities[i], &s));
        unsigned long long h = s.hits + s.negative_hits, k = h + s.misses;
        if (s.calls == 0 && k == 0)
            continue; /* not used by the workload */
        char name[64];
        snprintf(name, sizeof name, "%s.%s", entities[i]->schema, entities[i]->name);
        printf("%-14s %8llu %8llu %6.1f%% %8llu %7lluus %7lluus %8llu\n", name,
               (unsigned long long)s.calls, k, k ? 100.0 * (double)h / (double)k : 0.0,
               (unsigned long long)s.db_queries, (unsigned long long)s.hit_p50_us,
               (unsigned long long)s.miss_p50_us, (unsigned long long)s.fills);
        keys += k;
        hits += h;
        queries += s.db_queries;
        calls += s.calls;
    }
    printf("%-14s %8llu %8llu %6.1f%% %8llu\n", "all", calls, keys,
           keys ? 100.0 * (double)hits / (double)keys : 0.0, queries);
    printf("\n%ld reads and %ld writes in %.2f s (%.0f ops/s); PostgreSQL saw %llu "
           "queries,\n"
           "%.2f per read instead of at least 1 without the cache.\n",
           c->reads, c->writes, secs, (double)(c->reads + c->writes) / secs, queries,
           (double)queries / (double)c->reads);
}

/* Every row the cache holds must equal PostgreSQL's. */
static long verify(void)
{
    long cached = 0, stale = 0, negative = 0;
    memo_check_result r;
    for (int64_t id = 1; id <= USERS; id++) {
        CHECK("check user", memo_check(repo, &blog_user_desc, &id, NULL, NULL, &r));
        cached += r.cached;
        negative += r.cached && !r.cached_row;
        if (!r.fresh) {
            stale++;
            fprintf(stderr, "stale: user %" PRId64 "\n", id);
        }
    }
    for (int64_t id = 1; id <= POSTS + 1000; id++) {
        CHECK("check post", memo_check(repo, &blog_post_desc, &id, NULL, NULL, &r));
        cached += r.cached;
        negative += r.cached && !r.cached_row;
        if (!r.fresh) {
            stale++;
            fprintf(stderr, "stale: post %" PRId64 "\n", id);
        }
    }
    printf("\nconsistency: %ld cached rows (%ld of them negative entries) compared with "
           "PostgreSQL: %ld stale\n",
           cached, negative, stale);
    return stale;
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 30000;
    memo_config cfg = {.redis_url = getenv("REDIS_URL"),
                       .database_url = getenv("DATABASE_URL")};
    memo_error err;
    memo_status st = memo_open(&repo, &cfg, &err);
    if (st != MEMO_OK) {
        fprintf(stderr, "blog-demo: memo_open: %s: %s\n", memo_status_str(st),
                err.message);
        return 2;
    }
    printf("memo %s blog demo\n", MEMO_VERSION);
    double t0 = now_s();
    seed();
    printf(
        "seeded %d orgs, %d users and %d posts through the generated inserts in %.2f s\n",
        ORGS, USERS, POSTS, now_s() - t0);

    memo_stats_reset(repo);
    counts c = {0};
    t0 = now_s();
    workload(ops, &c);
    double secs = now_s() - t0;
    report(secs, &c);
    long stale = verify();
    memo_close(repo);
    return stale ? 1 : 0;
}
