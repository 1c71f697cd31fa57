#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    ast_loc loc;
    size_t seq; /* order of reporting, to sort stably */
    char *msg;
    struct entry *notes; /* array */
    size_t nnotes;
} entry;

struct diag {
    const char *file;
    const char *src;
    size_t len;
    size_t *lines; /* offset of each line's start: lines[0] is line 1's */
    size_t nlines;
    entry *v;
    size_t n, cap;
    int errors;
};

diag *diag_new(const char *file, const char *src, size_t len)
{
    diag *d = xcalloc(1, sizeof *d);
    d->file = file;
    d->src = src;
    d->len = len;
    /* Indexed once, so showing a line costs the same wherever it is. */
    if (src) {
        size_t n = 1;
        for (const char *p = src; (p = memchr(p, '\n', len - (size_t)(p - src))); p++)
            n++;
        d->lines = xcalloc(n, sizeof *d->lines);
        d->nlines = 1;
        for (const char *p = src; (p = memchr(p, '\n', len - (size_t)(p - src))); p++)
            d->lines[d->nlines++] = (size_t)(p + 1 - src);
    }
    return d;
}

static void entry_free(entry *e)
{
    free(e->msg);
    for (size_t i = 0; i < e->nnotes; i++)
        free(e->notes[i].msg);
    free(e->notes);
}

void diag_free(diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        entry_free(&d->v[i]);
    free(d->v);
    free(d->lines);
    free(d);
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void diag_error(diag *d, ast_loc loc, const char *fmt, ...)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 8;
        d->v = realloc(d->v, d->cap * sizeof *d->v);
        if (!d->v) {
            fputs("memoc: out of memory\n", stderr);
            exit(2);
        }
    }
    entry *e = &d->v[d->n];
    memset(e, 0, sizeof *e);
    e->loc = loc;
    e->seq = d->n++;
    va_list ap;
    va_start(ap, fmt);
    e->msg = vformat(fmt, ap);
    va_end(ap);
    d->errors++;
}

void diag_note(diag *d, ast_loc loc, const char *fmt, ...)
{
    if (d->n == 0)
        return;
    entry *e = &d->v[d->n - 1];
    e->notes = realloc(e->notes, (e->nnotes + 1) * sizeof *e->notes);
    if (!e->notes) {
        fputs("memoc: out of memory\n", stderr);
        exit(2);
    }
    entry *n = &e->notes[e->nnotes++];
    memset(n, 0, sizeof *n);
    n->loc = loc;
    va_list ap;
    va_start(ap, fmt);
    n->msg = vformat(fmt, ap);
    va_end(ap);
}

int diag_count(const diag *d)
{
    return d->errors;
}

size_t diag_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

/* Start and length of 1-based line `line`, or NULL. */
static const char *line_at(const diag *d, int line, size_t *len)
{
    if (line < 1 || !d->src || (size_t)line > d->nlines)
        return NULL;
    const char *p = d->src + d->lines[line - 1], *end = d->src + d->len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    if (*len > 0 && p[*len - 1] == '\r')
        (*len)--;
    return p;
}

char *diag_text(const diag *d, ast_loc loc)
{
    size_t len;
    const char *l = line_at(d, loc.line, &len);
    if (!l || loc.col < 1 || (size_t)loc.col > len + 1)
        return xstrdup("");
    size_t from = (size_t)loc.col - 1;
    size_t to =
        loc.end_line == loc.line && loc.end_col > loc.col ? (size_t)loc.end_col - 1 : len;
    if (to > len)
        to = len;
    return xstrndup(l + from, to - from);
}

/* Display width of bytes [0, n) of a line: tabs to 8, UTF-8 one per char. */
static size_t display_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\t')
            w = (w / 8 + 1) * 8;
        else if (((unsigned char)s[i] & 0xC0) != 0x80)
            w++;
    }
    return w;
}

static void print_one(const diag *d, FILE *out, const entry *e, const char *kind)
{
    if (e->loc.line > 0)
        fprintf(out, "%s:%d:%d: %s: %s\n", d->file, e->loc.line, e->loc.col, kind,
                e->msg);
    else
        fprintf(out, "%s: %s: %s\n", d->file, kind, e->msg);
    size_t len;
    const char *l = line_at(d, e->loc.line, &len);
    if (!l)
        return;
    fprintf(out, "%5d | ", e->loc.line);
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        if (l[i] == '\t') {
            size_t next = (col / 8 + 1) * 8;
            for (; col < next; col++)
                fputc(' ', out);
        } else {
            fputc(l[i], out);
            if (((unsigned char)l[i] & 0xC0) != 0x80)
                col++;
        }
    }
    fputc('\n', out);
    size_t start = (size_t)e->loc.col - 1;
    if (start > len)
        start = len;
    size_t stop = start + 1;
    if (e->loc.end_line == e->loc.line && e->loc.end_col > e->loc.col)
        stop = (size_t)e->loc.end_col - 1;
    if (stop > len)
        stop = len > start ? len : start + 1;
    size_t pad = display_width(l, start);
    size_t width =
        stop > start && stop <= len ? display_width(l + start, stop - start) : 1;
    if (width == 0)
        width = 1;
    fprintf(out, "      | %*s^", (int)pad, "");
    for (size_t i = 1; i < width; i++)
        fputc('~', out);
    fputc('\n', out);
}

static int by_position(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->loc.line != y->loc.line)
        return x->loc.line < y->loc.line ? -1 : 1;
    if (x->loc.col != y->loc.col)
        return x->loc.col < y->loc.col ? -1 : 1;
    /* qsort is not stable: keep report order for equal positions. */
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void diag_flush(diag *d, FILE *out)
{
    if (d->n > 1)
        qsort(d->v, d->n, sizeof *d->v, by_position);
    for (size_t i = 0; i < d->n; i++) {
        print_one(d, out, &d->v[i], "error");
        for (size_t k = 0; k < d->v[i].nnotes; k++)
            print_one(d, out, &d->v[i].notes[k], "note");
        entry_free(&d->v[i]);
    }
    d->n = 0;
}
