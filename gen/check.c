/* Semantic checks: everything the grammar cannot say. Resolves names to AST
 * pointers and types for the lowering; reports every problem it finds. One
 * file, though past 500 lines: it is the language's rule book, one rule
 * after another in the order of a schema's constructs, each with its
 * message (pinned by tests/gen/bad), and reads best in one place. */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memo/memo.h>

#include "names.h"

/* Limits of the language; docs/language.md documents them. */
#define MAX_DURATION_MS (365ull * 24 * 3600 * 1000) /* one year */
#define MAX_SQL_NAME 63                             /* PostgreSQL's NAMEDATALEN - 1 */

/* Every lookup by name goes through a hash map, so checking is linear in
 * the schema's size. Each map holds the first item of a name; a later one of
 * the same name is a duplicate, found as it is added. */
typedef struct checker {
    ast_schema *s;
    diag *d;
    name_map entities; /* entity name -> its slot in s->entities (ast_entity **) */
    name_map tables;   /* table name -> its entity's slot in s->entities */
    name_map fields;   /* (entity, field name) -> ast_field * */
    name_map lists;    /* (entity, list name) -> ast_list * */
    name_map caches;   /* (the field looked up by, "") -> ast_cache * */
} checker;

static bool eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* " (did you mean 'x'?)" when a candidate is close, else "". */
static void suggest(char *buf, size_t size, const char *wrong, const char **cands,
                    size_t n)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t dist = diag_distance(wrong, cands[i]);
        if (dist < bestd) {
            best = cands[i];
            bestd = dist;
        }
    }
    size_t allowed = strlen(wrong) > 4 ? 2 : 1;
    if (best && bestd <= allowed)
        snprintf(buf, size, " (did you mean '%s'?)", best);
    else
        buf[0] = '\0';
}

/* The first field of e with this name; e's fields are added by check_fields. */
static ast_field *find_field(const checker *c, const ast_entity *e, const char *name)
{
    return name ? name_map_get(&c->fields, e, name) : NULL;
}

/* The first entity with this name; all are added by the first pass. */
static ast_entity *find_entity(const checker *c, const char *name)
{
    ast_entity **slot = name ? name_map_get(&c->entities, NULL, name) : NULL;
    return slot ? *slot : NULL;
}

/* The first list of e with this name; lists are added by check_lists. */
static ast_list *find_list(const checker *c, const ast_entity *e, const char *name)
{
    return name ? name_map_get(&c->lists, e, name) : NULL;
}

/* Resolves a field reference of entity e, or reports it. NULL if absent.
 * role names the reference ("cache by"); NULL for a rule's field, which
 * readers may take for the target's, so the message says whose it is. */
static ast_field *need_field(checker *c, ast_entity *e, const ast_name *n,
                             const char *role)
{
    if (!n->text)
        return NULL;
    ast_field *f = find_field(c, e, n->text);
    if (f || e->damaged)
        return f;
    const char *cands[256];
    size_t k = 0;
    for (size_t i = 0; i < e->fields.n && k < 256; i++)
        cands[k++] = e->fields.v[i].name.text;
    char hint[128];
    suggest(hint, sizeof hint, n->text, cands, k);
    if (role)
        diag_error(c->d, n->loc, "%s '%s' is not a field of entity '%s'%s", role, n->text,
                   e->name.text, hint);
    else
        diag_error(c->d, n->loc,
                   "'%s' is not a field of entity '%s', which owns this "
                   "rule%s",
                   n->text, e->name.text, hint);
    return NULL;
}

static ast_entity *need_entity(checker *c, const ast_name *n)
{
    ast_entity *t = find_entity(c, n->text);
    if (t || c->s->lost_items)
        return t;
    const char *cands[256];
    size_t k = 0;
    for (size_t i = 0; i < c->s->entities.n && k < 256; i++)
        cands[k++] = c->s->entities.v[i]->name.text;
    char hint[128];
    suggest(hint, sizeof hint, n->text, cands, k);
    diag_error(c->d, n->loc, "unknown entity '%s'%s", n->text, hint);
    return NULL;
}

static const struct {
    const char *name;
    ast_type type;
} types[] = {
    {"int32", AST_T_INT32}, {"int64", AST_T_INT64}, {"float64", AST_T_FLOAT64},
    {"bool", AST_T_BOOL},   {"text", AST_T_TEXT},   {"timestamp", AST_T_TIMESTAMP},
    {"json", AST_T_JSON},
};

