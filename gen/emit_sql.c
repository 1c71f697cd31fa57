/* blog.sql: tables, unique constraints, foreign keys and list indexes, safe to
 * apply again (IF NOT EXISTS everywhere). */
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "names.h"
#include "sha256.h"

static const char *sql_type(const ast_field *f)
{
    switch (f->type) {
    case AST_T_INT32:
        return "integer";
    case AST_T_INT64:
        return "bigint";
    case AST_T_FLOAT64:
        return "double precision";
    case AST_T_BOOL:
        return "boolean";
    case AST_T_TEXT:
        return "text";
    case AST_T_TIMESTAMP:
        return "timestamptz";
    case AST_T_JSON:
        return "jsonb";
    case AST_T_UNKNOWN:
        break;
    }
    return "?";
}

/* An identifier PostgreSQL keeps: over 63 bytes it would be cut, so long
 * generated names end in a hash of the whole. */
static void sql_name(char *out, size_t size, const char *name)
{
    size_t n = strlen(name);
    if (n <= 63) {
        snprintf(out, size, "%s", name);
        return;
    }
    char h[9];
    memop_sha256_hex(name, n, h, 8);
    snprintf(out, size, "%.54s_%s", name, h);
}

/* Entity e's index in the schema; idx maps (entity, "") to it. */
static size_t index_of(const name_map *idx, const ast_entity *e)
{
    return *(const size_t *)name_map_get(idx, e, "");
}

/* A min-heap of entity indexes: the tables ready to be created, first in
 * schema order first. */
typedef struct heap {
    size_t *v, n;
} heap;

static void heap_push(heap *h, size_t x)
{
    size_t i = h->n++;
    for (; i > 0 && h->v[(i - 1) / 2] > x; i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = x;
}

static size_t heap_pop(heap *h)
{
    size_t top = h->v[0], last = h->v[--h->n], i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c])
            c++;
        if (h->v[c] >= last)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

/* The order of the CREATE TABLEs: schema order, each table after the ones it
 * references (itself aside); when a cycle leaves none ready, the first
 * remaining table, whose foreign keys are added afterwards. Kahn's algorithm
 * with a heap, so linear but for the heap's log. Fills order[n] and
 * rank[i], the place of entity i; idx maps an entity to its index. */
static void table_order(const ast_schema *sc, const name_map *idx, ast_entity **order,
                        size_t *rank)
{
    size_t n = sc->entities.n;
    size_t *waits = xcalloc(n, sizeof *waits); /* references to tables not placed */
    /* the entities that reference entity j are by[first[j] .. first[j + 1]) */
    size_t *first = xcalloc(n + 1, sizeof *first);
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++) {
        const ast_entity *e = sc->entities.v[i];
        for (size_t k = 0; k < e->fields.n; k++)
            if (e->fields.v[k].ref && e->fields.v[k].ref != e) {
                first[index_of(idx, e->fields.v[k].ref) + 1]++;
                waits[i]++;
                nrefs++;
            }
    }
    for (size_t j = 0; j < n; j++)
        first[j + 1] += first[j];
    size_t *by = xcalloc(nrefs, sizeof *by), *fill = xcalloc(n, sizeof *fill);
    for (size_t i = 0; i < n; i++) {
        const ast_entity *e = sc->entities.v[i];
        for (size_t k = 0; k < e->fields.n; k++)
            if (e->fields.v[k].ref && e->fields.v[k].ref != e) {
                size_t j = index_of(idx, e->fields.v[k].ref);
                by[first[j] + fill[j]++] = i;
            }
    }

    heap ready = {xcalloc(n, sizeof *ready.v), 0};
    bool *done = xcalloc(n, sizeof *done);
    for (size_t i = 0; i < n; i++)
        if (waits[i] == 0)
            heap_push(&ready, i);
    size_t next = 0; /* no table before it is left */
    for (size_t placed = 0; placed < n; placed++) {
        size_t i;
        if (ready.n > 0) {
            i = heap_pop(&ready);
        } else {
            while (done[next])
                next++;
            i = next;
        }
        done[i] = true;
        order[placed] = sc->entities.v[i];
        rank[i] = placed;
        for (size_t r = first[i]; r < first[i + 1]; r++)
            if (--waits[by[r]] == 0 && !done[by[r]])
                heap_push(&ready, by[r]);
    }
    free(waits);
    free(first);
    free(by);
    free(fill);
    free(ready.v);
    free(done);
}

