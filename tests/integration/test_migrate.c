/* memoc --migrate on real servers, along examples/desk's versions: v1's
 * tables holding rows (and Redis holding v1's cached entries) are migrated
 * to v2, then to v3, and after each step the new version's generated code
 * (a reader linked with it) reads the old rows, with the values the
 * migration gave the new columns; the migrated tables are exactly the
 * tables the new version's .sql creates fresh (columns, defaults,
 * identity, indexes, constraints, replica identity, publication); v1 to v3
 * in one step too. What memoc refuses is in tests/gen/test_memoc.c. */
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static const char *top, *build;

static int group_setup(void **state)
{
    (void)state;
    top = test_env("MEMO_TOP");
    build = test_env("MEMO_BUILD_DIR");
    return 0;
}

/* An empty database and cache for the desk schema (tables of its own:
 * other tests share the database). */
static void fresh(void)
{
    test_sql("DROP TABLE IF EXISTS desk_watchers, desk_comments, desk_tickets CASCADE");
    test_sql("DROP PUBLICATION IF EXISTS memo_desk");
    freeReplyObject(test_redis_cmd("FLUSHDB"));
}

static int group_teardown(void **state)
{
    (void)state;
    fresh();
    return 0;
}

static void apply_version(const char *v)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/desk/%s/desk.sql", build, v);
    test_sql_file(path);
}

/* memoc --migrate's SQL from one version to another (it must succeed). */
static char *migration(const char *from, const char *to)
{
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/examples/desk/%s.memo", top, from);
    snprintf(b, sizeof b, "%s/examples/desk/%s.memo", top, to);
    const char *argv[] = {test_env("MEMOC"), "--migrate", a, b, NULL};
    char *out = NULL;
    assert_int_equal(test_run(argv, NULL, &out), 0);
    assert_non_null(strstr(out, "BEGIN;"));
    assert_non_null(strstr(out, "COMMIT;"));
    return out;
}

/* The rows, as version v's generated code reads them (twice: the second
 * read, from the cache, must give the same rows). */
static char *read_rows(const char *v, const char *entity, const char *ids)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/examples/desk/%s/reader' %s %s", build, v, entity,
             ids);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    char *out = NULL;
    assert_int_equal(test_run(argv, NULL, &out), 0);
    return out;
}

static void assert_rows(const char *v, const char *entity, const char *ids,
                        const char *want)
{
    char *got = read_rows(v, entity, ids);
    assert_string_equal(got, want);
    free(got);
}

/* Everything about a schema's tables (prefix_%) a migration must get
 * right, one sorted line each: all but the order of the columns (a column
 * added comes last). */
static char *shape_of(const char *prefix)
{
    char sql[2048];
    snprintf(
        sql, sizeof sql,
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
        " SELECT format('column %%s.%%s %%s null=%%s default=%%s identity=%%s', "
        "table_name,"
        "   column_name, data_type, is_nullable, coalesce(column_default, '-'),"
        "   is_identity) AS x FROM information_schema.columns"
        "  WHERE table_schema = current_schema() AND table_name LIKE '%s\\_%%'"
        " UNION ALL SELECT format('index %%s', indexdef) FROM pg_indexes"
        "  WHERE schemaname = current_schema() AND tablename LIKE '%s\\_%%'"
        " UNION ALL SELECT format('constraint %%s %%s %%s', conrelid::regclass, conname,"
        "   pg_get_constraintdef(oid)) FROM pg_constraint"
        "  WHERE conrelid::regclass::text LIKE '%s\\_%%'"
        " UNION ALL SELECT format('replica identity %%s %%s', relname, relreplident)"
        "  FROM pg_class WHERE relkind = 'r' AND relname LIKE '%s\\_%%'"
        "    AND relnamespace = current_schema()::regnamespace"
        " UNION ALL SELECT format('published %%s', tablename) FROM pg_publication_tables"
        "  WHERE pubname = 'memo_%s') s",
        prefix, prefix, prefix, prefix, prefix);
    return test_sql_value(sql);
}

static char *shape(void)
{
    return shape_of("desk");
}

