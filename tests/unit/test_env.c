/* memo_config_from_env: what a service reads from its environment, and a
 * clear error naming the variable when a value is wrong. */
#define _DEFAULT_SOURCE 1 /* setenv */
#include "test.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const vars[] = {
    "MEMO_REDIS_URL",       "REDIS_URL",
    "MEMO_DATABASE_URL",    "DATABASE_URL",
    "MEMO_KEY_PREFIX",      "MEMO_DEFAULT_TTL",
    "MEMO_NEGATIVE_TTL",    "MEMO_CONNECT_TIMEOUT",
    "MEMO_COMMAND_TIMEOUT", "MEMO_QUERY_TIMEOUT",
    "MEMO_LEASE",           "MEMO_LEASE_WAIT",
    "MEMO_POOL_SIZE",       "MEMO_STATS_PUBLISH",
    "MEMO_OPEN_DEGRADED",   "MEMO_POOL_WAIT",
    "MEMO_MAX_VALUE_BYTES", "MEMO_NEAR_OFF",
    "MEMO_NEAR_MAX_BYTES",
};

static int clean(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("REDIS_URL", "redis://r:1/0", 1);
    setenv("DATABASE_URL", "postgresql://d/x", 1);
    return 0;
}

static void defaults(void **state)
{
    (void)state;
    memo_config c = {0};
    memo_error e;
    assert_int_equal(memo_config_from_env(&c, &e), MEMO_OK);
    assert_string_equal(c.redis_url, "redis://r:1/0");
    assert_string_equal(c.database_url, "postgresql://d/x");
    assert_null(c.key_prefix);
    assert_int_equal(c.pool_size, 0); /* zero: memo_open's default */
    assert_int_equal(c.default_ttl_ms, 0);
    assert_int_equal(c.flags, 0);
}

static void memo_variables_win(void **state)
{
    (void)state;
    setenv("MEMO_REDIS_URL", "redis://m:2", 1);
    setenv("MEMO_DATABASE_URL", "host=m", 1);
    setenv("MEMO_KEY_PREFIX", "app:", 1);
    setenv("MEMO_DEFAULT_TTL", "10m", 1);
    setenv("MEMO_NEGATIVE_TTL", "30s", 1);
    setenv("MEMO_CONNECT_TIMEOUT", "1500", 1);
    setenv("MEMO_COMMAND_TIMEOUT", "250ms", 1);
    setenv("MEMO_QUERY_TIMEOUT", "1h", 1);
    setenv("MEMO_LEASE", "2s", 1);
    setenv("MEMO_LEASE_WAIT", "3s", 1);
    setenv("MEMO_POOL_SIZE", "16", 1);
    setenv("MEMO_STATS_PUBLISH", "off", 1);
    setenv("MEMO_OPEN_DEGRADED", "1", 1);
    setenv("MEMO_POOL_WAIT", "250ms", 1);
    setenv("MEMO_MAX_VALUE_BYTES", "65536", 1);
    setenv("MEMO_NEAR_OFF", "1", 1);
    setenv("MEMO_NEAR_MAX_BYTES", "1048576", 1);
    memo_config c = {0};
    memo_error e;
    assert_int_equal(memo_config_from_env(&c, &e), MEMO_OK);
    assert_string_equal(c.redis_url, "redis://m:2");
    assert_string_equal(c.database_url, "host=m");
    assert_string_equal(c.key_prefix, "app:");
    assert_int_equal(c.default_ttl_ms, 600000);
    assert_int_equal(c.negative_ttl_ms, 30000);
    assert_int_equal(c.connect_timeout_ms, 1500);
    assert_int_equal(c.command_timeout_ms, 250);
    assert_int_equal(c.query_timeout_ms, 3600000);
    assert_int_equal(c.lease_ms, 2000);
    assert_int_equal(c.lease_wait_ms, 3000);
    assert_int_equal(c.pool_size, 16);
    assert_int_equal(c.pool_wait_ms, 250);
    assert_int_equal(c.max_value_bytes, 65536);
    assert_int_equal(c.near_max_bytes, 1048576);
    assert_int_equal(c.flags, MEMO_STATS_PRIVATE | MEMO_OPEN_DEGRADED | MEMO_NEAR_OFF);
    setenv("MEMO_STATS_PUBLISH", "5s", 1);
    assert_int_equal(memo_config_from_env(&c, &e), MEMO_OK);
    assert_int_equal(c.stats_publish_ms, 5000);
    assert_int_equal(c.flags & MEMO_STATS_PRIVATE, 0);
}

