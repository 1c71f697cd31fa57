/* The wiki tests' shared fixtures and checks (wiki_fixture.h). */
#include "wiki_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

memo_repo *repo;

/* ---------------------------------------------------------------- fixtures */

int wiki_fixture_group_setup(void **state)
{
    (void)state;
    test_schema_sql("wiki");
    test_schema_sql("wiki"); /* IF NOT EXISTS everywhere: applying again is harmless */
    repo = test_open(NULL);
    return 0;
}

int wiki_fixture_group_teardown(void **state)
{
    (void)state;
    memo_close(repo);
    repo = NULL;
    return 0;
}

int wiki_fixture_setup(void **state)
{
    (void)state;
    test_reset((const char *[]){"revisions", "pages", NULL});
    memo_stats_reset(repo);
    return 0;
}

/* -------------------------------------------------------------------- rows */

void set_text(char **field, const char *value)
{
    free(*field);
    *field = NULL;
    if (value) {
        *field = strdup(value);
        assert_non_null(*field);
    }
}

wiki_page new_page(const char *slug, const char *space, int32_t position)
{
    wiki_page p = {0};
    set_text(&p.slug, slug);
    set_text(&p.title, "a title");
    set_text(&p.body, "a body");
    set_text(&p.meta, "{}");
    set_text(&p.space, space);
    p.position = position;
    p.views_is_null = p.rating_is_null = p.locked_is_null = p.edited_at_is_null = true;
    return p;
}

wiki_revision new_revision(const char *page, const char *space, int32_t number)
{
    wiki_revision r = {0};
    set_text(&r.page_slug, page);
    set_text(&r.space, space);
    r.number = number;
    set_text(&r.author, "ann");
    r.created_at = 1700000000000000;
    return r;
}

void put_page(const char *slug, const char *space, int32_t position)
{
    wiki_page p = new_page(slug, space, position);
    assert_int_equal(wiki_page_insert(repo, &p), MEMO_OK);
    wiki_page_clear(&p);
}

/* ------------------------------------------------------------------- stats */

counts counts_of(const char *entity)
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

/* -------------------------------------------------------------- comparing */

/* Strings equal, or both NULL. */
static void assert_text(const char *want, const char *got)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
}

/* Doubles compare by bits: -0.0 is not 0.0; NaN is NaN. */
static void assert_same_double(double want, double got)
{
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    assert_memory_equal(&want, &got, sizeof want);
}

void assert_page(const wiki_page *want, const char *meta, const wiki_page *got)
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

void assert_revision(const wiki_revision *want, const wiki_revision *got)
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

void roundtrip(wiki_page *row, const char *meta)
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
    test_assert_sql_param("SELECT meta::text FROM pages WHERE slug = $1", row->slug,
                          meta);
    wiki_page_clear(&miss);
    wiki_page_clear(&hit);
}

void assert_slugs(const wiki_page_list *l, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    assert_int_equal(l->len, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->items[i].slug, want[i]);
}

void assert_in_space(const char *space, const char *const *want)
{
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, space, &l), MEMO_OK);
    assert_slugs(&l, want);
    wiki_page_list_clear(&l);
}

void assert_history(const char *slug, const int64_t *want, size_t n)
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

/* ------------------------------------------------------ filling keys by reads */

void cache_page(const char *slug)
{
    wiki_page p = {0};
    assert_int_equal(wiki_page_get(repo, slug, &p), MEMO_OK);
    wiki_page_clear(&p);
    assert_true(test_redis_exists(test_page_key(slug)));
}

void cache_space(const char *space)
{
    wiki_page_list l = {0};
    assert_int_equal(wiki_page_in_space(repo, space, &l), MEMO_OK);
    wiki_page_list_clear(&l);
    assert_true(test_redis_exists(test_space_key(space)));
}

void cache_history(const char *slug)
{
    wiki_revision_list l = {0};
    assert_int_equal(wiki_revision_history(repo, slug, &l), MEMO_OK);
    wiki_revision_list_clear(&l);
    assert_true(test_redis_exists(test_history_key(slug)));
}

void cache_revision(int64_t id)
{
    wiki_revision r = {0};
    assert_int_equal(wiki_revision_get(repo, id, &r), MEMO_OK);
    wiki_revision_clear(&r);
    assert_true(test_redis_exists(test_revision_key(id)));
}
