/* Rows as JSON objects in Redis (jansson), and the row helpers every path
 * shares: clear, copy, compare. A row is the generated struct, described by
 * the entity's field table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

const char memop_null_value[] = "null";

#define FIELD_PTR(row, f) ((char *)(row) + (f)->offset)
#define FIELD_CPTR(row, f) ((const char *)(row) + (f)->offset)

static bool is_string(memo_type t)
{
    return t == MEMO_TEXT || t == MEMO_JSON;
}

/* Nullable scalars carry a flag; nullable strings are NULL. */
static bool field_is_null(const memo_field_desc *f, const void *row)
{
    if (!(f->flags & MEMO_FIELD_NULLABLE))
        return false;
    if (is_string(f->type))
        return *(char *const *)FIELD_CPTR(row, f) == NULL;
    return *(const bool *)((const char *)row + f->null_offset);
}

static void set_null(const memo_field_desc *f, void *row, bool null)
{
    if ((f->flags & MEMO_FIELD_NULLABLE) && !is_string(f->type))
        *(bool *)((char *)row + f->null_offset) = null;
}

void memo_row_clear(const memo_entity_desc *d, void *row)
{
    if (!d || !row)
        return;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if (is_string(f->type))
            free(*(char **)FIELD_PTR(row, f));
    }
    memset(row, 0, d->size);
}

void memo_rows_clear(const memo_entity_desc *d, memo_rows *rows)
{
    if (!d || !rows)
        return;
    for (size_t i = 0; i < rows->len; i++)
        memo_row_clear(d, (char *)rows->items + i * d->size);
    free(rows->items);
    rows->items = NULL;
    rows->len = 0;
}

memo_status memop_row_copy(const memo_entity_desc *d, const void *src, void *dst)
{
    memcpy(dst, src, d->size);
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if (!is_string(f->type))
            continue;
        const char *s = *(char *const *)FIELD_CPTR(src, f);
        char **to = (char **)FIELD_PTR(dst, f);
        *to = NULL;
        if (s && !(*to = strdup(s))) {
            /* strings after this one still point into src: cut them off */
            for (unsigned j = i + 1; j < d->nfields; j++)
                if (is_string(d->fields[j].type))
                    *(char **)FIELD_PTR(dst, &d->fields[j]) = NULL;
            memo_row_clear(d, dst);
            return MEMO_ERR_NOMEM;
        }
    }
    return MEMO_OK;
}

