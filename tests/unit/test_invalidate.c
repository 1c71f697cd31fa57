/* Which keys a change makes wrong: memop_inval_collect, the pure function
 * every write (and, next, the database's change stream) asks, table by
 * table, on the generated blog and wiki descriptors. Each case says, for an
 * event and the old and new rows, the exact set of keys (a key holds a value
 * or a lease: deleting it breaks either). The expected keys are written out here
 * from the descriptors' parts, not built by keys.c. Pure: no servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "blog.h"
#include "internal.h"
#include "team.h"
#include "wiki.h"

/* ----------------------------------------------------------- the entities */

static const memo_entity_desc *const descs[] = {
    &blog_org_desc,        &blog_user_desc,     &blog_post_desc,   &blog_comment_desc,
    &wiki_page_desc,       &wiki_revision_desc, &team_person_desc, &team_squad_desc,
    &team_membership_desc, &team_badge_desc,    &team_tag_desc,
};
enum { NDESCS = sizeof descs / sizeof descs[0] };
static memop_entity ents[NDESCS];
static memo_repo repo; /* only its key prefix is read */

static memop_entity *ent(const memo_entity_desc *d)
{
    for (size_t i = 0; i < NDESCS; i++)
        if (descs[i] == d)
            return &ents[i];
    fail_msg("no entity %s", d->name);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&repo, 0, sizeof repo);
    repo.key_prefix = (char *)"";
    for (size_t i = 0; i < NDESCS; i++) {
        ents[i].desc = descs[i];
        ents[i].index = (unsigned)i;
        ents[i].targets =
            calloc(descs[i]->nrules ? descs[i]->nrules : 1, sizeof(memop_entity *));
    }
    for (size_t i = 0; i < NDESCS; i++)
        for (unsigned r = 0; r < descs[i]->nrules; r++)
            ents[i].targets[r] = ent(descs[i]->rules[r].target);
    memop_test_hooks.fail_collect = false;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDESCS; i++)
        free(ents[i].targets);
    return 0;
}

/* ------------------------------------------------------------ expectations */

/* "<schema>:{<head><part><tail>}:<tag>", from the descriptor's parts. */
static void key_of(char *out, size_t size, const memo_entity_desc *d,
                   const memo_key_desc *k, const char *part)
{
    snprintf(out, size, "%s:{%s%s%s}:%s", d->schema, k->head, part, k->tail, k->tag);
}

typedef struct want {
    char keys[32][MEMOP_KEY_MAX];
    size_t n;
} want;

static void want_value(want *w, const memo_entity_desc *d, const memo_key_desc *k,
                       const char *part)
{
    key_of(w->keys[w->n++], sizeof w->keys[0], d, k, part);
}

/* A list and its count (<list key>:n): a change of the group's membership
 * deletes both. */
static void want_list(want *w, const memo_entity_desc *d, const memo_key_desc *k,
                      const char *part)
{
    want_value(w, d, k, part);
    key_of(w->keys[w->n], sizeof w->keys[0], d, k, part);
    strcat(w->keys[w->n++], ":n");
}

/* Collects the change and compares the key sets, both ways. */
static void check(const char *name, const memo_entity_desc *d, unsigned event,
                  const void *old, const void *new, const want *w)
{
    memop_inval v = {0};
    memop_inval_collect(&repo, ent(d), event, old, new, &v);
    assert_false(v.failed);
    for (size_t i = 0; i < v.n; i++) {
        bool found = false;
        for (size_t j = 0; j < w->n && !found; j++)
            found = strcmp(v.keys[i].s, w->keys[j]) == 0;
        if (!found)
            fail_msg("%s: unexpected %s", name, v.keys[i].s);
        assert_int_equal(v.keys[i].len, strlen(v.keys[i].s));
    }
    for (size_t j = 0; j < w->n; j++) {
        bool found = false;
        for (size_t i = 0; i < v.n && !found; i++)
            found = strcmp(v.keys[i].s, w->keys[j]) == 0;
        if (!found)
            fail_msg("%s: missing %s", name, w->keys[j]);
    }
    /* no key twice */
    for (size_t i = 0; i < v.n; i++)
        for (size_t j = i + 1; j < v.n; j++)
            if (strcmp(v.keys[i].s, v.keys[j].s) == 0)
                fail_msg("%s: %s twice", name, v.keys[i].s);
    memop_inval_free(&v);
}

/* ------------------------------------------------------------------- rows */

static blog_user user(int64_t id, const char *email, const char *name, int64_t org)
{
    return (blog_user){.id = id,
                       .email = (char *)email,
                       .name = (char *)name,
                       .org_id = org,
                       .karma = 1};
}