/* Names people reach for out of SQL or other languages. */
static const struct {
    const char *wrong, *right;
} type_hints[] = {
    {"int", "int32"},          {"integer", "int32"},  {"smallint", "int32"},
    {"bigint", "int64"},       {"long", "int64"},     {"serial", "int64"},
    {"bigserial", "int64"},    {"string", "text"},    {"varchar", "text"},
    {"char", "text"},          {"uuid", "text"},      {"double", "float64"},
    {"float", "float64"},      {"real", "float64"},   {"numeric", "float64"},
    {"boolean", "bool"},       {"jsonb", "json"},     {"timestamptz", "timestamp"},
    {"datetime", "timestamp"}, {"date", "timestamp"}, {"time", "timestamp"},
};

static void check_type(checker *c, ast_field *f)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (eq(f->type_name.text, types[i].name)) {
            f->type = types[i].type;
            return;
        }
    const char *right = NULL;
    for (size_t i = 0; i < sizeof type_hints / sizeof type_hints[0]; i++)
        if (eq(f->type_name.text, type_hints[i].wrong))
            right = type_hints[i].right;
    if (!right) {
        /* Close to a type, or to a word people use for one: suggest the type. */
        const char *cands[sizeof types / sizeof types[0] +
                          sizeof type_hints / sizeof type_hints[0]];
        size_t k = 0;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            cands[k++] = types[i].name;
        for (size_t i = 0; i < sizeof type_hints / sizeof type_hints[0]; i++)
            cands[k++] = type_hints[i].wrong;
        char hint[128];
        suggest(hint, sizeof hint, f->type_name.text, cands, k);
        for (size_t i = 0; i < sizeof type_hints / sizeof type_hints[0]; i++) {
            char quoted[64];
            snprintf(quoted, sizeof quoted, "'%s'", type_hints[i].wrong);
            char *at = strstr(hint, quoted);
            if (at) /* "did you mean 'string'" becomes "did you mean 'text'" */
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", type_hints[i].right);
        }
        diag_error(c->d, f->type_name.loc,
                   "unknown type '%s'%s; the types are int32, int64, float64, bool, "
                   "text, timestamp and json",
                   f->type_name.text, hint);
        return;
    }
    diag_error(c->d, f->type_name.loc, "unknown type '%s' (did you mean '%s'?)",
               f->type_name.text, right);
}

/* C keywords and names the generated code or the runtime's header take. */
static const char *const reserved[] = {
    "auto",          "break",
    "case",          "char",
    "const",         "continue",
    "default",       "do",
    "double",        "else",
    "enum",          "extern",
    "float",         "for",
    "goto",          "if",
    "inline",        "int",
    "long",          "register",
    "restrict",      "return",
    "short",         "signed",
    "sizeof",        "static",
    "struct",        "switch",
    "typedef",       "union",
    "unsigned",      "void",
    "volatile",      "while",
    "bool",          "true",
    "false",         "_Bool",
    "_Complex",      "_Imaginary",
    "_Atomic",       "_Alignas",
    "_Alignof",      "_Generic",
    "_Noreturn",     "_Static_assert",
    "_Thread_local", "asm",
    "NULL",          "errno",
    "assert",        "offsetof",
};

static void check_identifier(checker *c, const ast_name *n, const char *what)
{
    if (!n->text)
        return;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (eq(n->text, reserved[i])) {
            diag_error(c->d, n->loc, "%s name '%s' is reserved in C", what, n->text);
            return;
        }
    if (n->text[0] == '_') {
        diag_error(c->d, n->loc, "%s name '%s' starts with '_', which C reserves", what,
                   n->text);
        return;
    }
    if (strlen(n->text) > MAX_SQL_NAME)
        diag_error(c->d, n->loc, "%s name '%s' is longer than %d characters", what,
                   n->text, MAX_SQL_NAME);
}

static void check_duration(checker *c, const ast_num *n, const char *what)
{
    if (!n->set)
        return;
    if (n->value == 0)
        diag_error(c->d, n->loc, "%s must be longer than zero", what);
    else if (n->value > MAX_DURATION_MS)
        diag_error(c->d, n->loc, "%s is out of range (at most 365d)", what);
}

static void check_jitter(checker *c, const ast_num *n)
{
    if (n->set && n->value > 100)
        diag_error(c->d, n->loc, "jitter must be between 0%% and 100%%");
}

/* An optimistic-concurrency counter: memo sets and compares it, so it is a
 * plain int64 that is always there, one per entity. */
