/* Paging and counting lists, on the ticket schema's lists ordered by a
 * nullable due date (NULLs last ascending, first descending, as PostgreSQL
 * orders them) with ties: walking a queue page by page with _after, from
 * the list's first page, gives every ticket exactly once and in the order
 * PostgreSQL gives (asked here with plain SQL), for every page size; more
 * and _count say how much there is; a transaction pages too. Real servers. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "ticket.h"

static memo_repo *repo;
static const char *const tables[] = {"tickets", NULL};

enum { TICKETS = 37, NULLS = 9 };

static int group_setup(void **state)
{
    test_schema_sql("ticket");
    repo = *state = test_open(NULL);
    return 0;
}

/* 37 tickets in queue q: 9 without a due date, the others on 6 dates (ties
 * broken by id); 3 in another queue. */
static int setup(void **state)
{
    (void)state;
    test_reset(tables);
    for (int i = 0; i < TICKETS + 3; i++) {
        ticket_ticket t = {.queue = (char *)(i < TICKETS ? "q" : "other"),
                           .title = (char *)"t",
                           .due_at_is_null = i % 4 == 1 && i < 4 * NULLS,
                           .due_at = 1000 * ((i * 7) % 6)};
        assert_int_equal(ticket_ticket_insert(repo, &t), MEMO_OK);
    }
    return 0;
}

/* The ids of queue q in the list's order, from PostgreSQL. */
static void expected(bool descending, int64_t *ids)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(id::text, ',' ORDER BY due_at %s, id %s) FROM tickets "
             "WHERE queue = 'q'",
             descending ? "DESC" : "ASC", descending ? "DESC" : "ASC");
    char *all = test_sql_value(sql), *p = all;
    for (int i = 0; i < TICKETS; i++) {
        ids[i] = strtoll(p, &p, 10);
        p += *p == ',';
    }
    free(all);
}

static size_t append(ticket_ticket_list *l, int64_t *got, size_t n, ticket_ticket *last)
{
    for (size_t i = 0; i < l->len; i++) {
        assert_true(n < TICKETS);
        got[n++] = l->items[i].id;
    }
    if (l->len) {
        ticket_ticket_clear(last);
        *last = l->items[l->len - 1];
        memset(&l->items[l->len - 1], 0, sizeof *last); /* last owns its strings now */
    }
    ticket_ticket_list_clear(l);
    return n;
}

/* Walks one list: its first page (10, more), then pages of `size`. */
static void walk(memo_tx *tx, unsigned list, size_t size)
{
    int64_t want[TICKETS], got[TICKETS];
    expected(list == 1, want);
    ticket_ticket_list l = {0};
    ticket_ticket last = {0};
    memo_status st = list == 0 ? (tx ? ticket_ticket_by_due_tx(tx, "q", &l)
                                     : ticket_ticket_by_due(repo, "q", &l))
                               : (tx ? ticket_ticket_by_urgency_tx(tx, "q", &l)
                                     : ticket_ticket_by_urgency(repo, "q", &l));
    assert_int_equal(st, MEMO_OK);
    assert_int_equal(l.len, 10);
    assert_true(l.more);
    size_t n = append(&l, got, 0, &last);
    for (int pages = 0; n < TICKETS; pages++) {
        assert_true(pages < TICKETS);
        st = list == 0
                 ? (tx ? ticket_ticket_by_due_after_tx(tx, "q", &last, size, &l)
                       : ticket_ticket_by_due_after(repo, "q", &last, size, &l))
                 : (tx ? ticket_ticket_by_urgency_after_tx(tx, "q", &last, size, &l)
                       : ticket_ticket_by_urgency_after(repo, "q", &last, size, &l));
        assert_int_equal(st, MEMO_OK);
        assert_true(l.len >= 1 && l.len <= size);
        bool more = l.more;
        n = append(&l, got, n, &last);
        assert_true(more == (n < TICKETS));
    }
    for (int i = 0; i < TICKETS; i++)
        if (got[i] != want[i])
            fail_msg("list %u, pages of %zu: position %d is %lld, not %lld", list, size,
                     i, (long long)got[i], (long long)want[i]);
    /* past the end: nothing, and nothing more */
    st = list == 0 ? ticket_ticket_by_due_after(repo, "q", &last, size, &l)
                   : ticket_ticket_by_urgency_after(repo, "q", &last, size, &l);
    assert_int_equal(st, MEMO_OK);
    assert_int_equal(l.len, 0);
    assert_false(l.more);
    ticket_ticket_clear(&last);
}