static const memo_key_desc *ROW(const memo_entity_desc *d)
{
    return &d->row.key;
}

#define EMAIL (&blog_user_desc.uniques[0].key)
#define BY_ORG (&blog_user_desc.lists[0].key)
#define BY_AUTHOR (&blog_post_desc.lists[0].key)
#define BY_POST (&blog_comment_desc.lists[0].key)

/* ------------------------------------------------------------------ cases */

static void insert_and_delete(void **state)
{
    (void)state;
    blog_user u = user(42, "a@x", "Ann", 7);
    want w = {0};
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "42"); /* its negative entry */
    want_value(&w, &blog_user_desc, EMAIL, "a@x");
    want_list(&w, &blog_user_desc, BY_ORG, "7");
    check("user insert", &blog_user_desc, MEMO_ON_INSERT, NULL, &u, &w);
    check("user delete", &blog_user_desc, MEMO_ON_DELETE, &u, NULL, &w);
}

static void edit_touches_only_the_row(void **state)
{
    (void)state;
    blog_user a = user(42, "a@x", "Ann", 7), b = a;
    b.karma = 99;
    want w = {0};
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "42");
    /* the lookup still names this row: it stays (a reader fills it alone,
     * under its own lease, and never the row with it) */
    check("karma edited", &blog_user_desc, MEMO_ON_UPDATE, &a, &b, &w);
    memop_inval v = {0};
    memop_inval_collect(&repo, ent(&blog_user_desc), MEMO_ON_UPDATE, &a, &b, &v);
    assert_int_equal(v.n, 1);
    memop_inval_free(&v);
}

/* A write made outside memo (seen by memo watch) may change the primary
 * key: the old key's row goes too, and every lookup and list, which name
 * the old key, whatever else changed. */
static void key_moved(void **state)
{
    (void)state;
    blog_user a = user(42, "a@x", "Ann", 7), b = a;
    b.id = 43;
    want w = {0};
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "42");
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "43");
    want_value(&w, &blog_user_desc, EMAIL, "a@x");
    want_value(&w, &blog_user_desc, BY_ORG, "7"); /* its members: not their count */
    check("key moved", &blog_user_desc, MEMO_ON_UPDATE, &a, &b, &w);
}

/* A composite key: its row key joins the escaped fields with ','; a rule
 * to such a row names a field per key field; its lists move with it. */
static void composite_keys(void **state)
{
    (void)state;
    team_membership a = {.squad_id = 1, .person_id = 2, .role = (char *)"r"}, b = a;
    b.role = (char *)"s"; /* of_squad is ordered by role */
    want w = {0};
    want_value(&w, &team_membership_desc, ROW(&team_membership_desc), "1,2");
    want_value(&w, &team_membership_desc, &team_membership_desc.lists[0].key, "1");
    want_value(&w, &team_person_desc, ROW(&team_person_desc), "2"); /* rule */
    check("role changed", &team_membership_desc, MEMO_ON_UPDATE, &a, &b, &w);

    team_badge x = {.id = 5, .squad_id = 1, .person_id = 2, .label = (char *)"l"}, y = x;
    y.person_id = 3;
    want r = {0};
    want_value(&r, &team_badge_desc, ROW(&team_badge_desc), "5");
    want_value(&r, &team_membership_desc, ROW(&team_membership_desc), "1,2");
    want_value(&r, &team_membership_desc, ROW(&team_membership_desc), "1,3");
    check("badge moved", &team_badge_desc, MEMO_ON_UPDATE, &x, &y, &r);

    team_tag t = {.scope = (char *)"a,b", .name = (char *)"c d", .slug = (char *)"s"};
    want i = {0};
    want_value(&i, &team_tag_desc, ROW(&team_tag_desc), "a%2Cb,c%20d");
    want_value(&i, &team_tag_desc, &team_tag_desc.uniques[0].key, "s");
    check("tag insert", &team_tag_desc, MEMO_ON_INSERT, NULL, &t, &i);

    /* its key moved (a write outside memo): both rows, its lists but not
     * the counts of groups it stayed in, and the person rule's rows */
    team_membership c = a;
    c.person_id = 7;
    want k = {0};
    want_value(&k, &team_membership_desc, ROW(&team_membership_desc), "1,2");
    want_value(&k, &team_membership_desc, ROW(&team_membership_desc), "1,7");
    want_value(&k, &team_membership_desc, &team_membership_desc.lists[0].key, "1");
    want_list(&k, &team_membership_desc, &team_membership_desc.lists[1].key, "2");
    want_list(&k, &team_membership_desc, &team_membership_desc.lists[1].key, "7");
    want_value(&k, &team_person_desc, ROW(&team_person_desc), "2");
    want_value(&k, &team_person_desc, ROW(&team_person_desc), "7");
    check("membership key moved", &team_membership_desc, MEMO_ON_UPDATE, &a, &c, &k);
}

