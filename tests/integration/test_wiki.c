/* The wiki schema on the real private servers: a text primary key, a json
 * field, nullable scalars of every kind, rules between two entities. Every
 * read is checked twice, through PostgreSQL (a miss) and through Redis (a
 * hit); every write by the exact keys it must delete and the ones it must
 * leave alone. Keys are computed the way wiki.h documents them:
 * wiki:{page/<escaped slug>}:<tag>, the tags read from the descriptors
 * (tests/support/schema_keys.c). */
#include "test.h"
#include "schema_keys.h"
#include "wiki.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static memo_repo *repo;

/* ---------------------------------------------------------------- helpers */

static void set(char **field, const char *value)
{
    free(*field);
    *field = NULL;
    if (value) {
        *field = strdup(value);
        assert_non_null(*field);
    }
}

/* A page with every nullable field NULL; strings owned (wiki_page_clear). */
static wiki_page new_page(const char *slug, const char *space, int32_t position)
{
    wiki_page p = {0};
    set(&p.slug, slug);
    set(&p.title, "a title");
    set(&p.body, "a body");
    set(&p.meta, "{}");
    set(&p.space, space);
    p.position = position;
    p.views_is_null = p.rating_is_null = p.locked_is_null = p.edited_at_is_null = true;
    return p;
}

static wiki_revision new_revision(const char *page, const char *space, int32_t number)
{
    wiki_revision r = {0};
    set(&r.page_slug, page);
    set(&r.space, space);
    r.number = number;
    set(&r.author, "ann");
    r.created_at = 1700000000000000;
    return r;
}

/* Inserts a page with default fields; fails the test unless MEMO_OK. */
static void put_page(const char *slug, const char *space, int32_t position)
{
    wiki_page p = new_page(slug, space, position);
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
    wiki_page_clear(&p);
}

/* ------------------------------------------------------------------ stats */

typedef struct counts {
    long long hits, misses, negative_hits, fills, invalidations, db_queries, errors, rejected,
        corrupt;
} counts;

static counts counts_of(const char *entity)
{
    counts c = {
        test_stat(repo, entity, "hits"),          test_stat(repo, entity, "misses"),
        test_stat(repo, entity, "negative_hits"), test_stat(repo, entity, "fills"),
        test_stat(repo, entity, "invalidations"), test_stat(repo, entity, "db_queries"),
        test_stat(repo, entity, "errors"),        test_stat(repo, entity, "rejected"),
        test_stat(repo, entity, "corrupt"),
    };
    return c;
}

#define PAGE "wiki.page"
#define REV "wiki.revision"
#define DELTA(before, entity, field) (counts_of(entity).field - (before).field)

/* -------------------------------------------------------------- comparing */

static void assert_text(const char *want, const char *got)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
}

/* Doubles compare by bits: -0.0 is not 0.0. */
static void assert_same_double(double want, double got)
{
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    assert_memory_equal(&want, &got, sizeof want);
}

/* got equals want, except that its meta is `meta` (jsonb's normal form). */
static void assert_page(const wiki_page *want, const char *meta, const wiki_page *got)
{
    assert_text(want->slug, got->slug);
    assert_text(want->title, got->title);
    assert_text(want->body, got->body);
    assert_text(meta, got->meta);
    assert_text(want->summary, got->summary);
    assert_int_equal(got->views_is_null, want->views_is_null);
    if (!want->views_is_null)
        assert_true(got->views == want->views);
    assert_int_equal(got->rating_is_null, want->rating_is_null);
    if (!want->rating_is_null)
        assert_same_double(want->rating, got->rating);
    assert_int_equal(got->locked_is_null, want->locked_is_null);
    if (!want->locked_is_null)
        assert_int_equal(got->locked, want->locked);
    assert_int_equal(got->edited_at_is_null, want->edited_at_is_null);
    if (!want->edited_at_is_null)
        assert_true(got->edited_at == want->edited_at);
    assert_text(want->space, got->space);
    assert_int_equal(got->position, want->position);
}

static void assert_revision(const wiki_revision *want, const wiki_revision *got)
{
    assert_true(got->id == want->id);
    assert_text(want->page_slug, got->page_slug);
    assert_text(want->space, got->space);
    assert_int_equal(got->number, want->number);
    assert_text(want->author, got->author);
    assert_text(want->note, got->note);
    assert_text(want->diff, got->diff);
    assert_true(got->created_at == want->created_at);
}

/* Inserts row, then reads it through PostgreSQL (a miss that fills the
 * exact key) and through Redis (a hit, no query): both equal row, with
 * `meta` for its json field, and return the same JSON text. */
static void roundtrip(wiki_page *row, const char *meta)
{
    const char *key = test_page_key(row->slug);
    memo_status st = wiki_page_insert(repo, row);
    if (st != MEMO_OK)
        fail_msg("insert %s: %s: %s", row->slug, memo_status_str(st),
                 memo_last_error(repo));
    assert_false(test_redis_exists(key));

    wiki_page miss = {0}, hit = {0};
    counts c = counts_of(PAGE);
    assert_int_equal(wiki_page_get(repo, row->slug, &miss), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, misses), 1);
    assert_int_equal(DELTA(c, PAGE, hits), 0);
    assert_int_equal(DELTA(c, PAGE, db_queries), 1);
    assert_int_equal(DELTA(c, PAGE, fills), 1);
    assert_page(row, meta, &miss);
    test_assert_cached_member(key, "slug", row->slug);

    c = counts_of(PAGE);
    assert_int_equal(wiki_page_get(repo, row->slug, &hit), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, hits), 1);
    assert_int_equal(DELTA(c, PAGE, misses), 0);
    assert_int_equal(DELTA(c, PAGE, db_queries), 0);
    assert_page(row, meta, &hit);
    assert_string_equal(hit.meta, miss.meta);

    /* PostgreSQL holds the same normal form the reads returned */
    test_assert_sql_param("SELECT meta::text FROM pages WHERE slug = $1", row->slug, meta);
    wiki_page_clear(&miss);
    wiki_page_clear(&hit);
}

