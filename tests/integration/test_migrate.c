/* memoc --migrate on real servers, along examples/desk's versions: v1's
 * tables holding rows (and Redis holding v1's cached entries) are migrated
 * to v2, then to v3, and after each step the new version's generated code
 * (a reader linked with it) reads the old rows, with the values the
 * migration gave the new columns; the migrated tables are exactly the
 * tables the new version's .sql creates fresh (columns, defaults,
 * identity, indexes, constraints, replica identity, publication); v1 to v3
 * in one step too. What memoc refuses is in tests/gen/test_memoc.c. */
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

/* Everything about the schema's tables a migration must get right, one
 * sorted line each. */
static char *shape(void)
{
    return test_sql_value(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
        " SELECT format('column %s.%s %s null=%s default=%s identity=%s', table_name,"
        "   column_name, data_type, is_nullable, coalesce(column_default, '-'),"
        "   is_identity) AS x FROM information_schema.columns"
        "  WHERE table_schema = current_schema()"
        "    AND table_name IN ('desk_tickets', 'desk_comments', 'desk_watchers')"
        " UNION ALL SELECT format('index %s', indexdef) FROM pg_indexes"
        "  WHERE schemaname = current_schema()"
        "    AND tablename IN ('desk_tickets', 'desk_comments', 'desk_watchers')"
        " UNION ALL SELECT format('constraint %s %s %s', conrelid::regclass, conname,"
        "   pg_get_constraintdef(oid)) FROM pg_constraint"
        "  WHERE conrelid::regclass::text IN ('desk_tickets', 'desk_comments', "
        "'desk_watchers')"
        " UNION ALL SELECT format('replica identity %s %s', relname, relreplident)"
        "  FROM pg_class WHERE relkind = 'r'"
        "    AND relname IN ('desk_tickets', 'desk_comments', 'desk_watchers')"
        "    AND relnamespace = current_schema()::regnamespace"
        " UNION ALL SELECT format('published %s', tablename) FROM pg_publication_tables"
        "  WHERE pubname = 'memo_desk') s");
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
    free(m);
    /* the old rows, through v2's code: the new columns as the migration set
     * them (a NOT NULL column gets its type's zero, a version 1) */
    assert_rows("v2", "ticket", "1 2",
                "id=1 queue=q1 title=ticket 1 opened=1700000001000000 assignee=NULL "
                "priority=0 ref=NULL version=1\n"
                "id=2 queue=q0 title=ticket 2 opened=1700000002000000 assignee=NULL "
                "priority=0 ref=NULL version=1\n");
    /* v1's entries are still there (nobody reads them), v2's beside them */
    assert_true(test_redis_count("desk:*") > v1_keys);
    test_sql(
        "INSERT INTO desk_comments (ticket_id, body) VALUES (1, 'first'), (2, 'second')");
    test_sql("UPDATE desk_tickets SET ref = 'T-1', priority = 3 WHERE id = 1");
    freeReplyObject(test_redis_cmd("FLUSHDB")); /* (no watch runs here) */
    assert_rows("v2", "comment", "1 2",
                "id=1 ticket_id=1 body=first\nid=2 ticket_id=2 body=second\n");

    m = migration("v2", "v3");
    assert_non_null(strstr(m, "flush comment    (entity removed)"));
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
    assert_null(strstr(m, "ALTER TABLE \"desk_tickets\""));
    assert_non_null(strstr(m, "Every cached entry stays readable"));
    test_sql(m);
    free(m);
    assert_same_shape_as_fresh("v3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(v1_to_v2_to_v3),
        cmocka_unit_test(every_step_is_the_fresh_schema),
    };
    return cmocka_run_group_tests_name("memoc --migrate", tests, group_setup,
                                       group_teardown);
}