static void unique_moved(void **state)
{
    (void)state;
    blog_user a = user(42, "a@x", "Ann", 7), b = a;
    b.email = (char *)"b@x";
    want w = {0};
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "42");
    want_value(&w, &blog_user_desc, EMAIL, "a@x");
    want_value(&w, &blog_user_desc, EMAIL, "b@x");
    check("email moved", &blog_user_desc, MEMO_ON_UPDATE, &a, &b, &w);
}

static void list_membership_moved(void **state)
{
    (void)state;
    blog_user a = user(42, "a@x", "Ann", 7), b = a;
    b.org_id = 8;
    want w = {0};
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "42");
    want_list(&w, &blog_user_desc, BY_ORG, "7");
    want_list(&w, &blog_user_desc, BY_ORG, "8");
    check("org moved", &blog_user_desc, MEMO_ON_UPDATE, &a, &b, &w);
}

static void list_order_changed(void **state)
{
    (void)state;
    blog_user a = user(42, "a@x", "Ann", 7), b = a;
    b.name = (char *)"Zed"; /* by_org is ordered by name */
    want w = {0};
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "42");
    want_value(&w, &blog_user_desc, BY_ORG, "7"); /* the order: not the count */
    check("order field changed", &blog_user_desc, MEMO_ON_UPDATE, &a, &b, &w);
}

static void rule_on_change(void **state)
{
    (void)state;
    /* post: on change invalidate user(author_id) */
    blog_post a = {.id = 5, .author_id = 1, .title = (char *)"T", .body = (char *)"b"},
              b = a;
    b.title = (char *)"New";
    want w = {0};
    want_value(&w, &blog_post_desc, ROW(&blog_post_desc), "5");
    want_value(&w, &blog_user_desc, ROW(&blog_user_desc), "1");
    check("post edited", &blog_post_desc, MEMO_ON_UPDATE, &a, &b, &w);

    b.author_id = 2; /* the list by_author moves, and both authors' rows go */
    want m = {0};
    want_value(&m, &blog_post_desc, ROW(&blog_post_desc), "5");
    want_list(&m, &blog_post_desc, BY_AUTHOR, "1");
    want_list(&m, &blog_post_desc, BY_AUTHOR, "2");
    want_value(&m, &blog_user_desc, ROW(&blog_user_desc), "1");
    want_value(&m, &blog_user_desc, ROW(&blog_user_desc), "2");
    check("post moved", &blog_post_desc, MEMO_ON_UPDATE, &a, &b, &m);
}

static void rule_on_some_events(void **state)
{
    (void)state;
    /* comment: on insert and on delete invalidate post(post_id) */
    blog_comment c = {.id = 9,
                      .post_id = 5,
                      .author_id = 1,
                      .body = (char *)"hi",
                      .created_at = 100},
                 d = c;
    want w = {0};
    want_value(&w, &blog_comment_desc, ROW(&blog_comment_desc), "9");
    want_list(&w, &blog_comment_desc, BY_POST, "5");
    want_value(&w, &blog_post_desc, ROW(&blog_post_desc), "5");
    check("comment insert", &blog_comment_desc, MEMO_ON_INSERT, NULL, &c, &w);
    check("comment delete", &blog_comment_desc, MEMO_ON_DELETE, &c, NULL, &w);
    d.body = (char *)"edited"; /* no rule for updates, no list field changed */
    want e = {0};
    want_value(&e, &blog_comment_desc, ROW(&blog_comment_desc), "9");
    check("comment edited", &blog_comment_desc, MEMO_ON_UPDATE, &c, &d, &e);
}

static wiki_page page(const char *slug, const char *alias, const char *space)
{
    return (wiki_page){.slug = (char *)slug,
                       .title = (char *)"t",
                       .body = (char *)"b",
                       .meta = (char *)"{}",
                       .alias = (char *)alias,
                       .space = (char *)space,
                       .views_is_null = true,
                       .rating_is_null = true,
                       .locked_is_null = true,
                       .edited_at_is_null = true};
}

#define ALIAS (&wiki_page_desc.uniques[0].key)
#define IN_SPACE (&wiki_page_desc.lists[0].key)

