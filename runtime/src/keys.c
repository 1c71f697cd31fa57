/* Redis keys, all of them: <prefix><schema>:{<head><part><tail>}:<tag> for
 * rows, lookups and lists (a key holds a value or, while a filler queries,
 * its lease: fill.c), the SCAN patterns that match them, and
 * <prefix>memo:<kind>:{<name>} for memo's own (locks, the permission
 * probe). The braces are a Redis Cluster hash tag. User parts are escaped,
 * so no input can forge another key or match a pattern. Every other file
 * asks here. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sha256.h"

/* Bytes that stay as they are; everything else, including ':', '{', '}',
 * '*', '?', '[', ']', '%', '~', whitespace and non-ASCII, becomes %XX. The
 * GET_BY script escapes in Lua with MEMOP_KEY_PLAIN_LUA, the same set
 * (tests/unit/test_keys.c holds the two to each other, byte by byte). */
static bool plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '@' || c == '+';
}

size_t memop_key_part(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = plain(c) ? 1 : 3;
        if (len + need > MEMOP_KEY_PART_MAX)
            goto hashed;
        if (plain(c)) {
            out[len++] = (char)c;
        } else {
            out[len++] = '%';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
    }
    return len;

hashed:
    /* '~' is never plain, so a hashed part cannot equal an escaped one. */
    out[0] = '~';
    memop_sha256_hex(s, n, out + 1, 32);
    return 33;
}

size_t memop_key_value(const memo_field_desc *f, const void *value, char *out)
{
    switch (f->type) {
    case MEMO_INT32:
        return memop_i64_text(*(const int32_t *)value, out);
    case MEMO_INT64:
    case MEMO_TIMESTAMP:
        return memop_i64_text(*(const int64_t *)value, out);
    case MEMO_BOOL:
        return (size_t)snprintf(out, MEMOP_KEY_PART_MAX, "%s",
                                *(const bool *)value ? "true" : "false");
    case MEMO_TEXT: {
        const char *s = *(const char *const *)value;
        return memop_key_part(s, strlen(s), out);
    }
    case MEMO_FLOAT64:
    case MEMO_JSON:
        break; /* memoc refuses keys of these types */
    }
    return 0;
}

void memop_key_build(memo_repo *repo, const memo_entity_desc *d, const memo_key_desc *k,
                     const char *part, size_t partlen, memop_key *out)
{
    /* Cannot overflow: the prefix is at most 128 bytes (memo_open), schema
     * names 63, templates 100 (memoc), parts MEMOP_KEY_PART_MAX; the check
     * only keeps a broken descriptor from writing past the buffer. */
    size_t n = 0;
    char *s = out->s;
#define PUT(str, len)                                                                    \
    do {                                                                                 \
        size_t l_ = (len);                                                               \
        if (n + l_ < MEMOP_KEY_MAX) {                                                    \
            memcpy(s + n, (str), l_);                                                    \
            n += l_;                                                                     \
        }                                                                                \
    } while (0)
    PUT(repo->key_prefix, repo->key_prefix_len);
    PUT(d->schema, strlen(d->schema));
    PUT(":{", 2);
    PUT(k->head, strlen(k->head));
    PUT(part, partlen);
    PUT(k->tail, strlen(k->tail));
    PUT("}:", 2);
    PUT(k->tag, strlen(k->tag));
#undef PUT
    s[n] = '\0';
    out->len = n;
}

void memop_key_around(memo_repo *repo, const memo_entity_desc *d, const memo_key_desc *k,
                      memop_key *before, memop_key *after)
{
    memop_key all;
    memop_key_build(repo, d, k, "", 0, &all);
    /* <prefix><schema>:{<head> | <tail>}:<tag> */
    size_t at = repo->key_prefix_len + strlen(d->schema) + 2 + strlen(k->head);
    if (at > all.len)
        at = all.len;
    memcpy(before->s, all.s, at);
    before->s[at] = '\0';
    before->len = at;
    memcpy(after->s, all.s + at, all.len - at + 1);
    after->len = all.len - at;
}

/* Glob-escapes s into b, for a SCAN pattern. */
static void glob_escape(memop_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", s[i]))
            memop_buf_append(b, "\\", 1);
        memop_buf_append(b, &s[i], 1);
    }
}

void memop_key_pattern(memo_repo *repo, const memo_entity_desc *d, const memo_key_desc *k,
                       memop_buf *out)
{
    glob_escape(out, repo->key_prefix, repo->key_prefix_len);
    glob_escape(out, d->schema, strlen(d->schema));
    memop_buf_puts(out, ":{");
    glob_escape(out, k->head, strlen(k->head));
    memop_buf_puts(out, "*");
    glob_escape(out, k->tail, strlen(k->tail));
    memop_buf_puts(out, "}:");
    glob_escape(out, k->tag, strlen(k->tag));
    memop_buf_puts(out, "*"); /* a list's count: the list's key and ":n" */
}

