/* Rows as JSON objects in Redis: the writer and the strict reader, and the
 * JSON of primary keys (the values of lookups and lists). One file, though
 * past 500 lines: the reader must accept exactly what the writer emits (one
 * contract, tested together by tests/unit/test_codec.c), and it is a single
 * recursive-descent parser whose helpers serve both rows and keys. */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char memop_null_value[] = "null";

/* Rows are flat JSON objects, so they are written and read here directly,
 * field by field: no tree, no allocation but the row's own strings. The
 * reader is strict (RFC 8259, UTF-8, no duplicate members) because anything
 * it accepts becomes the caller's data; what it refuses is a corrupt entry. */

/* The C library formats and parses numbers in the current locale; JSON's
 * decimal point is always '.'. */
static char locale_point(void)
{
    const char *p = localeconv()->decimal_point;
    return p && p[0] ? p[0] : '.';
}

static void put_double(memop_buf *b, double v)
{
    char s[40];
    char point = locale_point();
    /* the shortest of %.15g, %.16g, %.17g that reads back as the same bits */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (point != '.')
            for (char *c = s; *c; c++)
                if (*c == point)
                    *c = '.';
        char copy[40];
        memcpy(copy, s, sizeof copy);
        if (point != '.')
            for (char *c = copy; *c; c++)
                if (*c == '.')
                    *c = point;
        if (strtod(copy, NULL) == v && signbit(strtod(copy, NULL)) == signbit(v))
            break;
    }
    /* "2" would read as an integer elsewhere: a float keeps a fraction */
    if (strspn(s, "-0123456789") == strlen(s))
        strcat(s, ".0");
    memop_buf_puts(b, s);
}

/* Length of the UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    /* overlong forms, surrogates and code points past U+10FFFF */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Appends s as a JSON string; false if s is not UTF-8. */
static bool put_string(memop_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    memop_buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        /* copy the longest run that needs no escaping at once */
        size_t run = 0;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
               p[run] != '\\')
            run++;
        memop_buf_append(b, p, run);
        p += run;
        n -= run;
        if (n == 0)
            break;
        if (*p >= 0x80) {
            size_t len = utf8_len(p, n);
            if (len == 0)
                return false;
            memop_buf_append(b, p, len);
            p += len;
            n -= len;
            continue;
        }
        char esc[7] = {'\\', 0};
        switch (*p) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
        }
        memop_buf_append(b, esc, strlen(esc));
        p++;
        n--;
    }
    memop_buf_append(b, "\"", 1);
    return true;
}

memo_status memop_row_encode(const memo_entity_desc *d, const void *row, memop_buf *buf)
{
    buf->len = 0;
    memop_buf_append(buf, "{", 1);
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if (i)
            memop_buf_append(buf, ",", 1);
        put_string(buf, f->name);
        memop_buf_append(buf, ":", 1);
        const char *p = MEMOP_FIELD_CPTR(row, f);
        if (memop_field_null(f, row)) {
            memop_buf_puts(buf, "null");
            continue;
        }
        switch (f->type) {
        case MEMO_INT32:
            memop_buf_printf(buf, "%" PRId32, *(const int32_t *)p);
            break;
        case MEMO_INT64:
        case MEMO_TIMESTAMP:
            memop_buf_printf(buf, "%" PRId64, *(const int64_t *)p);
            break;
        case MEMO_FLOAT64: {
            double v = *(const double *)p;
            /* JSON has no NaN or infinities; PostgreSQL's float8 does */
            if (isnan(v))
                memop_buf_puts(buf, "\"NaN\"");
            else if (isinf(v))
                memop_buf_puts(buf, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
            else
                put_double(buf, v);
            break;
        }
        case MEMO_BOOL:
            memop_buf_puts(buf, *(const bool *)p ? "true" : "false");
            break;
        case MEMO_TEXT:
        case MEMO_JSON: {
            const char *str = *(char *const *)p;
            if (!put_string(buf, str ? str : ""))
                return MEMO_ERR_ARG; /* text that is not UTF-8 */
            break;
        }
        }
    }
    memop_buf_append(buf, "}", 1);
    return buf->failed ? MEMO_ERR_NOMEM : MEMO_OK;
}

typedef struct reader {
    const char *p, *end;
} reader;

