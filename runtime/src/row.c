/* Rows: the generated structs, described by their entity's field table,
 * and what every path does with them: clear, copy, compare, and whether a
 * field is NULL. (Their JSON form is codec.c's.) */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool memop_field_is_text(memo_type t)
{
    return t == MEMO_TEXT || t == MEMO_JSON;
}

/* Nullable scalars carry a flag; nullable strings are NULL. */
bool memop_field_null(const memo_field_desc *f, const void *row)
{
    if (!(f->flags & MEMO_FIELD_NULLABLE))
        return false;
    if (memop_field_is_text(f->type))
        return *(char *const *)MEMOP_FIELD_CPTR(row, f) == NULL;
    return *(const bool *)((const char *)row + f->null_offset);
}

void memop_field_set_null(const memo_field_desc *f, void *row, bool null)
{
    if ((f->flags & MEMO_FIELD_NULLABLE) && !memop_field_is_text(f->type))
        *(bool *)((char *)row + f->null_offset) = null;
}

void memo_row_clear(const memo_entity_desc *d, void *row)
{
    if (!d || !row)
        return;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        if (memop_field_is_text(f->type))
            free(*(char **)MEMOP_FIELD_PTR(row, f));
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
        if (!memop_field_is_text(f->type))
            continue;
        const char *s = *(char *const *)MEMOP_FIELD_CPTR(src, f);
        char **to = (char **)MEMOP_FIELD_PTR(dst, f);
        *to = NULL;
        if (s && !(*to = strdup(s))) {
            /* strings after this one still point into src: cut them off */
            for (unsigned j = i + 1; j < d->nfields; j++)
                if (memop_field_is_text(d->fields[j].type))
                    *(char **)MEMOP_FIELD_PTR(dst, &d->fields[j]) = NULL;
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
        bool na = memop_field_null(f, a), nb = memop_field_null(f, b);
        if (na != nb)
            return false;
        if (na)
            continue;
        const char *pa = MEMOP_FIELD_CPTR(a, f), *pb = MEMOP_FIELD_CPTR(b, f);
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
        case MEMO_JSON: {
            /* a NULL in a field that is not nullable encodes as "": compare so */
            const char *x = *(char *const *)pa, *y = *(char *const *)pb;
            if (strcmp(x ? x : "", y ? y : "") != 0)
                return false;
            break;
        }
        }
    }
    return true;
}