void memop_key_count(const memop_key *list, memop_key *out)
{
    size_t n = list->len;
    if (n + 2 >= MEMOP_KEY_MAX) /* (never: keys are far shorter) */
        n = MEMOP_KEY_MAX - 3;
    memcpy(out->s, list->s, n);
    memcpy(out->s + n, ":n", 3);
    out->len = n + 2;
}

void memop_key_memo(memo_repo *repo, const char *kind, const char *name, memop_key *out)
{
    /* <prefix>memo:<kind>:{<escaped name>}: a key of its own slot */
    char part[MEMOP_KEY_PART_MAX + 1];
    size_t plen = memop_key_part(name, strlen(name), part);
    int n = snprintf(out->s, sizeof out->s, "%smemo:%s:{%.*s}", repo->key_prefix, kind,
                     (int)plen, part);
    out->len = n < 0 ? 0 : (size_t)n < sizeof out->s ? (size_t)n : sizeof out->s - 1;
}

void memop_key_stats(memo_repo *repo, const char *host, long pid, unsigned long tag,
                     memop_key *out)
{
    /* <prefix>memo:stats:<host>:<pid>:<random>: one per process (`memo stats`
     * reads memo:stats:*) */
    int n = snprintf(out->s, sizeof out->s, "%smemo:stats:%s:%ld:%08lx", repo->key_prefix,
                     host, pid, tag);
    out->len = n < 0 ? 0 : (size_t)n < sizeof out->s ? (size_t)n : sizeof out->s - 1;
}

void memop_key_of(memo_repo *repo, const memo_entity_desc *d, const memo_key_desc *k,
                  const memo_field_desc *f, const void *value, memop_key *out)
{
    char part[MEMOP_KEY_PART_MAX + 1];
    size_t n = memop_key_value(f, value, part);
    memop_key_build(repo, d, k, part, n, out);
}

size_t memop_pk_part(const memo_entity_desc *d, const void *key, char *out)
{
    if (d->npk == 1)
        return memop_key_value(&d->fields[d->pk], key, out);
    char joined[MEMOP_MAX_PK * (MEMOP_KEY_PART_MAX + 1)];
    size_t n = 0;
    for (unsigned k = 0; k < d->npk; k++) {
        if (k)
            joined[n++] = ',';
        n += memop_key_value(&d->fields[d->pks[k]], (const char *)key + d->pk_offsets[k],
                             joined + n);
    }
    if (n <= MEMOP_KEY_PART_MAX) {
        memcpy(out, joined, n);
        return n;
    }
    out[0] = '~'; /* as a long part: never equal to an escaped one */
    memop_sha256_hex(joined, n, out + 1, 32);
    return 33;
}

void memop_key_row(memo_repo *repo, const memo_entity_desc *d, const void *key,
                   memop_key *out)
{
    char part[MEMOP_KEY_PART_MAX + 1];
    size_t n = memop_pk_part(d, key, part);
    memop_key_build(repo, d, &d->row.key, part, n, out);
}

void memop_pk_of_row(const memo_entity_desc *d, const void *row, void *key)
{
    for (unsigned k = 0; k < d->npk; k++) {
        const memo_field_desc *f = &d->fields[d->pks[k]];
        memcpy((char *)key + d->pk_offsets[k], (const char *)row + f->offset,
               f->type == MEMO_INT32  ? sizeof(int32_t)
               : f->type == MEMO_TEXT ? sizeof(char *)
                                      : sizeof(int64_t));
    }
}

bool memop_row_has_pk(const memo_entity_desc *d, const void *row, const void *key)
{
    for (unsigned k = 0; k < d->npk; k++) {
        const memo_field_desc *f = &d->fields[d->pks[k]];
        if (!memop_key_equal(f, (const char *)row + f->offset,
                             (const char *)key + d->pk_offsets[k]))
            return false;
    }
    return true;
}

bool memop_key_equal(const memo_field_desc *f, const void *a, const void *b)
{
    switch (f->type) {
    case MEMO_INT32:
        return *(const int32_t *)a == *(const int32_t *)b;
    case MEMO_INT64:
    case MEMO_TIMESTAMP:
        return *(const int64_t *)a == *(const int64_t *)b;
    case MEMO_BOOL:
        return *(const bool *)a == *(const bool *)b;
    case MEMO_TEXT: {
        const char *x = *(const char *const *)a, *y = *(const char *const *)b;
        return x && y && strcmp(x, y) == 0;
    }
    case MEMO_FLOAT64:
    case MEMO_JSON:
        break; /* never keys */
    }
    return false;
}

/* Redis Cluster's slot of a key: CRC16 (XMODEM: polynomial 0x1021, initial
 * 0) of the key, or of its hash tag, the bytes between its first '{' and
 * the first '}' after it when there are any, modulo 16384. Every key memo
 * builds has a tag: a row, its lease and its count share a slot. */
unsigned memop_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t at = (size_t)(open - key) + 1;
        const char *close = memchr(key + at, '}', len - at);
        if (close && close > key + at) {
            len = (size_t)(close - (key + at));
            key += at;
        }
    }
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)key[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc & 16383u;
}