static void bad_values_name_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value;
    } cases[] = {
        {"MEMO_DEFAULT_TTL", "ten minutes"},
        {"MEMO_DEFAULT_TTL", "0"},
        {"MEMO_NEGATIVE_TTL", "5x"},
        {"MEMO_LEASE", "-1s"},
        {"MEMO_QUERY_TIMEOUT", "99999999d"},
        {"MEMO_POOL_SIZE", "0"},
        {"MEMO_POOL_SIZE", "many"},
        {"MEMO_POOL_SIZE", "5000"},
        {"MEMO_OPEN_DEGRADED", "yes"},
        {"MEMO_STATS_PUBLISH", "sometimes"},
        {"MEMO_POOL_WAIT", "soon"},
        {"MEMO_MAX_VALUE_BYTES", "12"},
        {"MEMO_MAX_VALUE_BYTES", "1G"},
        {"MEMO_NEAR_OFF", "yes"},
        {"MEMO_NEAR_MAX_BYTES", "12"},
        {"MEMO_NEAR_MAX_BYTES", "-5"},
        {"MEMO_NEAR_MAX_BYTES", "99999999999999999999"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clean(NULL);
        setenv(cases[i].var, cases[i].value, 1);
        memo_config c = {0};
        memo_error e;
        assert_int_equal(memo_config_from_env(&c, &e), MEMO_ERR_CONFIG);
        assert_int_equal(e.status, MEMO_ERR_CONFIG);
        if (!strstr(e.message, cases[i].var) || !strstr(e.message, cases[i].value))
            fail_msg("%s=%s: message \"%s\"", cases[i].var, cases[i].value, e.message);
    }
    memo_config c = {0};
    memo_error e;
    assert_int_equal(memo_config_from_env(NULL, &e), MEMO_ERR_ARG);
    clean(NULL);
    setenv("MEMO_LEASE", "nope", 1);
    assert_int_equal(memo_config_from_env(&c, NULL),
                     MEMO_ERR_CONFIG); /* err may be NULL */
}

/* Unset variables keep what the caller set, URLs included: the environment
 * only overrides. */
static void unset_variables_keep_the_callers_values(void **state)
{
    (void)state;
    unsetenv("REDIS_URL");
    unsetenv("DATABASE_URL");
    setenv("MEMO_REDIS_URL", "", 1); /* empty is unset */
    memo_config c = {.redis_url = "redis://mine",
                     .database_url = "host=mine",
                     .key_prefix = "mine:",
                     .pool_size = 4,
                     .lease_ms = 700,
                     .flags = MEMO_STATS_PRIVATE};
    memo_error e;
    assert_int_equal(memo_config_from_env(&c, &e), MEMO_OK);
    assert_string_equal(c.redis_url, "redis://mine");
    assert_string_equal(c.database_url, "host=mine");
    assert_string_equal(c.key_prefix, "mine:");
    assert_int_equal(c.pool_size, 4);
    assert_int_equal(c.lease_ms, 700);
    assert_int_equal(c.flags, MEMO_STATS_PRIVATE);
    /* what the environment sets wins */
    setenv("MEMO_POOL_SIZE", "12", 1);
    setenv("DATABASE_URL", "host=env", 1);
    assert_int_equal(memo_config_from_env(&c, &e), MEMO_OK);
    assert_int_equal(c.pool_size, 12);
    assert_string_equal(c.database_url, "host=env");
    assert_string_equal(c.redis_url, "redis://mine");
    /* nothing set at all is no error: memo_open says what is missing */
    memo_config none = {0};
    unsetenv("DATABASE_URL");
    assert_int_equal(memo_config_from_env(&none, &e), MEMO_OK);
    assert_null(none.redis_url);
    assert_null(none.database_url);
}

/* An application built with an older memo.h has a shorter memo_config: its
 * size says so, and nothing past it is written. */
static void older_struct_is_not_overrun(void **state)
{
    (void)state;
    setenv("MEMO_MAX_VALUE_BYTES", "65536", 1);
    setenv("MEMO_LEASE", "2s", 1);
    union {
        memo_config c;
        unsigned char bytes[sizeof(memo_config) + 16];
    } u;
    memset(&u, 0xA5, sizeof u);
    size_t older = offsetof(memo_config, max_value_bytes);
    memset(&u.c, 0, older);
    u.c.size = older;
    memo_error e;
    assert_int_equal(memo_config_from_env(&u.c, &e), MEMO_OK);
    assert_int_equal(u.c.lease_ms, 2000); /* a field it has */
    for (size_t i = older; i < sizeof u; i++)
        if (u.bytes[i] != 0xA5)
            fail_msg("byte %zu past the struct's size was written", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(defaults, clean),
        cmocka_unit_test_setup(memo_variables_win, clean),
        cmocka_unit_test_setup(bad_values_name_the_variable, clean),
        cmocka_unit_test_setup(unset_variables_keep_the_callers_values, clean),
        cmocka_unit_test_setup(older_struct_is_not_overrun, clean),
    };
    return cmocka_run_group_tests_name("configuration from the environment", tests, NULL,
                                       NULL);
}