void emit_sql(emitter *em)
{
    const ast_schema *sc = em->s;
    size_t n = sc->entities.n;
    size_t *ids = xcalloc(n, sizeof *ids);
    name_map idx = {0}; /* (entity, "") -> its index, in ids */
    for (size_t i = 0; i < n; i++) {
        ids[i] = i;
        name_map_add(&idx, sc->entities.v[i], "", &ids[i]);
    }
    ast_entity **order = xcalloc(n, sizeof *order);
    size_t *rank = xcalloc(n, sizeof *rank);
    table_order(sc, &idx, order, rank);

    emit_generated_by(em, "--", "");
    emit_line(em, "-- Safe to apply again: every statement is IF NOT EXISTS.");
    emit_blank(em);
    emit_line(em, "BEGIN;");
    emit_blank(em);
    for (size_t k = 0; k < n; k++) {
        const ast_entity *e = order[k];
        emit_line(em, "CREATE TABLE IF NOT EXISTS \"%s\" (", table_of(e));
        for (size_t i = 0; i < e->fields.n; i++) {
            const ast_field *f = &e->fields.v[i];
            char line[512];
            size_t len = (size_t)snprintf(line, sizeof line, "    \"%s\" %s", f->name.text,
                                          sql_type(f));
            if (f == e->pk) {
                if (f->type != AST_T_TEXT)
                    len += (size_t)snprintf(line + len, sizeof line - len,
                                            " GENERATED BY DEFAULT AS IDENTITY");
                len += (size_t)snprintf(line + len, sizeof line - len, " PRIMARY KEY");
            } else {
                if (!(f->flags & AST_F_NULLABLE))
                    len += (size_t)snprintf(line + len, sizeof line - len, " NOT NULL");
                if (f->flags & AST_F_UNIQUE)
                    len += (size_t)snprintf(line + len, sizeof line - len, " UNIQUE");
            }
            /* A reference to a table created later waits for ALTER TABLE. */
            if (f->ref && rank[index_of(&idx, f->ref)] <= k)
                len += (size_t)snprintf(line + len, sizeof line - len,
                                            " REFERENCES \"%s\" (\"%s\")", table_of(f->ref),
                                            f->ref->pk->name.text);
            emit_line(em, "%s%s", line, i + 1 < e->fields.n ? "," : "");
        }
        emit_line(em, ");");
        for (size_t i = 0; i < e->lists.n; i++) {
            const ast_list *l = &e->lists.v[i];
            char raw[256], name[80];
            snprintf(raw, sizeof raw, "%s_%s_%s_idx", table_of(e), l->group_field->name.text,
                     l->order_field->name.text);
            sql_name(name, sizeof name, raw);
            if (l->order_field == l->group_field || l->order_field == e->pk)
                emit_line(em, "CREATE INDEX IF NOT EXISTS \"%s\" ON \"%s\" (\"%s\", \"%s\");",
                          name, table_of(e), l->group_field->name.text, e->pk->name.text);
            else
                emit_line(em,
                          "CREATE INDEX IF NOT EXISTS \"%s\" ON \"%s\" (\"%s\", \"%s\", \"%s\");",
                          name, table_of(e), l->group_field->name.text,
                          l->order_field->name.text, e->pk->name.text);
        }
        emit_blank(em);
    }

    /* Foreign keys that close a cycle: added once, by name. */
    for (size_t k = 0; k < n; k++) {
        const ast_entity *e = order[k];
        for (size_t i = 0; i < e->fields.n; i++) {
            const ast_field *f = &e->fields.v[i];
            if (!f->ref || rank[index_of(&idx, f->ref)] <= k)
                continue;
            char raw[256], name[80];
            snprintf(raw, sizeof raw, "%s_%s_fkey", table_of(e), f->name.text);
            sql_name(name, sizeof name, raw);
            emit_line(em, "DO $$ BEGIN");
            emit_line(em, "    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '%s') THEN",
                      name);
            emit_line(em, "        ALTER TABLE \"%s\" ADD CONSTRAINT \"%s\" FOREIGN KEY (\"%s\")",
                      table_of(e), name, f->name.text);
            emit_line(em, "            REFERENCES \"%s\" (\"%s\");", table_of(f->ref),
                      f->ref->pk->name.text);
            emit_line(em, "    END IF;");
            emit_line(em, "END $$;");
            emit_blank(em);
        }
    }
    emit_line(em, "COMMIT;");
    free(order);
    free(rank);
    free(ids);
    name_map_free(&idx);
}