static void ws(reader *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool lit(reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool hex4(reader *r, uint32_t *out)
{
    if (r->end - r->p < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(r->p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    r->p += 4;
    *out = v;
    return true;
}

/* Whether any of the eight bytes in x ends a run of plain string bytes: a
 * quote, a backslash, a control character or a byte of 0x80 or more (the
 * zero-byte tricks of "Bit Twiddling Hacks"; a borrow can only mark a byte
 * above one that is marked already, so the answer is exact). */
static inline bool special8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x) & highs;
}

/* Reads a string (r->p at its quote). With out, writes the unescaped bytes
 * there (room for the raw length is enough: escapes only shrink) and their
 * count in *len. Refuses bad escapes, lone surrogates, \u0000, control
 * characters and bytes that are not UTF-8. */
static bool string(reader *r, char *out, size_t *len)
{
    if (r->p >= r->end || *r->p != '"')
        return false;
    r->p++;
    size_t k = 0;
    while (r->p < r->end) {
        /* a run of printable ASCII that stands for itself, the common case:
         * found eight bytes at a time and copied at once */
        const char *run = r->p;
        while (r->end - r->p >= 8) {
            uint64_t x;
            memcpy(&x, r->p, 8);
            if (special8(x))
                break;
            r->p += 8;
        }
        while (r->p < r->end && (unsigned char)(*r->p - 0x20) < 0x60 && *r->p != '"' &&
               *r->p != '\\')
            r->p++;
        if (r->p > run) {
            if (out)
                memcpy(out + k, run, (size_t)(r->p - run));
            k += (size_t)(r->p - run);
            if (r->p >= r->end)
                break;
        }
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            if (len)
                *len = k;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)r->p, (size_t)(r->end - r->p));
            if (n == 0)
                return false;
            if (out)
                memcpy(out + k, r->p, n);
            k += n;
            r->p += n;
            continue;
        }
        if (c != '\\') {
            if (out)
                out[k] = (char)c;
            k++;
            r->p++;
            continue;
        }
        r->p++;
        if (r->p >= r->end)
            return false;
        char e = *r->p++;
        uint32_t cp;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            cp = (unsigned char)e;
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (!hex4(r, &cp))
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
                    return false;
                r->p += 2;
                if (!hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;
            }
            if (cp == 0) /* a C string cannot hold it */
                return false;
            break;
        default:
            return false;
        }
        /* UTF-8 of cp */
        unsigned char u[4];
        size_t n;
        if (cp < 0x80)
            u[0] = (unsigned char)cp, n = 1;
        else if (cp < 0x800)
            u[0] = (unsigned char)(0xC0 | cp >> 6),
            u[1] = (unsigned char)(0x80 | (cp & 0x3F)), n = 2;
        else if (cp < 0x10000)
            u[0] = (unsigned char)(0xE0 | cp >> 12),
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)),
            u[2] = (unsigned char)(0x80 | (cp & 0x3F)), n = 3;
        else
            u[0] = (unsigned char)(0xF0 | cp >> 18),
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F)),
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)),
            u[3] = (unsigned char)(0x80 | (cp & 0x3F)), n = 4;
        if (out)
            memcpy(out + k, u, n);
        k += n;
    }
    return false;
}

/* The span of a JSON number at r->p, and whether it is an integer. */
static bool number(reader *r, const char **start, size_t *n, bool *integer)
{
    const char *p = r->p;
    *start = p;
    *integer = true;
    if (p < r->end && *p == '-')
        p++;
    if (p >= r->end || *p < '0' || *p > '9')
        return false;
    if (*p == '0')
        p++;
    else
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    if (p < r->end && *p == '.') {
        *integer = false;
        p++;
        if (p >= r->end || *p < '0' || *p > '9')
            return false;
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        *integer = false;
        p++;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= r->end || *p < '0' || *p > '9')
            return false;
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    *n = (size_t)(p - *start);
    r->p = p;
    return true;
}

static bool parse_int(const char *s, size_t n, int64_t *out)
{
    bool neg = s[0] == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = neg; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        /* 18 digits cannot overflow: only longer numbers are checked */
        if (n - neg > 18 && v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_double(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n >= sizeof buf)
        return false; /* no double needs more digits than that to be exact */
    memcpy(buf, s, n);
    buf[n] = '\0';
    char point = locale_point();
    if (point != '.')
        for (char *c = buf; *c; c++)
            if (*c == '.')
                *c = point;
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + n || (errno == ERANGE && isinf(v)))
        return false; /* 1e999 is not a double */
    *out = v;
    return true;
}

