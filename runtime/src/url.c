/* Redis URLs: redis://[user:pass@]host[:port][/db] and
 * unix://[[user]:pass@]/path[?db=N]. hiredis 0.14 parses none of this.
 * Messages name the faulty part and never repeat a password. And the
 * masking of PostgreSQL passwords in libpq's messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into a new string; NULL on a bad escape (*bad)
 * or when out of memory. %00 is bad too: it would end the string early, and
 * a password cut short must not pass for the password given. */
static char *decode(const char *s, size_t n, bool *bad)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[k++] = s[i];
            continue;
        }
        /* two hex digits must follow */
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || hi + lo == 0) {
            *bad = true;
            free(out);
            return NULL;
        }
        out[k++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[k] = '\0';
    return out;
}

static bool parse_int(const char *s, size_t n, long min, long max, long *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

void memop_redis_target_free(memop_redis_target *t)
{
    for (size_t i = 0; i < t->nseeds; i++)
        free(t->seeds[i].host);
    free(t->seeds);
    free(t->host);
    free(t->path);
    free(t->user);
    if (t->password) {
        /* keep the secret out of freed memory */
        memset(t->password, 0, strlen(t->password));
        free(t->password);
    }
    memset(t, 0, sizeof *t);
}

void memop_host_port_name(const char *host, int port, char *out, size_t size)
{
    snprintf(out, size, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void memop_redis_target_name(const memop_redis_target *t, char *out, size_t size)
{
    if (t->path)
        snprintf(out, size, "unix:%s", t->path);
    else
        memop_host_port_name(t->host, t->port, out, size);
}

#define FAIL(...)                                                                        \
    do {                                                                                 \
        snprintf(err, errsize, __VA_ARGS__);                                             \
        goto fail;                                                                       \
    } while (0)

memo_status memop_redis_url_parse(const char *url, memop_redis_target *out, char *err,
                                  size_t errsize)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url) {
        snprintf(err, errsize, "no Redis URL given");
        return MEMO_ERR_CONFIG;
    }
    bool is_unix;
    const char *p;
    if (strncmp(url, "redis://", 8) == 0) {
        is_unix = false;
        p = url + 8;
    } else if (strncmp(url, "unix://", 7) == 0) {
        is_unix = true;
        p = url + 7;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errsize,
                 "Redis URL: TLS (rediss://) is not supported by this hiredis");
        return MEMO_ERR_CONFIG;
    } else {
        snprintf(err, errsize, "Redis URL must start with redis:// or unix://");
        return MEMO_ERR_CONFIG;
    }

    /* userinfo ends at the last '@' (no host, port or db holds one), so a
     * password with '/', '?' or '#' is not cut and then quoted back as a port
     * or db; for a socket, at the last '@' that starts a path, so that a
     * password holding "@/" stays whole (a socket path holding "@/" then
     * cannot follow a password: the password wins, never half-quoted) */
    const char *at = NULL;
    if (is_unix) {
        if (*p != '/')
            for (const char *q = p; (q = strstr(q, "@/")) != NULL; q++)
                at = q;
    } else {
        at = strrchr(p, '@');
    }
    bool bad = false;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p) {
                out->user = decode(p, (size_t)(colon - p), &bad);
                if (!out->user)
                    FAIL(bad ? "Redis URL: bad %%-escape (or %%00) in the user name"
                             : "out of memory");
            }
            out->password = decode(colon + 1, (size_t)(at - colon - 1), &bad);
            if (!out->password)
                FAIL(bad ? "Redis URL: bad %%-escape (or %%00) in the password"
                         : "out of memory");
        } else {
            /* redis://secret@host: a bare word is a password, as redis-cli reads it */
            out->password = decode(p, (size_t)(at - p), &bad);
            if (!out->password)
                FAIL(bad ? "Redis URL: bad %%-escape (or %%00) in the password"
                         : "out of memory");
        }
        p = at + 1;
    }

    if (is_unix) {
        if (*p != '/')
            FAIL("Redis URL: unix:// needs an absolute socket path, as "
                 "unix:///run/redis.sock");
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n < 2)
            FAIL("Redis URL: empty socket path");
        out->path = strndup(p, n);
        if (!out->path)
            FAIL("out of memory");
        if (q) {
            long db;
            if (strncmp(q, "?db=", 4) != 0 ||
                !parse_int(q + 4, strlen(q + 4), 0, 1000000, &db))
                FAIL("Redis URL: the only option of unix:// is ?db=N");
            out->db = (int)db;
        }
        return MEMO_OK;
    }

    /* host[:port], or a list of them: a Redis Cluster's seed nodes */
    size_t list = strcspn(p, "/?#");
    size_t nseeds = 1;
    for (size_t i = 0; i < list; i++)
        nseeds += p[i] == ',';
    if (nseeds > MEMOP_SEEDS_MAX)
        FAIL("Redis URL: more than %d nodes", MEMOP_SEEDS_MAX);
    if (!(out->seeds = calloc(nseeds, sizeof *out->seeds)))
        FAIL("out of memory");
    for (size_t i = 0; i < nseeds; i++) {
        memop_redis_seed *seed = &out->seeds[out->nseeds++];
        seed->port = 6379;
        const char *host_end;
        if (*p == '[') {
            const char *close = strchr(p, ']');
            if (!close)
                FAIL("Redis URL: unclosed '[' in the host");
            seed->host = strndup(p + 1, (size_t)(close - p - 1));
            host_end = close + 1;
        } else {
            host_end = p + strcspn(p, ":,/?#");
            seed->host = strndup(p, (size_t)(host_end - p));
        }
        if (!seed->host)
            FAIL("out of memory");
        if (!seed->host[0])
            FAIL("Redis URL: no host%s", nseeds > 1 ? " in the list of nodes" : "");
        p = host_end;
        if (*p == ':') {
            p++;
            size_t n = strcspn(p, ",/?#");
            long port;
            if (!parse_int(p, n, 1, 65535, &port))
                FAIL("Redis URL: invalid port '%.*s'", (int)(n > 16 ? 16 : n), p);
            seed->port = (int)port;
            p += n;
        }
        if (i + 1 < nseeds && *p++ != ',')
            FAIL("Redis URL: unexpected text after host %.64s", seed->host);
    }
    out->port = out->seeds[0].port;
    if (!(out->host = strdup(out->seeds[0].host)))
        FAIL("out of memory");
    if (*p == '/') {
        p++;
        size_t n = strcspn(p, "?#");
        if (n > 0) {
            long db;
            if (!parse_int(p, n, 0, 1000000, &db))
                FAIL("Redis URL: invalid database number '%.*s'", (int)(n > 16 ? 16 : n),
                     p);
            out->db = (int)db;
        }
        p += n;
    }
    /* not quoted: clients take ?password=... here */
    if (*p)
        FAIL("Redis URL: unexpected text after the host, port or database number "
             "(options such as ?db=N are for unix:// only)");
    return MEMO_OK;

