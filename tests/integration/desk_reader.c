/* Reads rows of examples/desk through one version's generated code (the
 * Makefile links it with v1, v2 and v3 in turn), for test_migrate:
 *   reader ENTITY ID...
 * prints each row as "field=value ..." (or "ID: none"), read twice: the
 * first from PostgreSQL or the cache, the second from the cache, which must
 * be the same row (exit 3 if not). Servers from REDIS_URL and DATABASE_URL. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memo/memo.h>

#include "desk.h"

/* One row as text, from its descriptor. */
static void print_row(const memo_entity_desc *d, const void *row, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < d->nfields && len < size; i++) {
        const memo_field_desc *f = &d->fields[i];
        const char *p = (const char *)row + f->offset;
        len += (size_t)snprintf(out + len, size - len, "%s%s=", i ? " " : "", f->name);
        if (len >= size)
            break;
        bool null = (f->flags & MEMO_FIELD_NULLABLE) && f->type != MEMO_TEXT &&
                    f->type != MEMO_JSON &&
                    *(const bool *)((const char *)row + f->null_offset);
        if (null) {
            len += (size_t)snprintf(out + len, size - len, "NULL");
            continue;
        }
        switch (f->type) {
        case MEMO_INT32:
            len +=
                (size_t)snprintf(out + len, size - len, "%" PRId32, *(const int32_t *)p);
            break;
        case MEMO_INT64:
        case MEMO_TIMESTAMP:
            len +=
                (size_t)snprintf(out + len, size - len, "%" PRId64, *(const int64_t *)p);
            break;
        case MEMO_FLOAT64:
            len += (size_t)snprintf(out + len, size - len, "%g", *(const double *)p);
            break;
        case MEMO_BOOL:
            len += (size_t)snprintf(out + len, size - len, "%s",
                                    *(const bool *)p ? "true" : "false");
            break;
        case MEMO_TEXT:
        case MEMO_JSON: {
            const char *s = *(char *const *)p;
            len += (size_t)snprintf(out + len, size - len, "%s", s ? s : "NULL");
            break;
        }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: reader ENTITY ID...\n");
        return 2;
    }
    const memo_entity_desc *d = NULL;
    for (unsigned i = 0; i < desk_schema_desc.nentities; i++)
        if (strcmp(desk_schema_desc.entities[i]->name, argv[1]) == 0)
            d = desk_schema_desc.entities[i];
    if (!d) {
        fprintf(stderr, "reader: no entity %s in this version\n", argv[1]);
        return 2;
    }
    memo_config cfg = MEMO_CONFIG_INIT;
    memo_error err;
    memo_repo *repo = NULL;
    if (memo_config_from_env(&cfg, &err) != MEMO_OK ||
        memo_open(&repo, &cfg, &err) != MEMO_OK) {
        fprintf(stderr, "reader: %s\n", err.message);
        return 2;
    }
    int rc = 0;
    void *row = calloc(1, d->size);
    for (int a = 2; a < argc && row; a++) {
        int64_t id = strtoll(argv[a], NULL, 10);
        char first[2048] = "", again[2048] = "";
        for (int round = 0; round < 2; round++) {
            memo_status st = memo_get(repo, d, &id, row);
            char *text = round ? again : first;
            if (st == MEMO_OK)
                print_row(d, row, text, sizeof first);
            else
                snprintf(text, sizeof first, "%" PRId64 ": %s", id,
                         st == MEMO_NOT_FOUND ? "none" : memo_last_error(repo));
            memo_row_clear(d, row);
            if (st != MEMO_OK && st != MEMO_NOT_FOUND)
                rc = 1;
        }
        puts(first);
        if (strcmp(first, again) != 0) {
            fprintf(stderr, "reader: the cached row differs: %s\n", again);
            rc = 3;
        }
    }
    free(row);
    memo_close(repo);
    return rc;
}