/* Skips any value (a member memo does not know), up to a depth. */
static bool skip_value(reader *r, int depth)
{
    ws(r);
    if (r->p >= r->end || depth > 64)
        return false;
    const char *s;
    size_t n;
    bool integer;
    switch (*r->p) {
    case '"':
        return string(r, NULL, NULL);
    case 't':
        return lit(r, "true");
    case 'f':
        return lit(r, "false");
    case 'n':
        return lit(r, "null");
    case '[':
    case '{': {
        char close = *r->p == '[' ? ']' : '}';
        bool object = close == '}';
        r->p++;
        ws(r);
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return true;
        }
        for (;;) {
            if (object) {
                ws(r);
                if (!string(r, NULL, NULL))
                    return false;
                ws(r);
                if (r->p >= r->end || *r->p++ != ':')
                    return false;
            }
            if (!skip_value(r, depth + 1))
                return false;
            ws(r);
            if (r->p >= r->end)
                return false;
            if (*r->p == ',') {
                r->p++;
                continue;
            }
            if (*r->p++ != close)
                return false;
            return true;
        }
    }
    default:
        return number(r, &s, &n, &integer);
    }
}

enum { DECODED, WRONG, SYNTAX };

/* Reads the value of field f into row: DECODED, WRONG (valid JSON of the
 * wrong kind) or SYNTAX. */
static int field_value(reader *r, const memo_field_desc *f, void *row)
{
    char *p = MEMOP_FIELD_PTR(row, f);
    ws(r);
    if (r->p >= r->end)
        return SYNTAX;
    char c = *r->p;
    if (c == 'n') {
        if (!lit(r, "null"))
            return SYNTAX;
        if (!(f->flags & MEMO_FIELD_NULLABLE))
            return WRONG;
        memop_field_set_null(f, row, true);
        return DECODED;
    }
    if (c == '"') {
        const char *start = r->p;
        if (f->type == MEMO_TEXT || f->type == MEMO_JSON) {
            /* measure, then copy: the caller's string is its only allocation */
            size_t len;
            if (!string(r, NULL, &len))
                return SYNTAX;
            char *out = malloc(len + 1);
            if (!out)
                return SYNTAX;
            if (len == (size_t)(r->p - start) - 2) {
                memcpy(out, start + 1, len); /* no escapes: escapes only shrink */
            } else {
                reader again = {start, r->p};
                if (!string(&again, out, &len)) {
                    free(out);
                    return SYNTAX;
                }
            }
            out[len] = '\0';
            *(char **)p = out;
            return DECODED;
        }
        if (!string(r, NULL, NULL))
            return SYNTAX;
        if (f->type != MEMO_FLOAT64)
            return WRONG;
        size_t n = (size_t)(r->p - start);
        if (n == 5 && memcmp(start, "\"NaN\"", 5) == 0)
            *(double *)p = NAN;
        else if (n == 10 && memcmp(start, "\"Infinity\"", 10) == 0)
            *(double *)p = INFINITY;
        else if (n == 11 && memcmp(start, "\"-Infinity\"", 11) == 0)
            *(double *)p = -INFINITY;
        else
            return WRONG;
        return DECODED;
    }
    if (c == 't' || c == 'f') {
        if (!lit(r, c == 't' ? "true" : "false"))
            return SYNTAX;
        if (f->type != MEMO_BOOL)
            return WRONG;
        *(bool *)p = c == 't';
        return DECODED;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s;
        size_t n;
        bool integer;
        if (!number(r, &s, &n, &integer))
            return SYNTAX;
        if (f->type == MEMO_FLOAT64) {
            double v;
            return parse_double(s, n, &v) ? (*(double *)p = v, DECODED) : SYNTAX;
        }
        if (!integer) {
            double v; /* a valid number, still: of the wrong kind */
            return parse_double(s, n, &v) ? WRONG : SYNTAX;
        }
        int64_t v;
        if (!parse_int(s, n, &v))
            return SYNTAX; /* an integer past int64 */
        if (f->type == MEMO_INT32) {
            if (v < INT32_MIN || v > INT32_MAX)
                return WRONG;
            *(int32_t *)p = (int32_t)v;
            return DECODED;
        }
        if (f->type == MEMO_INT64 || f->type == MEMO_TIMESTAMP) {
            *(int64_t *)p = v;
            return DECODED;
        }
        return WRONG;
    }
    if (c == '[' || c == '{')
        return skip_value(r, 0) ? WRONG : SYNTAX;
    return SYNTAX;
}

/* Finds the field with this name: the next in order first (values written
 * by memo list fields in order), then any. */
static int find_field(const memo_entity_desc *d, const char *name, size_t n,
                      unsigned hint)
{
    for (unsigned k = 0, i = hint; k < d->nfields; k++, i++) {
        if (i >= d->nfields) /* (hint <= nfields: no division) */
            i -= d->nfields;
        const char *fn = d->fields[i].name;
        /* (inline: a call per member shows on the batch path; name holds
         * no NUL, string() refuses it, so fn's ends the loop) */
        size_t j = 0;
        while (j < n && fn[j] == name[j])
            j++;
        if (j == n && fn[n] == '\0')
            return (int)i;
    }
    return -1;
}