/* Runs the `memo flush` commands the migration printed (they must work). */
static int run_flushes(const char *m)
{
    int n = 0;
    for (const char *p = m; (p = strstr(p, "\n--   memo ")); n++) {
        p += 11; /* past "\n--   memo " */
        size_t len = strcspn(p, "\n");
        const char *note = strstr(p, "    (");
        if (note && (size_t)(note - p) < len)
            len = (size_t)(note - p);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "'%s' %.*s >/dev/null", test_env("MEMO_TOOL"), (int)len,
                 p);
        const char *argv[] = {"sh", "-c", cmd, NULL};
        assert_int_equal(test_run(argv, NULL, NULL), 0);
    }
    return n;
}

/* The migrated tables against version v's fresh ones. */
static void assert_same_shape_as_fresh(const char *v)
{
    char *migrated = shape();
    fresh();
    apply_version(v);
    char *created = shape();
    assert_string_equal(migrated, created);
    free(migrated);
    free(created);
}

static void seed_v1(void)
{
    fresh();
    apply_version("v1");
    test_sql("INSERT INTO desk_tickets (queue, title, opened) SELECT 'q' || i % 2, "
             "'ticket ' || i,"
             " to_timestamp(1700000000 + i) FROM generate_series(1, 5) i");
}

static void v1_to_v2_to_v3(void **state)
{
    (void)state;
    seed_v1();
    assert_rows("v1", "ticket", "1 2 99",
                "id=1 queue=q1 title=ticket 1 opened=1700000001000000\n"
                "id=2 queue=q0 title=ticket 2 opened=1700000002000000\n"
                "99: none\n");
    long v1_keys = test_redis_count("desk:*");
    assert_true(v1_keys >= 3);

    char *m = migration("v1", "v2");
    /* the tickets' shape changed: v1's entries are not read any more */
    assert_non_null(strstr(m, "flush ticket\n"));
    test_sql(m);
    /* the printed flushes: v2's (none yet) and v1's, which were cached */
    assert_int_equal(run_flushes(m), 3); /* v2: ticket, comment; v1: ticket */
    assert_int_equal(test_redis_count("desk:*"), 0);
    free(m);
    /* the old rows, through v2's code: the new columns as the migration set
     * them (a NOT NULL column gets its type's zero, a version 1) */
    assert_rows("v2", "ticket", "1 2",
                "id=1 queue=q1 title=ticket 1 opened=1700000001000000 assignee=NULL "
                "priority=0 ref=NULL version=1\n"
                "id=2 queue=q0 title=ticket 2 opened=1700000002000000 assignee=NULL "
                "priority=0 ref=NULL version=1\n");
    assert_true(test_redis_count("desk:*") >= 2);
    test_sql(
        "INSERT INTO desk_comments (ticket_id, body) VALUES (1, 'first'), (2, 'second')");
    test_sql("UPDATE desk_tickets SET ref = 'T-1', priority = 3 WHERE id = 1");
    freeReplyObject(test_redis_cmd("FLUSHDB")); /* (no watch runs here) */
    assert_rows("v2", "comment", "1 2",
                "id=1 ticket_id=1 body=first\nid=2 ticket_id=2 body=second\n");

    m = migration("v2", "v3");
    assert_non_null(strstr(m, "flush comment    (no entity of this name now)"));
    test_sql(m);
    free(m);
    test_assert_sql("SELECT to_regclass('desk_comments') IS NULL", "t");
    /* priority is an int64 now, title may be NULL, ref is gone */
    test_sql("UPDATE desk_tickets SET priority = 5000000000, title = NULL WHERE id = 2");
    assert_rows("v3", "ticket", "1 2",
                "id=1 queue=q1 title=ticket 1 opened=1700000001000000 assignee=NULL "
                "priority=3 version=1\n"
                "id=2 queue=q0 title=NULL opened=1700000002000000 assignee=NULL "
                "priority=5000000000 version=1\n");
    test_sql("INSERT INTO desk_watchers (ticket_id, login) VALUES (2, 'ann')");
    assert_rows("v3", "watcher", "1", "id=1 ticket_id=2 login=ann\n");
    assert_same_shape_as_fresh("v3");
}

/* Each step's tables are the fresh ones, back from v2 to v1 too, and v1 to
 * v3 in one step is the same as through v2. */