static void check_version(checker *c, ast_entity *e, ast_field *f)
{
    if (e->version) {
        diag_error(c->d, f->flag_loc[4], "entity '%s' has a second version field",
                   e->name.text);
        diag_note(c->d, e->version->flag_loc[4], "the first is here");
        return;
    }
    e->version = f;
    if (f->type != AST_T_UNKNOWN && f->type != AST_T_INT64)
        diag_error(c->d, f->flag_loc[4], "a version field must be int64, not %s",
                   ast_type_name(f->type));
    static const char *const other[] = {"a primary key", "unique", "nullable",
                                        "a reference"};
    for (int i = 0; i < 4; i++)
        if (f->flags & (1u << i))
            diag_error(c->d, f->flag_loc[i], "a version field cannot be %s", other[i]);
}

/* `primary key (a, b);`: the key's fields, in that order (a key value is
 * them in that order: NAME_ENTITY_key). A field-level `primary key` is a
 * key of one field. */
static void check_pk_decl(checker *c, ast_entity *e)
{
    if (!e->pk_decl.n) {
        if (e->pk) {
            e->pks[0] = e->pk;
            e->npk = 1;
        }
        return;
    }
    if (e->pk) {
        diag_error(c->d, e->pk_decl_loc, "entity '%s' has a second primary key",
                   e->name.text);
        diag_note(c->d, e->pk->flag_loc[0], "the first is here");
        e->pks[0] = e->pk; /* the first stands, so nothing else cascades */
        e->npk = 1;
        return;
    }
    if (e->pk_decl.extra.line)
        diag_error(c->d, e->pk_decl.extra, "a primary key has at most %d fields",
                   AST_MAX_NAMES);
    for (size_t i = 0; i < e->pk_decl.n; i++) {
        const ast_name *n = &e->pk_decl.v[i];
        ast_field *f = need_field(c, e, n, "primary key field");
        if (!f)
            continue;
        bool twice = false;
        for (size_t j = 0; j < e->npk && !twice; j++)
            twice = e->pks[j] == f;
        if (twice) {
            diag_error(c->d, n->loc, "field '%s' is in the primary key twice", n->text);
            continue;
        }
        if (f->type != AST_T_UNKNOWN && f->type != AST_T_INT32 &&
            f->type != AST_T_INT64 && f->type != AST_T_TEXT)
            diag_error(c->d, n->loc,
                       "a primary key field must be int32, int64 or text, not %s (%s)",
                       ast_type_name(f->type), n->text);
        else if (f->flags & AST_F_NULLABLE)
            diag_error(c->d, n->loc, "a primary key field cannot be nullable (%s)",
                       n->text);
        else if (f->flags & AST_F_VERSION)
            diag_error(c->d, n->loc, "a version field cannot be in the primary key (%s)",
                       n->text);
        e->pks[e->npk++] = f;
    }
    e->pk = e->npk ? e->pks[0] : NULL;
}

static void check_fields(checker *c, ast_entity *e)
{
    if (e->fields.n > MEMO_MAX_FIELDS)
        diag_error(c->d, e->name.loc,
                   "entity '%s' has %zu fields; at most %d are allowed", e->name.text,
                   e->fields.n, MEMO_MAX_FIELDS);
    /* All first, so a field can be looked up before its declaration. */
    for (size_t i = 0; i < e->fields.n; i++)
        if (e->fields.v[i].name.text)
            name_map_add(&c->fields, e, e->fields.v[i].name.text, &e->fields.v[i]);
    for (size_t i = 0; i < e->fields.n; i++) {
        ast_field *f = &e->fields.v[i];
        check_identifier(c, &f->name, "field");
        ast_field *first = find_field(c, e, f->name.text);
        if (first && first != f) {
            diag_error(c->d, f->name.loc, "duplicate field '%s' in entity '%s'",
                       f->name.text, e->name.text);
            diag_note(c->d, first->name.loc, "previous definition is here");
        }
        check_type(c, f);

        if (f->flags & AST_F_PRIMARY) {
            if (e->pk) {
                diag_error(c->d, f->flag_loc[0], "entity '%s' has a second primary key",
                           e->name.text);
                diag_note(c->d, e->pk->flag_loc[0], "the first is here");
            } else {
                e->pk = f;
            }
            if (f->type != AST_T_UNKNOWN && f->type != AST_T_INT32 &&
                f->type != AST_T_INT64 && f->type != AST_T_TEXT)
                diag_error(c->d, f->flag_loc[0],
                           "a primary key must be int32, int64 or text, not %s",
                           ast_type_name(f->type));
            if (f->flags & AST_F_NULLABLE)
                diag_error(c->d, f->flag_loc[2], "a primary key cannot be nullable");
        }
        if (f->flags & AST_F_VERSION)
            check_version(c, e, f);
        if ((f->flags & AST_F_UNIQUE) &&
            (f->type == AST_T_JSON || f->type == AST_T_FLOAT64))
            diag_error(c->d, f->flag_loc[1], "a %s field cannot be unique",
                       ast_type_name(f->type));

        /* `a` nullable generates `a_is_null`, which must not be a field. */
        size_t len = strlen(f->name.text);
        if (len > 8 && strcmp(f->name.text + len - 8, "_is_null") == 0) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(len - 8), f->name.text);
            ast_field *b = find_field(c, e, base);
            if (b && (b->flags & AST_F_NULLABLE)) {
                diag_error(c->d, f->name.loc,
                           "field '%s' clashes with the null flag of nullable '%s'",
                           f->name.text, base);
                diag_note(c->d, b->name.loc, "'%s' is declared here", base);
            }
        }
    }
    check_pk_decl(c, e);
    if (!e->pk && !e->damaged && !e->pk_decl.n)
        diag_error(c->d, e->name.loc,
                   "entity '%s' has no primary key (mark one int32, int64 or text field "
                   "'primary key', or write `primary key (a, b);`)",
                   e->name.text);
}

