/* The SQL of an entity, built once from its descriptor. Every identifier is
 * quoted and every value a parameter. Statements are numbered as enum
 * memop_sql says: fixed ones, then one per unique lookup, then one per list. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sha256.h"
#include "shared.h"

/* PostgreSQL's type OIDs (pg_type.dat); libpq does not export them. */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_FLOAT8 = 701,
    OID_INT4_ARRAY = 1007,
    OID_TEXT_ARRAY = 1009,
    OID_INT8_ARRAY = 1016,
    OID_TIMESTAMPTZ = 1184,
    OID_JSONB = 3802,
};

static Oid oid_of(memo_type t)
{
    switch (t) {
    case MEMO_INT32:
        return OID_INT4;
    case MEMO_INT64:
        return OID_INT8;
    case MEMO_FLOAT64:
        return OID_FLOAT8;
    case MEMO_BOOL:
        return OID_BOOL;
    case MEMO_TEXT:
        return OID_TEXT;
    case MEMO_TIMESTAMP:
        return OID_TIMESTAMPTZ;
    case MEMO_JSON:
        return OID_JSONB;
    }
    return 0;
}

const char *memop_sql_type(memo_type t)
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
        return "timestamp with time zone";
    case MEMO_JSON:
        return "jsonb";
    }
    return "?";
}

static Oid array_oid_of(memo_type t)
{
    return t == MEMO_INT32   ? OID_INT4_ARRAY
           : t == MEMO_INT64 ? OID_INT8_ARRAY
                             : OID_TEXT_ARRAY;
}

/* "c1", "c2", ... with an optional table alias. */
static void columns(memop_buf *b, const memo_entity_desc *d, const char *alias)
{
    for (unsigned i = 0; i < d->nfields; i++)
        memop_buf_printf(b, "%s%s%s\"%s\"", i ? ", " : "", alias ? alias : "",
                         alias ? "." : "", d->fields[i].name);
}

static memo_status finish(memop_stmt *st, memop_buf *b)
{
    if (b->failed) {
        memop_buf_free(b);
        return MEMO_ERR_NOMEM;
    }
    st->text = b->s;
    return MEMO_OK;
}

/* "c1", "c2", ... of the fields a write's invalidation depends on. */
static void key_columns(memop_buf *b, const memop_entity *e, const char *alias)
{
    for (unsigned k = 0; k < e->nkeyfields; k++)
        memop_buf_printf(b, "%s%s%s\"%s\"", k ? ", " : "", alias ? alias : "",
                         alias ? "." : "", e->desc->fields[e->keyfields[k]].name);
}

static void find_keyfields(memop_entity *e)
{
    const memo_entity_desc *d = e->desc;
    bool use[MEMO_MAX_FIELDS];
    memop_key_fields(d, use);
    e->nkeyfields = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if (use[i])
            e->keyfields[e->nkeyfields++] = i;
}

/* Whether field i is one of the primary key's. */
static bool in_pk(const memo_entity_desc *d, unsigned i)
{
    for (unsigned k = 0; k < d->npk; k++)
        if (d->pks[k] == i)
            return true;
    return false;
}

/* "a", "b" (the primary key's fields), with an alias, a direction after
 * each, leaving out field `skip` (or none: d->nfields). */
static void pk_columns(memop_buf *b, const memo_entity_desc *d, const char *alias,
                       const char *dir, unsigned skip, bool comma)
{
    for (unsigned k = 0; k < d->npk; k++) {
        if (d->pks[k] == skip)
            continue;
        memop_buf_printf(b, "%s%s%s\"%s\"%s%s", comma ? ", " : "", alias ? alias : "",
                         alias ? "." : "", d->fields[d->pks[k]].name, dir ? " " : "",
                         dir ? dir : "");
        comma = true;
    }
}

/* "a" = $x AND "b" = $y: the key's fields against parameters, numbered
 * from `first` in key order, or (first 0) by field order. */