static void pages_cover_every_row_once(void **state)
{
    (void)state;
    for (unsigned list = 0; list < 2; list++)
        for (size_t size = 1; size <= 8; size++)
            walk(NULL, list, size);
    memo_tx *tx;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    walk(tx, 0, 5);
    walk(tx, 1, 3);
    assert_int_equal(memo_rollback(tx), MEMO_OK);
}

static void counts_and_bad_pages(void **state)
{
    (void)state;
    int64_t n = 0;
    assert_int_equal(ticket_ticket_by_due_count(repo, "q", &n), MEMO_OK);
    assert_int_equal(n, TICKETS);
    assert_int_equal(ticket_ticket_by_urgency_count(repo, "other", &n), MEMO_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ticket_ticket_by_due_count(repo, "none", &n), MEMO_OK);
    assert_int_equal(n, 0);
    /* a new ticket of the queue: both lists' counts follow */
    ticket_ticket t = {
        .queue = (char *)"q", .title = (char *)"new", .due_at_is_null = true};
    assert_int_equal(ticket_ticket_insert(repo, &t), MEMO_OK);
    assert_int_equal(ticket_ticket_by_urgency_count(repo, "q", &n), MEMO_OK);
    assert_int_equal(n, TICKETS + 1);
    /* a page of 0 or of more than 10 000 rows, no last row, no queue */
    ticket_ticket_list l = {0};
    assert_int_equal(ticket_ticket_by_due_after(repo, "q", &t, 0, &l), MEMO_ERR_ARG);
    assert_int_equal(ticket_ticket_by_due_after(repo, "q", &t, 10001, &l), MEMO_ERR_ARG);
    assert_int_equal(ticket_ticket_by_due_after(repo, "q", NULL, 5, &l), MEMO_ERR_ARG);
    assert_int_equal(ticket_ticket_by_due_after(repo, NULL, &t, 5, &l), MEMO_ERR_ARG);
    assert_int_equal(ticket_ticket_by_due_count(repo, "q", NULL), MEMO_ERR_ARG);
    /* the new ticket (no due date, the highest id) is the last ascending */
    assert_int_equal(ticket_ticket_by_due_after(repo, "q", &t, 5, &l), MEMO_OK);
    assert_int_equal(l.len, 0);
    assert_false(l.more);
}

/* ---------------------------------------------------------- versioned rows */

static ticket_ticket one_ticket(const char *title)
{
    ticket_ticket t = {.queue = (char *)"v",
                       .title = (char *)title,
                       .due_at_is_null = true,
                       .version = 42}; /* ignored: an insert starts at 1 */
    assert_int_equal(ticket_ticket_insert(repo, &t), MEMO_OK);
    assert_int_equal(t.version, 1);
    return t;
}

static void assert_stored(int64_t id, const char *title, const char *version)
{
    char sql[128];
    snprintf(sql, sizeof sql,
             "SELECT title || ' ' || version FROM tickets WHERE id = %lld",
             (long long)id);
    char want[128];
    snprintf(want, sizeof want, "%s %s", title, version);
    test_assert_sql(sql, want);
}

/* Every update compares the version the caller read and writes back the
 * next; a stale copy is MEMO_CONFLICT and changes nothing, in the database
 * or the cache; a missing row is MEMO_NOT_FOUND still. */