static void check_references(checker *c, ast_entity *e)
{
    for (size_t i = 0; i < e->fields.n; i++) {
        ast_field *f = &e->fields.v[i];
        if (!(f->flags & AST_F_REFERENCES) || !f->references.text)
            continue;
        f->ref = need_entity(c, &f->references);
        if (f->ref && f->ref->npk > 1) {
            diag_error(c->d, f->references.loc,
                       "'%s' references entity '%s', whose primary key has %zu fields: a "
                       "reference is one field",
                       f->name.text, f->ref->name.text, f->ref->npk);
            continue;
        }
        if (!f->ref || !f->ref->pk || f->type == AST_T_UNKNOWN ||
            f->ref->pk->type == AST_T_UNKNOWN)
            continue;
        if (f->ref->pk->type != f->type) {
            diag_error(
                c->d, f->references.loc,
                "field '%s' is %s but references '%s', whose primary key '%s' is %s",
                f->name.text, ast_type_name(f->type), f->ref->name.text,
                f->ref->pk->name.text, ast_type_name(f->ref->pk->type));
            diag_note(c->d, f->ref->pk->name.loc, "'%s.%s' is declared here",
                      f->ref->name.text, f->ref->pk->name.text);
        }
    }
}

/* A key template has literal text and exactly one {placeholder}: the field
 * the cache is looked up by. Values are escaped into it, so one placeholder
 * keeps keys of different values apart. */
static void check_template(checker *c, ast_entity *e, ast_cache *k, ast_field *key_field)
{
    const char *t = k->key.text;
    ast_loc at = k->key.loc;
    if (strlen(t) > 100) {
        diag_error(c->d, at, "key template is longer than 100 characters");
        return;
    }
    int placeholders = 0;
    for (size_t i = 0; t[i]; i++) {
        ast_loc here = {at.line, at.col + 1 + (int)i, at.line, at.col + 2 + (int)i};
        if (t[i] == '{') {
            const char *close = strchr(t + i, '}');
            if (!close) {
                diag_error(c->d, here, "'{' in key template is not closed");
                return;
            }
            size_t n = (size_t)(close - (t + i)) - 1;
            char *name = xstrndup(t + i + 1, n);
            here.end_col = here.col + (int)n + 2;
            ast_field *f = find_field(c, e, name);
            if (placeholders == 1)
                diag_error(
                    c->d, here,
                    "key template has a second placeholder '{%s}'; it must contain "
                    "exactly one, '{%s}'",
                    name, key_field ? key_field->name.text : "field");
            else if (!f)
                diag_error(c->d, here,
                           "'{%s}' in key template is not a field of entity '%s'", name,
                           e->name.text);
            else if (key_field && f != key_field)
                diag_error(c->d, here,
                           "key template of this cache can only use '{%s}', the field it "
                           "is looked up by",
                           key_field->name.text);
            free(name);
            placeholders++;
            i += n + 1;
        } else if (t[i] == '}') {
            diag_error(c->d, here, "'}' in key template without '{'");
            return;
        } else if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
                     (t[i] >= '0' && t[i] <= '9') || strchr("_-.:/@", t[i]))) {
            /* Show the byte itself when it is printable ASCII. */
            char shown[8];
            if (t[i] > ' ' && t[i] < 127)
                snprintf(shown, sizeof shown, "'%c'", t[i]);
            else if (t[i] == ' ')
                snprintf(shown, sizeof shown, "space");
            else
                snprintf(shown, sizeof shown, "\\x%02X", (unsigned char)t[i]);
            diag_error(c->d, here,
                       "%s is not allowed in a key template: it may contain letters, "
                       "digits, '_-.:/@' and one '{field}'",
                       shown);
            return;
        }
    }
    if (placeholders == 0)
        diag_error(c->d, at,
                   "key template has no placeholder; it must contain the field "
                   "it is looked up by, as '{%s}'",
                   key_field ? key_field->name.text : "field");
}

