/* Statistics helpers: latency histograms and their quantiles, status and
 * operation names, TTL jitter. Pure: no servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "internal.h"

static memop_hist *hist_new(void)
{
    memop_hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    return h;
}

/* |got - want| within 25% of want; exact below 8, where buckets are single. */
static void assert_near(uint64_t got, uint64_t want)
{
    uint64_t diff = got > want ? got - want : want - got;
    if (want < 8 ? diff != 0 : diff * 4 > want)
        fail_msg("%llu is not within 25%% of %llu", (unsigned long long)got,
                 (unsigned long long)want);
}

/* ------------------------------------------------------------ histograms */

static void test_empty_is_zero(void **state)
{
    (void)state;
    memop_hist *h = hist_new();
    assert_int_equal(memop_hist_quantile(h, 0.0), 0);
    assert_int_equal(memop_hist_quantile(h, 0.5), 0);
    assert_int_equal(memop_hist_quantile(h, 0.99), 0);
    assert_int_equal(memop_hist_quantile(h, 1.0), 0);
    free(h);
}

/* One value: every quantile is its bucket, within 25% of it. */
static void test_single_values(void **state)
{
    (void)state;
    uint64_t values[200];
    size_t n = 0;
    for (uint64_t v = 0; v < 70; v++)
        values[n++] = v;
    for (unsigned s = 7; s < 32; s++) {
        values[n++] = (1ull << s) - 1;
        values[n++] = 1ull << s;
        values[n++] = (1ull << s) + (1ull << (s - 1)) - 1; /* 1.5 x, minus one */
        values[n++] = (1ull << s) * 7 / 4;
    }
    values[n++] = 1000;
    values[n++] = 123457;
    values[n++] = 999999;
    assert_true(n <= sizeof values / sizeof values[0]);
    for (size_t i = 0; i < n; i++) {
        memop_hist *h = hist_new();
        memop_hist_add(h, values[i]);
        assert_near(memop_hist_quantile(h, 0.0), values[i]);
        assert_near(memop_hist_quantile(h, 0.5), values[i]);
        assert_near(memop_hist_quantile(h, 1.0), values[i]);
        free(h);
    }
}

/* Values far beyond the range land in the last bucket, not past it. */
static void test_huge_values(void **state)
{
    (void)state;
    memop_hist *h = hist_new();
    memop_hist_add(h, UINT64_MAX);
    memop_hist_add(h, 1ull << 40);
    uint64_t top = 0;
    for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++)
        top += h->b[b];
    assert_int_equal(top, 2);
    assert_int_equal(h->b[MEMOP_HIST_BUCKETS - 1], 2);
    assert_true(memop_hist_quantile(h, 0.5) >= 1ull << 32);
    free(h);
}

static void test_uniform(void **state)
{
    (void)state;
    memop_hist *h = hist_new();
    for (uint64_t v = 1; v <= 1000; v++)
        memop_hist_add(h, v);
    assert_near(memop_hist_quantile(h, 0.0), 1);
    assert_near(memop_hist_quantile(h, 0.1), 100);
    assert_near(memop_hist_quantile(h, 0.5), 500);
    assert_near(memop_hist_quantile(h, 0.9), 900);
    assert_near(memop_hist_quantile(h, 0.99), 990);
    assert_near(memop_hist_quantile(h, 1.0), 1000);
    free(h);
}

/* 90 fast calls and 10 slow ones: p50 and p90 are fast, p91 and p99 slow. */
static void test_bimodal(void **state)
{
    (void)state;
    memop_hist *h = hist_new();
    for (int i = 0; i < 10; i++)
        memop_hist_add(h, 10000);
    for (int i = 0; i < 90; i++)
        memop_hist_add(h, 10);
    assert_near(memop_hist_quantile(h, 0.5), 10);
    assert_near(memop_hist_quantile(h, 0.9), 10);
    assert_near(memop_hist_quantile(h, 0.91), 10000);
    assert_near(memop_hist_quantile(h, 0.99), 10000);
    assert_near(memop_hist_quantile(h, 1.0), 10000);
    free(h);
}

static void test_constant(void **state)
{
    (void)state;
    memop_hist *h = hist_new();
    for (int i = 0; i < 5000; i++)
        memop_hist_add(h, 2500);
    for (int i = 0; i <= 20; i++)
        assert_near(memop_hist_quantile(h, i / 20.0), 2500);
    free(h);
}

