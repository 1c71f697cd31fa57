/* Values between rows and PostgreSQL's binary protocol: a row's fields as
 * statement parameters, result columns into a row, with the conversions
 * (big-endian integers, timestamps between 1970 and 2000 epochs, jsonb's
 * version byte) that keep them exact. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Binary timestamps count microseconds from 2000-01-01; ours from 1970. */
#define PG_EPOCH_US 946684800000000LL

/* ------------------------------------------------------------ parameters */

static void put_be(char *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (char)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

/* Timestamps between our microseconds since 1970 and PostgreSQL's since
 * 2000. INT64_MIN and INT64_MAX are its -infinity and infinity, both ways.
 * An instant so early that the shift would overflow is long before its
 * first (4714 BC): it becomes a value the server refuses, not one that wraps
 * around into year 294247. Its last 30 years (294247..294276) do not fit
 * an int64_t since 1970: they read as infinity. */
static int64_t pg_timestamp(int64_t us)
{
    if (us == INT64_MIN || us == INT64_MAX)
        return us;
    return us < INT64_MIN + PG_EPOCH_US ? INT64_MIN + 1 : us - PG_EPOCH_US;
}

static int64_t unix_timestamp(int64_t pg)
{
    if (pg == INT64_MIN)
        return pg;
    return pg > INT64_MAX - PG_EPOCH_US ? INT64_MAX : pg + PG_EPOCH_US;
}

/* Appends the value at p (of type t) as a parameter. */
static void param_value(memop_params *ps, memo_type t, const char *p, bool null)
{
    int i = ps->n++;
    ps->formats[i] = 1;
    ps->lengths[i] = 0;
    if (null) {
        ps->values[i] = NULL;
        return;
    }
    char *scratch = ps->scratch[i];
    switch (t) {
    case MEMO_INT32:
        put_be(scratch, (uint32_t) * (const int32_t *)p, 4);
        ps->lengths[i] = 4;
        break;
    case MEMO_INT64:
        put_be(scratch, (uint64_t) * (const int64_t *)p, 8);
        ps->lengths[i] = 8;
        break;
    case MEMO_TIMESTAMP:
        put_be(scratch, (uint64_t)pg_timestamp(*(const int64_t *)p), 8);
        ps->lengths[i] = 8;
        break;
    case MEMO_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, p, 8);
        put_be(scratch, bits, 8);
        ps->lengths[i] = 8;
        break;
    }
    case MEMO_BOOL:
        scratch[0] = *(const bool *)p ? 1 : 0;
        ps->lengths[i] = 1;
        break;
    case MEMO_TEXT:
    case MEMO_JSON:
        /* text form: jsonb's binary form needs a version byte in front */
        ps->values[i] = *(char *const *)p;
        ps->formats[i] = 0;
        return;
    }
    ps->values[i] = scratch;
}

void memop_param_field(memop_params *ps, const memo_field_desc *f, const void *row)
{
    const char *p = (const char *)row + f->offset;
    bool null = false;
    if (f->flags & MEMO_FIELD_NULLABLE) {
        if (f->type == MEMO_TEXT || f->type == MEMO_JSON)
            null = *(char *const *)p == NULL;
        else
            null = *(const bool *)((const char *)row + f->null_offset);
    }
    param_value(ps, f->type, p, null);
}

void memop_param_null(memop_params *ps)
{
    param_value(ps, MEMO_INT64, NULL, true);
}

void memop_param_int64(memop_params *ps, int64_t v)
{
    param_value(ps, MEMO_INT64, (const char *)&v, false);
}

void memop_param_pk(memop_params *ps, const memo_entity_desc *d, const void *key)
{
    for (unsigned k = 0; k < d->npk; k++)
        param_value(ps, d->fields[d->pks[k]].type, (const char *)key + d->pk_offsets[k],
                    false);
}

void memop_param_key(memop_params *ps, const memo_field_desc *f, const void *key)
{
    param_value(ps, f->type, key, false);
}

/* --------------------------------------------------------------- results */

memo_status memop_result_row(const memo_entity_desc *d, const PGresult *res, int r,
                             int first, void *row)
{
    return memop_result_fields(d, NULL, d->nfields, res, r, first, row);
}

memo_status memop_value_decode(const memo_field_desc *f, const char *v, int len,
                               bool jsonb, void *row)
{
    char *p = (char *)row + f->offset;
    if (!v) {
        if (!(f->flags & MEMO_FIELD_NULLABLE))
            return MEMO_ERR_SCHEMA;
        if (f->type != MEMO_TEXT && f->type != MEMO_JSON)
            *(bool *)((char *)row + f->null_offset) = true;
        return MEMO_OK;
    }
    switch (f->type) {
    case MEMO_INT32:
        if (len != 4)
            return MEMO_ERR_SCHEMA;
        *(int32_t *)p = (int32_t)(uint32_t)get_be(v, 4);
        return MEMO_OK;
    case MEMO_INT64:
        if (len != 8)
            return MEMO_ERR_SCHEMA;
        *(int64_t *)p = (int64_t)get_be(v, 8);
        return MEMO_OK;
    case MEMO_TIMESTAMP:
        if (len != 8)
            return MEMO_ERR_SCHEMA;
        *(int64_t *)p = unix_timestamp((int64_t)get_be(v, 8));
        return MEMO_OK;
    case MEMO_FLOAT64: {
        if (len != 8)
            return MEMO_ERR_SCHEMA;
        uint64_t bits = get_be(v, 8);
        memcpy(p, &bits, 8);
        return MEMO_OK;
    }
    case MEMO_BOOL:
        if (len != 1)
            return MEMO_ERR_SCHEMA;
        *(bool *)p = v[0] != 0;
        return MEMO_OK;
    case MEMO_TEXT:
    case MEMO_JSON: {
        /* jsonb's binary form starts with its version, 1 */
        if (f->type == MEMO_JSON && jsonb) {
            if (len < 1 || v[0] != 1)
                return MEMO_ERR_SCHEMA;
            v++;
            len--;
        }
        if (len < 0)
            return MEMO_ERR_SCHEMA;
        char *s = malloc((size_t)len + 1);
        if (!s)
            return MEMO_ERR_NOMEM;
        memcpy(s, v, (size_t)len);
        s[len] = '\0';
        free(*(char **)p);
        *(char **)p = s;
        return MEMO_OK;
    }
    }
    return MEMO_ERR_SCHEMA;
}

memo_status memop_result_fields(const memo_entity_desc *d, const unsigned *which,
                                unsigned n, const PGresult *res, int r, int first,
                                void *row)
{
    for (unsigned k = 0; k < n; k++) {
        const memo_field_desc *f = &d->fields[which ? which[k] : k];
        int col = first + (int)k;
        bool null = PQgetisnull(res, r, col);
        memo_status st =
            memop_value_decode(f, null ? NULL : PQgetvalue(res, r, col),
                               PQgetlength(res, r, col), PQftype(res, col) == 3802, row);
        if (st != MEMO_OK) {
            memo_row_clear(d, row);
            return st;
        }
    }
    return MEMO_OK;
}