/* The slugs of a list, in order, against a NULL-terminated expectation. */
static void assert_slugs(const wiki_page_list *l, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    assert_int_equal(l->len, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->items[i].slug, want[i]);
}

static void assert_in_space(const char *space, const char *const *want)
{
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, space, &l), MEMO_OK);
    assert_slugs(&l, want);
    wiki_page_list_clear(&l);
}

static void assert_history(const char *slug, const int64_t *want, size_t n)
{
    wiki_revision_list l = {0};
    assert_int_equal(wiki_revision_history(repo, slug, &l), MEMO_OK);
    assert_int_equal(l.len, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(l.items[i].id == want[i]);
        assert_string_equal(l.items[i].page_slug, slug);
    }
    wiki_revision_list_clear(&l);
}

/* Reads a page so that its row key is cached. */
static void cache_page(const char *slug)
{
    wiki_page p = {0};
    assert_int_equal(wiki_page_get(repo, slug, &p), MEMO_OK);
    wiki_page_clear(&p);
    assert_true(test_redis_exists(test_page_key(slug)));
}

static void cache_space(const char *space)
{
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, space, &l), MEMO_OK);
    wiki_page_list_clear(&l);
    assert_true(test_redis_exists(test_space_key(space)));
}

static void cache_history(const char *slug)
{
    wiki_revision_list l = {0};
    assert_int_equal(wiki_revision_history(repo, slug, &l), MEMO_OK);
    wiki_revision_list_clear(&l);
    assert_true(test_redis_exists(test_history_key(slug)));
}

static void cache_revision(int64_t id)
{
    wiki_revision r = {0};
    assert_int_equal(wiki_revision_get(repo, id, &r), MEMO_OK);
    wiki_revision_clear(&r);
    assert_true(test_redis_exists(test_revision_key(id)));
}


/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    (void)state;
    test_schema_sql("wiki");
    test_schema_sql("wiki"); /* IF NOT EXISTS everywhere: applying again is harmless */
    repo = test_open(NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    memo_close(repo);
    repo = NULL;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    test_reset((const char *[]){"revisions", "pages", NULL});
    memo_stats_reset(repo);
    return 0;
}

/* ------------------------------------------------------------------ tests */

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

/* NULL and the zero value of every nullable field are different values, on
 * both paths, and in PostgreSQL. */
static void nulls_and_zeros(void **state)
{
    (void)state;
    wiki_page n = new_page("nulls", "s", 1);
    roundtrip(&n, "{}");
    test_assert_sql_param("SELECT summary IS NULL AND views IS NULL AND rating IS NULL AND "
                "locked IS NULL AND edited_at IS NULL FROM pages WHERE slug = $1",
                "nulls", "t");
    /* the cached row says null for each, not 0 or "" */
    char *v = test_redis_get(test_page_key("nulls"));
    assert_non_null(v);
    json_t *j = json_loads(v, 0, NULL);
    free(v);
    assert_non_null(j);
    const char *members[] = {"summary", "views", "rating", "locked", "edited_at"};
    for (size_t i = 0; i < 5; i++) {
        assert_non_null(json_object_get(j, members[i]));
        assert_true(json_is_null(json_object_get(j, members[i])));
    }
    json_decref(j);

    wiki_page z = new_page("zeros", "", 0);
    set(&z.title, "");
    set(&z.body, "");
    set(&z.summary, "");
    z.views = 0;
    z.rating = 0.0;
    z.locked = false;
    z.edited_at = 0;
    z.views_is_null = z.rating_is_null = z.locked_is_null = z.edited_at_is_null = false;
    roundtrip(&z, "{}");
    test_assert_sql_param("SELECT title = '' AND body = '' AND summary = '' AND views = 0 AND "
                "rating = 0 AND NOT locked AND edited_at = 'epoch' AND space = '' "
                "FROM pages WHERE slug = $1",
                "zeros", "t");

    wiki_page t = new_page("true", "s", 2);
    t.locked = true;
    t.locked_is_null = false;
    roundtrip(&t, "{}");
    test_assert_sql_param("SELECT locked FROM pages WHERE slug = $1", "true", "t");

    wiki_page_clear(&n);
    wiki_page_clear(&z);
    wiki_page_clear(&t);
}

/* Integer extremes, doubles PostgreSQL's float8 takes (NaN and infinities
 * too), timestamps before 1970 and to the microsecond. */
