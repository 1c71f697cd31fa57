/* Paging and counting lists, on the ticket schema's lists ordered by a
 * nullable due date (NULLs last ascending, first descending, as PostgreSQL
 * orders them) with ties: walking a queue page by page with _after, from
 * the list's first page, gives every ticket exactly once and in the order
 * PostgreSQL gives (asked here with plain SQL), for every page size; more
 * and _count say how much there is; a transaction pages too. Real servers. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(pages_cover_every_row_once, setup),
        cmocka_unit_test_setup(counts_and_bad_pages, setup),
    };
    return cmocka_run_group_tests_name("list pages and counts", tests, group_setup,
                                       test_group_close);
}
