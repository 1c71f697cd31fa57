#include "emit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

void emit_blank(emitter *e)
{
    fputc('\n', e->out);
}

void emit_line(emitter *e, const char *fmt, ...)
{
    for (int i = 0; i < e->indent; i++)
        fputs("    ", e->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->out, fmt, ap);
    va_end(ap);
    fputc('\n', e->out);
}

const char *c_type(ast_type t)
{
    switch (t) {
    case AST_T_INT32:
        return "int32_t";
    case AST_T_INT64:
    case AST_T_TIMESTAMP:
        return "int64_t";
    case AST_T_FLOAT64:
        return "double";
    case AST_T_BOOL:
        return "bool";
    case AST_T_TEXT:
    case AST_T_JSON:
        return "char *";
    case AST_T_UNKNOWN:
        break;
    }
    return "?";
}

const char *c_key_type(const ast_field *f)
{
    return f->type == AST_T_TEXT ? "const char *" : c_type(f->type);
}

const char *table_of(const ast_entity *e)
{
    return e->table.text ? e->table.text : e->name.text;
}

size_t field_index(const ast_entity *e, const ast_field *f)
{
    return (size_t)(f - e->fields.v);
}

size_t pk_cache_index(const ast_entity *e)
{
    for (size_t i = 0; i < e->caches.n; i++)
        if (e->caches.v[i].resolved == e->pk)
            return i;
    return (size_t)-1;
}

