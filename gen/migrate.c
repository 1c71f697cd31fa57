/* memoc --migrate OLD NEW: the SQL that takes a database holding OLD's tables
 * to NEW's, in one transaction, printed only when every change is one memoc
 * knows to be safe; the others are errors at NEW's declarations. Tables are
 * matched by name, columns by name within them. The statements go in
 * phases, so that no name is in use twice at a time: what goes (constraints,
 * columns, indexes, then tables), then what comes (tables, columns,
 * constraints, indexes), foreign keys last. What a change leaves in Redis
 * (keys of a shape one side no longer reads) is said in comments at the
 * end, with the `memo flush` commands that remove it. */
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "migrate.h"
#include "names.h"

typedef struct side {
    const migrate_input *in;
    name_map tables; /* table -> lowered_entity */
} side;

typedef struct migration {
    side old, new;
    diag *d;           /* NEW's */
    emitter *em;       /* the SQL, into memory until it is known to be sound */
    const char *shown; /* the entity whose "-- entity" line was printed last */
} migration;

static const lowered_entity *table_of(const side *s, const char *table)
{
    return name_map_get(&s->tables, NULL, table);
}

static int field_of(const memo_entity_desc *d, const char *name)
{
    for (unsigned i = 0; i < d->nfields; i++)
        if (strcmp(d->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Where NEW declares an entity's field i (the entity itself for i < 0). */
static ast_loc new_loc(const migration *g, const lowered_entity *ne, int i)
{
    const ast_entity *e = g->new.in->schema->entities.v[ne - g->new.in->model->entities];
    return i < 0 ? e->name.loc : e->fields.v[i].name.loc;
}

/* What existing rows get in a new NOT NULL column: the type's zero. */
static const char *zero_of(memo_type t)
{
    switch (t) {
    case MEMO_INT32:
    case MEMO_INT64:
    case MEMO_FLOAT64:
        return "0";
    case MEMO_BOOL:
        return "false";
    case MEMO_TEXT:
        return "''";
    case MEMO_TIMESTAMP:
        return "'1970-01-01 00:00:00+00'";
    case MEMO_JSON:
        return "'{}'";
    }
    return "NULL";
}

static const char *ref_table(const side *s, const lowered_entity *me, unsigned i)
{
    long r = me->fields[i].ref;
    return r < 0 ? NULL : s->in->model->entities[r].desc.table;
}

/* "-- entity NAME" before the first statement of a table in a phase. */
static void heading(migration *g, const memo_entity_desc *d)
{
    if (g->shown != d->name) {
        emit_blank(g->em);
        emit_line(g->em, "-- entity %s", d->name);
        g->shown = d->name;
    }
}

/* Drops the unique ('u') or foreign key ('f') constraint on one column,
 * whatever it was named. */
static void drop_constraint(migration *g, const char *table, const char *column,
                            char type)
{
    emitter *em = g->em;
    emit_line(em, "DO $$ DECLARE c name; BEGIN");
    emit_line(em, "    SELECT conname INTO c FROM pg_constraint");
    emit_line(em, "     WHERE conrelid = '\"%s\"'::regclass AND contype = '%c'", table,
              type);
    emit_line(em, "       AND conkey = ARRAY[(SELECT attnum FROM pg_attribute");
    emit_line(em, "                           WHERE attrelid = '\"%s\"'::regclass",
              table);
    emit_line(em, "                             AND attname = '%s')]::int2[];", column);
    emit_line(em, "    IF c IS NOT NULL THEN");
    emit_line(em,
              "        EXECUTE format('ALTER TABLE %%I DROP CONSTRAINT %%I', '%s', c);",
              table);
    emit_line(em, "    END IF;");
    emit_line(em, "END $$;");
}

/* Whether one of d's lists has the index of this name. */
static bool has_index(const memo_entity_desc *d, const char *name)
{
    char other[80];
    for (unsigned l = 0; l < d->nlists; l++) {
        list_index_name(other, sizeof other, d, &d->lists[l]);
        if (strcmp(name, other) == 0)
            return true;
    }
    return false;
}

/* The changes memoc will not make; every one is reported. */
static void refuse(migration *g, const lowered_entity *oe, const lowered_entity *ne)
{
    const memo_entity_desc *o = &oe->desc, *n = &ne->desc;
    const char *t = n->table;
    bool same_key = o->npk == n->npk;
    for (unsigned k = 0; k < n->npk && same_key; k++) {
        const memo_field_desc *a = &o->fields[o->pks[k]], *b = &n->fields[n->pks[k]];
        same_key = strcmp(a->name, b->name) == 0 && a->type == b->type;
    }
    if (!same_key) {
        char was[8 * 80] = "", is[8 * 80] = "";
        for (unsigned k = 0, a = 0; k < o->npk; k++)
            a += (unsigned)snprintf(was + a, sizeof was - a, "%s%s %s", k ? ", " : "",
                                    o->fields[o->pks[k]].name,
                                    model_type_name(o->fields[o->pks[k]].type));
        for (unsigned k = 0, a = 0; k < n->npk; k++)
            a += (unsigned)snprintf(is + a, sizeof is - a, "%s%s %s", k ? ", " : "",
                                    n->fields[n->pks[k]].name,
                                    model_type_name(n->fields[n->pks[k]].type));
        diag_error(g->d, new_loc(g, ne, (int)n->pk),
                   "table '%s': the primary key changes from %s to %s; memoc does not "
                   "migrate primary keys",
                   t, was, is);
    }
    for (unsigned j = 0; j < n->nfields; j++) {
        const memo_field_desc *nf = &n->fields[j];
        int i = field_of(o, nf->name);
        bool nnull = nf->flags & MEMO_FIELD_NULLABLE;
        if (i < 0) {
            if (!nnull && ne->fields[j].ref >= 0 && j != n->pk)
                diag_error(g->d, new_loc(g, ne, (int)j),
                           "%s.%s: a new column that references another table must be "
                           "nullable (the rows there have no key to put in it)",
                           t, nf->name);
            else if (!nnull && (nf->flags & MEMO_FIELD_UNIQUE))
                diag_error(g->d, new_loc(g, ne, (int)j),
                           "%s.%s: a new unique column must be nullable (the rows there "
                           "would all get one value)",
                           t, nf->name);
            continue;
        }
        const memo_field_desc *of = &o->fields[i];
        if (of->type != nf->type && !(of->type == MEMO_INT32 && nf->type == MEMO_INT64) &&
            !(of->flags & MEMO_FIELD_PK))
            diag_error(g->d, new_loc(g, ne, (int)j),
                       "%s.%s: changing %s to %s %s; memoc widens int32 to int64 only", t,
                       nf->name, model_type_name(of->type), model_type_name(nf->type),
                       of->type == MEMO_INT64 && nf->type == MEMO_INT32
                           ? "narrows it"
                           : "may not convert every value");
        if ((of->flags & MEMO_FIELD_NULLABLE) && !nnull &&
            !(nf->flags & MEMO_FIELD_VERSION))
            diag_error(g->d, new_loc(g, ne, (int)j),
                       "%s.%s: making a nullable column NOT NULL is not safe without a "
                       "default (rows may hold NULL); fill them and alter the column by "
                       "hand, or keep it nullable",
                       t, nf->name);
    }
}

/* Phase 1, of a table in both: the constraints, columns and list indexes
 * that go. */
static void alter_drops(migration *g, const lowered_entity *oe, const lowered_entity *ne)
{
    const memo_entity_desc *o = &oe->desc, *n = &ne->desc;
    emitter *em = g->em;
    const char *t = n->table;
    for (unsigned i = 0; i < o->nfields; i++) {
        const memo_field_desc *of = &o->fields[i];
        int j = field_of(n, of->name);
        if (j < 0) {
            heading(g, n);
            emit_line(em, "ALTER TABLE \"%s\" DROP COLUMN \"%s\";", t, of->name);
            continue;
        }
        const memo_field_desc *nf = &n->fields[j];
        if ((of->flags & MEMO_FIELD_UNIQUE) && !(nf->flags & MEMO_FIELD_UNIQUE)) {
            heading(g, n);
            drop_constraint(g, t, of->name, 'u');
        }
        const char *oref = ref_table(&g->old, oe, i);
        const char *nref = ref_table(&g->new, ne, (unsigned)j);
        if (oref && (!nref || strcmp(oref, nref) != 0)) {
            heading(g, n);
            drop_constraint(g, t, of->name, 'f');
        }
    }
    char name[80];
    for (unsigned l = 0; l < o->nlists; l++) {
        list_index_name(name, sizeof name, o, &o->lists[l]);
        bool earlier = false; /* two lists of one index: dropped once */
        for (unsigned k = 0; k < l && !earlier; k++) {
            char other[80];
            list_index_name(other, sizeof other, o, &o->lists[k]);
            earlier = strcmp(name, other) == 0;
        }
        if (!earlier && !has_index(n, name)) {
            heading(g, n);
            emit_line(em, "DROP INDEX IF EXISTS \"%s\";",
                      name); /* (or with its column) */
        }
    }
}

/* Phase 3, of a table in both: the columns that change or come, the
 * constraints and list indexes that come (foreign keys wait for phase 4). */
static void alter_adds(migration *g, const lowered_entity *oe, const lowered_entity *ne)
{
    const memo_entity_desc *o = &oe->desc, *n = &ne->desc;
    emitter *em = g->em;
    const char *t = n->table;
    for (unsigned j = 0; j < n->nfields; j++) {
        const memo_field_desc *nf = &n->fields[j];
        int i = field_of(o, nf->name);
        const char *c = nf->name;
        char def[512];
        if (i < 0) {
            heading(g, n);
            sql_column_def(def, sizeof def, nf);
            if (!(nf->flags & (MEMO_FIELD_NULLABLE | MEMO_FIELD_VERSION))) {
                emit_line(
                    em,
                    "ALTER TABLE \"%s\" ADD COLUMN %s DEFAULT %s; -- rows there get %s",
                    t, def, zero_of(nf->type), zero_of(nf->type));
                emit_line(em, "ALTER TABLE \"%s\" ALTER COLUMN \"%s\" DROP DEFAULT;", t,
                          c);
            } else {
                emit_line(em, "ALTER TABLE \"%s\" ADD COLUMN %s;", t, def);
            }
            continue;
        }
        const memo_field_desc *of = &o->fields[i];
        if (of->type == MEMO_INT32 && nf->type == MEMO_INT64) {
            heading(g, n);
            emit_line(em, "ALTER TABLE \"%s\" ALTER COLUMN \"%s\" TYPE bigint;", t, c);
        }
        bool onull = of->flags & MEMO_FIELD_NULLABLE,
             nnull = nf->flags & MEMO_FIELD_NULLABLE;
        bool over = of->flags & MEMO_FIELD_VERSION, nver = nf->flags & MEMO_FIELD_VERSION;
        if (onull && !nnull && nver) {
            /* a version's NULL is a row never versioned: it starts at 1 */
            heading(g, n);
            emit_line(em, "UPDATE \"%s\" SET \"%s\" = 1 WHERE \"%s\" IS NULL;", t, c, c);
            emit_line(em, "ALTER TABLE \"%s\" ALTER COLUMN \"%s\" SET NOT NULL;", t, c);
        } else if (!onull && nnull && !(nf->flags & MEMO_FIELD_PK)) {
            heading(g, n);
            emit_line(em, "ALTER TABLE \"%s\" ALTER COLUMN \"%s\" DROP NOT NULL;", t, c);
        }
        if (over != nver) {
            heading(g, n);
            emit_line(em, "ALTER TABLE \"%s\" ALTER COLUMN \"%s\" %s;", t, c,
                      nver ? "SET DEFAULT 1" : "DROP DEFAULT");
        }
        if (!(of->flags & MEMO_FIELD_UNIQUE) && (nf->flags & MEMO_FIELD_UNIQUE)) {
            heading(g, n);
            emit_line(em, "ALTER TABLE \"%s\" ADD UNIQUE (\"%s\");", t, c);
        }
    }
    char name[80];
    for (unsigned k = 0; k < n->nlists; k++) {
        list_index_name(name, sizeof name, n, &n->lists[k]);
        if (!has_index(o, name)) {
            heading(g, n);
            emit_list_index(em, n, &n->lists[k]);
        }
    }
}

static void create_table(migration *g, const lowered_entity *ne)
{
    const memo_entity_desc *e = &ne->desc;
    emitter *em = g->em;
    emit_blank(em);
    emit_line(em, "-- new entity %s", e->name);
    emit_line(em, "CREATE TABLE \"%s\" (", e->table);
    for (unsigned i = 0; i < e->nfields; i++) {
        const memo_field_desc *f = &e->fields[i];
        char def[512];
        if (i == e->pk && e->npk == 1)
            snprintf(def, sizeof def, "\"%s\" %s%s PRIMARY KEY", f->name,
                     sql_type_name(f->type),
                     f->type == MEMO_TEXT ? "" : " GENERATED BY DEFAULT AS IDENTITY");
        else
            sql_column_def(def, sizeof def, f);
        emit_line(em, "    %s%s", def, i + 1 < e->nfields || e->npk > 1 ? "," : "");
    }
    if (e->npk > 1)
        emit_table_key(em, e);
    emit_line(em, ");");
    for (unsigned l = 0; l < e->nlists; l++)
        emit_list_index(em, e, &e->lists[l]); /* (IF NOT EXISTS: two lists, one index) */
}

/* Phase 4: foreign keys, once every table they name exists. */
static void add_foreign_keys(migration *g, const lowered_entity *ne,
                             const lowered_entity *oe)
{
    const memo_entity_desc *n = &ne->desc;
    for (unsigned j = 0; j < n->nfields; j++) {
        const char *nref = ref_table(&g->new, ne, j);
        if (!nref)
            continue;
        int i = oe ? field_of(&oe->desc, n->fields[j].name) : -1;
        const char *oref = i >= 0 ? ref_table(&g->old, oe, (unsigned)i) : NULL;
        if (oref && strcmp(oref, nref) == 0)
            continue;
        if (i >= 0) {
            heading(g, n);
            emit_line(g->em, "-- (fails if a row's %s names no row of %s)",
                      n->fields[j].name, nref);
        }
        emit_foreign_key(g->em, n, j,
                         &g->new.in->model->entities[ne->fields[j].ref].desc);
    }
}

static bool same_key(const memo_key_desc *a, const memo_key_desc *b)
{
    return strcmp(a->head, b->head) == 0 && strcmp(a->tail, b->tail) == 0 &&
           strcmp(a->tag, b->tag) == 0;
}

static const memo_entity_desc *entity_named(const model *m, const char *name)
{
    for (size_t j = 0; j < m->n; j++)
        if (strcmp(m->entities[j].desc.name, name) == 0)
            return &m->entities[j].desc;
    return NULL;
}

/* Whether every key of `a` is a key of `b`: then nothing cached by a's
 * code is lost on b's. *lists_only when the keys that differ are lists. */
static bool keys_kept(const memo_entity_desc *a, const memo_entity_desc *b,
                      bool *lists_only)
{
    *lists_only = b && same_key(&a->row.key, &b->row.key);
    for (unsigned u = 0; u < a->nuniques && *lists_only; u++) {
        bool kept = false;
        for (unsigned v = 0; v < b->nuniques && !kept; v++)
            kept = same_key(&a->uniques[u].key, &b->uniques[v].key);
        *lists_only = kept;
    }
    if (!*lists_only)
        return false;
    bool all = true;
    for (unsigned l = 0; l < a->nlists; l++) {
        bool kept = false;
        for (unsigned v = 0; v < b->nlists && !kept; v++)
            kept = same_key(&a->lists[l].key, &b->lists[v].key);
        all = all && kept;
    }
    return all;
}

/* A path as one shell word, for a command in a comment. */
static void print_path(FILE *out, const char *path)
{
    char *clean = clean_path(path);
    fputc('\'', out);
    for (const char *p = clean; *p; p++)
        fputs(*p == '\'' ? "'\\''" : (char[2]){*p, 0}, out);
    fputc('\'', out);
    free(clean);
}

static void print_flush(FILE *out, const migrate_input *a, const memo_entity_desc *e,
                        const char *list, bool gone)
{
    if (!out)
        return;
    fputs("--   memo --schema ", out);
    print_path(out, a->path);
    fprintf(out, " flush %s", e->name);
    if (list)
        fprintf(out, " --list %s", list);
    if (gone)
        fputs("    (no entity of this name now)", out);
    fputc('\n', out);
}

/* The flushes (printed to out, if not NULL) of the entries of a's entities
 * under keys that b does not have. Returns how many. */
static int flushes(FILE *out, const migrate_input *a, const model *b, bool gone_note)
{
    int n = 0;
    for (size_t k = 0; k < a->model->n; k++) {
        const memo_entity_desc *e = &a->model->entities[k].desc;
        const memo_entity_desc *other = entity_named(b, e->name);
        bool lists_only;
        if (keys_kept(e, other, &lists_only))
            continue;
        if (!lists_only) {
            print_flush(out, a, e, NULL, gone_note && !other);
            n++;
            continue;
        }
        for (unsigned l = 0; l < e->nlists; l++) {
            bool kept = false;
            for (unsigned v = 0; v < other->nlists && !kept; v++)
                kept = same_key(&e->lists[l].key, &other->lists[v].key);
            if (!kept) {
                print_flush(out, a, e, e->lists[l].name, false);
                n++;
            }
        }
    }
    return n;
}

/* The cached entries one side's code cannot see the other's writes to:
 * every entity whose keys changed. */
static void stale_keys(migration *g, FILE *out)
{
    fputs("\n-- The cache. Entries are keyed by the shape of their entity, so code of\n"
          "-- one version never reads entries of another, and its writes never delete\n"
          "-- them.\n",
          out);
    if (flushes(NULL, g->new.in, g->old.in->model, false) == 0) {
        fputs("-- Every entry the new code reads is one the old code kept right.\n", out);
        return;
    }
    fputs("-- Before the new code starts (its entries of an earlier deploy, if any,\n"
          "-- missed the old code's writes; nothing is lost but cache):\n",
          out);
    flushes(out, g->new.in, g->old.in->model, false);
    fputs("-- Once no process of the old code runs, to reclaim its entries at once\n"
          "-- (they also expire by their TTLs):\n",
          out);
    flushes(out, g->old.in, g->new.in->model, true);
    fputs("-- (A flush of an entity removes that version's entries of it, the ones\n"
          "-- still shared too: they are read again.)\n",
          out);
}

/* An entity of both whose table is not the same: a rename memoc does not do
 * (it would drop the old table and its rows). */
static void refuse_renames(migration *g)
{
    const model *om = g->old.in->model, *nm = g->new.in->model;
    for (size_t k = 0; k < nm->n; k++) {
        const memo_entity_desc *n = &nm->entities[k].desc;
        const memo_entity_desc *o = entity_named(om, n->name);
        if (o && strcmp(o->table, n->table) != 0 && !table_of(&g->new, o->table))
            diag_error(
                g->d, new_loc(g, &nm->entities[k], -1),
                "entity '%s' moves from table '%s' to '%s': memoc does not rename "
                "tables (it would drop '%s' and its rows); rename it in the "
                "database (ALTER TABLE \"%s\" RENAME TO \"%s\"), then migrate from a "
                "schema that names it",
                n->name, o->table, n->table, o->table, o->table, n->table);
    }
}

int emit_migration(FILE *out, const migrate_input *old, const migrate_input *new, diag *d)
{
    migration g = {.old = {old, {0}}, .new = {new, {0}}, .d = d};
    const model *om = old->model, *nm = new->model;
    if (strcmp(om->schema.name, nm->schema.name) != 0) {
        diag_error(d, new->schema->decls.v[0].name.loc,
                   "schema '%s' is not the schema of %s ('%s'): a migration is between "
                   "two versions of one schema",
                   nm->schema.name, old->path, om->schema.name);
        return 1;
    }
    for (size_t k = 0; k < om->n; k++)
        name_map_add(&g.old.tables, NULL, om->entities[k].desc.table, &om->entities[k]);
    for (size_t k = 0; k < nm->n; k++)
        name_map_add(&g.new.tables, NULL, nm->entities[k].desc.table, &nm->entities[k]);
    refuse_renames(&g);
    for (size_t k = 0; k < nm->n; k++) {
        const lowered_entity *oe = table_of(&g.old, nm->entities[k].desc.table);
        if (oe)
            refuse(&g, oe, &nm->entities[k]);
    }

    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem) {
        fputs("memoc: out of memory\n", stderr);
        exit(2);
    }
    emitter em = {mem, 0, nm, new->path};
    g.em = &em;
    char *from = clean_path(old->path), *to = clean_path(new->path);
    fprintf(mem, "-- Generated by memoc %s: migrates the tables of %s to %s.\n",
            MEMO_VERSION, from, to);
    free(from);
    free(to);
    emit_line(&em, "-- One transaction: all of it applies, or none.");
    emit_blank(&em);
    emit_line(&em, "BEGIN;");
    /* 1: what goes from the tables that stay */
    for (size_t k = 0; k < nm->n; k++) {
        const lowered_entity *ne = &nm->entities[k],
                             *oe = table_of(&g.old, ne->desc.table);
        if (oe)
            alter_drops(&g, oe, ne);
    }
    /* 2: the tables that go, in one statement (they may reference each other) */
    int dropped = 0;
    for (size_t k = 0; k < om->n; k++) {
        const memo_entity_desc *o = &om->entities[k].desc;
        if (!table_of(&g.new, o->table)) {
            if (!dropped)
                emit_blank(&em);
            emit_line(&em, "-- entity %s is gone: its table and rows too", o->name);
            dropped++;
        }
    }
    for (size_t k = 0, i = 0; k < om->n; k++) {
        const memo_entity_desc *o = &om->entities[k].desc;
        if (!table_of(&g.new, o->table)) {
            i++;
            fprintf(mem, "%s\"%s\"%s", i == 1 ? "DROP TABLE " : ", ", o->table,
                    i == (size_t)dropped ? ";\n" : "");
        }
    }
    /* 3: the tables that come, then what comes to the tables that stay */
    for (size_t k = 0; k < nm->n; k++)
        if (!table_of(&g.old, nm->entities[k].desc.table))
            create_table(&g, &nm->entities[k]);
    g.shown = NULL;
    for (size_t k = 0; k < nm->n; k++) {
        const lowered_entity *ne = &nm->entities[k],
                             *oe = table_of(&g.old, ne->desc.table);
        if (oe)
            alter_adds(&g, oe, ne);
    }
    /* 4: foreign keys */
    g.shown = NULL;
    emit_blank(&em);
    for (size_t k = 0; k < nm->n; k++)
        add_foreign_keys(&g, &nm->entities[k],
                         table_of(&g.old, nm->entities[k].desc.table));
    /* what memo watch needs, whatever the database had */
    emit_publication(&em, nm);
    for (size_t k = 0; k < nm->n; k++) {
        const memo_entity_desc *n = &nm->entities[k].desc;
        char why[1024];
        if (old_values_needed(n, why, sizeof why))
            emit_line(&em, "ALTER TABLE \"%s\" REPLICA IDENTITY FULL; -- old %s",
                      n->table, why);
        else
            emit_line(&em, "ALTER TABLE \"%s\" REPLICA IDENTITY DEFAULT;", n->table);
    }
    emit_blank(&em);
    emit_line(&em, "COMMIT;");
    stale_keys(&g, mem);
    fclose(mem);
    int errors = diag_count(d);
    if (!errors)
        fwrite(text, 1, size, out);
    free(text);
    name_map_free(&g.old.tables);
    name_map_free(&g.new.tables);
    return errors;
}