/* The most rows one near cache may keep. */
#define MAX_NEAR_ENTRIES 16000000u

/* `near N [ttl D]`: rows only (a lookup holds a key, a list many rows: the
 * row's entry is what a hit needs); N bounded; D within the entry's ttl,
 * since Redis expiring the entry drops the near copy anyway. */
static void check_near(checker *c, const ast_cache *k, const ast_field *by)
{
    if (!k->near.set)
        return;
    if (by)
        diag_error(c->d, k->near.loc,
                   "'near' keeps rows in the process: put it on the entity's own 'cache' "
                   "line (lookups are not near-cached)");
    if (k->near.value == 0 || k->near.value > MAX_NEAR_ENTRIES)
        diag_error(c->d, k->near.loc, "near needs between 1 and %u entries",
                   MAX_NEAR_ENTRIES);
    check_duration(c, &k->near_ttl, "near ttl");
    if (k->near_ttl.set && k->ttl.set && k->near_ttl.value > k->ttl.value)
        diag_error(c->d, k->near_ttl.loc,
                   "near ttl is longer than the cache's ttl: a row leaves the near cache "
                   "when it leaves Redis");
}

static void check_caches(checker *c, ast_entity *e)
{
    for (size_t i = 0; i < e->caches.n; i++) {
        ast_cache *k = &e->caches.v[i];
        ast_field *f = NULL;
        if (k->field.text) {
            f = need_field(c, e, &k->field, "cache by");
            if (f == e->pk && f && e->npk == 1)
                f = NULL; /* `cache id` is `cache` */
        }
        if (k->field.text && f) {
            if (!(f->flags & AST_F_UNIQUE) && !(f->flags & AST_F_PRIMARY)) {
                diag_error(c->d, k->field.loc,
                           "cannot cache by '%s': the field is not unique (add 'unique' "
                           "to its declaration)",
                           f->name.text);
                diag_note(c->d, f->name.loc, "'%s' is declared here", f->name.text);
            }
            if (f->type == AST_T_JSON || f->type == AST_T_FLOAT64)
                diag_error(c->d, k->field.loc, "cannot cache by a %s field",
                           ast_type_name(f->type));
        }
        k->resolved = f ? f : e->pk;
        bool lookup_ok =
            !k->field.text || f || (e->pk && eq(k->field.text, e->pk->name.text));
        ast_cache *p = k->resolved ? name_map_add(&c->caches, k->resolved, "", k) : NULL;
        if (lookup_ok && p) {
            if (k->resolved == e->pk)
                diag_error(c->d, k->loc,
                           "entity '%s' is already cached by its primary key",
                           e->name.text);
            else
                diag_error(c->d, k->field.loc, "entity '%s' is already cached by '%s'",
                           e->name.text, k->resolved->name.text);
            diag_note(c->d, p->loc, "previous cache is here");
        }
        if (!k->ttl.set) {
            diag_error(c->d, k->loc, "cache needs a ttl, as in 'ttl 10m'");
            if (k->near_ttl.set)
                diag_note(c->d, k->near_ttl.loc,
                          "this ttl is the near cache's (it follows 'near N'): write "
                          "the cache's before 'near'");
        }
        check_duration(c, &k->ttl, "ttl");
        check_jitter(c, &k->jitter);
        check_duration(c, &k->negative, "negative ttl");
        check_near(c, k, f);
        if (k->key.text && !f && e->npk > 1)
            diag_error(
                c->d, k->key.loc,
                "a key template has one placeholder, but entity '%s' has a primary "
                "key of %zu fields: leave its row's key to memo",
                e->name.text, e->npk);
        else if (k->key.text && lookup_ok)
            check_template(c, e, k, k->resolved);
    }
}

static bool groupable(ast_type t)
{
    return t != AST_T_JSON && t != AST_T_FLOAT64 && t != AST_T_UNKNOWN;
}