memo_status memop_row_decode(const memo_entity_desc *d, const char *data, size_t len,
                             void *row, char *why, size_t whysize)
{
    reader r = {data, data + len};
    uint64_t seen = 0;
    unsigned hint = 0;
    const char *what = NULL;
    const memo_field_desc *bad = NULL;

    ws(&r);
    if (r.p >= r.end) {
        what = "not JSON: empty";
        goto fail;
    }
    if (*r.p != '{') {
        what = skip_value(&r, 0) ? "not a JSON object" : "not JSON: not a value";
        goto fail;
    }
    r.p++;
    ws(&r);
    bool empty = r.p < r.end && *r.p == '}';
    if (empty)
        r.p++;
    while (!empty) {
        ws(&r);
        int i = -1;
        /* memo writes members in field order: "name": of the next field, as
         * it is, is that field (no string of other bytes equals it) */
        if (hint < d->nfields && r.p < r.end && *r.p == '"') {
            const char *fn = d->fields[hint].name, *q = r.p + 1;
            while (*fn && q < r.end && *q == *fn)
                q++, fn++;
            if (!*fn && r.end - q >= 2 && q[0] == '"' && q[1] == ':') {
                r.p = q + 2;
                i = (int)hint;
                goto member;
            }
        }
        char name[72];
        const char *start = r.p, *nm = name;
        size_t nlen = 0;
        if (!string(&r, NULL, &nlen)) {
            what = "not JSON: bad member name";
            goto fail;
        }
        if (nlen == (size_t)(r.p - start) - 2) {
            nm = start + 1; /* no escapes: the bytes as they are */
        } else if ((size_t)(r.p - start) <= sizeof name) {
            reader again = {start, r.p};
            string(&again, name, &nlen);
        } else {
            nlen = sizeof name; /* names are short: a longer one is no field of ours */
        }
        ws(&r);
        if (r.p >= r.end || *r.p++ != ':') {
            what = "not JSON: expected ':'";
            goto fail;
        }
        i = nlen < sizeof name ? find_field(d, nm, nlen, hint) : -1;
    member:
        if (i < 0) {
            if (!skip_value(&r, 0)) {
                what = "not JSON: bad value";
                goto fail;
            }
        } else {
            if (seen & (1ull << i)) {
                what = "not JSON: duplicate member";
                goto fail;
            }
            seen |= 1ull << i;
            hint = (unsigned)i + 1;
            int got = field_value(&r, &d->fields[i], row);
            if (got == SYNTAX) {
                what = "not JSON: bad value";
                goto fail;
            }
            if (got == WRONG) {
                bad = &d->fields[i];
                goto fail;
            }
        }
        ws(&r);
        if (r.p < r.end && *r.p == ',') {
            r.p++;
            continue;
        }
        if (r.p < r.end && *r.p == '}') {
            r.p++;
            break;
        }
        what = "not JSON: expected ',' or '}'";
        goto fail;
    }
    ws(&r);
    if (r.p != r.end) {
        what = "not JSON: text after the object";
        goto fail;
    }
    for (unsigned i = 0; i < d->nfields; i++)
        if (!(seen & (1ull << i))) {
            snprintf(why, whysize, "member \"%s\" is missing", d->fields[i].name);
            memo_row_clear(d, row);
            return MEMO_ERR_ARG;
        }
    return MEMO_OK;

fail:
    if (bad)
        snprintf(why, whysize, "member \"%s\" is not a valid %s", bad->name,
                 bad->flags & MEMO_FIELD_NULLABLE ? "value or null" : "value");
    else
        snprintf(why, whysize, "%s", what);
    memo_row_clear(d, row);
    return MEMO_ERR_ARG;
}

/* -------------------------------------------- keys: lookups and lists */

/* One field of a primary key as JSON: 42 or "abc". */
static bool pk_part_encode(const memo_field_desc *f, const void *value, memop_buf *buf)
{
    if (f->type == MEMO_TEXT)
        return put_string(buf, *(const char *const *)value);
    if (f->type == MEMO_INT32)
        memop_buf_printf(buf, "%" PRId32, *(const int32_t *)value);
    else
        memop_buf_printf(buf, "%" PRId64, *(const int64_t *)value);
    return true;
}