/* A growable string for the canonical texts that are hashed. */
typedef struct buf {
    char *s;
    size_t n, cap;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)n + 1 > b->cap) {
        b->cap = (b->n + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) {
            fputs("memoc: out of memory\n", stderr);
            exit(2);
        }
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* The shape a cached value depends on: the table, and each field's name,
 * type and nullability. The runtime's JSON encoding version is part of it,
 * so a new encoding never reads old values either. */
void entity_fingerprint(const ast_entity *e, char out[17])
{
    buf b = {0};
    bprintf(&b, "memo-shape-v1\ntable %s\n", table_of(e));
    for (size_t i = 0; i < e->fields.n; i++) {
        const ast_field *f = &e->fields.v[i];
        bprintf(&b, "field %s %s%s%s\n", f->name.text, ast_type_name(f->type),
                f->flags & AST_F_NULLABLE ? " nullable" : "",
                f->flags & AST_F_PRIMARY ? " pk" : "");
    }
    memop_sha256_hex(b.s, b.n, out, 16);
    free(b.s);
}

static void tag_of(const ast_entity *e, const char *what, char tag[9])
{
    char fp[17];
    entity_fingerprint(e, fp);
    buf b = {0};
    bprintf(&b, "memo-key-v1 %s %s", fp, what);
    memop_sha256_hex(b.s, b.n, tag, 8);
    free(b.s);
}

/* Splits a template at its one {placeholder}. */
static void split_template(const char *t, key_parts *k)
{
    const char *open = strchr(t, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    if (!open || !close) { /* the checker rejects these */
        k->head = xstrdup(t);
        k->tail = xstrdup("");
        return;
    }
    k->head = xstrndup(t, (size_t)(open - t));
    k->tail = xstrdup(close + 1);
}

void row_key(const ast_entity *e, key_parts *k)
{
    size_t i = pk_cache_index(e);
    const ast_cache *c = i == (size_t)-1 ? NULL : &e->caches.v[i];
    if (c && c->key.text) {
        split_template(c->key.text, k);
    } else {
        buf b = {0};
        bprintf(&b, "%s:", e->name.text);
        k->head = b.s;
        k->tail = xstrdup("");
    }
    tag_of(e, "row", k->tag);
}

void unique_key(const ast_entity *e, const ast_cache *c, key_parts *k)
{
    if (c->key.text) {
        split_template(c->key.text, k);
    } else {
        buf b = {0};
        bprintf(&b, "%s:%s=", e->name.text, c->resolved->name.text);
        k->head = b.s;
        k->tail = xstrdup("");
    }
    buf w = {0};
    bprintf(&w, "unique %s", c->resolved->name.text);
    tag_of(e, w.s, k->tag);
    free(w.s);
}

void list_key(const ast_entity *e, const ast_list *l, key_parts *k)
{
    buf b = {0};
    bprintf(&b, "%s:%s=", e->name.text, l->name.text);
    k->head = b.s;
    k->tail = xstrdup("");
    buf w = {0};
    bprintf(&w, "list %s group %s order %s %s limit %llu", l->name.text,
            l->group_field->name.text, l->order_field->name.text, l->desc ? "desc" : "asc",
            (unsigned long long)(l->limit.set ? l->limit.value : 0));
    tag_of(e, w.s, k->tag);
    free(w.s);
}

void key_parts_free(key_parts *k)
{
    free(k->head);
    free(k->tail);
    k->head = k->tail = NULL;
}

/* ------------------------------------------------------------ signatures */

const variant variant_repo = {"", "memo_repo *repo", "repo", "memo_"};
const variant variant_tx = {"_tx", "memo_tx *tx", "tx", "memo_tx_"};

/* "int64_t id" or "const char *slug": a parameter of field f's key type. */
static void key_param(char *out, size_t size, const ast_field *f)
{
    const char *t = c_key_type(f);
    snprintf(out, size, "%s%s%s", t, t[strlen(t) - 1] == '*' ? "" : " ", f->name.text);
}

void sig_get(char *out, size_t size, const emitter *em, const ast_entity *e, const variant *v)
{
    char p[160];
    key_param(p, sizeof p, e->pk);
    snprintf(out, size, "memo_status %s_%s_get%s(%s, %s, %s_%s *out)", em->s->name,
             e->name.text, v->suffix, v->handle, p, em->s->name, e->name.text);
}

void sig_get_by(char *out, size_t size, const emitter *em, const ast_entity *e,
                const ast_field *f, const variant *v)
{
    char p[160];
    key_param(p, sizeof p, f);
    snprintf(out, size, "memo_status %s_%s_get_by_%s%s(%s, %s, %s_%s *out)", em->s->name,
             e->name.text, f->name.text, v->suffix, v->handle, p, em->s->name, e->name.text);
}

void sig_list(char *out, size_t size, const emitter *em, const ast_entity *e,
              const ast_list *l, const variant *v)
{
    char p[160];
    key_param(p, sizeof p, l->group_field);
    snprintf(out, size, "memo_status %s_%s_%s%s(%s, %s, %s_%s_list *out)", em->s->name,
             e->name.text, l->name.text, v->suffix, v->handle, p, em->s->name, e->name.text);
}

void sig_get_many(char *out, size_t size, const emitter *em, const ast_entity *e,
                  const variant *v)
{
    const ast_field *pk = e->pk;
    const char *t = pk->type == AST_T_TEXT    ? "const char *const *"
                    : pk->type == AST_T_INT32 ? "const int32_t *"
                                              : "const int64_t *";
    /* the second line lines up under the first parameter */
    int n = snprintf(out, size, "memo_status %s_%s_get_many%s(", em->s->name, e->name.text,
                     v->suffix);
    snprintf(out + n, size - (size_t)n, "%s, %s%ss, size_t n,\n%*s%s_%s_list *out)",
             v->handle, t, pk->name.text, n, "", em->s->name, e->name.text);
}

void sig_insert(char *out, size_t size, const emitter *em, const ast_entity *e,
                const variant *v)
{
    snprintf(out, size, "memo_status %s_%s_insert%s(%s, %s_%s *row)", em->s->name,
             e->name.text, v->suffix, v->handle, em->s->name, e->name.text);
}

void sig_update(char *out, size_t size, const emitter *em, const ast_entity *e,
                const variant *v)
{
    snprintf(out, size, "memo_status %s_%s_update%s(%s, const %s_%s *row)", em->s->name,
             e->name.text, v->suffix, v->handle, em->s->name, e->name.text);
}

void sig_delete(char *out, size_t size, const emitter *em, const ast_entity *e,
                const variant *v)
{
    char p[160];
    key_param(p, sizeof p, e->pk);
    snprintf(out, size, "memo_status %s_%s_delete%s(%s, %s)", em->s->name, e->name.text,
             v->suffix, v->handle, p);
}
