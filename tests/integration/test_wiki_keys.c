/* The wiki schema's keys on the real private servers: a text primary key
 * and text list groups whose values may be key syntax, glob patterns or
 * 10 KB long. Keys are computed here the way wiki.h documents them,
 * wiki:{page/<escaped slug>}:<tag>, the tags read from the descriptors
 * (tests/support/schema_keys.c). Each read is checked to fill exactly its
 * own key, with the schema's TTL and jitter: rows, lists, negative entries,
 * batches (get_many) and unique lookups (get_by_alias). */
#include "wiki_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The key of a page is the documented template, and the tag comes from the
 * descriptor; the runtime's escaping matches the documented one. */
static void key_shape(void **state)
{
    (void)state;
    char want[256];
    snprintf(want, sizeof want, "wiki:{page/a%%3Ab%%20c}:%s", wiki_page_desc.row.key.tag);
    assert_string_equal(test_page_key("a:b c"), want);
    snprintf(want, sizeof want, "wiki:{page:in_space=x%%2Ay}:%s",
             wiki_page_desc.lists[0].key.tag);
    assert_string_equal(test_space_key("x*y"), want);
    snprintf(want, sizeof want, "wiki:{revision:42}:%s", wiki_revision_desc.row.key.tag);
    assert_string_equal(test_revision_key(42), want);
    snprintf(want, sizeof want, "wiki:{revision:history=p}:%s",
             wiki_revision_desc.lists[0].key.tag);
    assert_string_equal(test_history_key("p"), want);

    put_page("a:b c", "x*y", 1);
    cache_page("a:b c");
    cache_space("x*y");
    assert_int_equal(test_redis_count("wiki:*"), 2);
}

/* Slugs that would be key syntax, glob patterns or too long: each has its
 * own exact key, reads only that key, and writes touch only theirs. */