/* A primary key as JSON: 42 or "abc", or [7, "abc"] for a composite one. */
memo_status memop_pk_encode(const memo_entity_desc *d, const void *key, memop_buf *buf)
{
    if (d->npk > 1)
        memop_buf_puts(buf, "[");
    for (unsigned k = 0; k < d->npk; k++) {
        if (k)
            memop_buf_puts(buf, ",");
        if (!pk_part_encode(&d->fields[d->pks[k]], (const char *)key + d->pk_offsets[k],
                            buf))
            return MEMO_ERR_ARG;
    }
    if (d->npk > 1)
        memop_buf_puts(buf, "]");
    return buf->failed ? MEMO_ERR_NOMEM : MEMO_OK;
}

/* One field of a primary key at r into out (an int32_t, int64_t, or a
 * malloc'd char *). */
static bool pk_part(reader *r, const memo_field_desc *pk, void *out)
{
    ws(r);
    if (pk->type == MEMO_TEXT) {
        const char *start = r->p;
        if (!string(r, NULL, NULL))
            return false;
        char *s = malloc((size_t)(r->p - start));
        size_t len;
        reader again = {start, r->p};
        if (!s || !string(&again, s, &len)) {
            free(s);
            return false;
        }
        s[len] = '\0';
        *(char **)out = s;
        return true;
    }
    const char *s;
    size_t n;
    bool integer;
    int64_t v;
    if (!number(r, &s, &n, &integer) || !integer || !parse_int(s, n, &v))
        return false;
    if (pk->type == MEMO_INT32) {
        if (v < INT32_MIN || v > INT32_MAX)
            return false;
        *(int32_t *)out = (int32_t)v;
    } else {
        *(int64_t *)out = v;
    }
    return true;
}

void memop_pk_free(const memo_entity_desc *d, void *key)
{
    for (unsigned k = 0; k < d->npk; k++)
        if (d->fields[d->pks[k]].type == MEMO_TEXT) {
            char **p = (char **)(void *)((char *)key + d->pk_offsets[k]);
            free(*p);
            *p = NULL;
        }
}

/* One primary key at r into out (zeroed, key_size bytes): a value, or an
 * array of one per field. */
static bool pk_value(reader *r, const memo_entity_desc *d, void *out)
{
    if (d->npk == 1)
        return pk_part(r, &d->fields[d->pk], out);
    ws(r);
    if (r->p >= r->end || *r->p++ != '[')
        return false;
    for (unsigned k = 0; k < d->npk; k++) {
        if (k) {
            ws(r);
            if (r->p >= r->end || *r->p++ != ',')
                goto bad;
        }
        if (!pk_part(r, &d->fields[d->pks[k]], (char *)out + d->pk_offsets[k]))
            goto bad;
    }
    ws(r);
    if (r->p < r->end && *r->p++ == ']')
        return true;
bad:
    memop_pk_free(d, out);
    return false;
}

bool memop_pk_decode(const memo_entity_desc *d, const char *data, size_t len, void *out)
{
    reader r = {data, data + len};
    memset(out, 0, d->key_size);
    if (!pk_value(&r, d, out))
        return false;
    ws(&r);
    if (r.p != r.end) {
        memop_pk_free(d, out);
        return false;
    }
    return true;
}

size_t memop_pk_width(const memo_entity_desc *d)
{
    return d->key_size;
}

bool memop_pk_array_decode(const memo_entity_desc *d, const char *data, size_t len,
                           size_t max, void **keys, size_t *count)
{
    reader r = {data, data + len};
    size_t width = d->key_size, n = 0, cap = 0;
    char *out = NULL;
    ws(&r);
    if (r.p >= r.end || *r.p++ != '[')
        return false;
    ws(&r);
    bool ok = true;
    if (r.p < r.end && *r.p == ']') {
        r.p++;
    } else {
        for (;;) {
            if (n == max) { /* more keys than the list may hold: corrupt */
                ok = false;
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                char *grown = realloc(out, cap * width);
                if (!grown) {
                    ok = false;
                    break;
                }
                out = grown;
            }
            memset(out + n * width, 0, width);
            if (!pk_value(&r, d, out + n * width)) {
                ok = false;
                break;
            }
            n++;
            ws(&r);
            if (r.p < r.end && *r.p == ',') {
                r.p++;
                continue;
            }
            ok = r.p < r.end && *r.p++ == ']';
            break;
        }
    }
    ws(&r);
    if (!ok || r.p != r.end) {
        for (size_t i = 0; i < n; i++)
            memop_pk_free(d, out + i * width);
        free(out);
        return false;
    }
    *keys = out;
    *count = n;
    return true;
}