static void scalar_extremes(void **state)
{
    (void)state;
    static const struct {
        const char *slug;
        int64_t views;
        int32_t position;
        double rating;
        int64_t edited_at;
        const char *sql_views, *sql_position, *sql_rating, *sql_time;
    } cases[] = {
        {"max", INT64_MAX, INT32_MIN, 0.1, 1700000000123456, "9223372036854775807",
         "-2147483648", "0.1", "2023-11-14 22:13:20.123456"},
        {"min", INT64_MIN, INT32_MAX, -0.0, -1, "-9223372036854775808", "2147483647",
         "-0", "1969-12-31 23:59:59.999999"},
        {"big", -1, 1, 1e308, -2208988799999999, "-1", "1", "1e+308",
         "1900-01-01 00:00:00.000001"},
        {"nbig", 1, -1, -1e308, -62135596800000000, "1", "-1", "-1e+308",
         "0001-01-01 00:00:00.000000"},
        {"tiny", 42, 0, 5e-324, 1, "42", "0", "5e-324", "1970-01-01 00:00:00.000001"},
        {"nan", 7, 7, NAN, 951782400000000, "7", "7", "NaN",
         "2000-02-29 00:00:00.000000"},
        {"inf", 8, 8, INFINITY, 4102444799999999, "8", "8", "Infinity",
         "2099-12-31 23:59:59.999999"},
        {"ninf", 9, 9, -INFINITY, -123456, "9", "9", "-Infinity",
         "1969-12-31 23:59:59.876544"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wiki_page p = new_page(cases[i].slug, "s", cases[i].position);
        p.views = cases[i].views;
        p.rating = cases[i].rating;
        p.edited_at = cases[i].edited_at;
        p.views_is_null = p.rating_is_null = p.edited_at_is_null = false;
        roundtrip(&p, "{}");
        /* what PostgreSQL stored, read as text: the binary encoding is right,
         * not only symmetric */
        test_assert_sql_param("SELECT views::text FROM pages WHERE slug = $1", p.slug,
                    cases[i].sql_views);
        test_assert_sql_param("SELECT position::text FROM pages WHERE slug = $1", p.slug,
                    cases[i].sql_position);
        test_assert_sql_param("SELECT rating::text FROM pages WHERE slug = $1", p.slug,
                    cases[i].sql_rating);
        test_assert_sql_param("SELECT to_char(edited_at AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD HH24:MI:SS.US') FROM pages WHERE slug = $1",
                    p.slug, cases[i].sql_time);
        wiki_page_clear(&p);
    }
    /* and the other way: a value written by SQL reads back as the same instant */
    test_sql("INSERT INTO pages VALUES ('sql', 't', 'b', '{}', NULL, NULL, NULL, NULL, "
             "'1955-11-05 06:15:00.654321+00', 's', 1)");
    for (int pass = 0; pass < 2; pass++) {
        wiki_page g = {0};
        assert_int_equal(wiki_page_get(repo, "sql", &g), MEMO_OK);
        assert_false(g.edited_at_is_null);
        assert_true(g.edited_at == -446751899345679);
        wiki_page_clear(&g);
    }
}

/* Timestamps at the ends of int64_t: PostgreSQL's -infinity and infinity
 * are INT64_MIN and INT64_MAX, both ways; instants it cannot hold (before
 * 4714 BC) are refused, never wrapped around into other instants. */
static void timestamp_edges(void **state)
{
    (void)state;
    static const struct {
        const char *slug;
        int64_t at;
        const char *sql;
    } cases[] = {
        {"ninf", INT64_MIN, "-infinity"},
        {"inf", INT64_MAX, "infinity"},
        {"first", -210866803200000000, "4714-11-24 00:00:00+00 BC"},
        {"last", INT64_MAX - 1, "294247-01-10 04:00:54.775806+00"},
    };
    test_sql("SET TimeZone = 'UTC'");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wiki_page p = new_page(cases[i].slug, "s", 1);
        p.edited_at = cases[i].at;
        p.edited_at_is_null = false;
        roundtrip(&p, "{}");
        test_assert_sql_param("SELECT edited_at::text FROM pages WHERE slug = $1", p.slug,
                    cases[i].sql);
        wiki_page_clear(&p);
    }
    /* written by SQL, read on both paths */
    test_sql(
        "INSERT INTO pages VALUES ('sql-inf', 't', 'b', '{}', NULL, NULL, NULL, NULL, "
        "'infinity', 's', 1), ('sql-ninf', 't', 'b', '{}', NULL, NULL, NULL, NULL, "
        "'-infinity', 's', 1)");
    for (int pass = 0; pass < 2; pass++) {
        wiki_page g = {0};
        assert_int_equal(wiki_page_get(repo, "sql-inf", &g), MEMO_OK);
        assert_true(g.edited_at == INT64_MAX);
        wiki_page_clear(&g);
        assert_int_equal(wiki_page_get(repo, "sql-ninf", &g), MEMO_OK);
        assert_true(g.edited_at == INT64_MIN);
        wiki_page_clear(&g);
    }
    /* before PostgreSQL's first instant: refused, nothing written */
    const int64_t refused[] = {-210866803200000001, INT64_MIN + 1,
                               INT64_MIN + 946684800000000 - 1};
    for (size_t i = 0; i < 3; i++) {
        wiki_page p = new_page("early", "s", 1);
        p.edited_at = refused[i];
        p.edited_at_is_null = false;
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_ERR_ARG);
        wiki_page_clear(&p);
    }
    test_assert_sql("SELECT count(*) FROM pages WHERE slug = 'early'", "0");
}

/* Text: UTF-8, quotes, backslashes, control characters, 200 KB. */
static void text_values(void **state)
{
    (void)state;
    wiki_page p = new_page("text", "Zürich 東京 🎉", 3);
    set(&p.title, "Zürich 東京 🎉");
    set(&p.body, "quotes \" ' ` backslashes \\ \\\\ \\n \\u0000 newline\nCR\r tab\t "
                 "bell\a esc\x1b del\x7f {\"json\": \"in text\"} null");
    set(&p.summary, "\n");
    roundtrip(&p, "{}");
    test_assert_sql_param("SELECT title FROM pages WHERE slug = $1", "text", "Zürich 東京 🎉");
    test_assert_sql_param("SELECT length(title)::text FROM pages WHERE slug = $1", "text", "11");
    test_assert_sql_param("SELECT body = $1 FROM pages WHERE slug = 'text'", p.body, "t");
    wiki_page_clear(&p);

    /* a text that looks like the negative entry is a value, not a miss */
    wiki_page nl = new_page("null", "null", 0);
    set(&nl.title, "null");
    set(&nl.summary, "null");
    roundtrip(&nl, "{}");
    wiki_page_clear(&nl);

    size_t n = 200 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = i % 64 == 63 ? '\n' : (char)('!' + i % 90);
    big[n] = '\0';
    wiki_page b = new_page("big", "s", 4);
    set(&b.body, big);
    roundtrip(&b, "{}");
    test_assert_sql_param("SELECT octet_length(body)::text FROM pages WHERE slug = $1", "big",
                "204800");
    test_assert_sql_param("SELECT md5(body) = md5($1) FROM pages WHERE slug = 'big'", big, "t");
    wiki_page_clear(&b);
    free(big);
}