static void pk_equals(memop_buf *b, const memo_entity_desc *d, const char *alias,
                      unsigned first)
{
    for (unsigned k = 0; k < d->npk; k++)
        memop_buf_printf(b, "%s%s%s\"%s\" = $%u", k ? " AND " : "", alias ? alias : "",
                         alias ? "." : "", d->fields[d->pks[k]].name,
                         first ? first + k : d->pks[k] + 1);
}

/* n."a" = o."a" AND ... */
static void pk_join(memop_buf *b, const memo_entity_desc *d, const char *x, const char *y)
{
    for (unsigned k = 0; k < d->npk; k++) {
        const char *c = d->fields[d->pks[k]].name;
        memop_buf_printf(b, "%s%s.\"%s\" = %s.\"%s\"", k ? " AND " : "", x, c, y, c);
    }
}

/* A list's order: its order field, then the key's other fields, each in
 * the list's direction ("o" DESC, "id" DESC). */
static void list_order(memop_buf *b, const memo_entity_desc *d, const memo_list_desc *ld)
{
    const char *dir = ld->descending ? "DESC" : "ASC";
    memop_buf_printf(b, "\"%s\" %s", d->fields[ld->order].name, dir);
    pk_columns(b, d, NULL, dir, ld->order, true);
}

/* Appends "(SELECT <key>, <o>, <part> ... WHERE g = $1 AND <cond> ORDER BY
 * <list order> LIMIT $n)": one index range of a page. */
static void after_part(memop_buf *b, const memo_entity_desc *d, const memo_list_desc *ld,
                       int part, const char *cond)
{
    memop_buf_puts(b, "(SELECT ");
    pk_columns(b, d, NULL, NULL, d->nfields, false);
    if (!in_pk(d, ld->order))
        memop_buf_printf(b, ", \"%s\"", d->fields[ld->order].name);
    memop_buf_printf(b,
                     ", %d AS memo_part FROM \"%s\" WHERE \"%s\" = $1 AND %s ORDER BY ",
                     part, d->table, d->fields[ld->group].name, cond);
    list_order(b, d, ld);
    memop_buf_printf(b, " LIMIT $%u)", 3 + d->npk);
}

/* The page of a list after a row: $1 the group, $2 the last row's order
 * value, $3... its key's fields, then how many. Keyset pagination in the
 * list's order, which is total (the key breaks ties the same way), so
 * pages neither skip nor repeat a row, and each part is an index range of
 * (group, order, key). A nullable order field follows PostgreSQL's
 * placement of NULLs (last ascending, first descending): after a row with
 * a value (MEMOP_SQL_AFTER) ascending, the values past it and then the
 * NULLs; after a NULL (MEMOP_SQL_AFTER_NULL) descending, the NULLs past it
 * and then the values, each a union of two ranges. */
