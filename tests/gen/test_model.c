/* The two faces of the lowering agree: for every example schema (each .memo
 * file in schemas/), the model the `memo` tool builds at run time (parse,
 * check, lower: gen/lower.c) equals, field by field, the descriptors the
 * generated C holds (build/schemas/NAME.o, linked in). Strings compare by
 * content; arrays element by element; a rule's target by its place among the
 * schema's entities. Offsets and sizes compare exactly too: the generated C
 * takes them from offsetof/sizeof of the generated struct, the model from
 * its own layout rule (lower.h), and the tool's rows must be laid out as the
 * struct memoc declares.
 *
 * Environment: MEMO_TOP, the source tree (for schemas/). */
#include "test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "check.h"
#include "diag.h"
#include "lex.h"
#include "lower.h"

#include "blog.h"
#include "hot.h"
#include "team.h"
#include "ticket.h"
#include "wiki.h"

/* Every example schema's generated descriptors; a schema file without an
 * entry here fails the test, so a new example cannot go unchecked. */
static const memo_schema_desc *const generated[] = {
    &blog_schema_desc, &hot_schema_desc, &team_schema_desc, &ticket_schema_desc,
    &wiki_schema_desc};
#define NGENERATED (sizeof generated / sizeof *generated)

/* ------------------------------------------------------------ comparing */

/* Counts and prints the differences found, each with its path, e.g.
 * "blog.user.lists[0].limit: generated 500, model 10000". */
typedef struct cmp {
    int differences;
    bool quiet; /* count only: the differences the test makes on purpose */
    char path[256];
} cmp;