/* JSON comes back as jsonb's normal form, on the miss and on the hit. */
static void json_values(void **state)
{
    (void)state;
    static const struct {
        const char *in, *norm;
    } cases[] = {
        {"{\"b\":1,\"a\":[1,2.50,\"x\"]}", "{\"a\": [1, 2.50, \"x\"], \"b\": 1}"},
        {"  { \"x\" : [ ] , \"yy\" : { } }  ", "{\"x\": [], \"yy\": {}}"},
        {"[3,1,2]", "[3, 1, 2]"},
        {"[]", "[]"},
        {"\"Z\\u00fcrich \\u6771\\u4eac \\ud83c\\udf89\"", "\"Zürich 東京 🎉\""},
        {"\"quote \\\" backslash \\\\ newline \\n tab \\t\"",
         "\"quote \\\" backslash \\\\ newline \\n tab \\t\""},
        {"\"\"", "\"\""},
        {"1e3", "1000"},
        {"-0.000", "0.000"}, /* numeric has no negative zero */
        {"true", "true"},
        {"null", "null"},
        {"{\"a\":1,\"a\":2}", "{\"a\": 2}"},
        {"{\"long key\":1,\"k\":{\"z\":[{\"y\":null}],\"a\":false}}",
         "{\"k\": {\"a\": false, \"z\": [{\"y\": null}]}, \"long key\": 1}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char slug[16];
        snprintf(slug, sizeof slug, "json%zu", i);
        wiki_page p = new_page(slug, "s", (int32_t)i);
        set(&p.meta, cases[i].in);
        roundtrip(&p, cases[i].norm);
        wiki_page_clear(&p);
    }
}

/* Invalid JSON, text PostgreSQL refuses and missing non-nullable strings are
 * MEMO_ERR_ARG, and nothing is written: no row, no key deleted. */
static void invalid_values(void **state)
{
    (void)state;
    /* a negative entry and a list are cached: a failed write leaves them */
    wiki_page none = {0};
    assert_int_equal(wiki_page_get(repo, "bad", &none), MEMO_NOT_FOUND);
    cache_space("s");
    put_page("ok", "t", 1);
    cache_page("ok");
    counts c = counts_of(PAGE);

    static const char *const bad_json[] = {
        "{bad",        "",        "[1,]", "{'a':1}", "NaN", "\"\\u0000\"",
        "{\"a\":1} x", "{\"a\"}", "01",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        wiki_page p = new_page("bad", "s", 1);
        set(&p.meta, bad_json[i]);
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_ERR_ARG);
        assert_true(memo_last_error(repo)[0] != '\0');
        /* and as an update of an existing row */
        set(&p.slug, "ok");
        assert_int_equal(wiki_page_update(repo, &p), MEMO_ERR_ARG);
        wiki_page_clear(&p);
    }
    /* text that is not UTF-8 */
    wiki_page u = new_page("bad", "s", 1);
    set(&u.title, "\xff\xfe not UTF-8");
    assert_int_equal(wiki_page_insert(repo, &u), MEMO_ERR_ARG);
    wiki_page_clear(&u);

    /* a slug that is not UTF-8 is refused by the query, and nothing cached */
    assert_int_equal(wiki_page_get(repo, "\xff", &none), MEMO_ERR_ARG);
    assert_false(test_redis_exists(test_page_key("\xff")));

    /* NULL in non-nullable text and json fields */
    static const size_t offsets[] = {offsetof(wiki_page, title),
                                     offsetof(wiki_page, body), offsetof(wiki_page, meta),
                                     offsetof(wiki_page, space)};
    static const char *const names[] = {"title", "body", "meta", "space"};
    for (size_t i = 0; i < 4; i++) {
        wiki_page p = new_page("bad", "s", 1);
        set((char **)(void *)((char *)&p + offsets[i]), NULL);
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_ERR_ARG);
        assert_non_null(strstr(memo_last_error(repo), names[i]));
        set(&p.slug, "ok");
        assert_int_equal(wiki_page_update(repo, &p), MEMO_ERR_ARG);
        assert_non_null(strstr(memo_last_error(repo), names[i]));
        wiki_page_clear(&p);
    }
    wiki_page ns = new_page("x", "s", 1);
    set(&ns.slug, NULL);
    assert_int_equal(wiki_page_insert(repo, &ns), MEMO_ERR_ARG);
    assert_int_equal(wiki_page_update(repo, &ns), MEMO_ERR_ARG);
    wiki_page_clear(&ns);

    /* nothing written, nothing invalidated */
    test_assert_sql("SELECT count(*) FROM pages", "1");
    test_assert_sql("SELECT meta::text || title FROM pages WHERE slug = 'ok'", "{}a title");
    test_assert_redis_value(test_page_key("bad"), "null");
    test_assert_redis_value(test_space_key("s"), "[]");
    test_assert_cached_member(test_page_key("ok"), "title", "a title");
    assert_int_equal(DELTA(c, PAGE, invalidations), 0);
    assert_int_equal(wiki_page_get(repo, "bad", &none), MEMO_NOT_FOUND);

    /* the same for a revision's nullable json */
    wiki_revision r = new_revision("ok", "t", 1);
    set(&r.diff, "{bad");
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_ERR_ARG);
    set(&r.diff, NULL);
    set(&r.author, NULL);
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_ERR_ARG);
    assert_non_null(strstr(memo_last_error(repo), "author"));
    wiki_revision_clear(&r);
    test_assert_sql("SELECT count(*) FROM revisions", "0");
    assert_true(test_redis_exists(test_page_key("ok")));
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
        set(&p.title, title);
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
    set(&u.title, "updated");
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
    set(&u.body, "huge body");
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

