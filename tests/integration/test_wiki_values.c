/* The wiki schema's values on the real private servers: nullable scalars
 * of every kind (NULL is not the zero value), integer, double and timestamp
 * extremes, text of any bytes and size, json in jsonb's normal form, and
 * values PostgreSQL refuses (nothing written, nothing invalidated). Every
 * value is read twice, through PostgreSQL (a miss) and through Redis (a
 * hit), and checked against what PostgreSQL stored, read back as text. A
 * cached value that is not a row is a counted miss. */
#include "wiki_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* NULL and the zero value of every nullable field are different values, on
 * both paths, and in PostgreSQL. */
static void nulls_and_zeros(void **state)
{
    (void)state;
    wiki_page n = new_page("nulls", "s", 1);
    roundtrip(&n, "{}");
    test_assert_sql_param(
        "SELECT summary IS NULL AND views IS NULL AND rating IS NULL AND "
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
    set_text(&z.title, "");
    set_text(&z.body, "");
    set_text(&z.summary, "");
    z.views = 0;
    z.rating = 0.0;
    z.locked = false;
    z.edited_at = 0;
    z.views_is_null = z.rating_is_null = z.locked_is_null = z.edited_at_is_null = false;
    roundtrip(&z, "{}");
    test_assert_sql_param(
        "SELECT title = '' AND body = '' AND summary = '' AND views = 0 AND "
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
    set_text(&p.title, "Zürich 東京 🎉");
    set_text(&p.body, "quotes \" ' ` backslashes \\ \\\\ \\n \\u0000 newline\nCR\r tab\t "
                      "bell\a esc\x1b del\x7f {\"json\": \"in text\"} null");
    set_text(&p.summary, "\n");
    roundtrip(&p, "{}");
    test_assert_sql_param("SELECT title FROM pages WHERE slug = $1", "text",
                          "Zürich 東京 🎉");
    test_assert_sql_param("SELECT length(title)::text FROM pages WHERE slug = $1", "text",
                          "11");
    test_assert_sql_param("SELECT body = $1 FROM pages WHERE slug = 'text'", p.body, "t");
    wiki_page_clear(&p);

    /* a text that looks like the negative entry is a value, not a miss */
    wiki_page nl = new_page("null", "null", 0);
    set_text(&nl.title, "null");
    set_text(&nl.summary, "null");
    roundtrip(&nl, "{}");
    wiki_page_clear(&nl);

    size_t n = 200 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = i % 64 == 63 ? '\n' : (char)('!' + i % 90);
    big[n] = '\0';
    wiki_page b = new_page("big", "s", 4);
    set_text(&b.body, big);
    roundtrip(&b, "{}");
    test_assert_sql_param("SELECT octet_length(body)::text FROM pages WHERE slug = $1",
                          "big", "204800");
    test_assert_sql_param("SELECT md5(body) = md5($1) FROM pages WHERE slug = 'big'", big,
                          "t");
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
        set_text(&p.meta, cases[i].in);
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
        set_text(&p.meta, bad_json[i]);
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_ERR_ARG);
        assert_true(memo_last_error(repo)[0] != '\0');
        /* and as an update of an existing row */
        set_text(&p.slug, "ok");
        assert_int_equal(wiki_page_update(repo, &p), MEMO_ERR_ARG);
        wiki_page_clear(&p);
    }
    /* text that is not UTF-8 */
    wiki_page u = new_page("bad", "s", 1);
    set_text(&u.title, "\xff\xfe not UTF-8");
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
        set_text((char **)(void *)((char *)&p + offsets[i]), NULL);
        assert_int_equal(wiki_page_insert(repo, &p), MEMO_ERR_ARG);
        assert_non_null(strstr(memo_last_error(repo), names[i]));
        set_text(&p.slug, "ok");
        assert_int_equal(wiki_page_update(repo, &p), MEMO_ERR_ARG);
        assert_non_null(strstr(memo_last_error(repo), names[i]));
        wiki_page_clear(&p);
    }
    wiki_page ns = new_page("x", "s", 1);
    set_text(&ns.slug, NULL);
    assert_int_equal(wiki_page_insert(repo, &ns), MEMO_ERR_ARG);
    assert_int_equal(wiki_page_update(repo, &ns), MEMO_ERR_ARG);
    wiki_page_clear(&ns);

    /* nothing written, nothing invalidated */
    test_assert_sql("SELECT count(*) FROM pages", "1");
    test_assert_sql("SELECT meta::text || title FROM pages WHERE slug = 'ok'",
                    "{}a title");
    test_assert_redis_value(test_page_key("bad"), "null");
    test_assert_redis_value(test_space_key("s"), "[]");
    test_assert_cached_member(test_page_key("ok"), "title", "a title");
    assert_int_equal(DELTA(c, PAGE, invalidations), 0);
    assert_int_equal(wiki_page_get(repo, "bad", &none), MEMO_NOT_FOUND);

    /* the same for a revision's nullable json */
    wiki_revision r = new_revision("ok", "t", 1);
    set_text(&r.diff, "{bad");
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_ERR_ARG);
    set_text(&r.diff, NULL);
    set_text(&r.author, NULL);
    assert_int_equal(wiki_revision_insert(repo, &r), MEMO_ERR_ARG);
    assert_non_null(strstr(memo_last_error(repo), "author"));
    wiki_revision_clear(&r);
    test_assert_sql("SELECT count(*) FROM revisions", "0");
    assert_true(test_redis_exists(test_page_key("ok")));
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
    set_text(&rs[1].note, "");
    set_text(&rs[1].diff, "null");
    rs[2] = new_revision("p", "A", 0);
    rs[2].id = 77;
    set_text(&rs[2].note, "Zürich 東京 🎉 \"\\\n");
    set_text(&rs[2].diff, "{\"z\":[1,{\"b\":2,\"a\":1}],\"a\":\"\\u00e9\"}");
    rs[3] = new_revision("p", "A", 3); /* id assigned */
    const char *diffs[] = {NULL, "null",
                           "{\"a\": \"é\", \"z\": [1, {\"a\": 1, \"b\": 2}]}", NULL};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wiki_revision_insert(repo, &rs[i]), MEMO_OK);
        set_text(&rs[i].diff, diffs[i]); /* jsonb's normal form from here on */
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
    test_assert_pttl(test_revision_key(424242), 5000,
                     5000); /* the repository's default */
    test_assert_cached_member(test_revision_key(-1), "page_slug", "p");

    /* update and delete of a revision with an extreme id */
    set_text(&rs[0].note, "noted");
    set_text(&rs[0].diff, "[1,2]");
    assert_int_equal(wiki_revision_update(repo, &rs[0]), MEMO_OK);
    assert_false(test_redis_exists(test_revision_key(INT64_MAX)));
    assert_true(test_redis_exists(test_revision_key(-1)));
    set_text(&rs[0].diff, "[1, 2]");
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

/* _clear and _list_clear free and zero; NULL is allowed. */
static void clearing(void **state)
{
    (void)state;
    wiki_page zero = {0};
    wiki_page p = new_page("p", "s", 5);
    set_text(&p.summary, "s");
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
    set_text(&r.note, "n");
    set_text(&r.diff, "{}");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(nulls_and_zeros, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(scalar_extremes, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(timestamp_edges, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(text_values, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(json_values, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(invalid_values, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(revision_roundtrip, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(clearing, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(corrupt_value, wiki_fixture_setup, NULL),
    };
    return cmocka_run_group_tests_name("wiki values", tests, wiki_fixture_group_setup,
                                       wiki_fixture_group_teardown);
}