static void differ(cmp *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void differ(cmp *c, const char *what, const char *fmt, ...)
{
    c->differences++;
    if (c->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s%s: ", c->path, what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void num(cmp *c, const char *what, unsigned long long g, unsigned long long m)
{
    if (g != m)
        differ(c, what, "generated %llu, model %llu", g, m);
}

static void str(cmp *c, const char *what, const char *g, const char *m)
{
    if (!g || !m ? g != m : strcmp(g, m) != 0)
        differ(c, what, "generated \"%s\", model \"%s\"", g ? g : "(null)",
               m ? m : "(null)");
}

/* Appends ".what" or "[i]" to the path for a nested compare; returns the old
 * length, to restore it with pop. */
static size_t push(cmp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t push(cmp *c, const char *fmt, ...)
{
    size_t len = strlen(c->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->path + len, sizeof c->path - len, fmt, ap);
    va_end(ap);
    return len;
}

static void pop(cmp *c, size_t len)
{
    c->path[len] = '\0';
}

static void key(cmp *c, const char *what, const memo_key_desc *g, const memo_key_desc *m)
{
    size_t at = push(c, "%s", what);
    str(c, ".head", g->head, m->head);
    str(c, ".tail", g->tail, m->tail);
    str(c, ".tag", g->tag, m->tag);
    pop(c, at);
}

static void lookup(cmp *c, const memo_lookup_desc *g, const memo_lookup_desc *m)
{
    num(c, ".field", g->field, m->field);
    key(c, ".key", &g->key, &m->key);
    num(c, ".ttl_ms", g->ttl_ms, m->ttl_ms);
    num(c, ".negative_ttl_ms", g->negative_ttl_ms, m->negative_ttl_ms);
    num(c, ".jitter_pct", g->jitter_pct, m->jitter_pct);
    num(c, ".near_entries", g->near_entries, m->near_entries);
    num(c, ".near_ttl_ms", g->near_ttl_ms, m->near_ttl_ms);
}

/* The place of d among s's entities; nentities when it is not one of them. */
static unsigned place(const memo_schema_desc *s, const memo_entity_desc *d)
{
    unsigned i = 0;
    while (i < s->nentities && s->entities[i] != d)
        i++;
    return i;
}

static void entity(cmp *c, const memo_schema_desc *gs, const memo_entity_desc *g,
                   const memo_schema_desc *ms, const memo_entity_desc *m)
{
    num(c, ".abi", g->abi, m->abi);
    str(c, ".schema", g->schema, m->schema);
    str(c, ".name", g->name, m->name);
    str(c, ".table", g->table, m->table);
    num(c, ".size", g->size, m->size);
    num(c, ".nfields", g->nfields, m->nfields);
    for (unsigned i = 0; i < g->nfields && i < m->nfields; i++) {
        const memo_field_desc *gf = &g->fields[i], *mf = &m->fields[i];
        size_t at = push(c, ".fields[%u]", i);
        str(c, ".name", gf->name, mf->name);
        num(c, ".type", gf->type, mf->type);
        num(c, ".flags", gf->flags, mf->flags);
        num(c, ".offset", gf->offset, mf->offset);
        num(c, ".null_offset", gf->null_offset, mf->null_offset);
        pop(c, at);
    }
    num(c, ".pk", g->pk, m->pk);
    num(c, ".npk", g->npk, m->npk);
    for (unsigned k = 0; k < g->npk && k < m->npk; k++) {
        size_t at = push(c, ".pks[%u]", k);
        num(c, "", g->pks[k], m->pks[k]);
        num(c, ".offset", g->pk_offsets[k], m->pk_offsets[k]);
        pop(c, at);
    }
    num(c, ".key_size", g->key_size, m->key_size);
    size_t at = push(c, ".row");
    lookup(c, &g->row, &m->row);
    pop(c, at);
    num(c, ".nuniques", g->nuniques, m->nuniques);
    for (unsigned i = 0; i < g->nuniques && i < m->nuniques; i++) {
        at = push(c, ".uniques[%u]", i);
        lookup(c, &g->uniques[i], &m->uniques[i]);
        pop(c, at);
    }
    num(c, ".nlists", g->nlists, m->nlists);
    for (unsigned i = 0; i < g->nlists && i < m->nlists; i++) {
        const memo_list_desc *gl = &g->lists[i], *ml = &m->lists[i];
        at = push(c, ".lists[%u]", i);
        str(c, ".name", gl->name, ml->name);
        num(c, ".group", gl->group, ml->group);
        num(c, ".order", gl->order, ml->order);
        num(c, ".descending", gl->descending, ml->descending);
        num(c, ".limit", gl->limit, ml->limit);
        num(c, ".ttl_ms", gl->ttl_ms, ml->ttl_ms);
        num(c, ".jitter_pct", gl->jitter_pct, ml->jitter_pct);
        key(c, ".key", &gl->key, &ml->key);
        pop(c, at);
    }
    num(c, ".nrules", g->nrules, m->nrules);
    for (unsigned i = 0; i < g->nrules && i < m->nrules; i++) {
        const memo_rule_desc *gr = &g->rules[i], *mr = &m->rules[i];
        at = push(c, ".rules[%u]", i);
        num(c, ".events", gr->events, mr->events);
        num(c, ".field", gr->field, mr->field);
        num(c, ".nfields", gr->nfields, mr->nfields);
        for (unsigned k = 0; k < gr->nfields && k < mr->nfields; k++)
            num(c, ".fields[]", gr->fields[k], mr->fields[k]);
        /* a target outside its schema has place nentities: never equal to a
         * real place of the other side unless both are outside */
        unsigned gt = place(gs, gr->target), mt = place(ms, mr->target);
        if (gt == gs->nentities || mt == ms->nentities || gt != mt)
            differ(c, ".target", "generated entity #%u, model entity #%u (of %u, %u)", gt,
                   mt, gs->nentities, ms->nentities);
        num(c, ".list", (unsigned long long)(long long)gr->list,
            (unsigned long long)(long long)mr->list);
        pop(c, at);
    }
    str(c, ".fingerprint", g->fingerprint, m->fingerprint);
}

/* The number of differences between two schemas' descriptors, each printed
 * unless quiet. */
static int compare_schemas(const memo_schema_desc *g, const memo_schema_desc *m,
                           bool quiet)
{
    cmp c = {.quiet = quiet};
    snprintf(c.path, sizeof c.path, "%s", g->name ? g->name : "?");
    num(&c, ".abi", g->abi, m->abi);
    str(&c, ".name", g->name, m->name);
    num(&c, ".nentities", g->nentities, m->nentities);
    for (unsigned i = 0; i < g->nentities && i < m->nentities; i++) {
        size_t at = push(&c, ".%s", g->entities[i]->name);
        entity(&c, g, g->entities[i], m, m->entities[i]);
        pop(&c, at);
    }
    return c.differences;
}

/* --------------------------------------------------------------- loading */

typedef struct loaded {
    char *src;
    ast_schema *ast;
    model *m;
} loaded;

/* Parses, checks and lowers a schema file as the tool does; fails the test
 * on errors in it. */
static void load(const char *path, loaded *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    size_t cap = 1 << 16, n = 0, got;
    out->src = malloc(cap);
    assert_non_null(out->src);
    while ((got = fread(out->src + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            out->src = realloc(out->src, cap *= 2);
            assert_non_null(out->src);
        }
    }
    fclose(f);
    diag *d = diag_new(path, out->src, n);
    out->ast = ast_schema_new(path);
    memoc_parse(out->src, n, out->ast, d);
    check_schema(out->ast, d);
    int errors = diag_count(d);
    diag_flush(d, stderr);
    diag_free(d);
    if (errors)
        fail_msg("%s has %d errors", path, errors);
    out->m = model_build(out->ast);
}

static void unload(loaded *l)
{
    model_free(l->m);
    ast_schema_free(l->ast);
    free(l->src);
}

static const memo_schema_desc *generated_for(const char *name)
{
    for (size_t i = 0; i < NGENERATED; i++)
        if (strcmp(generated[i]->name, name) == 0)
            return generated[i];
    return NULL;
}

/* ----------------------------------------------------------------- tests */

/* Every .memo file in schemas/: its model equals its generated descriptors. */
static void every_schema_agrees(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas", test_env("MEMO_TOP"));
    DIR *dp = opendir(dir);
    if (!dp)
        fail_msg("cannot open %s", dir);
    size_t schemas = 0;
    int differences = 0;
    struct dirent *ent;
    while ((ent = readdir(dp))) {
        size_t len = strlen(ent->d_name);
        if (len < 6 || strcmp(ent->d_name + len - 5, ".memo") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        loaded l;
        load(path, &l);
        const memo_schema_desc *g = generated_for(l.m->schema.name);
        if (!g)
            fail_msg("%s: no generated descriptors linked for schema '%s' (add its "
                     "_schema_desc to `generated` in tests/gen/test_model.c)",
                     path, l.m->schema.name);
        differences += compare_schemas(g, model_schema(l.m), false);
        unload(&l);
        schemas++;
    }
    closedir(dp);
    /* each linked schema was found: a wrong directory cannot pass */
    assert_int_equal(schemas, NGENERATED);
    assert_int_equal(differences, 0);
}

/* The comparison sees a difference of each kind: a number, a string's
 * content (not its address), a nested array element, a rule's target. */
static void comparison_sees_differences(void **state)
{
    (void)state;
    enum { N = 4 };
    const memo_schema_desc *g = &blog_schema_desc;
    assert_int_equal(g->nentities, N);
    memo_entity_desc copies[N];
    const memo_entity_desc *pointers[N];
    memo_rule_desc rules[N][8];
    for (unsigned i = 0; i < N; i++) {
        copies[i] = *g->entities[i];
        pointers[i] = &copies[i];
    }
    /* the copies' rules point at the copies: targets are compared by place,
     * as the model's point at the model's entities */
    for (unsigned i = 0; i < N; i++) {
        assert_true(copies[i].nrules <= 8);
        for (unsigned r = 0; r < copies[i].nrules; r++) {
            rules[i][r] = copies[i].rules[r];
            rules[i][r].target = &copies[place(g, rules[i][r].target)];
        }
        copies[i].rules = rules[i];
    }
    memo_schema_desc copy = *g;
    copy.entities = pointers;
    assert_int_equal(compare_schemas(g, &copy, true), 0);

    /* user: a list limit, and its fingerprint as a new string with the
     * same content (no difference) */
    unsigned user = 1, post = 2;
    assert_string_equal(copies[user].name, "user");
    memo_list_desc list = copies[user].lists[0];
    list.limit++;
    copies[user].lists = &list;
    char fp[32];
    snprintf(fp, sizeof fp, "%s", copies[user].fingerprint);
    copies[user].fingerprint = fp;
    assert_int_equal(compare_schemas(g, &copy, true), 1);

    /* post: its rule's target moves from user to org, a field's name
     * differs in one letter */
    assert_string_equal(copies[post].name, "post");
    rules[post][0].target = &copies[0];
    memo_field_desc fields[MEMO_MAX_FIELDS];
    memcpy(fields, copies[post].fields, copies[post].nfields * sizeof *fields);
    char name[64];
    snprintf(name, sizeof name, "%s", fields[1].name);
    name[0] ^= 1;
    fields[1].name = name;
    copies[post].fields = fields;
    assert_int_equal(compare_schemas(g, &copy, true), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_schema_agrees),
        cmocka_unit_test(comparison_sees_differences),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
