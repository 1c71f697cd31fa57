#include "ast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fputs("memoc: out of memory\n", stderr);
    exit(2);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Every AST_VEC has this layout. */
struct vec {
    void *v;
    size_t n, cap;
};

void *ast_vec_push(void *vp, size_t elem_size)
{
    struct vec *vec = vp;
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? 2 * vec->cap : 4;
        void *v = realloc(vec->v, cap * elem_size);
        if (!v)
            oom();
        vec->v = v;
        vec->cap = cap;
    }
    void *e = (char *)vec->v + vec->n++ * elem_size;
    memset(e, 0, elem_size);
    return e;
}

ast_schema *ast_schema_new(const char *file)
{
    ast_schema *s = xcalloc(1, sizeof *s);
    s->file = file;
    return s;
}

void ast_name_free(ast_name *n)
{
    free(n->text);
    n->text = NULL;
}

void ast_names_free(ast_names *n)
{
    for (size_t i = 0; i < n->n; i++)
        ast_name_free(&n->v[i]);
    n->n = 0;
}

void ast_entity_free(ast_entity *e)
{
    if (!e)
        return;
    ast_name_free(&e->name);
    ast_name_free(&e->table);
    ast_names_free(&e->pk_decl);
    for (size_t i = 0; i < e->fields.n; i++) {
        ast_field *f = &e->fields.v[i];
        ast_name_free(&f->name);
        ast_name_free(&f->type_name);
        ast_name_free(&f->references);
    }
    for (size_t i = 0; i < e->caches.n; i++) {
        ast_name_free(&e->caches.v[i].field);
        ast_name_free(&e->caches.v[i].key);
    }
    for (size_t i = 0; i < e->lists.n; i++) {
        ast_list *l = &e->lists.v[i];
        ast_name_free(&l->name);
        ast_name_free(&l->group);
        ast_name_free(&l->order);
    }
    for (size_t i = 0; i < e->rules.n; i++) {
        ast_rule *r = &e->rules.v[i];
        ast_name_free(&r->target);
        ast_name_free(&r->list);
        ast_name_free(&r->field);
        ast_names_free(&r->more);
    }
    free(e->fields.v);
    free(e->caches.v);
    free(e->lists.v);
    free(e->rules.v);
    free(e);
}

void ast_schema_free(ast_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->decls.n; i++)
        ast_name_free(&s->decls.v[i].name);
    free(s->decls.v);
    for (size_t i = 0; i < s->entities.n; i++)
        ast_entity_free(s->entities.v[i]);
    free(s->entities.v);
    free(s);
}

const char *ast_type_name(ast_type t)
{
    switch (t) {
    case AST_T_INT32:
        return "int32";
    case AST_T_INT64:
        return "int64";
    case AST_T_FLOAT64:
        return "float64";
    case AST_T_BOOL:
        return "bool";
    case AST_T_TEXT:
        return "text";
    case AST_T_TIMESTAMP:
        return "timestamp";
    case AST_T_JSON:
        return "json";
    case AST_T_UNKNOWN:
        break;
    }
    return "?";
}
