/* blog.sql: tables, unique constraints, foreign keys and list indexes, safe to
 * apply again (IF NOT EXISTS everywhere), printed from the model (lower.h). */
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "sha256.h"
#include "shared.h"

static const char *sql_type(memo_type t)
{
    switch (t) {
    case MEMO_INT32:
        return "integer";
    case MEMO_INT64:
        return "bigint";
    case MEMO_FLOAT64:
        return "double precision";
    case MEMO_BOOL:
        return "boolean";
    case MEMO_TEXT:
        return "text";
    case MEMO_TIMESTAMP:
        return "timestamptz";
    case MEMO_JSON:
        return "jsonb";
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
 * rank[i], the place of entity i. */
static void table_order(const model *m, const lowered_entity **order, size_t *rank)
{
    size_t n = m->n;
    size_t *waits = xcalloc(n, sizeof *waits); /* references to tables not placed */
    /* the entities that reference entity j are by[first[j] .. first[j + 1]) */
    size_t *first = xcalloc(n + 1, sizeof *first);
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++) {
        const lowered_entity *e = &m->entities[i];
        for (unsigned k = 0; k < e->desc.nfields; k++)
            if (e->fields[k].ref >= 0 && (size_t)e->fields[k].ref != i) {
                first[e->fields[k].ref + 1]++;
                waits[i]++;
                nrefs++;
            }
    }
    for (size_t j = 0; j < n; j++)
        first[j + 1] += first[j];
    size_t *by = xcalloc(nrefs, sizeof *by), *fill = xcalloc(n, sizeof *fill);
    for (size_t i = 0; i < n; i++) {
        const lowered_entity *e = &m->entities[i];
        for (unsigned k = 0; k < e->desc.nfields; k++)
            if (e->fields[k].ref >= 0 && (size_t)e->fields[k].ref != i) {
                size_t j = (size_t)e->fields[k].ref;
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
        order[placed] = &m->entities[i];
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

/* "t1", "t2", ...: every table of the schema, written out whole. */
static void table_list(emitter *em, const model *m, size_t n)
{
    for (size_t k = 0; k < n; k++)
        fprintf(em->out, "%s\"%s\"", k ? ", " : "", m->entities[k].desc.table);
}

void emit_sql(emitter *em)
{
    const model *m = em->m;
    size_t n = m->n;
    const lowered_entity **order = xcalloc(n + 1, sizeof *order);
    size_t *rank = xcalloc(n + 1, sizeof *rank);
    table_order(m, order, rank);

    emit_generated_by(em, "--", "");
    emit_line(em, "-- Safe to apply again: every statement is IF NOT EXISTS or changes "
                  "nothing twice.");
    emit_blank(em);
    emit_line(em, "BEGIN;");
    emit_blank(em);
    for (size_t k = 0; k < n; k++) {
        const lowered_entity *me = order[k];
        const memo_entity_desc *e = &me->desc;
        const char *pk = e->fields[e->pk].name;
        emit_line(em, "CREATE TABLE IF NOT EXISTS \"%s\" (", e->table);
        for (unsigned i = 0; i < e->nfields; i++) {
            const memo_field_desc *f = &e->fields[i];
            long ref = me->fields[i].ref;
            char line[512];
            size_t len = (size_t)snprintf(line, sizeof line, "    \"%s\" %s", f->name,
                                          sql_type(f->type));
            if (i == e->pk) {
                if (f->type != MEMO_TEXT)
                    len += (size_t)snprintf(line + len, sizeof line - len,
                                            " GENERATED BY DEFAULT AS IDENTITY");
                len += (size_t)snprintf(line + len, sizeof line - len, " PRIMARY KEY");
            } else {
                if (!(f->flags & MEMO_FIELD_NULLABLE))
                    len += (size_t)snprintf(line + len, sizeof line - len, " NOT NULL");
                if (f->flags & MEMO_FIELD_UNIQUE)
                    len += (size_t)snprintf(line + len, sizeof line - len, " UNIQUE");
                /* as memo's insert: writes made outside memo start there too */
                if (f->flags & MEMO_FIELD_VERSION)
                    len += (size_t)snprintf(line + len, sizeof line - len, " DEFAULT 1");
            }
            /* A reference to a table created later waits for ALTER TABLE. */
            if (ref >= 0 && rank[ref] <= k) {
                const memo_entity_desc *t = &m->entities[ref].desc;
                len += (size_t)snprintf(line + len, sizeof line - len,
                                        " REFERENCES \"%s\" (\"%s\")", t->table,
                                        t->fields[t->pk].name);
            }
            emit_line(em, "%s%s", line, i + 1 < e->nfields ? "," : "");
        }
        emit_line(em, ");");
        for (unsigned i = 0; i < e->nlists; i++) {
            const memo_list_desc *l = &e->lists[i];
            const char *g = e->fields[l->group].name, *o = e->fields[l->order].name;
            char raw[256], name[80];
            snprintf(raw, sizeof raw, "%s_%s_%s_idx", e->table, g, o);
            sql_name(name, sizeof name, raw);
            if (l->order == l->group || l->order == e->pk)
                emit_line(em,
                          "CREATE INDEX IF NOT EXISTS \"%s\" ON \"%s\" (\"%s\", \"%s\");",
                          name, e->table, g, pk);
            else
                emit_line(em,
                          "CREATE INDEX IF NOT EXISTS \"%s\" ON \"%s\" (\"%s\", \"%s\", "
                          "\"%s\");",
                          name, e->table, g, o, pk);
        }
        emit_blank(em);
    }

    /* Foreign keys that close a cycle: added once, by name. */
    for (size_t k = 0; k < n; k++) {
        const lowered_entity *me = order[k];
        const memo_entity_desc *e = &me->desc;
        for (unsigned i = 0; i < e->nfields; i++) {
            long ref = me->fields[i].ref;
            if (ref < 0 || rank[ref] <= k)
                continue;
            const memo_entity_desc *t = &m->entities[ref].desc;
            char raw[256], name[80];
            snprintf(raw, sizeof raw, "%s_%s_fkey", e->table, e->fields[i].name);
            sql_name(name, sizeof name, raw);
            emit_line(em, "DO $$ BEGIN");
            emit_line(em,
                      "    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = "
                      "'%s') THEN",
                      name);
            emit_line(
                em,
                "        ALTER TABLE \"%s\" ADD CONSTRAINT \"%s\" FOREIGN KEY (\"%s\")",
                e->table, name, e->fields[i].name);
            emit_line(em, "            REFERENCES \"%s\" (\"%s\");", t->table,
                      t->fields[t->pk].name);
            emit_line(em, "    END IF;");
            emit_line(em, "END $$;");
            emit_blank(em);
        }
    }
    /* For memo watch (writes made outside memo): the publication of the
     * schema's tables, and the old values of the fields invalidation needs,
     * which PostgreSQL logs for an update only under REPLICA IDENTITY FULL. */
    /* A partitioned table's changes are published under its own name, not
     * its partitions' (publish_via_partition_root). */
    char pub[64];
    memop_stream_name(m->schema.name, pub);
    emit_line(em, "-- memo watch follows these tables' changes made outside memo");
    emit_line(em, "DO $$ BEGIN");
    emit_line(
        em, "    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '%s') THEN",
        pub);
    fprintf(em->out, "        CREATE PUBLICATION \"%s\" FOR TABLE ", pub);
    table_list(em, m, n);
    fputs(" WITH (publish_via_partition_root = true);\n", em->out);
    emit_line(em, "    ELSE");
    fprintf(em->out, "        ALTER PUBLICATION \"%s\" SET TABLE ", pub);
    table_list(em, m, n);
    fputs(";\n", em->out);
    emit_line(em,
              "        ALTER PUBLICATION \"%s\" SET (publish_via_partition_root = true);",
              pub);
    emit_line(em, "    END IF;");
    emit_line(em, "END $$;");
    for (size_t k = 0; k < n; k++) {
        const memo_entity_desc *e = &m->entities[k].desc;
        char why[1024];
        if (old_values_needed(e, why, sizeof why))
            emit_line(em, "ALTER TABLE \"%s\" REPLICA IDENTITY FULL; -- old %s", e->table,
                      why);
    }
    emit_blank(em);
    emit_line(em, "COMMIT;");
    free(order);
    free(rank);
}