/* Quantiles never decrease with q, and the counts add up. */
static void test_monotonic(void **state)
{
    (void)state;
    memop_hist *h = hist_new();
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memop_hist_add(h, x % 5000000); /* up to 5 s */
    }
    uint64_t total = 0;
    for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++)
        total += h->b[b];
    assert_int_equal(total, 10000);
    uint64_t prev = 0;
    for (int i = 0; i <= 100; i++) {
        uint64_t v = memop_hist_quantile(h, i / 100.0);
        assert_true(v >= prev);
        prev = v;
    }
    /* uniform on [0, 5e6): the median near 2.5e6 (sampling plus bucket error) */
    uint64_t p50 = memop_hist_quantile(h, 0.5);
    assert_true(p50 > 1800000 && p50 < 3200000);
    free(h);
}

/* ---------------------------------------------------------------- names */

static void test_status_strings(void **state)
{
    (void)state;
    static const struct {
        memo_status st;
        const char *text;
    } all[] = {
#define MEMO_STATUS_ROW(name, value, text) {name, text},
        MEMO_STATUS_LIST(MEMO_STATUS_ROW)
#undef MEMO_STATUS_ROW
    };
    size_t n = sizeof all / sizeof all[0];
    assert_true(n >= 13);
    for (size_t i = 0; i < n; i++) {
        const char *s = memo_status_str(all[i].st);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        assert_string_equal(s, all[i].text);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s, memo_status_str(all[j].st)) == 0)
                fail_msg("statuses %d and %d share \"%s\"", all[i].st, all[j].st, s);
    }
    assert_string_equal(memo_status_str(MEMO_OK), "ok");
    assert_string_equal(memo_status_str(MEMO_NOT_FOUND), "not found");

    /* a value outside the list still gets a string, and not a real one */
    const char *unknown = memo_status_str((memo_status)12345);
    assert_non_null(unknown);
    assert_true(unknown[0] != '\0');
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(unknown, all[i].text);
}

static void test_op_names(void **state)
{
    (void)state;
    static const char *const want[MEMOP_OP_COUNT] = {
        "get", "get_by", "list", "get_many", "insert", "update", "delete",
    };
    for (unsigned op = 0; op < MEMOP_OP_COUNT; op++)
        assert_string_equal(memop_op_name((enum memop_op)op), want[op]);
    assert_string_equal(memop_op_name(MEMOP_OP_COUNT), "?");
}

/* ----------------------------------------------------------------- jitter */

static void check_jitter(uint64_t ttl, unsigned pct)
{
    uint64_t hi = ttl + ttl * pct / 100, lo_seen = UINT64_MAX, hi_seen = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = memop_ttl_ms(ttl, pct);
        if (v < ttl || v > hi)
            fail_msg("ttl %llu jitter %u%%: %llu outside [%llu, %llu]",
                     (unsigned long long)ttl, pct, (unsigned long long)v,
                     (unsigned long long)ttl, (unsigned long long)hi);
        lo_seen = v < lo_seen ? v : lo_seen;
        hi_seen = v > hi_seen ? v : hi_seen;
    }
    /* spread over the range: 1000 uniform draws all missing a quarter of it
     * has probability (3/4)^1000 */
    uint64_t spread = hi - ttl;
    assert_true(lo_seen < ttl + spread / 4);
    assert_true(hi_seen > hi - spread / 4);
}

static void test_ttl_jitter_bounds(void **state)
{
    (void)state;
    check_jitter(10000, 10);
    check_jitter(60000, 1);
    check_jitter(1000, 100);
    check_jitter(300000, 25);
    check_jitter(86400000ull * 30, 50); /* 30 days */
}

static void test_ttl_without_jitter(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(memop_ttl_ms(10000, 0), 10000);
        assert_int_equal(memop_ttl_ms(1, 0), 1);
    }
    /* no TTL stays no TTL, whatever the jitter */
    assert_int_equal(memop_ttl_ms(0, 0), 0);
    assert_int_equal(memop_ttl_ms(0, 50), 0);
}

static void test_ttl_jitter_varies(void **state)
{
    (void)state;
    uint64_t first = memop_ttl_ms(10000, 10);
    bool differ = false;
    for (int i = 0; i < 1000 && !differ; i++)
        differ = memop_ttl_ms(10000, 10) != first;
    assert_true(differ);
}

/* Too small to spread: stays within the bound, which is the TTL itself. */
static void test_ttl_tiny(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++) {
        uint64_t v = memop_ttl_ms(5, 10); /* 10% of 5 ms rounds to 0 */
        assert_int_equal(v, 5);
        v = memop_ttl_ms(10, 10);
        assert_true(v == 10 || v == 11);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_zero),
        cmocka_unit_test(test_single_values),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_bimodal),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_op_names),
        cmocka_unit_test(test_ttl_jitter_bounds),
        cmocka_unit_test(test_ttl_without_jitter),
        cmocka_unit_test(test_ttl_jitter_varies),
        cmocka_unit_test(test_ttl_tiny),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