static void hostile_keys(void **state)
{
    (void)state;
    char *long_plain = malloc(130), *long_plain2 = malloc(131);
    char *colons = malloc(44), *colons2 = malloc(45);
    char *huge = malloc(10 * 1024 + 1), *huge_mixed = malloc(10 * 1024 + 1);
    assert_true(long_plain && long_plain2 && colons && colons2 && huge && huge_mixed);
    memset(long_plain, 'a', 128); /* escaped length 128: kept */
    long_plain[128] = '\0';
    memset(long_plain2, 'a', 129); /* 129: hashed */
    long_plain2[129] = '\0';
    memset(colons, ':', 42); /* 126 escaped */
    colons[42] = '\0';
    memset(colons2, ':', 43); /* 129 escaped: hashed */
    colons2[43] = '\0';
    memset(huge, 'k', 10 * 1024);
    huge[10 * 1024] = '\0';
    for (size_t i = 0; i < 10 * 1024; i++)
        huge_mixed[i] = "*:{}?[ %~\n"[i % 10];
    huge_mixed[10 * 1024] = '\0';
    /* a slug spelled like the hashed part of another: escaped, so distinct */
    char *forged = test_key_part(huge);
    assert_int_equal(forged[0], '~');
    assert_int_equal(strlen(forged), 33);

    const char *slugs[] = {
        "a:b",      "a%3Ab",     "*",           "?",     "[ab]", "{x}",
        "}",        "a b",       "line\nbreak", "100%",  "~abc", "q\"uo\\te,{}",
        "tab\t",    "Zürich",    ":",           "",      "a*",   "NULL",
        long_plain, long_plain2, colons,        colons2, huge,   huge_mixed,
        forged,
    };
    const size_t n = sizeof slugs / sizeof slugs[0];
    assert_true(strlen(test_page_key(long_plain)) > 128);      /* kept as is */
    assert_non_null(strstr(test_page_key(long_plain2), "/~")); /* hashed */
    assert_non_null(strstr(test_page_key(colons2), "/~"));

    for (size_t i = 0; i < n; i++) {
        wiki_page p = new_page(slugs[i], "hostile", (int32_t)i);
        char title[32];
        snprintf(title, sizeof title, "title %zu", i);
        set_text(&p.title, title);
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
        wiki_page_clear(&p);
    }
    char count[16];
    snprintf(count, sizeof count, "%zu", n);
    test_assert_sql("SELECT count(*) FROM pages", count);

    /* misses fill exactly the computed keys, and nothing else */
    counts c = counts_of(PAGE);
    for (size_t i = 0; i < n; i++) {
        wiki_page g = {0};
        assert_int_equal(wiki_page_get(repo, slugs[i], &g), MEMO_OK);
        assert_string_equal(g.slug, slugs[i]);
        char title[32];
        snprintf(title, sizeof title, "title %zu", i);
        assert_string_equal(g.title, title);
        test_assert_cached_member(test_page_key(slugs[i]), "slug", slugs[i]);
        wiki_page_clear(&g);
    }
    assert_int_equal(DELTA(c, PAGE, misses), (long long)n);
    assert_int_equal(DELTA(c, PAGE, fills), (long long)n);
    assert_int_equal(test_redis_count("wiki:*"), (long)n);
    assert_int_equal(test_redis_count("wiki:{page/*"), (long)n);

    /* each slug reads its own key: doctor every cached title, read them back */
    for (size_t i = 0; i < n; i++) {
        char title[32];
        snprintf(title, sizeof title, "cached %zu", i);
        test_doctor(test_page_key(slugs[i]), "title", title);
    }
    c = counts_of(PAGE);
    for (size_t i = 0; i < n; i++) {
        wiki_page g = {0};
        assert_int_equal(wiki_page_get(repo, slugs[i], &g), MEMO_OK);
        char title[32];
        snprintf(title, sizeof title, "cached %zu", i);
        assert_string_equal(g.title, title);
        wiki_page_clear(&g);
    }
    assert_int_equal(DELTA(c, PAGE, hits), (long long)n);
    assert_int_equal(DELTA(c, PAGE, db_queries), 0);

    /* get_many: cold, with every slug quoted into one array literal */
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    const char *many[sizeof slugs / sizeof slugs[0] + 1];
    for (size_t i = 0; i < n; i++)
        many[i] = slugs[n - 1 - i];
    many[n] = "b";
    for (int pass = 0; pass < 2; pass++) {
        c = counts_of(PAGE);
        wiki_page_list l = {0};
        assert_int_equal(wiki_page_get_many(repo, many, n + 1, &l), MEMO_OK);
        assert_int_equal(l.len, n);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(l.items[i].slug, many[i]);
            char title[32];
            snprintf(title, sizeof title, "title %zu", n - 1 - i);
            assert_string_equal(l.items[i].title, title);
        }
        wiki_page_list_clear(&l);
        assert_int_equal(DELTA(c, PAGE, db_queries), pass == 0 ? 1 : 0);
        assert_int_equal(DELTA(c, PAGE, hits), pass == 0 ? 0 : (long long)n);
        assert_int_equal(DELTA(c, PAGE, negative_hits), pass == 0 ? 0 : 1);
    }
    test_assert_redis_value(test_page_key("b"), "null");

    /* the list holds every hostile slug, in position order: miss, then hit */
    const char *ordered[sizeof slugs / sizeof slugs[0] + 1];
    memcpy(ordered, slugs, sizeof slugs);
    ordered[n] = NULL;
    assert_in_space("hostile", ordered);
    c = counts_of(PAGE);
    assert_in_space("hostile", ordered);
    assert_int_equal(DELTA(c, PAGE, db_queries), 0);

    /* "*" as a slug deletes its own key only */
    assert_int_equal(wiki_page_delete(repo, "*"), MEMO_OK);
    assert_false(test_redis_exists(test_page_key("*")));
    assert_false(test_redis_exists(test_space_key("hostile")));
    for (size_t i = 0; i < n; i++)
        if (strcmp(slugs[i], "*") != 0)
            assert_true(test_redis_exists(test_page_key(slugs[i])));
    assert_int_equal(test_redis_count("wiki:{page/*"), (long)n); /* n - 1 rows, "b" */
    wiki_page g = {0};
    assert_int_equal(wiki_page_get(repo, "*", &g), MEMO_NOT_FOUND);
    assert_null(g.slug);
    test_assert_redis_value(test_page_key("*"), "null");
    assert_int_equal(wiki_page_delete(repo, "*"), MEMO_NOT_FOUND);
    assert_int_equal(wiki_page_get(repo, "a*", &g), MEMO_OK);
    assert_string_equal(g.slug, "a*");
    wiki_page_clear(&g);
    /* a missing pattern is a miss of its own key, not a match of others */
    assert_int_equal(wiki_page_get(repo, "?*", &g), MEMO_NOT_FOUND);
    test_assert_redis_value(test_page_key("?*"), "null");

    /* updating "a:b" deletes its key, not the one of "a%3Ab" */
    wiki_page u = new_page("a:b", "hostile", 0);
    set_text(&u.title, "updated");
    assert_int_equal(wiki_page_update(repo, &u), MEMO_OK);
    wiki_page_clear(&u);
    assert_false(test_redis_exists(test_page_key("a:b")));
    assert_true(test_redis_exists(test_page_key("a%3Ab")));
    assert_int_equal(wiki_page_get(repo, "a:b", &g), MEMO_OK);
    assert_string_equal(g.title, "updated");
    wiki_page_clear(&g);
    assert_int_equal(wiki_page_get(repo, "a%3Ab", &g), MEMO_OK);
    assert_string_equal(g.title, "title 1");
    wiki_page_clear(&g);

    /* the 10 KB slugs survive update and delete by their hashed keys */
    u = new_page(huge, "hostile", 99);
    set_text(&u.body, "huge body");
    assert_int_equal(wiki_page_update(repo, &u), MEMO_OK);
    wiki_page_clear(&u);
    assert_false(test_redis_exists(test_page_key(huge)));
    assert_true(test_redis_exists(test_page_key(forged)));
    assert_true(test_redis_exists(test_page_key(huge_mixed)));
    assert_int_equal(wiki_page_get(repo, huge, &g), MEMO_OK);
    assert_string_equal(g.slug, huge);
    assert_string_equal(g.body, "huge body");
    wiki_page_clear(&g);
    assert_int_equal(wiki_page_delete(repo, huge_mixed), MEMO_OK);
    assert_false(test_redis_exists(test_page_key(huge_mixed)));
    assert_true(test_redis_exists(test_page_key(huge)));
    assert_int_equal(wiki_page_get(repo, huge_mixed, &g), MEMO_NOT_FOUND);

    free(forged);
    free(long_plain);
    free(long_plain2);
    free(colons);
    free(colons2);
    free(huge);
    free(huge_mixed);
}

