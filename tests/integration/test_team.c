/* Composite primary keys, on the team schema: memberships keyed by (squad,
 * person) and tags by two texts. Every generated call with such a key, the
 * row keys in Redis, get_many with repeated and missing keys, lists of such
 * rows and their pages, rules from them (to a person) and to them (from a
 * badge), and keys whose parts would collide if joined naively. Real
 * servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "test.h"

#include "team.h"

static memo_repo *repo;
static const char *const tables[] = {"team_badges", "team_memberships", "team_tags",
                                     "team_people", "team_squads",      NULL};

static int group_setup(void **state)
{
    test_schema_sql("team");
    repo = *state = test_open(NULL);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    test_reset(tables);
    test_sql(
        "INSERT INTO team_people (name) SELECT 'p' || i FROM generate_series(1, 5) i;"
        "INSERT INTO team_squads (name) SELECT 's' || i FROM generate_series(1, 3) i");
    return 0;
}

#define STAT(entity, counter) test_stat(repo, "team." entity, counter)

static void join(int64_t squad, int64_t person, const char *role)
{
    team_membership m = {
        .squad_id = squad, .person_id = person, .role = (char *)role, .since = 1000};
    assert_int_equal(team_membership_insert(repo, &m), MEMO_OK);
}

/* The row key: "team:{membership:<squad>,<person>}:<tag>". */
static const char *membership_key(int64_t squad, int64_t person)
{
    static char key[128];
    snprintf(key, sizeof key, "team:{membership:%lld,%lld}:%s", (long long)squad,
             (long long)person, team_membership_desc.row.key.tag);
    return key;
}

static void rows_by_key(void **state)
{
    (void)state;
    join(1, 2, "lead");
    team_membership m = {0};
    memo_stats_reset(repo);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
        assert_int_equal(m.squad_id, 1);
        assert_int_equal(m.person_id, 2);
        assert_string_equal(m.role, "lead");
        team_membership_clear(&m);
    }
    assert_int_equal(STAT("membership", "db_queries"), 1); /* then a hit */
    assert_true(test_redis_exists(membership_key(1, 2)));
    /* (2, 1) is another row: no such membership, remembered as such */
    assert_int_equal(team_membership_get(repo, 2, 1, &m), MEMO_NOT_FOUND);
    assert_true(test_redis_exists(membership_key(2, 1)));

    /* a value under the key that is another row's is corrupt */
    char *v = test_redis_get(membership_key(1, 2));
    char *at = strstr(v, "\"person_id\":2");
    assert_non_null(at);
    at[strlen("\"person_id\":")] = '3';
    freeReplyObject(test_redis_cmd("SET %s %s", membership_key(1, 2), v));
    free(v);
    memo_stats_reset(repo);
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
    assert_int_equal(m.person_id, 2);
    team_membership_clear(&m);
    assert_int_equal(STAT("membership", "corrupt"), 1);

    /* writes: update, update_fields, upsert both ways, delete */
    m = (team_membership){
        .squad_id = 1, .person_id = 2, .role = (char *)"member", .since = 2000};
    assert_int_equal(team_membership_update(repo, &m), MEMO_OK);
    assert_false(test_redis_exists(membership_key(1, 2)));
    m.since = 3000;
    m.role = NULL;
    assert_int_equal(team_membership_update_fields(repo, &m, TEAM_MEMBERSHIP_SINCE),
                     MEMO_OK);
    /* the key's fields are the key: they are not in a mask that writes */
    assert_int_equal(team_membership_update_fields(repo, &m, TEAM_MEMBERSHIP_PERSON_ID),
                     MEMO_ERR_ARG);
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
    assert_string_equal(m.role, "member");
    assert_int_equal(m.since, 3000);
    team_membership_clear(&m);
    m = (team_membership){.squad_id = 3, .person_id = 2, .role = (char *)"new"};
    assert_int_equal(team_membership_get(repo, 3, 2, &m), MEMO_NOT_FOUND); /* cached */
    m = (team_membership){.squad_id = 3, .person_id = 2, .role = (char *)"new"};
    assert_int_equal(team_membership_upsert(repo, &m), MEMO_OK); /* an insert */
    assert_int_equal(team_membership_get(repo, 3, 2, &m), MEMO_OK);
    team_membership_clear(&m);
    m = (team_membership){.squad_id = 3, .person_id = 2, .role = (char *)"again"};
    assert_int_equal(team_membership_upsert(repo, &m), MEMO_OK); /* an update */
    assert_int_equal(team_membership_get(repo, 3, 2, &m), MEMO_OK);
    assert_string_equal(m.role, "again");
    team_membership_clear(&m);
    test_assert_sql("SELECT count(*) FROM team_memberships", "2");
    assert_int_equal(team_membership_delete(repo, 3, 2), MEMO_OK);
    assert_int_equal(team_membership_delete(repo, 3, 2), MEMO_NOT_FOUND);
    assert_int_equal(team_membership_get(repo, 3, 2, &m), MEMO_NOT_FOUND);
    /* in a transaction */
    memo_tx *tx = NULL;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_int_equal(team_membership_delete_tx(tx, 1, 2), MEMO_OK);
    assert_int_equal(team_membership_get_tx(tx, 1, 2, &m), MEMO_NOT_FOUND);
    assert_int_equal(memo_rollback(tx), MEMO_OK);
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
    team_membership_clear(&m);
}

