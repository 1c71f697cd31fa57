/* memo_config_from_env: a service's configuration from its environment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static memo_status bad(memo_error *err, const char *var, const char *value,
                       const char *what)
{
    if (err) {
        err->status = MEMO_ERR_CONFIG;
        snprintf(err->message, sizeof err->message, "%s: '%.60s' is not %s", var, value,
                 what);
    }
    return MEMO_ERR_CONFIG;
}

/* "500ms", "2s", "10m", "1h", "1d" or plain milliseconds, up to INT_MAX ms. */
static bool duration_ms(const char *s, int *out)
{
    char *end;
    if (!*s || *s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long unit = 1;
    if (strcmp(end, "ms") == 0 || *end == '\0')
        unit = 1;
    else if (strcmp(end, "s") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (strcmp(end, "d") == 0)
        unit = 86400000;
    else
        return false;
    if (v > 2147483647ull / unit)
        return false;
    *out = (int)(v * unit);
    return true;
}

/* The field at offset off, n bytes long, is in the caller's struct (an
 * application built with an older memo.h has fewer fields). */
static bool fits(const memo_config *cfg, size_t off, size_t n)
{
    return off + n <= (cfg->size ? cfg->size : sizeof *cfg);
}
#define HAS(cfg, field) fits((cfg), offsetof(memo_config, field), sizeof((cfg)->field))

/* A flag from a variable that is 1 or 0 (unset or empty: as it was).
 * False, with err set, for anything else. */
static bool flag_var(memo_config *cfg, const char *name, unsigned flag, memo_error *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return true;
    if (strcmp(v, "1") == 0)
        cfg->flags |= flag;
    else if (strcmp(v, "0") == 0)
        cfg->flags &= ~flag;
    else {
        bad(err, name, v, "0 or 1");
        return false;
    }
    return true;
}

memo_status memo_config_from_env(memo_config *cfg, memo_error *err)
{
    if (!cfg)
        return MEMO_ERR_ARG;
    if (err)
        memset(err, 0, sizeof *err);
    /* only what the environment sets: the caller's other fields stay */
    const char *v;
    if ((v = getenv("MEMO_REDIS_URL")) && *v)
        cfg->redis_url = v;
    else if ((v = getenv("REDIS_URL")) && *v)
        cfg->redis_url = v;
    if ((v = getenv("MEMO_DATABASE_URL")) && *v)
        cfg->database_url = v;
    else if ((v = getenv("DATABASE_URL")) && *v)
        cfg->database_url = v;
    if ((v = getenv("MEMO_KEY_PREFIX")) && *v)
        cfg->key_prefix = v;

    static const struct {
        const char *var;
        size_t offset;
    } durations[] = {
        {"MEMO_DEFAULT_TTL", offsetof(memo_config, default_ttl_ms)},
        {"MEMO_NEGATIVE_TTL", offsetof(memo_config, negative_ttl_ms)},
        {"MEMO_CONNECT_TIMEOUT", offsetof(memo_config, connect_timeout_ms)},
        {"MEMO_COMMAND_TIMEOUT", offsetof(memo_config, command_timeout_ms)},
        {"MEMO_QUERY_TIMEOUT", offsetof(memo_config, query_timeout_ms)},
        {"MEMO_LEASE", offsetof(memo_config, lease_ms)},
        {"MEMO_LEASE_WAIT", offsetof(memo_config, lease_wait_ms)},
        {"MEMO_POOL_WAIT", offsetof(memo_config, pool_wait_ms)},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        if (!(v = getenv(durations[i].var)) || !*v)
            continue;
        if (!fits(cfg, durations[i].offset, sizeof(int)))
            continue; /* a field this application does not have */
        int *field = (int *)(void *)((char *)cfg + durations[i].offset);
        if (!duration_ms(v, field) || *field == 0)
            return bad(err, durations[i].var, v, "a duration such as 500ms, 2s or 10m");
    }
    if ((v = getenv("MEMO_STATS_PUBLISH")) && *v) {
        if (strcmp(v, "off") == 0)
            cfg->flags |= MEMO_STATS_PRIVATE;
        else if (!duration_ms(v, &cfg->stats_publish_ms) || cfg->stats_publish_ms == 0)
            return bad(err, "MEMO_STATS_PUBLISH", v, "a duration or \"off\"");
        else
            cfg->flags &= ~MEMO_STATS_PRIVATE;
    }
    if ((v = getenv("MEMO_POOL_SIZE")) && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 1024)
            return bad(err, "MEMO_POOL_SIZE", v, "a number from 1 to 1024");
        cfg->pool_size = (int)n;
    }
    if ((v = getenv("MEMO_MAX_VALUE_BYTES")) && *v && HAS(cfg, max_value_bytes)) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1024 || n > 512L << 20)
            return bad(err, "MEMO_MAX_VALUE_BYTES", v,
                       "a number of bytes from 1024 to 536870912");
        cfg->max_value_bytes = (int)n;
    }
    if (!flag_var(cfg, "MEMO_OPEN_DEGRADED", MEMO_OPEN_DEGRADED, err))
        return MEMO_ERR_CONFIG;
    if (!flag_var(cfg, "MEMO_NEAR_OFF", MEMO_NEAR_OFF, err))
        return MEMO_ERR_CONFIG;
    if ((v = getenv("MEMO_NEAR_MAX_BYTES")) && *v && HAS(cfg, near_max_bytes)) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end || errno || *v == '-' || n < 1024 || n > MEMOP_NEAR_MAX_BYTES_MAX)
            return bad(err, "MEMO_NEAR_MAX_BYTES", v,
                       "a number of bytes from 1024 to 1099511627776");
        cfg->near_max_bytes = (size_t)n;
    }
    if (!flag_var(cfg, "MEMO_DB_UNNAMED", MEMO_DB_UNNAMED, err))
        return MEMO_ERR_CONFIG;
    return MEMO_OK;
}