static void every_step_is_the_fresh_schema(void **state)
{
    (void)state;
    seed_v1();
    char *m = migration("v1", "v2");
    test_sql(m);
    free(m);
    assert_same_shape_as_fresh("v2");
    /* and back: v2's additions dropped, v1's list index again */
    m = migration("v2", "v1");
    test_sql(m);
    free(m);
    assert_same_shape_as_fresh("v1");

    seed_v1();
    m = migration("v1", "v3");
    /* no comments in between: nothing of them to drop */
    assert_null(strstr(m, "desk_comments"));
    test_sql(m);
    free(m);
    assert_rows("v3", "ticket", "5",
                "id=5 queue=q1 title=ticket 5 opened=1700000005000000 assignee=NULL "
                "priority=0 version=1\n");
    assert_same_shape_as_fresh("v3");

    /* migrating to the same version changes nothing */
    m = migration("v3", "v3");
    assert_null(strstr(m, "ADD COLUMN"));
    assert_null(strstr(m, "DROP "));
    assert_non_null(strstr(m, "Every entry the new code reads is one the old code kept"));
    test_sql(m);
    free(m);
    assert_same_shape_as_fresh("v3");
}

/* The changes the desk example does not make (tests/integration/migrate):
 * unique added and dropped, a reference moved, a nullable column made the
 * version (its NULLs become 1), a constraint name past 63 bytes, replica
 * identity back to DEFAULT and to FULL; on rows, to the fresh tables. */
static void constraints_and_identities(void **state)
{
    (void)state;
    char dir[] = "/tmp/memo-migrate-XXXXXX", a[1024], b[1024], sql[1200];
    assert_non_null(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/tests/integration/migrate/shop_a.memo", top);
    snprintf(b, sizeof b, "%s/tests/integration/migrate/shop_b.memo", top);
    const char *gen_a[] = {test_env("MEMOC"), "-o", dir, a, NULL};
    const char *drop = "DROP TABLE IF EXISTS shop_notes, shop_customers, shop_vendors, "
                       "shop_items_of_a_catalogue_with_a_rather_long_table_name CASCADE; "
                       "DROP PUBLICATION IF EXISTS memo_shop";
    test_sql(drop);
    assert_int_equal(test_run(gen_a, NULL, NULL), 0);
    snprintf(sql, sizeof sql, "%s/shop.sql", dir);
    test_sql_file(sql);
    test_sql(
        "INSERT INTO shop_customers (email) SELECT 'c' || i FROM generate_series(1, 3) i;"
        "INSERT INTO shop_vendors (name) SELECT 'v' || i FROM generate_series(1, 3) i;"
        "INSERT INTO shop_items_of_a_catalogue_with_a_rather_long_table_name"
        " (sku, maker_id, stock) VALUES ('a', 1, NULL), ('b', 2, 5), ('c', 3, NULL);"
        "INSERT INTO shop_notes (body) VALUES ('n')");

    const char *argv[] = {test_env("MEMOC"), "--migrate", a, b, NULL};
    char *m = NULL;
    assert_int_equal(test_run(argv, NULL, &m), 0);
    test_sql(m);
    free(m);
    test_assert_sql("SELECT string_agg(sku || '=' || stock, ' ' ORDER BY id) FROM "
                    "shop_items_of_a_catalogue_with_a_rather_long_table_name",
                    "a=1 b=5 c=1");
    char *migrated = shape_of("shop");
    test_sql(drop);
    const char *gen_b[] = {test_env("MEMOC"), "-o", dir, b, NULL};
    assert_int_equal(test_run(gen_b, NULL, NULL), 0);
    test_sql_file(sql);
    char *created = shape_of("shop");
    assert_string_equal(migrated, created);
    /* what the pair is about is really there */
    assert_non_null(strstr(created, "replica identity shop_items_of_a_catalogue_with_a_"
                                    "rather_long_table_name d"));
    assert_non_null(strstr(created, "replica identity shop_notes f"));
    assert_non_null(strstr(created, "_c53e7d59 FOREIGN KEY"));
    assert_non_null(strstr(created, "UNIQUE (email)"));
    free(migrated);
    free(created);
    test_sql(drop);
    snprintf(sql, sizeof sql, "rm -rf '%s'", dir);
    const char *rm[] = {"sh", "-c", sql, NULL};
    test_run(rm, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(v1_to_v2_to_v3),
        cmocka_unit_test(every_step_is_the_fresh_schema),
        cmocka_unit_test(constraints_and_identities),
    };
    return cmocka_run_group_tests_name("memoc --migrate", tests, group_setup,
                                       group_teardown);
}