fail:
    memop_redis_target_free(out);
    return MEMO_ERR_CONFIG;
}

/* ------------------------------------------------------ PostgreSQL secrets */

/* libpq quotes what it could not use: a bad %-escape with the token around
 * it, a mistyped URL as a database name, a conninfo word it does not know.
 * Any of these may hold the password, so every message that comes from
 * libpq is masked before memo copies it anywhere: every spelling of the
 * password that the conninfo text could hold becomes "***". */

typedef struct secrets {
    char *s[8];
    size_t n;
} secrets;

static void secret_add(secrets *set, const char *s, size_t n)
{
    if (n == 0 || set->n == sizeof set->s / sizeof set->s[0])
        return;
    for (size_t i = 0; i < set->n; i++) /* once: a mask must not be masked again */
        if (strlen(set->s[i]) == n && memcmp(set->s[i], s, n) == 0)
            return;
    char *copy = strndup(s, n);
    if (copy)
        set->s[set->n++] = copy;
}

/* The text and its %-decoding (lenient: a bad escape stays as it is). */
static void secret_add_url(secrets *set, const char *s, size_t n)
{
    secret_add(set, s, n);
    char *d = malloc(n + 1);
    if (!d)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = s[i] == '%' && i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            d[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[k++] = s[i];
        }
    }
    if (k != n)
        secret_add(set, d, k);
    free(d);
}

static void find_secrets(const char *conninfo, secrets *set)
{
    memset(set, 0, sizeof *set);
    /* what libpq itself reads as the password */
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            secret_add(set, o->val, strlen(o->val));
    PQconninfoFree(opts);
    /* URL userinfo, even in a URL libpq did not recognise ("postgres//u:p@h"):
     * from the first ':' after "//" to the last '@' */
    const char *slashes = strstr(conninfo, "//"), *at = strrchr(conninfo, '@');
    if (slashes && at && at > slashes) {
        const char *colon = memchr(slashes + 2, ':', (size_t)(at - slashes - 2));
        if (colon)
            secret_add_url(set, colon + 1, (size_t)(at - colon - 1));
    }
    /* password=... as a conninfo word or a URL parameter */
    for (const char *p = conninfo; (p = strstr(p, "password")) != NULL; p += 8) {
        const char *v = p + 8;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v++ != '=')
            continue;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == '\'') {
            const char *end = v + 1;
            while (*end && *end != '\'')
                end += end[0] == '\\' && end[1] ? 2 : 1;
            secret_add(set, v + 1, (size_t)(end - v - 1));
        } else {
            secret_add(set, v, strcspn(v, " \t\n"));
            secret_add_url(set, v, strcspn(v, "& \t\n"));
        }
    }
}

void memop_pg_message(const char *conninfo, const char *text, char *out, size_t size)
{
    if (size == 0)
        return;
    snprintf(out, size, "%s", text ? text : "");
    /* one line: libpq's messages end in newlines and may span lines */
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
    if (!conninfo)
        return;
    secrets set;
    find_secrets(conninfo, &set);
    for (size_t i = 0; i < set.n; i++) {
        size_t len = strlen(set.s[i]);
        char *from = out, *hit;
        while ((hit = strstr(from, set.s[i])) != NULL) {
            size_t at = (size_t)(hit - out), tail = strlen(hit + len);
            if (at + 4 > size) { /* no room for the mask: the message ends here */
                *hit = '\0';
                break;
            }
            /* "***" may be longer than the secret: cut what no longer fits */
            if (at + 3 + tail + 1 > size)
                tail = size - at - 4;
            memmove(hit + 3, hit + len, tail);
            hit[3 + tail] = '\0';
            memcpy(hit, "***", 3);
            from = hit + 3;
        }
        memset(set.s[i], 0, len);
        free(set.s[i]);
    }
}