static memo_status after_sql(memop_entity *e, unsigned l, bool after_null)
{
    const memo_entity_desc *d = e->desc;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *o = &d->fields[ld->order];
    const char *cmp = ld->descending ? "<" : ">";
    bool desc = ld->descending;
    memop_stmt *s =
        &e->sql[after_null ? MEMOP_SQL_AFTER_NULL(d, l) : MEMOP_SQL_AFTER(d, l)];
    /* the row values: (order, the key's other fields) past ($2, $3, ...) */
    memop_buf past = {0}, nulls_past = {0}, b = {0};
    /* the list's order: the order field ($2), then the key's other fields */
    memop_buf_printf(&past, "(\"%s\"", o->name);
    memop_buf_printf(&nulls_past, "\"%s\" IS NULL AND (", o->name);
    pk_columns(&past, d, NULL, NULL, ld->order, true);
    pk_columns(&nulls_past, d, NULL, NULL, d->nfields, false);
    memop_buf_printf(&past, ") %s ($2", cmp);
    memop_buf_printf(&nulls_past, ") %s (", cmp);
    for (unsigned k = 0; k < d->npk; k++) {
        if (d->pks[k] != ld->order)
            memop_buf_printf(&past, ", $%u", 3 + k);
        memop_buf_printf(&nulls_past, "%s$%u", k ? ", " : "", 3 + k);
    }
    memop_buf_puts(&past, ")");
    memop_buf_puts(&nulls_past, ")");
    char values[100], nulls[100];
    snprintf(values, sizeof values, "\"%s\" IS NOT NULL", o->name);
    snprintf(nulls, sizeof nulls, "\"%s\" IS NULL", o->name);
    bool failed = past.failed || nulls_past.failed;
    const char *first, *second = NULL;
    if (!(o->flags & MEMO_FIELD_NULLABLE))
        first = past.s; /* (a row value never compares with a NULL: none) */
    else if (!after_null)
        first = past.s, second = desc ? NULL : nulls;
    else
        first = nulls_past.s, second = desc ? values : NULL;
    memop_buf_puts(&b, "SELECT ");
    pk_columns(&b, d, NULL, NULL, d->nfields, false);
    memop_buf_puts(&b, " FROM (");
    after_part(&b, d, ld, 0, failed ? "false" : first);
    if (second) {
        memop_buf_puts(&b, " UNION ALL ");
        after_part(&b, d, ld, 1, second);
    }
    memop_buf_puts(&b, ") AS memo_page ORDER BY memo_part, ");
    list_order(&b, d, ld);
    memop_buf_printf(&b, " LIMIT $%u", 3 + d->npk);
    s->types[0] = oid_of(d->fields[ld->group].type);
    s->types[1] = oid_of(o->type);
    for (unsigned k = 0; k < d->npk; k++)
        s->types[2 + k] = oid_of(d->fields[d->pks[k]].type);
    s->types[2 + d->npk] = oid_of(MEMO_INT64);
    s->ntypes = 3 + (int)d->npk;
    memop_buf_free(&past);
    memop_buf_free(&nulls_past);
    if (failed) {
        memop_buf_free(&b);
        return MEMO_ERR_NOMEM;
    }
    return finish(s, &b);
}

/* UPDATE in one statement: lock and read the old row, write the new one,
 * return both, so invalidation knows the old values without a second round
 * trip. Parameters in field order; MEMOP_SQL_UPDATE_FIELDS writes a field
 * only where its bit is set in one more parameter, the mask (other fields
 * keep the row's current values, read after the lock: concurrent writers of
 * other fields lose nothing). A version field is compared and incremented,
 * never written. */
static memo_status update_sql(memop_entity *e, unsigned which)
{
    const memo_entity_desc *d = e->desc;
    const memo_field_desc *pk = &d->fields[d->pk];
    memop_stmt *s = &e->sql[which];
    bool masked = which == MEMOP_SQL_UPDATE_FIELDS;
    memop_buf b = {0};
    memop_buf_puts(&b, "WITH o AS (SELECT ");
    key_columns(&b, e, NULL);
    memop_buf_printf(&b, " FROM \"%s\" WHERE ", d->table);
    pk_equals(&b, d, NULL, 0);
    memop_buf_printf(&b, " FOR UPDATE) UPDATE \"%s\" AS n SET ", d->table);
    int n = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const char *c = d->fields[i].name;
        s->types[i] = oid_of(d->fields[i].type);
        if (in_pk(d, i))
            continue;
        memop_buf_printf(&b, "%s\"%s\" = ", n++ ? ", " : "", c);
        if ((int)i == e->version)
            memop_buf_printf(&b, "n.\"%s\" + 1", c);
        else if (masked)
            memop_buf_printf(&b,
                             "CASE WHEN ($%u >> %u) & 1 = 1 THEN $%u ELSE n.\"%s\" END",
                             d->nfields + 1, i, i + 1, c);
        else
            memop_buf_printf(&b, "$%u", i + 1);
    }
    if (n == 0) /* only a key: nothing to set, still lock and return the row */
        memop_buf_printf(&b, "\"%s\" = o.\"%s\"", pk->name, pk->name);
    s->ntypes = (int)d->nfields;
    if (masked)
        s->types[s->ntypes++] = oid_of(MEMO_INT64);
    memop_buf_puts(&b, " FROM o WHERE ");
    pk_join(&b, d, "n", "o");
    if (e->version >= 0)
        memop_buf_printf(&b, " AND n.\"%s\" = $%d", d->fields[e->version].name,
                         e->version + 1);
    memop_buf_puts(&b, " RETURNING ");
    key_columns(&b, e, "o");
    memop_buf_puts(&b, ", ");
    key_columns(&b, e, "n");
    return finish(s, &b);
}

