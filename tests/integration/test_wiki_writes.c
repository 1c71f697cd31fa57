/* The wiki schema's writes on the real private servers: every write is
 * checked by the exact keys it must delete and the ones it must leave
 * alone (a page's row and the lists of its old and new space; a revision's
 * rules, which reach its page's row and its history), by the stats, and by
 * the lists read again; then the statuses of writes that cannot happen. */
#include "wiki_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    set_text(&p.body, "new body");
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
    /* the row, both lists and both lists' counts */
    assert_int_equal(DELTA(c, PAGE, invalidations), 5);
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
    assert_int_equal(DELTA(c, PAGE, invalidations), 3); /* and the list's count */
    assert_false(test_redis_exists(test_page_key("a3")));
    assert_false(test_redis_exists(test_space_key("A")));
    assert_true(test_redis_exists(test_space_key("B")));
    assert_in_space("A", (const char *const[]){"a3", "a1", NULL});

    /* a delete: the row and the list of its space go */
    cache_page("a1");
    c = counts_of(PAGE);
    assert_int_equal(wiki_page_delete(repo, "a1"), MEMO_OK);
    assert_int_equal(DELTA(c, PAGE, invalidations), 3); /* and the list's count */
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
    /* the page and its space's list and count; the revision's row, list
     * and count */
    assert_int_equal(DELTA(cp, PAGE, invalidations), 3);
    assert_int_equal(DELTA(cr, REV, invalidations), 3);
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
    set_text(&r1.space, "B");
    set_text(&r1.note, "moved");
    cp = counts_of(PAGE);
    assert_int_equal(wiki_revision_update(repo, &r1), MEMO_OK);
    /* the rule's target lists of spaces A and B, with their counts */
    assert_int_equal(DELTA(cp, PAGE, invalidations), 4);
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
    /* (lists with their counts) */
    assert_int_equal(DELTA(cp, PAGE, invalidations), 2);
    assert_int_equal(DELTA(cr, REV, invalidations), 3);
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
    set_text(&r2.page_slug, "q");
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

/* Statuses of writes that cannot happen. */
static void write_statuses(void **state)
{
    (void)state;
    wiki_page p = new_page("dup", "s", 1);
    set_text(&p.title, "first");
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
    cache_page("dup");
    cache_space("s");
    set_text(&p.title, "second");
    set_text(&p.space, "other");
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
    set_text(&p.slug, "absent");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(in_space_invalidation, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(revision_rules, wiki_fixture_setup, NULL),
        cmocka_unit_test_setup_teardown(write_statuses, wiki_fixture_setup, NULL),
    };
    return cmocka_run_group_tests_name("wiki writes", tests, wiki_fixture_group_setup,
                                       wiki_fixture_group_teardown);
}
