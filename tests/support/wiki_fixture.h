/* What the wiki tests (tests/integration/test_wiki_*.c) share: the
 * repository and its fixtures, rows with defaults, reads that fill a key,
 * the stats as deltas, and comparisons of rows field by field. */
#ifndef MEMO_WIKI_FIXTURE_H
#define MEMO_WIKI_FIXTURE_H

#include "test.h"
#include "schema_keys.h"
#include "wiki.h"

/* The repository of every wiki test and helper, opened by
 * wiki_fixture_group_setup. */
extern memo_repo *repo;

/* Group fixtures: apply wiki.sql (twice: applying again is harmless) and
 * open repo; close it. Test fixture: empty the tables and Redis, reset the
 * stats. */
int wiki_fixture_group_setup(void **state);
int wiki_fixture_group_teardown(void **state);
int wiki_fixture_setup(void **state);

/* ----------------------------------------------------------------- rows */

/* Replaces an owned string field with a copy of value (NULL: SQL NULL). */
void set_text(char **field, const char *value);
/* A page with every nullable field NULL; strings owned (wiki_page_clear). */
wiki_page new_page(const char *slug, const char *space, int32_t position);
/* A revision by "ann" at a fixed instant; strings owned (wiki_revision_clear). */
wiki_revision new_revision(const char *page, const char *space, int32_t number);
/* Inserts a page with default fields; fails the test unless MEMO_OK. */
void put_page(const char *slug, const char *space, int32_t position);

/* ---------------------------------------------------------------- stats */

typedef struct counts {
    long long hits, misses, negative_hits, fills, invalidations, db_queries, errors,
        rejected, corrupt;
} counts;

/* Every counter of an entity ("wiki.page") now. */
counts counts_of(const char *entity);

#define PAGE "wiki.page"
#define REV "wiki.revision"
/* How much a counter grew since `before` (a counts_of). */
#define DELTA(before, entity, field) (counts_of(entity).field - (before).field)

/* ------------------------------------------------------------ comparing */

/* got equals want, except that its meta is `meta` (jsonb's normal form);
 * doubles compare by bits (-0.0 is not 0.0). */
void assert_page(const wiki_page *want, const char *meta, const wiki_page *got);
/* got equals want, field by field. */
void assert_revision(const wiki_revision *want, const wiki_revision *got);
/* Inserts row, then reads it through PostgreSQL (a miss that fills the
 * exact key) and through Redis (a hit, no query): both equal row, with
 * `meta` for its json field, and return the same JSON text. */
void roundtrip(wiki_page *row, const char *meta);
/* The slugs of a list, in order, against a NULL-terminated expectation. */
void assert_slugs(const wiki_page_list *l, const char *const *want);
/* wiki_page_in_space(space) answers the slugs `want`, in order. */
void assert_in_space(const char *space, const char *const *want);
/* wiki_revision_history(slug) answers the n revision ids `want`, in order. */
void assert_history(const char *slug, const int64_t *want, size_t n);

/* ------------------------------------------------- filling keys by reads */

/* Reads a page so that its row key is cached. */
void cache_page(const char *slug);
/* Reads a space's list so that its key is cached. */
void cache_space(const char *space);
/* Reads a page's history so that its key is cached. */
void cache_history(const char *slug);
/* Reads a revision so that its row key is cached. */
void cache_revision(int64_t id);

#endif