static void check_lists(checker *c, ast_entity *e)
{
    for (size_t i = 0; i < e->lists.n; i++) {
        ast_list *l = &e->lists.v[i];
        check_identifier(c, &l->name, "list");
        ast_list *first =
            l->name.text ? name_map_add(&c->lists, e, l->name.text, l) : NULL;
        if (first) {
            diag_error(c->d, l->name.loc, "duplicate list '%s' in entity '%s'",
                       l->name.text, e->name.text);
            diag_note(c->d, first->name.loc, "previous definition is here");
        }
        l->group_field = need_field(c, e, &l->group, "list group");
        if (l->group_field && !groupable(l->group_field->type) &&
            l->group_field->type != AST_T_UNKNOWN)
            diag_error(c->d, l->group.loc, "cannot group a list by a %s field",
                       ast_type_name(l->group_field->type));
        if (l->group_field && (l->group_field->flags & AST_F_VERSION))
            diag_error(c->d, l->group.loc,
                       "cannot group a list by a version field (it changes at every "
                       "write)");
        if (l->order.text) {
            l->order_field = need_field(c, e, &l->order, "order by");
            if (l->order_field && l->order_field->type == AST_T_JSON)
                diag_error(c->d, l->order.loc, "cannot order a list by a json field");
        } else {
            l->order_field = e->pk;
        }
        if (l->limit.set && l->limit.value == 0)
            diag_error(c->d, l->limit.loc, "limit must be at least 1");
        else if (l->limit.set && l->limit.value > MEMOC_LIST_LIMIT)
            diag_error(c->d, l->limit.loc, "limit is out of range (at most %u)",
                       MEMOC_LIST_LIMIT);
        if (!l->ttl.set)
            diag_error(c->d, l->name.loc, "list '%s' needs a ttl, as in 'ttl 60s'",
                       l->name.text);
        check_duration(c, &l->ttl, "ttl");
        check_jitter(c, &l->jitter);
    }
}

static void check_rules(checker *c, ast_entity *e)
{
    for (size_t i = 0; i < e->rules.n; i++) {
        ast_rule *r = &e->rules.v[i];
        r->resolved = need_field(c, e, &r->field, NULL);
        if (r->more.extra.line)
            diag_error(c->d, r->more.extra, "a rule names at most %d fields",
                       AST_MAX_NAMES);
        for (size_t k = 0; k <= r->more.n; k++) {
            ast_field *f = k ? need_field(c, e, &r->more.v[k - 1], NULL) : r->resolved;
            if (k)
                r->more_resolved[k - 1] = f;
            if (f && (f->flags & AST_F_VERSION))
                diag_error(
                    c->d, k ? r->more.v[k - 1].loc : r->field.loc,
                    "a rule's field cannot be a version field (it changes at every "
                    "write)");
        }
        r->target_entity = need_entity(c, &r->target);
        if (!r->target_entity)
            continue;
        /* one field per field of the target's key (a list's: its group) */
        size_t want_n = r->list.text ? 1 : r->target_entity->npk;
        if (want_n && 1 + r->more.n != want_n) {
            diag_error(c->d, r->field.loc,
                       "this rule names %zu field%s, but %s '%s%s%s' is keyed by %zu",
                       1 + r->more.n, r->more.n ? "s" : "",
                       r->list.text ? "list" : "entity", r->target.text,
                       r->list.text ? "." : "", r->list.text ? r->list.text : "", want_n);
            continue;
        }
        for (size_t k = 0; k < r->more.n && !r->list.text; k++) {
            ast_field *f = r->more_resolved[k], *want = r->target_entity->pks[k + 1];
            if (f && want && f->type != AST_T_UNKNOWN && want->type != AST_T_UNKNOWN &&
                f->type != want->type) {
                diag_error(
                    c->d, r->more.v[k].loc,
                    "'%s' is %s, but entity '%s' is keyed by '%s' there, which is %s",
                    r->more.v[k].text, ast_type_name(f->type), r->target.text,
                    want->name.text, ast_type_name(want->type));
                diag_note(c->d, want->name.loc, "'%s.%s' is declared here",
                          r->target.text, want->name.text);
            }
        }
        ast_field *want = NULL;
        const char *what = NULL;
        if (r->list.text) {
            r->target_list = find_list(c, r->target_entity, r->list.text);
            if (!r->target_list) {
                ast_entity *t = r->target_entity;
                const char *cands[256];
                size_t k = 0;
                for (size_t j = 0; j < t->lists.n && k < 256; j++)
                    cands[k++] = t->lists.v[j].name.text;
                char hint[128];
                suggest(hint, sizeof hint, r->list.text, cands, k);
                if (!t->damaged)
                    diag_error(c->d, r->list.loc, "entity '%s' has no list '%s'%s",
                               t->name.text, r->list.text, hint);
                continue;
            }
            want = r->target_list->group_field;
            what = "group field";
        } else {
            want = r->target_entity->pk;
            what = "primary key";
        }
        if (r->resolved && want && r->resolved->type != AST_T_UNKNOWN &&
            want->type != AST_T_UNKNOWN && r->resolved->type != want->type) {
            /* The rule's field supplies the target's key: the types must agree. */
            if (r->list.text)
                diag_error(c->d, r->field.loc,
                           "'%s' is %s, but list '%s.%s' is keyed by its %s '%s', which "
                           "is %s",
                           r->field.text, ast_type_name(r->resolved->type),
                           r->target.text, r->list.text, what, want->name.text,
                           ast_type_name(want->type));
            else
                diag_error(c->d, r->field.loc,
                           "'%s' is %s, but entity '%s' is keyed by its %s '%s', which "
                           "is %s",
                           r->field.text, ast_type_name(r->resolved->type),
                           r->target.text, what, want->name.text,
                           ast_type_name(want->type));
            diag_note(c->d, want->name.loc, "'%s.%s' is declared here", r->target.text,
                      want->name.text);
        }
    }
}

