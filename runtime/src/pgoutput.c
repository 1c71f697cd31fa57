/* PostgreSQL's logical replication messages (the built-in pgoutput plugin,
 * protocol version 1, tuples in binary), parsed in place: what memo watch
 * reads from a replication slot. Pure: bytes in, a message out, nothing
 * read beyond the message's length; a message that does not parse is
 * refused whole (false), never half-read. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct rd {
    const unsigned char *p, *end;
    bool bad;
} rd;

static uint64_t be(rd *r, int n)
{
    if (r->bad || r->end - r->p < n) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | *r->p++;
    return v;
}

/* A NUL-terminated string inside the message. */
static const char *str(rd *r)
{
    if (r->bad)
        return "";
    const unsigned char *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
    if (!nul) {
        r->bad = true;
        return "";
    }
    const char *s = (const char *)r->p;
    r->p = nul + 1;
    return s;
}

static bool grow(memop_pgparser *ps, size_t n)
{
    if (n <= ps->cap)
        return true;
    size_t cap = ps->cap ? ps->cap : 16;
    while (cap < n)
        cap *= 2;
    memop_pgcol *o = realloc(ps->old, cap * sizeof *o);
    if (!o)
        return false;
    ps->old = o;
    memop_pgcol *w = realloc(ps->new, cap * sizeof *w);
    if (!w)
        return false;
    ps->new = w;
    memop_pgrelcol *c = realloc(ps->rel, cap * sizeof *c);
    if (!c)
        return false;
    ps->rel = c;
    ps->cap = cap;
    return true;
}

/* TupleData: int16 n, then per column a kind byte and, for 't' and 'b', an
 * int32 length and the bytes. Into the parser's old or new columns. */
static memop_pgcol *tuple(rd *r, memop_pgparser *ps, bool old, int *ncols)
{
    int n = (int)be(r, 2);
    if (r->bad || !grow(ps, (size_t)n)) { /* grow first: it may move the arrays */
        r->bad = true;
        return NULL;
    }
    memop_pgcol *cols = old ? ps->old : ps->new;
    for (int i = 0; i < n && !r->bad; i++) {
        memop_pgcol *c = &cols[i];
        c->kind = (char)be(r, 1);
        c->data = NULL;
        c->len = 0;
        if (c->kind == 't' || c->kind == 'b') {
            uint64_t len = be(r, 4);
            if (r->bad || len > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                return NULL;
            }
            c->data = (const char *)r->p;
            c->len = (int)len;
            r->p += len;
        } else if (c->kind != 'n' && c->kind != 'u') {
            r->bad = true;
        }
    }
    *ncols = n;
    return cols;
}

void memop_pgparser_free(memop_pgparser *ps)
{
    free(ps->old);
    free(ps->new);
    free(ps->rel);
    memset(ps, 0, sizeof *ps);
}

bool memop_pgoutput_parse(memop_pgparser *ps, const char *data, size_t len,
                          memop_pgmsg *m)
{
    rd r = {(const unsigned char *)data, (const unsigned char *)data + len, false};
    memset(m, 0, sizeof *m);
    if (len == 0)
        return false;
    m->type = (char)be(&r, 1);
    switch (m->type) {
    case 'B': /* Begin: final LSN, commit time, xid */
        m->lsn = be(&r, 8);
        m->ts = (int64_t)be(&r, 8);
        m->xid = (uint32_t)be(&r, 4);
        break;
    case 'C': /* Commit: flags, commit LSN, end LSN, commit time */
        be(&r, 1);
        m->lsn = be(&r, 8);
        m->end_lsn = be(&r, 8);
        m->ts = (int64_t)be(&r, 8);
        break;
    case 'O': /* Origin: LSN, name */
        m->lsn = be(&r, 8);
        str(&r);
        break;
    case 'Y': /* Type: oid, namespace, name */
        be(&r, 4);
        str(&r);
        str(&r);
        break;
    case 'R': { /* Relation */
        m->relid = (uint32_t)be(&r, 4);
        m->nspname = str(&r);
        m->relname = str(&r);
        m->replident = (char)be(&r, 1);
        int n = (int)be(&r, 2);
        if (r.bad || !grow(ps, (size_t)n))
            return false;
        for (int i = 0; i < n && !r.bad; i++) {
            memop_pgrelcol *c = &ps->rel[i];
            c->key = be(&r, 1) & 1;
            c->name = str(&r);
            c->type = (uint32_t)be(&r, 4);
            be(&r, 4); /* typmod */
        }
        m->ncols = n;
        m->cols = ps->rel;
        break;
    }
    case 'I': /* Insert: relid, 'N', new tuple */
        m->relid = (uint32_t)be(&r, 4);
        if (be(&r, 1) != 'N')
            return false;
        m->new = tuple(&r, ps, false, &m->nnew);
        break;
    case 'U': { /* Update: relid, ['K' | 'O' old tuple], 'N', new tuple */
        m->relid = (uint32_t)be(&r, 4);
        char k = (char)be(&r, 1);
        if (k == 'K' || k == 'O') {
            m->old_kind = k;
            m->old = tuple(&r, ps, true, &m->nold);
            k = (char)be(&r, 1);
        }
        if (k != 'N')
            return false;
        m->new = tuple(&r, ps, false, &m->nnew);
        if (m->old_kind) /* the new tuple may have moved the old's array */
            m->old = ps->old;
        break;
    }
    case 'D': { /* Delete: relid, 'K' | 'O', old tuple */
        m->relid = (uint32_t)be(&r, 4);
        char k = (char)be(&r, 1);
        if (k != 'K' && k != 'O')
            return false;
        m->old_kind = k;
        m->old = tuple(&r, ps, true, &m->nold);
        break;
    }
    case 'T': { /* Truncate: n, options, relids */
        uint64_t n = be(&r, 4);
        be(&r, 1);
        if (r.bad || n > (uint64_t)(r.end - r.p) / 4)
            return false;
        m->nrels = (int)n;
        m->relids = (const char *)r.p;
        r.p += 4 * n;
        break;
    }
    default:
        return false; /* a message of a protocol this parser does not speak */
    }
    return !r.bad && r.p == r.end;
}

uint32_t memop_pgoutput_relid(const memop_pgmsg *m, int i)
{
    const unsigned char *p = (const unsigned char *)m->relids + 4 * i;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