static void name_statement(memop_stmt *s)
{
    memop_sha256 h;
    memop_sha256_init(&h);
    memop_sha256_update(&h, s->text, strlen(s->text) + 1);
    memop_sha256_update(&h, s->types, (size_t)s->ntypes * sizeof s->types[0]);
    unsigned char digest[32];
    memop_sha256_final(&h, digest);
    static const char hex[] = "0123456789abcdef";
    memcpy(s->name, "memo_", 5);
    for (int i = 0; i < 12; i++) {
        s->name[5 + 2 * i] = hex[digest[i] >> 4];
        s->name[6 + 2 * i] = hex[digest[i] & 15];
    }
    s->name[29] = '\0';
}

memo_status memop_sql_build(memop_entity *e)
{
    const memo_entity_desc *d = e->desc;
    find_keyfields(e);
    e->version = -1;
    for (unsigned i = 0; i < d->nfields; i++)
        if (d->fields[i].flags & MEMO_FIELD_VERSION)
            e->version = (int)i;
    const memo_field_desc *pk = &d->fields[d->pk];
    e->nsql = MEMOP_SQL_FIXED + d->nuniques + 4 * d->nlists;
    e->sql = calloc(e->nsql, sizeof *e->sql);
    if (!e->sql)
        return MEMO_ERR_NOMEM;
    memo_status st = MEMO_OK;
    memop_buf b;

    /* SELECT by primary key */
    memset(&b, 0, sizeof b);
    memop_buf_puts(&b, "SELECT ");
    columns(&b, d, NULL);
    memop_buf_printf(&b, " FROM \"%s\" WHERE ", d->table);
    pk_equals(&b, d, NULL, 1);
    for (unsigned k = 0; k < d->npk; k++)
        e->sql[MEMOP_SQL_SELECT].types[k] = oid_of(d->fields[d->pks[k]].type);
    e->sql[MEMOP_SQL_SELECT].ntypes = (int)d->npk;
    if ((st = finish(&e->sql[MEMOP_SQL_SELECT], &b)) != MEMO_OK)
        return st;

    /* SELECT many: the keys as one array parameter per key field, in text
     * form (a composite key: the rows of their unnest, in step) */
    memset(&b, 0, sizeof b);
    memop_buf_puts(&b, "SELECT ");
    columns(&b, d, NULL);
    if (d->npk == 1) {
        memop_buf_printf(&b, " FROM \"%s\" WHERE \"%s\" = ANY($1)", d->table, pk->name);
    } else {
        memop_buf_printf(&b, " FROM \"%s\" WHERE (", d->table);
        pk_columns(&b, d, NULL, NULL, d->nfields, false);
        memop_buf_puts(&b, ") IN (SELECT * FROM unnest(");
        for (unsigned k = 0; k < d->npk; k++)
            memop_buf_printf(&b, "%s$%u", k ? ", " : "", k + 1);
        memop_buf_puts(&b, "))");
    }
    for (unsigned k = 0; k < d->npk; k++)
        e->sql[MEMOP_SQL_SELECT_MANY].types[k] = array_oid_of(d->fields[d->pks[k]].type);
    e->sql[MEMOP_SQL_SELECT_MANY].ntypes = (int)d->npk;
    if ((st = finish(&e->sql[MEMOP_SQL_SELECT_MANY], &b)) != MEMO_OK)
        return st;

    /* INSERT with every column; parameters in field order */
    memset(&b, 0, sizeof b);
    memop_buf_printf(&b, "INSERT INTO \"%s\" (", d->table);
    columns(&b, d, NULL);
    memop_buf_puts(&b, ") VALUES (");
    for (unsigned i = 0; i < d->nfields; i++) {
        memop_buf_printf(&b, "%s$%u", i ? ", " : "", i + 1);
        e->sql[MEMOP_SQL_INSERT].types[i] = oid_of(d->fields[i].type);
    }
    e->sql[MEMOP_SQL_INSERT].ntypes = (int)d->nfields;
    memop_buf_puts(&b, ") RETURNING ");
    key_columns(&b, e, NULL);
    if ((st = finish(&e->sql[MEMOP_SQL_INSERT], &b)) != MEMO_OK)
        return st;

    /* INSERT letting the database assign the key: every field but the key */
    memset(&b, 0, sizeof b);
    memop_buf_printf(&b, "INSERT INTO \"%s\" (", d->table);
    int n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if (i != d->pk)
            memop_buf_printf(&b, "%s\"%s\"", n++ ? ", " : "", d->fields[i].name);
    memop_buf_puts(&b, ") VALUES (");
    n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if (i != d->pk) {
            e->sql[MEMOP_SQL_INSERT_AUTO].types[n] = oid_of(d->fields[i].type);
            memop_buf_printf(&b, "%s$%d", n ? ", " : "", n + 1);
            n++;
        }
    e->sql[MEMOP_SQL_INSERT_AUTO].ntypes = n;
    memop_buf_puts(&b, ") RETURNING ");
    key_columns(&b, e, NULL);
    if ((st = finish(&e->sql[MEMOP_SQL_INSERT_AUTO], &b)) != MEMO_OK)
        return st;

    if ((st = update_sql(e, MEMOP_SQL_UPDATE)) != MEMO_OK ||
        (st = update_sql(e, MEMOP_SQL_UPDATE_FIELDS)) != MEMO_OK)
        return st;

    /* UPSERT in one statement: lock and read the old row if there is one,
     * insert or update, return both. It updates only a row it read (WHERE
     * EXISTS o): a row another transaction inserted between the two reads
     * is left alone and nothing comes back, and the caller runs the
     * statement again, whose new snapshot reads it. So a row that came back
     * was inserted exactly when there was no old row. */
    memset(&b, 0, sizeof b);
    memop_stmt *up = &e->sql[MEMOP_SQL_UPSERT];
    memop_buf_puts(&b, "WITH o AS (SELECT ");
    key_columns(&b, e, NULL);
    memop_buf_printf(&b, " FROM \"%s\" WHERE ", d->table);
    pk_equals(&b, d, NULL, 0);
    memop_buf_printf(&b, " FOR UPDATE), n AS (INSERT INTO \"%s\" AS memo_t (", d->table);
    columns(&b, d, NULL);
    /* the row comes from a join with o, so that o is read (and the old row
     * locked) before the insert: read after it, the row this statement
     * updated would be skipped */
    memop_buf_puts(&b, ") SELECT ");
    for (unsigned i = 0; i < d->nfields; i++) {
        /* a version starts at 1; the one given is compared, below */
        if ((int)i == e->version)
            memop_buf_printf(&b, "%s1::bigint", i ? ", " : "");
        else
            memop_buf_printf(&b, "%s$%u", i ? ", " : "", i + 1);
        up->types[i] = oid_of(d->fields[i].type);
    }
    up->ntypes = (int)d->nfields;
    memop_buf_puts(&b, " FROM (SELECT 1) AS one LEFT JOIN o ON true ON CONFLICT (");
    pk_columns(&b, d, NULL, NULL, d->nfields, false);
    memop_buf_puts(&b, ") DO UPDATE SET ");
    n = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        if (!in_pk(d, i))
            memop_buf_printf(&b,
                             (int)i == e->version ? "%s\"%s\" = memo_t.\"%s\" + 1"
                                                  : "%s\"%s\" = EXCLUDED.\"%s\"",
                             n++ ? ", " : "", d->fields[i].name, d->fields[i].name);
    if (n == 0) /* only a key: nothing to set, still return the row */
        memop_buf_printf(&b, "\"%s\" = EXCLUDED.\"%s\"", pk->name, pk->name);
    memop_buf_puts(&b, " WHERE EXISTS (SELECT FROM o)");
    if (e->version >= 0)
        memop_buf_printf(&b, " AND memo_t.\"%s\" = $%d", d->fields[e->version].name,
                         e->version + 1);
    memop_buf_puts(&b, " RETURNING ");
    key_columns(&b, e, NULL);
    memop_buf_puts(&b, ") SELECT ");
    key_columns(&b, e, "o");
    memop_buf_puts(&b, ", ");
    key_columns(&b, e, "n");
    memop_buf_printf(&b, ", o.\"%s\" IS NOT NULL FROM n LEFT JOIN o ON true", pk->name);
    if ((st = finish(up, &b)) != MEMO_OK)
        return st;

    /* DELETE, returning the old row */
    memset(&b, 0, sizeof b);
    memop_buf_printf(&b, "DELETE FROM \"%s\" WHERE ", d->table);
    pk_equals(&b, d, NULL, 1);
    memop_buf_puts(&b, " RETURNING ");
    key_columns(&b, e, NULL);
    for (unsigned k = 0; k < d->npk; k++)
        e->sql[MEMOP_SQL_DELETE].types[k] = oid_of(d->fields[d->pks[k]].type);
    e->sql[MEMOP_SQL_DELETE].ntypes = (int)d->npk;
    if ((st = finish(&e->sql[MEMOP_SQL_DELETE], &b)) != MEMO_OK)
        return st;

    for (unsigned u = 0; u < d->nuniques; u++) {
        const memo_field_desc *f = &d->fields[d->uniques[u].field];
        memop_stmt *s = &e->sql[MEMOP_SQL_UNIQUE(d, u)];
        memset(&b, 0, sizeof b);
        memop_buf_puts(&b, "SELECT ");
        columns(&b, d, NULL);
        memop_buf_printf(&b, " FROM \"%s\" WHERE \"%s\" = $1", d->table, f->name);
        s->types[0] = oid_of(f->type);
        s->ntypes = 1;
        if ((st = finish(s, &b)) != MEMO_OK)
            return st;
    }

    /* A list is the ordered keys of a group; the key breaks ties the same
     * way, so the order is total and stable. */
    for (unsigned l = 0; l < d->nlists; l++) {
        const memo_list_desc *ld = &d->lists[l];
        memop_stmt *s = &e->sql[MEMOP_SQL_LIST(d, l)];
        memset(&b, 0, sizeof b);
        memop_buf_puts(&b, "SELECT ");
        pk_columns(&b, d, NULL, NULL, d->nfields, false);
        memop_buf_printf(&b, " FROM \"%s\" WHERE \"%s\" = $1 ORDER BY ", d->table,
                         d->fields[ld->group].name);
        list_order(&b, d, ld);
        /* one more than the limit: whether the list is cut is cached too */
        memop_buf_printf(&b, " LIMIT %u", ld->limit + 1);
        s->types[0] = oid_of(d->fields[ld->group].type);
        s->ntypes = 1;
        if ((st = finish(s, &b)) != MEMO_OK)
            return st;
        /* and how many rows the group has, past the limit too */
        s = &e->sql[MEMOP_SQL_COUNT(d, l)];
        memset(&b, 0, sizeof b);
        memop_buf_printf(&b, "SELECT count(*) FROM \"%s\" WHERE \"%s\" = $1", d->table,
                         d->fields[ld->group].name);
        s->types[0] = oid_of(d->fields[ld->group].type);
        s->ntypes = 1;
        if ((st = finish(s, &b)) != MEMO_OK)
            return st;
        if ((st = after_sql(e, l, false)) != MEMO_OK ||
            ((d->fields[ld->order].flags & MEMO_FIELD_NULLABLE) &&
             (st = after_sql(e, l, true)) != MEMO_OK))
            return st;
    }
    for (unsigned i = 0; i < e->nsql; i++)
        if (e->sql[i].text)
            name_statement(&e->sql[i]);
    return MEMO_OK;
}

void memop_sql_free(memop_entity *e)
{
    for (unsigned i = 0; i < e->nsql && e->sql; i++)
        free(e->sql[i].text);
    free(e->sql);
    e->sql = NULL;
    e->nsql = 0;
}