/* Hostile list groups: spaces and page slugs in list keys and rule keys. */
static void hostile_groups(void **state)
{
    (void)state;
    put_page("p1", "*", 1);
    put_page("p2", "a:b", 1);
    put_page("p3", "a%3Ab", 1);
    put_page("x:y", "{s}", 1);
    put_page("x%3Ay", "{s}", 2);
    assert_in_space("*", (const char *const[]){"p1", NULL});
    assert_in_space("a:b", (const char *const[]){"p2", NULL});
    assert_in_space("a%3Ab", (const char *const[]){"p3", NULL});
    assert_in_space("?", (const char *const[]){NULL});
    assert_in_space("{s}", (const char *const[]){"x:y", "x%3Ay", NULL});
    test_assert_redis_value(test_space_key("*"), "[\"p1\"]");
    test_assert_redis_value(test_space_key("?"), "[]");

    /* a page into "a:b" deletes that list only */
    put_page("p4", "a:b", 0);
    assert_false(test_redis_exists(test_space_key("a:b")));
    assert_true(test_redis_exists(test_space_key("a%3Ab")));
    assert_true(test_redis_exists(test_space_key("*")));
    assert_true(test_redis_exists(test_space_key("?")));
    assert_in_space("a:b", (const char *const[]){"p4", "p2", NULL});

    /* a revision of "x:y" deletes the row of "x:y", not of "x%3Ay" */
    cache_page("x:y");
    cache_page("x%3Ay");
    cache_history("x:y");
    cache_history("x%3Ay");
    cache_space("{s}");
    wiki_revision r = new_revision("x:y", "{s}", 1);
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_OK);
    assert_false(test_redis_exists(test_page_key("x:y")));
    assert_true(test_redis_exists(test_page_key("x%3Ay")));
    assert_false(test_redis_exists(test_history_key("x:y")));
    assert_true(test_redis_exists(test_history_key("x%3Ay")));
    assert_false(test_redis_exists(test_space_key("{s}")));
    assert_true(test_redis_exists(test_space_key("a%3Ab")));
    assert_history("x:y", (const int64_t[]){r.id}, 1);
    assert_history("x%3Ay", NULL, 0);
    wiki_revision_clear(&r);
}