/* Lists hold slugs: a change of membership or order deletes the list keys
 * of the old and new space; a change of anything else only the row key. */
static void in_space_invalidation(void **state)
{
    (void)state;
    put_page("a1", "A", 1);
    put_page("a2", "A", 2);
    put_page("b1", "B", 1);

    counts c = counts_of(PAGE);
    assert_in_space("A", (const char *const[]){"a1", "a2", NULL});
    assert_int_equal(DELTA(c, PAGE, db_queries), 2); /* the slugs, then the rows */
    test_assert_redis_value(test_space_key("A"), "[\"a1\",\"a2\"]");
    test_assert_pttl(test_space_key("A"), 120000, 120000);
    test_assert_cached_member(test_page_key("a1"), "slug", "a1");
    assert_in_space("B", (const char *const[]){"b1", NULL});
    c = counts_of(PAGE);
    assert_in_space("A", (const char *const[]){"a1", "a2", NULL});
    assert_int_equal(DELTA(c, PAGE, db_queries), 0);
    assert_int_equal(DELTA(c, PAGE, misses), 0);
    /* the list reads rows by their keys: a doctored row shows */
    test_doctor(test_page_key("a2"), "title", "doctored");
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, "A", &l), MEMO_OK);
    assert_string_equal(l.items[1].title, "doctored");
    wiki_page_list_clear(&l);

    /* only the body: the row key goes, the lists stay */
    wiki_page p = new_page("a1", "A", 1);
    set(&p.body, "new body");
    c = counts_of(PAGE);
    assert_int_equal(wiki_page_update(repo, &p), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, invalidations), 1);
    assert_false(test_redis_exists(test_page_key("a1")));
    assert_true(test_redis_exists(test_page_key("a2")));
    assert_true(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_space_key("B")));
    c = counts_of(PAGE);
    assert_int_equal(wiki_page_in_space(repo, "A", &l), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, db_queries), 1); /* the row of a1 only */
    assert_slugs(&l, (const char *const[]){"a1", "a2", NULL});
    assert_string_equal(l.items[0].body, "new body");
    wiki_page_list_clear(&l);

    /* the position: the list of its space goes */
    p.position = 3;
    c = counts_of(PAGE);
    assert_int_equal(wiki_page_update(repo, &p), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, invalidations), 2);
    assert_false(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_space_key("B")));
    assert_in_space("A", (const char *const[]){"a2", "a1", NULL});
    assert_in_space("B", (const char *const[]){"b1", NULL});

    /* the space: the lists of the old and the new space go */
    wiki_page_clear(&p);
    p = new_page("a2", "B", 2);
    c = counts_of(PAGE);
    assert_int_equal(wiki_page_update(repo, &p), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, invalidations), 3);
    assert_false(test_redis_exists(test_space_key("A")));
    assert_false(test_redis_exists(test_space_key("B")));
    assert_false(test_redis_exists(test_page_key("a2")));
    assert_in_space("A", (const char *const[]){"a1", NULL});
    assert_in_space("B", (const char *const[]){"b1", "a2", NULL});
    wiki_page_clear(&p);

    /* an insert: the list of its space goes, the row's negative entry too */
    wiki_page none = {0};
    assert_int_equal(wiki_page_get(repo, "a3", &none), MEMO_NOT_FOUND);
    c = counts_of(PAGE);
    put_page("a3", "A", 0);
    assert_int_equal(DELTA(c, PAGE, invalidations), 2);
    assert_false(test_redis_exists(test_page_key("a3")));
    assert_false(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_space_key("B")));
    assert_in_space("A", (const char *const[]){"a3", "a1", NULL});

    /* a delete: the row and the list of its space go */
    cache_page("a1");
    c = counts_of(PAGE);
    assert_int_equal(wiki_page_delete(repo, "a1"), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, invalidations), 2);
    assert_false(test_redis_exists(test_page_key("a1")));
    assert_false(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_space_key("B")));
    assert_in_space("A", (const char *const[]){"a3", NULL});
    assert_int_equal(wiki_page_get(repo, "a1", &none), MEMO_NOT_FOUND);

    /* ties break by slug; at most 50 */
    put_page("t2", "T", 7);
    put_page("t1", "T", 7);
    assert_in_space("T", (const char *const[]){"t1", "t2", NULL});
    for (int i = 0; i < 55; i++) {
        char slug[16];
        snprintf(slug, sizeof slug, "l%02d", 54 - i);
        put_page(slug, "L", 54 - i);
    }
    assert_int_equal(wiki_page_in_space(repo, "L", &l), MEMO_OK);
    assert_int_equal(l.len, 50);
    assert_string_equal(l.items[0].slug, "l00");
    assert_string_equal(l.items[49].slug, "l49");
    wiki_page_list_clear(&l);
    assert_in_space("nobody", (const char *const[]){NULL});
    test_assert_redis_value(test_space_key("nobody"), "[]");
}

/* The revision's rules: an insert deletes the page's row; any change the
 * in_space list of the old and the new space; the history list follows its
 * page_slug and number. */