static void null_entering_and_leaving(void **state)
{
    (void)state;
    /* alias is a nullable unique: NULL is in no lookup */
    wiki_page a = page("home", NULL, "s"), b = page("home", "start", "s");
    want w = {0};
    want_value(&w, &wiki_page_desc, ROW(&wiki_page_desc), "home");
    want_value(&w, &wiki_page_desc, ALIAS, "start");
    check("alias set", &wiki_page_desc, MEMO_ON_UPDATE, &a, &b, &w);
    check("alias cleared", &wiki_page_desc, MEMO_ON_UPDATE, &b, &a, &w);
    want n = {0};
    want_value(&n, &wiki_page_desc, ROW(&wiki_page_desc), "home");
    check("alias stays NULL", &wiki_page_desc, MEMO_ON_UPDATE, &a, &a, &n);
    want i = {0};
    want_value(&i, &wiki_page_desc, ROW(&wiki_page_desc), "home");
    want_list(&i, &wiki_page_desc, IN_SPACE, "s");
    check("insert without alias", &wiki_page_desc, MEMO_ON_INSERT, NULL, &a, &i);
}

static void text_keys_escaped(void **state)
{
    (void)state;
    wiki_page a = page("a b/c", "x:y", "sp ace"), b = a;
    b.space = (char *)"other";
    b.alias = (char *)"x/z";
    want w = {0};
    want_value(&w, &wiki_page_desc, ROW(&wiki_page_desc), "a%20b%2Fc");
    want_value(&w, &wiki_page_desc, ALIAS, "x%3Ay");
    want_value(&w, &wiki_page_desc, ALIAS, "x%2Fz");
    want_list(&w, &wiki_page_desc, IN_SPACE, "sp%20ace");
    want_list(&w, &wiki_page_desc, IN_SPACE, "other");
    check("text keys", &wiki_page_desc, MEMO_ON_UPDATE, &a, &b, &w);
}

static void rules_on_a_text_target(void **state)
{
    (void)state;
    /* revision: on insert invalidate page(page_slug); on change invalidate
     * page.in_space(space) */
    wiki_revision r = {.id = 3,
                       .page_slug = (char *)"home",
                       .space = (char *)"s",
                       .number = 1,
                       .author = (char *)"me"};
    want w = {0};
    want_value(&w, &wiki_revision_desc, ROW(&wiki_revision_desc), "3");
    want_list(&w, &wiki_revision_desc, &wiki_revision_desc.lists[0].key, "home");
    want_value(&w, &wiki_page_desc, ROW(&wiki_page_desc), "home");
    want_list(&w, &wiki_page_desc, IN_SPACE, "s");
    check("revision insert", &wiki_revision_desc, MEMO_ON_INSERT, NULL, &r, &w);
    wiki_revision s = r;
    s.space = (char *)"t";
    want u = {0};
    want_value(&u, &wiki_revision_desc, ROW(&wiki_revision_desc), "3");
    want_list(&u, &wiki_page_desc, IN_SPACE, "s");
    want_list(&u, &wiki_page_desc, IN_SPACE, "t");
    check("revision moved", &wiki_revision_desc, MEMO_ON_UPDATE, &r, &s, &u);
}

/* Keys that could not be collected mark the entity and its rules' targets
 * to be dropped whole. */
static void failure_marks_drops(void **state)
{
    (void)state;
    blog_post a = {.id = 5, .author_id = 1, .title = (char *)"T", .body = (char *)"b"};
    memop_inval v = {0};
    memop_test_hooks.fail_collect = true;
    memop_inval_collect(&repo, ent(&blog_post_desc), MEMO_ON_UPDATE, &a, &a, &v);
    memop_test_hooks.fail_collect = false;
    assert_true(v.failed);
    for (size_t i = 0; i < NDESCS; i++) {
        bool marked = v.drop[i / 8] & (1u << (i % 8));
        bool expect = descs[i] == &blog_post_desc || descs[i] == &blog_user_desc;
        if (marked != expect)
            fail_msg("%s %s marked for a drop", descs[i]->name, marked ? "is" : "is not");
    }
    memop_inval_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(insert_and_delete),
        cmocka_unit_test(edit_touches_only_the_row),
        cmocka_unit_test(key_moved),
        cmocka_unit_test(composite_keys),
        cmocka_unit_test(unique_moved),
        cmocka_unit_test(list_membership_moved),
        cmocka_unit_test(list_order_changed),
        cmocka_unit_test(rule_on_change),
        cmocka_unit_test(rule_on_some_events),
        cmocka_unit_test(null_entering_and_leaving),
        cmocka_unit_test(text_keys_escaped),
        cmocka_unit_test(rules_on_a_text_target),
        cmocka_unit_test(failure_marks_drops),
    };
    return cmocka_run_group_tests_name("invalidation", tests, setup, teardown);
}