static void many_keys(void **state)
{
    (void)state;
    join(1, 1, "a");
    join(1, 2, "b");
    join(2, 1, "c");
    team_membership m = {0};
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK); /* one cached */
    team_membership_clear(&m);
    /* found rows only, in the order asked, a key asked twice twice */
    team_membership_key keys[] = {{2, 1}, {1, 2}, {9, 9}, {1, 1}, {2, 1}, {2, 2}};
    for (int round = 0; round < 2; round++) {
        team_membership_list l = {0};
        assert_int_equal(team_membership_get_many(repo, keys, 6, &l), MEMO_OK);
        assert_int_equal(l.len, 4);
        const char *roles[] = {"c", "b", "a", "c"};
        for (size_t i = 0; i < l.len; i++)
            assert_string_equal(l.items[i].role, roles[i]);
        team_membership_list_clear(&l);
    }
    assert_true(test_redis_exists(membership_key(2, 1)));
    assert_true(test_redis_exists(membership_key(9, 9))); /* a negative entry */
}

static void lists_and_pages(void **state)
{
    (void)state;
    /* squad 1: roles with ties, broken by the person */
    const char *roles[] = {"b", "a", "b", "a", "c"};
    for (int p = 1; p <= 5; p++)
        join(1, p, roles[p - 1]);
    join(2, 3, "x");
    team_membership_list l = {0};
    assert_int_equal(team_membership_of_squad(repo, 1, &l), MEMO_OK);
    int64_t want[] = {2, 4, 1, 3, 5}; /* a a b b c */
    assert_int_equal(l.len, 5);
    for (size_t i = 0; i < l.len; i++)
        assert_int_equal(l.items[i].person_id, want[i]);
    /* pages of two after each row: every row once, in order */
    team_membership last = l.items[1]; /* (1, 4) */
    team_membership_list page = {0};
    assert_int_equal(team_membership_of_squad_after(repo, 1, &last, 2, &page), MEMO_OK);
    assert_int_equal(page.len, 2);
    assert_int_equal(page.items[0].person_id, 1);
    assert_int_equal(page.items[1].person_id, 3);
    assert_true(page.more);
    team_membership_list_clear(&page);
    team_membership_list_clear(&l);
    /* a person's squads: ordered by the key */
    assert_int_equal(team_membership_of_person(repo, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    assert_int_equal(l.items[0].squad_id, 1);
    assert_int_equal(l.items[1].squad_id, 2);
    team_membership_list_clear(&l);
    int64_t n = 0;
    assert_int_equal(team_membership_of_squad_count(repo, 1, &n), MEMO_OK);
    assert_int_equal(n, 5);
    /* a new member: the lists and counts of its groups go */
    join(2, 4, "y");
    assert_int_equal(team_membership_of_person(repo, 4, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    team_membership_list_clear(&l);
    assert_int_equal(team_membership_of_squad_count(repo, 2, &n), MEMO_OK);
    assert_int_equal(n, 2);
    assert_int_equal(team_membership_delete(repo, 1, 3), MEMO_OK);
    assert_int_equal(team_membership_of_squad_count(repo, 1, &n), MEMO_OK);
    assert_int_equal(n, 4);
    assert_int_equal(team_membership_of_person(repo, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 1);
    team_membership_list_clear(&l);
}

static void rules_both_ways(void **state)
{
    (void)state;
    join(1, 2, "lead");
    char person[128];
    snprintf(person, sizeof person, "team:{person:2}:%s", team_person_desc.row.key.tag);
    team_person p = {0};
    assert_int_equal(team_person_get(repo, 2, &p), MEMO_OK);
    team_person_clear(&p);
    team_membership m = {0};
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
    team_membership_clear(&m);
    assert_true(test_redis_exists(person));
    /* from a membership to its person */
    m = (team_membership){.squad_id = 1, .person_id = 2, .role = (char *)"x"};
    assert_int_equal(team_membership_update(repo, &m), MEMO_OK);
    assert_false(test_redis_exists(person));
    /* from a badge to its membership: a key of two of the badge's fields */
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
    team_membership_clear(&m);
    assert_true(test_redis_exists(membership_key(1, 2)));
    team_badge b = {.squad_id = 1, .person_id = 2, .label = (char *)"star"};
    assert_int_equal(team_badge_insert(repo, &b), MEMO_OK);
    assert_false(test_redis_exists(membership_key(1, 2)));
    assert_int_equal(team_membership_get(repo, 1, 2, &m), MEMO_OK);
    team_membership_clear(&m);
    b.person_id = 3; /* moves: both memberships' rows go */
    assert_int_equal(team_membership_get(repo, 1, 3, &m), MEMO_NOT_FOUND);
    assert_true(test_redis_exists(membership_key(1, 3)));
    assert_int_equal(team_badge_update(repo, &b), MEMO_OK);
    assert_false(test_redis_exists(membership_key(1, 2)));
    assert_false(test_redis_exists(membership_key(1, 3)));
}

/* Text keys: each part escaped, then joined by ',' (never in an escaped
 * part), so ("a,b", "c") and ("a", "b,c") are two keys; NULL parts are
 * refused. */
static void text_parts(void **state)
{
    (void)state;
    team_tag t1 = {.scope = (char *)"a,b", .name = (char *)"c", .slug = (char *)"t1"};
    team_tag t2 = {.scope = (char *)"a",
                   .name = (char *)"b,c",
                   .color = (char *)"red",
                   .slug = (char *)"t2"};
    assert_int_equal(team_tag_insert(repo, &t1), MEMO_OK);
    assert_int_equal(team_tag_insert(repo, &t2), MEMO_OK);
    team_tag got = {0};
    assert_int_equal(team_tag_get(repo, "a,b", "c", &got), MEMO_OK);
    assert_null(got.color);
    team_tag_clear(&got);
    assert_int_equal(team_tag_get(repo, "a", "b,c", &got), MEMO_OK);
    assert_string_equal(got.color, "red");
    team_tag_clear(&got);
    assert_int_equal(test_redis_count("team:{tag:a*"), 2);
    char key[128];
    snprintf(key, sizeof key, "team:{tag:a%%2Cb,c}:%s", team_tag_desc.row.key.tag);
    assert_true(test_redis_exists(key));
    /* both hits, each its own row */
    memo_stats_reset(repo);
    assert_int_equal(team_tag_get(repo, "a,b", "c", &got), MEMO_OK);
    assert_null(got.color);
    team_tag_clear(&got);
    assert_int_equal(STAT("tag", "hits"), 1);
    assert_int_equal(team_tag_get(repo, NULL, "c", &got), MEMO_ERR_ARG);
    assert_int_equal(team_tag_delete(repo, "a", NULL), MEMO_ERR_ARG);
    team_tag_key keys[] = {{"a", "b,c"}, {"a,b", "c"}, {"a", "b"}};
    team_tag_list l = {0};
    assert_int_equal(team_tag_get_many(repo, keys, 3, &l), MEMO_OK);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].name, "b,c");
    assert_string_equal(l.items[1].name, "c");
    team_tag_list_clear(&l);
    /* a lookup holds the key as a JSON array; its hits read the row by it */
    memo_stats_reset(repo);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(team_tag_get_by_slug(repo, "t2", &got), MEMO_OK);
        assert_string_equal(got.scope, "a");
        assert_string_equal(got.name, "b,c");
        team_tag_clear(&got);
    }
    assert_int_equal(STAT("tag", "db_queries"), 1); /* the lookup; the row was cached */
    snprintf(key, sizeof key, "team:{tag:slug=t2}:%s", team_tag_desc.uniques[0].key.tag);
    test_assert_redis_value(key, "[\"a\",\"b,c\"]");
    /* a forged lookup naming another row is healed */
    freeReplyObject(test_redis_cmd("SET %s %s", key, "[\"a,b\",\"c\"]"));
    assert_int_equal(team_tag_get_by_slug(repo, "t2", &got), MEMO_OK);
    assert_string_equal(got.name, "b,c");
    team_tag_clear(&got);
    freeReplyObject(test_redis_cmd("SET %s %s", key, "[\"a\"]"));
    assert_int_equal(team_tag_get_by_slug(repo, "t2", &got), MEMO_OK);
    assert_string_equal(got.name, "b,c");
    team_tag_clear(&got);
    assert_int_equal(team_tag_delete(repo, "a,b", "c"), MEMO_OK);
    assert_int_equal(team_tag_get(repo, "a,b", "c", &got), MEMO_NOT_FOUND);
    assert_int_equal(team_tag_get(repo, "a", "b,c", &got), MEMO_OK);
    team_tag_clear(&got);
}

/* Pages of a list ordered by the key's second field, ties broken by the
 * first: every row once, in PostgreSQL's order, both directions, every page
 * size. */
static void pages_by_a_key_field(void **state)
{
    (void)state;
    /* names with ties across scopes */
    test_sql("INSERT INTO team_tags (scope, name, color, slug) SELECT 's' || (i % 3), "
             "'n' || (i % 4), 'red', 'x' || i FROM generate_series(1, 12) i");
    for (int desc = 0; desc < 2; desc++) {
        char *want =
            test_sql_value(desc ? "SELECT string_agg(scope || '/' || name, ' ' "
                                  "ORDER BY name DESC, scope DESC) FROM team_tags"
                                : "SELECT string_agg(scope || '/' || name, ' ' "
                                  "ORDER BY name, scope) FROM team_tags");
        for (size_t size = 1; size <= 5; size++) {
            char got[512] = "";
            team_tag_list l = {0};
            assert_int_equal(desc ? team_tag_by_color_desc(repo, "red", &l)
                                  : team_tag_by_color(repo, "red", &l),
                             MEMO_OK);
            assert_int_equal(l.len, 3);
            assert_true(l.more);
            team_tag last = {0};
            for (int pages = 0; l.len > 0 && pages < 20; pages++) {
                for (size_t i = 0; i < l.len; i++) {
                    size_t n = strlen(got);
                    snprintf(got + n, sizeof got - n, "%s%s/%s", n ? " " : "",
                             l.items[i].scope, l.items[i].name);
                }
                bool more = l.more;
                team_tag_clear(&last);
                last = l.items[l.len - 1];
                memset(&l.items[l.len - 1], 0, sizeof last);
                team_tag_list_clear(&l);
                if (!more)
                    break;
                assert_int_equal(
                    desc ? team_tag_by_color_desc_after(repo, "red", &last, size, &l)
                         : team_tag_by_color_after(repo, "red", &last, size, &l),
                    MEMO_OK);
            }
            team_tag_clear(&last);
            team_tag_list_clear(&l);
            assert_string_equal(got, want);
        }
        free(want);
    }
}

/* Statements are prepared when talking to PostgreSQL itself, and unnamed
 * behind PgBouncer in transaction mode, whether configured
 * (MEMO_DB_UNNAMED=1) or found out at connect time (make check runs this
 * suite both ways through tests/through-pgbouncer.sh). */
static void statements_as_the_server_needs(void **state)
{
    (void)state;
    const char *pooler = getenv("MEMO_TEST_PGBOUNCER_URL"), *db = getenv("DATABASE_URL");
    const char *flag = getenv("MEMO_DB_UNNAMED");
    bool through = pooler && db && strcmp(pooler, db) == 0;
    bool configured = flag && strcmp(flag, "1") == 0;
    team_person p = {0};
    assert_int_equal(team_person_get(repo, 1, &p), MEMO_OK); /* a connection, used */
    team_person_clear(&p);
    char *s = memo_stats_json(repo);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    const char *got =
        json_string_value(json_object_get(json_object_get(j, "database"), "statements"));
    assert_non_null(got);
    assert_string_equal(got, through || configured ? "unnamed" : "prepared");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(rows_by_key, setup),
        cmocka_unit_test_setup(many_keys, setup),
        cmocka_unit_test_setup(lists_and_pages, setup),
        cmocka_unit_test_setup(rules_both_ways, setup),
        cmocka_unit_test_setup(text_parts, setup),
        cmocka_unit_test_setup(pages_by_a_key_field, setup),
        cmocka_unit_test_setup(statements_as_the_server_needs, setup),
    };
    return cmocka_run_group_tests_name("composite primary keys", tests, group_setup,
                                       test_group_close);
}