/* get_many: order asked, duplicates, missing ids, n = 0, NULL elements. */
static void page_get_many(void **state)
{
    (void)state;
    put_page("p1", "s", 1);
    put_page("p2", "s", 2);
    const char *keys[] = {"p2", "p1", "gone", "p2"};
    for (int pass = 0; pass < 2; pass++) {
        counts c = counts_of(PAGE);
        wiki_page_list l = {0};
        assert_int_equal(wiki_page_get_many(repo, keys, 4, &l), MEMO_OK);
        assert_slugs(&l, (const char *const[]){"p2", "p1", "p2", NULL});
        assert_string_equal(l.items[2].title, "a title");
        wiki_page_list_clear(&l);
        assert_null(l.items);
        assert_int_equal(l.len, 0);
        if (pass == 0) {
            assert_int_equal(DELTA(c, PAGE, db_queries), 1);
            assert_int_equal(DELTA(c, PAGE, hits), 0);
            test_assert_cached_member(test_page_key("p1"), "slug", "p1");
            test_assert_cached_member(test_page_key("p2"), "slug", "p2");
            test_assert_redis_value(test_page_key("gone"), "null");
            test_assert_pttl(test_page_key("gone"), 20000, 21000);
            test_assert_pttl(test_page_key("p1"), 900000, 945000);
        } else {
            assert_int_equal(DELTA(c, PAGE, db_queries), 0);
            assert_int_equal(DELTA(c, PAGE, hits), 3);
            assert_int_equal(DELTA(c, PAGE, negative_hits), 1);
            assert_int_equal(DELTA(c, PAGE, misses), 0);
        }
    }
    /* the cache path serves exactly the cached value */
    test_doctor(test_page_key("p1"), "body", "from Redis");
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_get_many(repo, (const char *const[]){"p1"}, 1, &l),
                     MEMO_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].body, "from Redis");
    wiki_page_list_clear(&l);

    /* nothing asked, nothing found */
    l.items = (wiki_page *)&l; /* overwritten */
    l.len = 7;
    assert_int_equal(wiki_page_get_many(repo, keys, 0, &l), MEMO_OK);
    assert_int_equal(l.len, 0);
    assert_null(l.items);
    assert_int_equal(
        wiki_page_get_many(repo, (const char *const[]){"gone", "nope"}, 2, &l), MEMO_OK);
    assert_int_equal(l.len, 0);
    assert_int_equal(wiki_page_get_many(repo, (const char *const[]){"p1", NULL}, 2, &l),
                     MEMO_ERR_ARG);
    assert_int_equal(l.len, 0);
}

/* A missing slug is remembered as "null" for the negative TTL: the second
 * read costs no query; an insert deletes the entry. */