bool memop_row_equal(const memo_entity_desc *d, const void *a, const void *b)
{
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        bool na = field_is_null(f, a), nb = field_is_null(f, b);
        if (na != nb)
            return false;
        if (na)
            continue;
        const char *pa = FIELD_CPTR(a, f), *pb = FIELD_CPTR(b, f);
        switch (f->type) {
        case MEMO_INT32:
            if (*(const int32_t *)pa != *(const int32_t *)pb)
                return false;
            break;
        case MEMO_INT64:
        case MEMO_TIMESTAMP:
            if (*(const int64_t *)pa != *(const int64_t *)pb)
                return false;
            break;
        case MEMO_FLOAT64: {
            double x = *(const double *)pa, y = *(const double *)pb;
            if (!(x == y || (isnan(x) && isnan(y))))
                return false;
            break;
        }
        case MEMO_BOOL:
            if (*(const bool *)pa != *(const bool *)pb)
                return false;
            break;
        case MEMO_TEXT:
        case MEMO_JSON:
            if (strcmp(*(char *const *)pa, *(char *const *)pb) != 0)
                return false;
            break;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ JSON */

static json_t *field_json(const memo_field_desc *f, const void *row)
{
    if (field_is_null(f, row))
        return json_null();
    const char *p = FIELD_CPTR(row, f);
    switch (f->type) {
    case MEMO_INT32:
        return json_integer(*(const int32_t *)p);
    case MEMO_INT64:
    case MEMO_TIMESTAMP:
        return json_integer(*(const int64_t *)p);
    case MEMO_FLOAT64: {
        double v = *(const double *)p;
        /* JSON has no NaN or infinities; PostgreSQL's float8 does. */
        if (isnan(v))
            return json_string("NaN");
        if (isinf(v))
            return json_string(v > 0 ? "Infinity" : "-Infinity");
        return json_real(v);
    }
    case MEMO_BOOL:
        return json_boolean(*(const bool *)p);
    case MEMO_TEXT:
    case MEMO_JSON: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    }
    return NULL;
}

static int append_cb(const char *data, size_t n, void *ctx)
{
    memop_buf *b = ctx;
    memop_buf_append(b, data, n);
    return b->failed ? -1 : 0;
}

memo_status memop_row_encode(const memo_entity_desc *d, const void *row, memop_buf *buf)
{
    json_t *obj = json_object();
    if (!obj)
        return MEMO_ERR_NOMEM;
    memo_status st = MEMO_OK;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        json_t *v = field_json(f, row);
        if (!v) {
            /* text that is not UTF-8 cannot be a JSON string */
            st = MEMO_ERR_ARG;
            goto out;
        }
        if (json_object_set_new_nocheck(obj, f->name, v) != 0) {
            st = MEMO_ERR_NOMEM;
            goto out;
        }
    }
    buf->len = 0;
    if (json_dump_callback(obj, append_cb, buf, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0 ||
        buf->failed)
        st = MEMO_ERR_NOMEM;
out:
    json_decref(obj);
    return st;
}

static bool decode_field(const memo_field_desc *f, json_t *v, void *row)
{
    char *p = FIELD_PTR(row, f);
    if (json_is_null(v)) {
        if (!(f->flags & MEMO_FIELD_NULLABLE))
            return false;
        set_null(f, row, true);
        return true;
    }
    switch (f->type) {
    case MEMO_INT32: {
        if (!json_is_integer(v))
            return false;
        json_int_t x = json_integer_value(v);
        if (x < INT32_MIN || x > INT32_MAX)
            return false;
        *(int32_t *)p = (int32_t)x;
        return true;
    }
    case MEMO_INT64:
    case MEMO_TIMESTAMP:
        if (!json_is_integer(v))
            return false;
        *(int64_t *)p = json_integer_value(v);
        return true;
    case MEMO_FLOAT64:
        if (json_is_real(v) || json_is_integer(v)) {
            *(double *)p = json_number_value(v);
            return true;
        }
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            if (strcmp(s, "NaN") == 0)
                *(double *)p = NAN;
            else if (strcmp(s, "Infinity") == 0)
                *(double *)p = INFINITY;
            else if (strcmp(s, "-Infinity") == 0)
                *(double *)p = -INFINITY;
            else
                return false;
            return true;
        }
        return false;
    case MEMO_BOOL:
        if (!json_is_boolean(v))
            return false;
        *(bool *)p = json_is_true(v);
        return true;
    case MEMO_TEXT:
    case MEMO_JSON: {
        if (!json_is_string(v))
            return false;
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);
        if (memchr(s, '\0', n)) /* a C string cannot hold it */
            return false;
        char *copy = strndup(s, n);
        if (!copy)
            return false;
        *(char **)p = copy;
        return true;
    }
    }
    return false;
}

memo_status memop_row_decode(const memo_entity_desc *d, const char *data, size_t len,
                             void *row, char *why, size_t whysize)
{
    json_error_t jerr;
    json_t *obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    memo_status st = MEMO_OK;
    if (!obj) {
        snprintf(why, whysize, "not JSON: %s", jerr.text);
        return MEMO_ERR_ARG;
    }
    if (!json_is_object(obj)) {
        snprintf(why, whysize, "not a JSON object");
        st = MEMO_ERR_ARG;
        goto out;
    }
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        json_t *v = json_object_get(obj, f->name);
        if (!v) {
            snprintf(why, whysize, "member \"%s\" is missing", f->name);
            st = MEMO_ERR_ARG;
            goto out;
        }
        if (!decode_field(f, v, row)) {
            snprintf(why, whysize, "member \"%s\" is not a valid %s", f->name,
                     f->flags & MEMO_FIELD_NULLABLE ? "value or null" : "value");
            st = MEMO_ERR_ARG;
            goto out;
        }
    }
out:
    if (st != MEMO_OK)
        memo_row_clear(d, row);
    json_decref(obj);
    return st;
}