static void revision_rules(void **state)
{
    (void)state;
    put_page("p", "A", 1);
    put_page("q", "B", 1);
    wiki_revision none = {0};
    assert_int_equal(wiki_revision_get(repo, 1, &none), MEMO_NOT_FOUND);
    test_assert_redis_value(test_revision_key(1), "null");
    cache_page("p");
    cache_page("q");
    cache_space("A");
    cache_space("B");
    cache_history("p");
    cache_history("q");
    test_assert_redis_value(test_history_key("p"), "[]");

    /* insert */
    wiki_revision r1 = new_revision("p", "A", 1);
    counts cp = counts_of(PAGE), cr = counts_of(REV);
    assert_int_equal(wiki_revision_insert(repo, &r1), MEMO_OK);
    assert_true(r1.id == 1); /* assigned (identity restarted) and written back */
    assert_int_equal(DELTA(cp, PAGE, invalidations), 2);
    assert_int_equal(DELTA(cr, REV, invalidations), 2);
    assert_false(test_redis_exists(test_page_key("p")));
    assert_false(test_redis_exists(test_space_key("A")));
    assert_false(test_redis_exists(test_history_key("p")));
    assert_false(test_redis_exists(test_revision_key(1)));
    assert_true(test_redis_exists(test_page_key("q")));
    assert_true(test_redis_exists(test_space_key("B")));
    assert_true(test_redis_exists(test_history_key("q")));
    assert_history("p", (const int64_t[]){1}, 1);
    test_assert_redis_value(test_history_key("p"), "[1]");
    test_assert_pttl(test_history_key("p"), 60000, 60000);

    /* update: space A -> B; the page's row stays (the rule is on insert) */
    cache_page("p");
    cache_space("A");
    cache_revision(1);
    test_assert_pttl(test_revision_key(1), 3600000, 3600000);
    set(&r1.space, "B");
    set(&r1.note, "moved");
    cp = counts_of(PAGE);
    assert_int_equal(wiki_revision_update(repo, &r1), MEMO_OK);
    assert_int_equal(DELTA(cp, PAGE, invalidations), 2);
    assert_false(test_redis_exists(test_space_key("A")));
    assert_false(test_redis_exists(test_space_key("B")));
    assert_false(test_redis_exists(test_revision_key(1)));
    assert_true(test_redis_exists(test_page_key("p")));
    assert_true(test_redis_exists(test_history_key("p"))); /* same page, same number */
    wiki_revision got = {0};
    assert_int_equal(wiki_revision_get(repo, 1, &got), MEMO_OK);
    assert_revision(&r1, &got);
    wiki_revision_clear(&got);

    /* update: the number; the history and the one space (old = new) go */
    cache_space("A");
    cache_space("B");
    r1.number = 5;
    assert_int_equal(wiki_revision_update(repo, &r1), MEMO_OK);
    assert_false(test_redis_exists(test_history_key("p")));
    assert_false(test_redis_exists(test_space_key("B")));
    assert_true(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_page_key("p")));

    wiki_revision r2 = new_revision("p", "B", 2);
    assert_int_equal(wiki_revision_insert(repo, &r2), MEMO_OK);
    assert_true(r2.id == 2);
    assert_history("p", (const int64_t[]){1, 2}, 2); /* number 5, then 2 */
    wiki_revision r3 = new_revision("p", "B", 9);
    assert_int_equal(wiki_revision_insert(repo, &r3), MEMO_OK);
    assert_history("p", (const int64_t[]){3, 1, 2}, 3);

    /* delete */
    cache_page("p");
    cache_space("A");
    cache_space("B");
    cache_revision(1);
    cp = counts_of(PAGE);
    cr = counts_of(REV);
    assert_int_equal(wiki_revision_delete(repo, 1), MEMO_OK);
    assert_int_equal(DELTA(cp, PAGE, invalidations), 1);
    assert_int_equal(DELTA(cr, REV, invalidations), 2);
    assert_false(test_redis_exists(test_history_key("p")));
    assert_false(test_redis_exists(test_space_key("B")));
    assert_false(test_redis_exists(test_revision_key(1)));
    assert_true(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_page_key("p")));
    assert_history("p", (const int64_t[]){3, 2}, 2);
    assert_int_equal(wiki_revision_get(repo, 1, &got), MEMO_NOT_FOUND);
    assert_int_equal(wiki_revision_delete(repo, 1), MEMO_NOT_FOUND);

    /* moving a revision to another page: both histories go */
    cache_history("p");
    cache_history("q");
    set(&r2.page_slug, "q");
    assert_int_equal(wiki_revision_update(repo, &r2), MEMO_OK);
    assert_false(test_redis_exists(test_history_key("p")));
    assert_false(test_redis_exists(test_history_key("q")));
    assert_history("p", (const int64_t[]){3}, 1);
    assert_history("q", (const int64_t[]){2}, 1);

    /* a revision of a page that does not exist: the foreign key refuses it */
    wiki_revision orphan = new_revision("nowhere", "A", 1);
    assert_int_equal(wiki_revision_insert(repo, &orphan), MEMO_ERR_CONSTRAINT);
    wiki_revision_clear(&orphan);
    test_assert_sql("SELECT count(*) FROM revisions", "2");

    wiki_revision_clear(&r1);
    wiki_revision_clear(&r2);
    wiki_revision_clear(&r3);
}

/* Revisions: explicit ids at the extremes, nullable text and json (NULL is
 * not the JSON text null), timestamps, through both paths and get_many. */