static void negative_caching(void **state)
{
    (void)state;
    wiki_page p = {0};
    p.slug = (char *)&p; /* overwritten: a miss zeroes *out */
    counts c = counts_of(PAGE);
    assert_int_equal(wiki_page_get(repo, "ghost", &p), MEMO_NOT_FOUND);
    assert_null(p.slug);
    assert_int_equal(DELTA(c, PAGE, misses), 1);
    assert_int_equal(DELTA(c, PAGE, db_queries), 1);
    assert_int_equal(DELTA(c, PAGE, negative_hits), 0);
    test_assert_redis_value(test_page_key("ghost"), "null");
    test_assert_pttl(test_page_key("ghost"), 20000, 21000);

    c = counts_of(PAGE);
    assert_int_equal(wiki_page_get(repo, "ghost", &p), MEMO_NOT_FOUND);
    assert_int_equal(DELTA(c, PAGE, db_queries), 0);
    assert_int_equal(DELTA(c, PAGE, negative_hits), 1);
    assert_int_equal(DELTA(c, PAGE, hits), 0);
    assert_int_equal(DELTA(c, PAGE, misses), 0);

    /* the entry is what answers: a row behind the library's back stays
     * unseen until the entry goes */
    test_sql("INSERT INTO pages VALUES ('ghost', 'sneaky', 'b', '{}', NULL, NULL, NULL, "
             "NULL, NULL, 's', 1)");
    assert_int_equal(wiki_page_get(repo, "ghost", &p), MEMO_NOT_FOUND);
    test_sql("DELETE FROM pages WHERE slug = 'ghost'");

    c = counts_of(PAGE);
    put_page("ghost", "s", 1);
    assert_false(test_redis_exists(test_page_key("ghost")));
    assert_int_equal(wiki_page_get(repo, "ghost", &p), MEMO_OK);
    assert_string_equal(p.title, "a title");
    assert_int_equal(DELTA(c, PAGE, db_queries), 2); /* the insert, the read */
    test_assert_cached_member(test_page_key("ghost"), "slug", "ghost");
    wiki_page_clear(&p);

    /* a delete leaves a miss that is remembered again */
    assert_int_equal(wiki_page_delete(repo, "ghost"), MEMO_OK);
    assert_false(test_redis_exists(test_page_key("ghost")));
    assert_int_equal(wiki_page_get(repo, "ghost", &p), MEMO_NOT_FOUND);
    test_assert_redis_value(test_page_key("ghost"), "null");

    /* revisions: no `negative` in the schema, the repository's 5 s */
    wiki_revision r = {0};
    c = counts_of(REV);
    assert_int_equal(wiki_revision_get(repo, 5, &r), MEMO_NOT_FOUND);
    assert_int_equal(wiki_revision_get(repo, 5, &r), MEMO_NOT_FOUND);
    assert_int_equal(DELTA(c, REV, db_queries), 1);
    assert_int_equal(DELTA(c, REV, negative_hits), 1);
    test_assert_redis_value(test_revision_key(5), "null");
    test_assert_pttl(test_revision_key(5), 5000, 5000);
    put_page("p", "s", 1);
    wiki_revision w = new_revision("p", "s", 1);
    w.id = 5;
    assert_int_equal(wiki_revision_insert(repo, &w), MEMO_OK);
    assert_false(test_redis_exists(test_revision_key(5)));
    assert_int_equal(wiki_revision_get(repo, 5, &r), MEMO_OK);
    assert_revision(&w, &r);
    wiki_revision_clear(&r);
    wiki_revision_clear(&w);
}

/* TTLs as the schema says: rows 15m + up to 5% jitter (and jittered
 * apart), negative entries 20s + 5%, lists 2m exactly. */
static void ttls(void **state)
{
    (void)state;
    const char *slugs[20];
    char names[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        slugs[i] = names[i];
        put_page(names[i], "s", i);
    }
    for (int i = 0; i < 20; i++)
        cache_page(names[i]);
    long long lo = 0, hi = 0;
    for (int i = 0; i < 20; i++) {
        long long t = test_redis_pttl(test_page_key(names[i]));
        test_assert_pttl(test_page_key(names[i]), 900000, 945000);
        lo = i == 0 || t < lo ? t : lo;
        hi = i == 0 || t > hi ? t : hi;
    }
    /* 20 draws from 45 s of jitter do not land within one second */
    assert_true(hi - lo > 1000);

    /* get_many fills with the same TTLs */
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_get_many(repo, slugs, 20, &l), MEMO_OK);
    assert_int_equal(l.len, 20);
    wiki_page_list_clear(&l);
    for (int i = 0; i < 20; i++)
        test_assert_pttl(test_page_key(names[i]), 900000, 945000);

    wiki_page p = {0};
    for (int i = 0; i < 10; i++) {
        char slug[16];
        snprintf(slug, sizeof slug, "missing%d", i);
        assert_int_equal(wiki_page_get(repo, slug, &p), MEMO_NOT_FOUND);
        test_assert_pttl(test_page_key(slug), 20000, 21000);
    }
    cache_space("s");
    test_assert_pttl(test_space_key("s"), 120000, 120000);
    cache_space("empty");
    test_assert_pttl(test_space_key("empty"), 120000, 120000);
}