static void versions_refuse_stale_writes(void **state)
{
    (void)state;
    ticket_ticket t = one_ticket("first");
    ticket_ticket got = {0};
    assert_int_equal(ticket_ticket_get(repo, t.id, &got), MEMO_OK); /* cached */
    assert_int_equal(got.version, 1);
    ticket_ticket_clear(&got);
    ticket_ticket stale = t;
    t.title = (char *)"second";
    assert_int_equal(ticket_ticket_update(repo, &t), MEMO_OK);
    assert_int_equal(t.version, 2);
    assert_stored(t.id, "second", "2");

    stale.title = (char *)"lost";
    assert_int_equal(ticket_ticket_update(repo, &stale), MEMO_CONFLICT);
    assert_non_null(strstr(memo_last_error(repo), "has version 2, not 1"));
    assert_int_equal(stale.version, 1);
    assert_int_equal(ticket_ticket_update_fields(repo, &stale, TICKET_TICKET_TITLE),
                     MEMO_CONFLICT);
    assert_int_equal(ticket_ticket_upsert(repo, &stale), MEMO_CONFLICT);
    assert_stored(t.id, "second", "2");
    assert_int_equal(ticket_ticket_get(repo, t.id, &got), MEMO_OK);
    assert_string_equal(got.title, "second");
    assert_int_equal(got.version, 2);
    ticket_ticket_clear(&got);

    /* the version is memo's: a mask of it alone writes nothing */
    assert_int_equal(ticket_ticket_update_fields(repo, &t, TICKET_TICKET_VERSION),
                     MEMO_ERR_ARG);
    assert_int_equal(t.version, 2);
    /* a partial update checks and moves the version too */
    t.assignee = (char *)"ann";
    t.title = NULL; /* not written */
    assert_int_equal(ticket_ticket_update_fields(repo, &t, TICKET_TICKET_ASSIGNEE),
                     MEMO_OK);
    assert_int_equal(t.version, 3);
    assert_stored(t.id, "second", "3");
    /* an upsert: of the stored version, an update; of a new key, 1 */
    t.title = (char *)"third";
    assert_int_equal(ticket_ticket_upsert(repo, &t), MEMO_OK);
    assert_int_equal(t.version, 4);
    assert_stored(t.id, "third", "4");
    ticket_ticket n = {.id = t.id + 1000,
                       .queue = (char *)"v",
                       .title = (char *)"up",
                       .due_at_is_null = true,
                       .version = 9};
    assert_int_equal(ticket_ticket_upsert(repo, &n), MEMO_OK);
    assert_int_equal(n.version, 1);
    assert_stored(n.id, "up", "1");

    /* no such row: not found, as without a version */
    ticket_ticket none = {
        .id = t.id + 2000, .queue = (char *)"v", .title = (char *)"x", .version = 1};
    assert_int_equal(ticket_ticket_update(repo, &none), MEMO_NOT_FOUND);
    assert_int_equal(ticket_ticket_update_fields(repo, &none, TICKET_TICKET_TITLE),
                     MEMO_NOT_FOUND);
    /* in a transaction: the same, and a rollback keeps the stored version */
    memo_tx *tx = NULL;
    assert_int_equal(memo_begin(repo, &tx), MEMO_OK);
    assert_int_equal(ticket_ticket_update_tx(tx, &t), MEMO_OK);
    assert_int_equal(t.version, 5);
    assert_int_equal(ticket_ticket_update_tx(tx, &stale), MEMO_CONFLICT);
    assert_int_equal(memo_rollback(tx), MEMO_OK);
    assert_stored(t.id, "third", "4");
}

typedef struct racer {
    memo_repo *repo;
    ticket_ticket row;
    pthread_barrier_t *start;
    memo_status st;
} racer;

static void *race_update(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->start);
    r->st = ticket_ticket_update(r->repo, &r->row);
    return NULL;
}

/* Two writers read the same version and update at once, round after
 * round: exactly one wins each round, the other gets MEMO_CONFLICT, and
 * the stored version counts the winners. (Without the version both would
 * succeed, the second overwriting the first.) */
static void racing_versioned_updates(void **state)
{
    (void)state;
    enum { ROUNDS = 40 };
    ticket_ticket t = one_ticket("race");
    memo_repo *other = test_open(NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    const char *last = NULL;
    for (int round = 0; round < ROUNDS; round++) {
        racer r[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            r[i] = (racer){i ? other : repo, t, &start, MEMO_OK};
            r[i].row.title = (char *)(i ? "b" : "a");
            pthread_create(&th[i], NULL, race_update, &r[i]);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        int winner = r[0].st == MEMO_OK ? 0 : 1;
        assert_int_equal(r[winner].st, MEMO_OK);
        assert_int_equal(r[1 - winner].st, MEMO_CONFLICT);
        assert_int_equal(r[winner].row.version, t.version + 1);
        assert_int_equal(r[1 - winner].row.version, t.version);
        last = winner ? "b" : "a";
        t.version++;
        ticket_ticket got = {0};
        assert_int_equal(ticket_ticket_get(repo, t.id, &got), MEMO_OK);
        assert_string_equal(got.title, winner ? "b" : "a");
        assert_int_equal(got.version, t.version);
        ticket_ticket_clear(&got);
    }
    char want[16];
    snprintf(want, sizeof want, "%d", ROUNDS + 1);
    assert_stored(t.id, last, want);
    pthread_barrier_destroy(&start);
    memo_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(pages_cover_every_row_once, setup),
        cmocka_unit_test_setup(counts_and_bad_pages, setup),
        cmocka_unit_test_setup(versions_refuse_stale_writes, setup),
        cmocka_unit_test_setup(racing_versioned_updates, setup),
    };
    return cmocka_run_group_tests_name("list pages and counts", tests, group_setup,
                                       test_group_close);
}
