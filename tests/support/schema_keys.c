/* Redis keys recomputed by the tests (schema_keys.h): independent of the
 * runtime's keys.c, so a key it builds wrongly is a failed test. */
#include "test.h"
#include "schema_keys.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blog.h"
#include "wiki.h"

/* Every key handed out, kept until exit: a test may hold any number. */
static char **kept;
static size_t nkept, capkept;

static void free_kept(void)
{
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    free(kept);
}

/* printf into a kept string. */
static const char *keep(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (nkept == capkept) {
        if (!kept)
            atexit(free_kept);
        capkept = capkept ? 2 * capkept : 64;
        kept = realloc(kept, capkept * sizeof *kept);
        assert_non_null(kept);
    }
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    kept[nkept++] = s;
    return s;
}

/* ------------------------------------------------------------------- blog */

const char *test_user_key(int64_t id)
{
    return keep("blog:{user:%lld}:%s", (long long)id, blog_user_desc.row.key.tag);
}

const char *test_email_key(const char *escaped)
{
    return keep("blog:{user:email=%s}:%s", escaped, blog_user_desc.uniques[0].key.tag);
}

const char *test_by_org_key(int64_t org)
{
    return keep("blog:{user:by_org=%lld}:%s", (long long)org,
                blog_user_desc.lists[0].key.tag);
}

const char *test_post_key(int64_t id)
{
    return keep("blog:{post:%lld}:%s", (long long)id, blog_post_desc.row.key.tag);
}

const char *test_org_key(int64_t id)
{
    return keep("blog:{org:%lld}:%s", (long long)id, blog_org_desc.row.key.tag);
}

const char *test_by_post_key(int64_t post)
{
    return keep("blog:{comment:by_post=%lld}:%s", (long long)post,
                blog_comment_desc.lists[0].key.tag);
}

/* ------------------------------------------------------------------- wiki */

char *test_key_part(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    assert_non_null(out);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '@' || c == '+') {
            out[len++] = (char)c;
        } else {
            snprintf(out + len, 4, "%%%02X", c);
            len += 3;
        }
    }
    out[len] = '\0';
    if (len <= 128)
        return out;
    free(out);
    return test_sql_value_param(
        "SELECT '~' || left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 32)", s);
}

/* <schema>:{<head><part><tail>}:<tag>, short whatever the value (parts
 * past 128 bytes are hashed). */
static const char *key_of(const memo_entity_desc *d, const memo_key_desc *k,
                          const char *part)
{
    const char *key = keep("%s:{%s%s%s}:%s", d->schema, k->head, part, k->tail, k->tag);
    assert_true(strlen(key) > 0 && strlen(key) < 1024);
    return key;
}

static const char *text_key(const memo_entity_desc *d, const memo_key_desc *k,
                            const char *v)
{
    char *part = test_key_part(v);
    const char *key = key_of(d, k, part);
    free(part);
    return key;
}

const char *test_page_key(const char *slug)
{
    return text_key(&wiki_page_desc, &wiki_page_desc.row.key, slug);
}

const char *test_space_key(const char *space)
{
    return text_key(&wiki_page_desc, &wiki_page_desc.lists[0].key, space);
}

const char *test_history_key(const char *slug)
{
    return text_key(&wiki_revision_desc, &wiki_revision_desc.lists[0].key, slug);
}

const char *test_revision_key(int64_t id)
{
    char part[32];
    snprintf(part, sizeof part, "%" PRId64, id);
    return key_of(&wiki_revision_desc, &wiki_revision_desc.row.key, part);
}