static void revision_roundtrip(void **state)
{
    (void)state;
    put_page("p", "A", 1);
    wiki_revision rs[4];
    rs[0] = new_revision("p", "A", INT32_MAX);
    rs[0].id = INT64_MAX;
    rs[0].created_at = -1234567890123456;
    rs[1] = new_revision("p", "A", INT32_MIN);
    rs[1].id = -1;
    set(&rs[1].note, "");
    set(&rs[1].diff, "null");
    rs[2] = new_revision("p", "A", 0);
    rs[2].id = 77;
    set(&rs[2].note, "Zürich 東京 🎉 \"\\\n");
    set(&rs[2].diff, "{\"z\":[1,{\"b\":2,\"a\":1}],\"a\":\"\\u00e9\"}");
    rs[3] = new_revision("p", "A", 3); /* id assigned */
    const char *diffs[] = {NULL, "null",
                           "{\"a\": \"é\", \"z\": [1, {\"a\": 1, \"b\": 2}]}", NULL};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wiki_revision_insert(repo, &rs[i]), MEMO_OK);
        set(&rs[i].diff, diffs[i]); /* jsonb's normal form from here on */
    }
    assert_true(rs[3].id == 1);
    test_assert_sql("SELECT count(*) FROM revisions WHERE diff IS NULL", "2");
    test_assert_sql("SELECT diff::text FROM revisions WHERE id = -1", "null");

    for (int i = 0; i < 4; i++) {
        wiki_revision miss = {0}, hit = {0};
        counts c = counts_of(REV);
        assert_int_equal(wiki_revision_get(repo, rs[i].id, &miss), MEMO_OK);
        assert_int_equal(DELTA(c, REV, misses), 1);
        assert_int_equal(DELTA(c, REV, db_queries), 1);
        assert_revision(&rs[i], &miss);
        test_assert_cached_member(test_revision_key(rs[i].id), "author", "ann");
        c = counts_of(REV);
        assert_int_equal(wiki_revision_get(repo, rs[i].id, &hit), MEMO_OK);
        assert_int_equal(DELTA(c, REV, hits), 1);
        assert_int_equal(DELTA(c, REV, db_queries), 0);
        assert_revision(&rs[i], &hit);
        wiki_revision_clear(&miss);
        wiki_revision_clear(&hit);
    }
    test_assert_sql(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
        "FROM revisions WHERE id = 9223372036854775807",
        "1930-11-18 00:28:29.876544");

    /* history: number descending */
    assert_history("p", (const int64_t[]){INT64_MAX, 1, 77, -1}, 4);
    test_assert_redis_value(test_history_key("p"), "[9223372036854775807,1,77,-1]");

    /* get_many: order asked, missing ids left out, cold and warm */
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    const int64_t ids[] = {77, 424242, -1, INT64_MAX, 1, 77};
    for (int pass = 0; pass < 2; pass++) {
        counts c = counts_of(REV);
        wiki_revision_list l = {0};
        assert_int_equal(wiki_revision_get_many(repo, ids, 6, &l), MEMO_OK);
        assert_int_equal(l.len, 5);
        const int want[] = {2, 1, 0, 3, 2};
        for (size_t i = 0; i < 5; i++)
            assert_revision(&rs[want[i]], &l.items[i]);
        wiki_revision_list_clear(&l);
        assert_null(l.items);
        assert_int_equal(l.len, 0);
        assert_int_equal(DELTA(c, REV, db_queries), pass == 0 ? 1 : 0);
        assert_int_equal(DELTA(c, REV, hits), pass == 0 ? 0 : 5);
        assert_int_equal(DELTA(c, REV, negative_hits), pass == 0 ? 0 : 1);
    }
    test_assert_redis_value(test_revision_key(424242), "null");
    test_assert_pttl(test_revision_key(424242), 5000, 5000); /* the repository's default */
    test_assert_cached_member(test_revision_key(-1), "page_slug", "p");

    /* update and delete of a revision with an extreme id */
    set(&rs[0].note, "noted");
    set(&rs[0].diff, "[1,2]");
    assert_int_equal(wiki_revision_update(repo, &rs[0]), MEMO_OK);
    assert_false(test_redis_exists(test_revision_key(INT64_MAX)));
    assert_true(test_redis_exists(test_revision_key(-1)));
    set(&rs[0].diff, "[1, 2]");
    wiki_revision got = {0};
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(wiki_revision_get(repo, INT64_MAX, &got), MEMO_OK);
        assert_revision(&rs[0], &got);
        wiki_revision_clear(&got);
    }
    assert_int_equal(wiki_revision_delete(repo, -1), MEMO_OK);
    assert_false(test_redis_exists(test_revision_key(-1)));
    assert_int_equal(wiki_revision_get(repo, -1, &got), MEMO_NOT_FOUND);
    test_assert_redis_value(test_revision_key(-1), "null");

    for (int i = 0; i < 4; i++)
        wiki_revision_clear(&rs[i]);
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

/* Statuses of writes that cannot happen. */
static void write_statuses(void **state)
{
    (void)state;
    wiki_page p = new_page("dup", "s", 1);
    set(&p.title, "first");
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
    cache_page("dup");
    cache_space("s");
    set(&p.title, "second");
    set(&p.space, "other");
    counts c = counts_of(PAGE);
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_CONFLICT);
    assert_int_equal(DELTA(c, PAGE, errors), 0);
    assert_int_equal(DELTA(c, PAGE, rejected), 1);
    assert_int_equal(DELTA(c, PAGE, invalidations), 0);
    test_assert_sql("SELECT title || space FROM pages WHERE slug = 'dup'", "firsts");
    assert_true(test_redis_exists(test_space_key("s")));
    wiki_page g = {0};
    assert_int_equal(wiki_page_get(repo, "dup", &g), MEMO_OK);
    assert_string_equal(g.title, "first");
    wiki_page_clear(&g);

    /* update and delete of a slug that is not there */
    set(&p.slug, "absent");
    assert_int_equal(wiki_page_update(repo, &p), MEMO_NOT_FOUND);
    assert_int_equal(wiki_page_delete(repo, "absent"), MEMO_NOT_FOUND);
    test_assert_sql("SELECT count(*) FROM pages", "1");
    assert_int_equal(wiki_page_get(repo, "absent", &g), MEMO_NOT_FOUND);
    assert_true(test_redis_exists(test_space_key("s")));
    wiki_page_clear(&p);

    /* NULL keys */
    assert_int_equal(wiki_page_get(repo, NULL, &g), MEMO_ERR_ARG);
    assert_int_equal(wiki_page_delete(repo, NULL), MEMO_ERR_ARG);
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, NULL, &l), MEMO_ERR_ARG);
    wiki_revision_list rl = {0};
    assert_int_equal(wiki_revision_history(repo, NULL, &rl), MEMO_ERR_ARG);
    test_assert_sql("SELECT count(*) FROM pages", "1");

    /* revisions: an explicit id taken, ids not there */
    wiki_revision r = new_revision("dup", "s", 1);
    r.id = 10;
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_OK);
    r.number = 2;
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_CONFLICT);
    test_assert_sql("SELECT number FROM revisions WHERE id = 10", "1");
    r.id = 11;
    assert_int_equal(wiki_revision_update(repo, &r), MEMO_NOT_FOUND);
    assert_int_equal(wiki_revision_delete(repo, 11), MEMO_NOT_FOUND);
    test_assert_sql("SELECT count(*) FROM revisions", "1");
    wiki_revision_clear(&r);
}