/* A unique lookup of a text-keyed entity: the script builds the row's key
 * from the page's slug in Lua, with keys.c's escaping. A hit is one round
 * trip (one EVALSHA) whatever the slug holds; a slug whose part is hashed
 * takes a second trip, and every answer is the right row. */
static void alias_lookups(void **state)
{
    (void)state;
    char *long_slug = malloc(200);
    assert_non_null(long_slug);
    memset(long_slug, 'q', 199); /* escaped past 128 bytes: hashed */
    long_slug[199] = '\0';
    const char *const slugs[] = {"plain",  "a:b",  "sp ace/x?y", "{tag}*",
                                 "Zürich", "%41~", long_slug};
    for (size_t i = 0; i < sizeof slugs / sizeof slugs[0]; i++) {
        wiki_page p = new_page(slugs[i], "s", (int32_t)i);
        char alias[32];
        snprintf(alias, sizeof alias, "alias-%zu", i);
        set_text(&p.alias, alias);
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
        wiki_page_clear(&p);
    }
    for (size_t i = 0; i < sizeof slugs / sizeof slugs[0]; i++) {
        char alias[32];
        snprintf(alias, sizeof alias, "alias-%zu", i);
        wiki_page g = {0};
        /* the first lookup fills the lookup only; a get fills the row */
        assert_int_equal(wiki_page_get_by_alias(repo, alias, &g), MEMO_OK);
        assert_string_equal(g.slug, slugs[i]);
        wiki_page_clear(&g);
        assert_int_equal(wiki_page_get(repo, slugs[i], &g), MEMO_OK);
        wiki_page_clear(&g);
        long long evals = test_redis_calls("evalsha"), sets = test_redis_calls("set"),
                  q = test_stat(repo, "wiki.page", "db_queries");
        long long hits = test_stat(repo, "wiki.page", "hits");
        assert_int_equal(wiki_page_get_by_alias(repo, alias, &g), MEMO_OK);
        assert_string_equal(g.slug, slugs[i]);
        assert_string_equal(g.alias, alias);
        wiki_page_clear(&g);
        bool hashed = slugs[i] == long_slug;
        /* one script reads both; a hashed row key it cannot build, and the
         * row is then read by get's native command; so on a cluster, where
         * the row's slot is out of the script's reach */
        assert_int_equal(test_redis_calls("evalsha") - evals, 1);
        assert_int_equal(test_redis_calls("set") - sets,
                         hashed || test_on_cluster() ? 1 : 0);
        assert_int_equal(test_stat(repo, "wiki.page", "db_queries"), q);
        assert_int_equal(test_stat(repo, "wiki.page", "hits") - hits, 2);
    }
    /* a moved alias: the old one answers nothing, the new one the page */
    wiki_page g = {0};
    assert_int_equal(wiki_page_get(repo, "a:b", &g), MEMO_OK);
    set_text(&g.alias, "moved");
    assert_int_equal(wiki_page_update(repo, &g), MEMO_OK);
    wiki_page_clear(&g);
    assert_int_equal(wiki_page_get_by_alias(repo, "alias-1", &g), MEMO_NOT_FOUND);
    assert_int_equal(wiki_page_get_by_alias(repo, "moved", &g), MEMO_OK);
    assert_string_equal(g.slug, "a:b");
    wiki_page_clear(&g);
    /* a deleted page: its lookup goes with it */
    assert_int_equal(wiki_page_delete(repo, "Zürich"), MEMO_OK);
    assert_int_equal(wiki_page_get_by_alias(repo, "alias-4", &g), MEMO_NOT_FOUND);
    free(long_slug);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(key_shape, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(hostile_keys, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(hostile_groups, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(page_get_many, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(negative_caching, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(ttls, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(alias_lookups, wiki_fixture_setup, NULL),
    };
    return cmocka_run_group_tests_name("wiki keys", tests, wiki_fixture_group_setup,
                                       wiki_fixture_group_teardown);
}