/* Two schema items must not generate the same C identifier. */
typedef struct symbol {
    char *name;
    char *owner; /* "entity 'user'", for messages */
    ast_loc loc; /* line 0: the schema itself */
} symbol;

typedef struct symtab {
    name_map names;        /* generated name -> symbol */
    AST_VEC(symbol *) all; /* to free them */
} symtab;

static bool symbol_add(checker *c, symtab *t, const char *owner, ast_loc loc,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records a name `owner` generates; on a clash reports it and returns false,
 * so the caller reports one clash per item, not one per generated name. */
static bool symbol_add(checker *c, symtab *t, const char *owner, ast_loc loc,
                       const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    symbol *sym = xmalloc(sizeof *sym);
    *sym = (symbol){xstrdup(buf), xstrdup(owner), loc};
    symbol *prev = name_map_add(&t->names, NULL, sym->name, sym);
    if (prev) {
        diag_error(c->d, loc, "%s would generate '%s', which %s already generates", owner,
                   buf, prev->owner);
        if (prev->loc.line)
            diag_note(c->d, prev->loc, "%s is here", prev->owner);
        free(sym->name);
        free(sym->owner);
        free(sym);
        return false;
    }
    *(symbol **)AST_PUSH(t->all) = sym;
    return true;
}

/* Runs with the other checks, whatever they found: items reported already as
 * duplicates are left out, since they would clash with their first. */
static void check_symbols(checker *c)
{
    symtab t = {0};
    const char *s = c->s->name;
    char owner[256];
    ast_loc none = {0};
    snprintf(owner, sizeof owner, "schema '%s'", s);
    symbol_add(c, &t, owner, none, "%s_schema_desc", s);
    symbol_add(c, &t, owner, none, "%s_entities", s);
    for (size_t i = 0; i < c->s->entities.n; i++) {
        ast_entity *e = c->s->entities.v[i];
        const char *n = e->name.text;
        if (find_entity(c, n) != e)
            continue;
        static const char *const ops[] = {
            "",
            "_list",
            "_desc",
            "_get",
            "_get_many",
            "_insert",
            "_update",
            "_update_fields",
            "_upsert",
            "_delete",
            "_clear",
            "_list_clear",
            "_get_tx",
            "_get_many_tx",
            "_insert_tx",
            "_update_tx",
            "_update_fields_tx",
            "_upsert_tx",
            "_delete_tx",
            /* static tables in the .c */
            "_fields",
            "_uniques",
            "_lists",
            "_rules",
        };
        snprintf(owner, sizeof owner, "entity '%s'", n);
        bool clash = false;
        for (size_t k = 0; k < sizeof ops / sizeof ops[0] && !clash; k++)
            clash = !symbol_add(c, &t, owner, e->name.loc, "%s_%s%s", s, n, ops[k]);
        if (!clash && e->npk > 1) /* the key struct */
            symbol_add(c, &t, owner, e->name.loc, "%s_%s_key", s, n);
        for (size_t k = 0; k < e->caches.n; k++) {
            ast_cache *ca = &e->caches.v[k];
            /* a second cache by one field is reported already */
            if (ca->resolved && ca->resolved != e->pk &&
                name_map_get(&c->caches, ca->resolved, "") == ca) {
                const char *f = ca->resolved->name.text;
                snprintf(owner, sizeof owner, "cache by '%s' of entity '%s'", f, n);
                if (symbol_add(c, &t, owner, ca->field.loc, "%s_%s_get_by_%s", s, n, f))
                    symbol_add(c, &t, owner, ca->field.loc, "%s_%s_get_by_%s_tx", s, n,
                               f);
            }
        }
        for (size_t k = 0; k < e->lists.n; k++) {
            const ast_list *l = &e->lists.v[k];
            if (find_list(c, e, l->name.text) != l)
                continue;
            snprintf(owner, sizeof owner, "list '%s' of entity '%s'", l->name.text, n);
            const char *ln = l->name.text;
            if (symbol_add(c, &t, owner, l->name.loc, "%s_%s_%s", s, n, ln) &&
                symbol_add(c, &t, owner, l->name.loc, "%s_%s_%s_tx", s, n, ln) &&
                symbol_add(c, &t, owner, l->name.loc, "%s_%s_%s_count", s, n, ln) &&
                symbol_add(c, &t, owner, l->name.loc, "%s_%s_%s_count_tx", s, n, ln) &&
                symbol_add(c, &t, owner, l->name.loc, "%s_%s_%s_after", s, n, ln))
                symbol_add(c, &t, owner, l->name.loc, "%s_%s_%s_after_tx", s, n, ln);
        }
    }
    for (size_t i = 0; i < t.all.n; i++) {
        free(t.all.v[i]->name);
        free(t.all.v[i]->owner);
        free(t.all.v[i]);
    }
    free(t.all.v);
    name_map_free(&t.names);
}

static void check_schema_decl(checker *c)
{
    ast_schema *s = c->s;
    if (s->decls.n == 0) {
        if (!s->syntax_errors)
            diag_error(c->d, (ast_loc){1, 1, 1, 1},
                       "missing 'schema NAME;' at the top of the file");
        return;
    }
    ast_schema_decl *first = &s->decls.v[0];
    s->name = first->name.text;
    check_identifier(c, &first->name, "schema");
    if (first->entities_before > 0) {
        diag_error(c->d, first->name.loc,
                   "'schema %s;' must come before the first entity", first->name.text);
        diag_note(c->d, s->entities.v[0]->name.loc, "the first entity is here");
    }
    /* Nothing to generate: the descriptor table would be an empty array,
     * which C does not allow. A syntax error may have swallowed entities. */
    if (s->entities.n == 0 && !s->lost_items)
        diag_error(c->d, first->name.loc, "schema '%s' declares no entities",
                   first->name.text);
    for (size_t i = 1; i < s->decls.n; i++) {
        diag_error(c->d, s->decls.v[i].name.loc,
                   "a second 'schema' declaration ('%s'); a file declares one schema",
                   s->decls.v[i].name.text);
        diag_note(c->d, first->name.loc, "the schema is declared here");
    }
}

int check_schema(ast_schema *s, diag *d)
{
    checker c = {.s = s, .d = d};
    int before = diag_count(d);
    check_schema_decl(&c);

    for (size_t i = 0; i < s->entities.n; i++) {
        ast_entity *e = s->entities.v[i];
        check_identifier(&c, &e->name, "entity");
        /* The first earlier entity with this name or this table is reported;
         * both maps point into s->entities, so the earlier is the lower. */
        ast_entity **slot = &s->entities.v[i];
        const char *et = e->table.text ? e->table.text : e->name.text;
        ast_entity **same_name =
            e->name.text ? name_map_add(&c.entities, NULL, e->name.text, slot) : NULL;
        ast_entity **same_table = et ? name_map_add(&c.tables, NULL, et, slot) : NULL;
        if (same_name && (!same_table || same_name <= same_table)) {
            diag_error(d, e->name.loc, "duplicate entity '%s'", e->name.text);
            diag_note(d, (*same_name)->name.loc, "previous definition is here");
        } else if (same_table) {
            ast_entity *p = *same_table;
            ast_loc at = e->table.text ? e->table.loc : e->name.loc;
            diag_error(d, at, "entities '%s' and '%s' use the same table '%s'",
                       p->name.text, e->name.text, et);
            diag_note(d, p->table.text ? p->table.loc : p->name.loc, "'%s' uses it here",
                      p->name.text);
        }
        if (e->table.text && strlen(e->table.text) > MAX_SQL_NAME)
            diag_error(d, e->table.loc, "table name '%s' is longer than %d characters",
                       e->table.text, MAX_SQL_NAME);
        check_fields(&c, e);
    }
    /* Second pass: everything that looks at other entities' fields. */
    for (size_t i = 0; i < s->entities.n; i++) {
        ast_entity *e = s->entities.v[i];
        check_references(&c, e);
        check_caches(&c, e);
        check_lists(&c, e);
    }
    for (size_t i = 0; i < s->entities.n; i++)
        check_rules(&c, s->entities.v[i]);
    if (s->name)
        check_symbols(&c);
    name_map_free(&c.entities);
    name_map_free(&c.tables);
    name_map_free(&c.fields);
    name_map_free(&c.lists);
    name_map_free(&c.caches);
    return diag_count(d) - before;
}