/* _clear and _list_clear free and zero; NULL is allowed. */
static void clearing(void **state)
{
    (void)state;
    wiki_page zero = {0};
    wiki_page p = new_page("p", "s", 5);
    set(&p.summary, "s");
    p.views = 3;
    p.views_is_null = false;
    wiki_page_clear(&p);
    assert_memory_equal(&p, &zero, sizeof p);
    wiki_page_clear(NULL);
    wiki_page_list_clear(NULL);

    put_page("p", "s", 1);
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, "s", &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    wiki_page_list_clear(&l);
    assert_null(l.items);
    assert_int_equal(l.len, 0);
    wiki_page_list_clear(&l); /* twice is harmless */

    wiki_revision rzero = {0};
    wiki_revision r = new_revision("p", "s", 1);
    set(&r.note, "n");
    set(&r.diff, "{}");
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_OK);
    wiki_revision_clear(&r);
    assert_memory_equal(&r, &rzero, sizeof r);
    wiki_revision_clear(NULL);
    wiki_revision_list rl = {0};
    assert_int_equal(wiki_revision_history(repo, "p", &rl), MEMO_OK);
    assert_int_equal(rl.len, 1);
    wiki_revision_list_clear(&rl);
    assert_null(rl.items);
    assert_int_equal(rl.len, 0);
    wiki_revision_list_clear(NULL);
}

/* A value in Redis that is not a row is a counted miss, replaced. */
static void corrupt_value(void **state)
{
    (void)state;
    put_page("p", "s", 1);
    freeReplyObject(test_redis_cmd("SET %s %s", test_page_key("p"), "{\"slug\":"));
    counts c = counts_of(PAGE);
    wiki_page g = {0};
    assert_int_equal(wiki_page_get(repo, "p", &g), MEMO_OK);
    assert_string_equal(g.title, "a title");
    wiki_page_clear(&g);
    assert_int_equal(DELTA(c, PAGE, corrupt), 1);
    assert_int_equal(DELTA(c, PAGE, errors), 0);
    assert_int_equal(DELTA(c, PAGE, db_queries), 1);
    test_assert_cached_member(test_page_key("p"), "slug", "p");
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
    const char *const slugs[] = {"plain", "a:b", "sp ace/x?y", "{tag}*", "Zürich", "%41~", long_slug};
    for (size_t i = 0; i < sizeof slugs / sizeof slugs[0]; i++) {
        wiki_page p = new_page(slugs[i], "s", (int32_t)i);
        char alias[32];
        snprintf(alias, sizeof alias, "alias-%zu", i);
        set(&p.alias, alias);
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
        long long evals = test_redis_calls("evalsha"), q = test_stat(repo, "wiki.page", "db_queries");
        long long hits = test_stat(repo, "wiki.page", "hits");
        assert_int_equal(wiki_page_get_by_alias(repo, alias, &g), MEMO_OK);
        assert_string_equal(g.slug, slugs[i]);
        assert_string_equal(g.alias, alias);
        wiki_page_clear(&g);
        bool hashed = slugs[i] == long_slug;
        assert_int_equal(test_redis_calls("evalsha") - evals, hashed ? 2 : 1);
        assert_int_equal(test_stat(repo, "wiki.page", "db_queries"), q);
        assert_int_equal(test_stat(repo, "wiki.page", "hits") - hits, 2);
    }
    /* a moved alias: the old one answers nothing, the new one the page */
    wiki_page g = {0};
    assert_int_equal(wiki_page_get(repo, "a:b", &g), MEMO_OK);
    set(&g.alias, "moved");
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
        cmocka_unit_test_setup_teardown(key_shape, setup, NULL),
        cmocka_unit_test_setup_teardown(nulls_and_zeros, setup, NULL),
        cmocka_unit_test_setup_teardown(scalar_extremes, setup, NULL),
        cmocka_unit_test_setup_teardown(timestamp_edges, setup, NULL),
        cmocka_unit_test_setup_teardown(text_values, setup, NULL),
        cmocka_unit_test_setup_teardown(json_values, setup, NULL),
        cmocka_unit_test_setup_teardown(invalid_values, setup, NULL),
        cmocka_unit_test_setup_teardown(hostile_keys, setup, NULL),
        cmocka_unit_test_setup_teardown(hostile_groups, setup, NULL),
        cmocka_unit_test_setup_teardown(page_get_many, setup, NULL),
        cmocka_unit_test_setup_teardown(in_space_invalidation, setup, NULL),
        cmocka_unit_test_setup_teardown(revision_rules, setup, NULL),
        cmocka_unit_test_setup_teardown(revision_roundtrip, setup, NULL),
        cmocka_unit_test_setup_teardown(negative_caching, setup, NULL),
        cmocka_unit_test_setup_teardown(ttls, setup, NULL),
        cmocka_unit_test_setup_teardown(write_statuses, setup, NULL),
        cmocka_unit_test_setup_teardown(clearing, setup, NULL),
        cmocka_unit_test_setup_teardown(corrupt_value, setup, NULL),
        cmocka_unit_test_setup_teardown(alias_lookups, setup, NULL),
    };
    return cmocka_run_group_tests_name("wiki", tests, group_setup, group_teardown);
}
