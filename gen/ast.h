/* The schema's abstract syntax tree: built by the parser, checked by check.c,
 * lowered by lower.c into the descriptor model the emitters print. One
 * ast_free() releases everything. */
#ifndef MEMOC_AST_H
#define MEMOC_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ast_loc {
    int line, col;         /* first character, 1-based */
    int end_line, end_col; /* one past the last character */
} ast_loc;

/* A name as written, with where it was written. */
typedef struct ast_name {
    char *text; /* NULL when absent */
    ast_loc loc;
} ast_name;

typedef enum ast_type {
    AST_T_UNKNOWN,
    AST_T_INT32,
    AST_T_INT64,
    AST_T_FLOAT64,
    AST_T_BOOL,
    AST_T_TEXT,
    AST_T_TIMESTAMP,
    AST_T_JSON
} ast_type;

/* Field modifiers, in the order they may be written. */
enum {
    AST_F_PRIMARY = 1u << 0,
    AST_F_UNIQUE = 1u << 1,
    AST_F_NULLABLE = 1u << 2,
    AST_F_REFERENCES = 1u << 3,
    AST_F_VERSION = 1u << 4
};

typedef struct ast_entity ast_entity;

typedef struct ast_field {
    ast_name name;
    ast_name type_name;
    ast_type type; /* set by the checker */
    unsigned flags;
    ast_loc flag_loc[5]; /* where each modifier was written, by bit index */
    ast_name references;
    ast_entity *ref; /* set by the checker */
} ast_field;

/* A duration or number as written; `set` tells whether it was written. */
typedef struct ast_num {
    bool set;
    uint64_t value; /* milliseconds for durations */
    ast_loc loc;
} ast_num;

typedef struct ast_cache {
    ast_loc loc;    /* the `cache` keyword */
    ast_name field; /* text NULL: by primary key */
    ast_name key;   /* key template, text NULL when absent */
    ast_num ttl, jitter, negative;
    ast_num near, near_ttl; /* `near N [ttl D]` */
    ast_field *resolved;    /* set by the checker */
} ast_cache;

typedef struct ast_list {
    ast_name name;
    ast_name group;
    ast_name order; /* text NULL: by primary key */
    bool desc;
    ast_num limit, ttl, jitter;
    ast_field *group_field, *order_field; /* set by the checker */
} ast_list;

enum { AST_ON_INSERT = 1u << 0, AST_ON_UPDATE = 1u << 1, AST_ON_DELETE = 1u << 2 };
#define AST_ON_CHANGE (AST_ON_INSERT | AST_ON_UPDATE | AST_ON_DELETE)

/* A parenthesized list of names, `(a, b)`: a composite primary key, a rule's
 * fields. */
#define AST_MAX_NAMES 8
typedef struct ast_names {
    ast_name v[AST_MAX_NAMES];
    size_t n;
    ast_loc extra; /* the first name past AST_MAX_NAMES (line 0: none) */
} ast_names;

typedef struct ast_rule {
    ast_loc loc; /* the `on` keyword */
    unsigned events;
    ast_name target; /* entity */
    ast_name list;   /* text NULL: the target's row */
    ast_name field;  /* a field of the entity that owns the rule */
    ast_names more;  /* the others, for a target's composite key */
    ast_entity *target_entity;
    ast_list *target_list;
    ast_field *resolved;
    ast_field *more_resolved[AST_MAX_NAMES];
} ast_rule;

#define AST_VEC(T)                                                                       \
    struct {                                                                             \
        T *v;                                                                            \
        size_t n, cap;                                                                   \
    }

struct ast_entity {
    ast_name name;
    ast_name table; /* text NULL: the entity's name */
    AST_VEC(ast_field) fields;
    AST_VEC(ast_cache) caches;
    AST_VEC(ast_list) lists;
    AST_VEC(ast_rule) rules;
    bool damaged;      /* a syntax error inside: skip checks that would cascade */
    ast_field *pk;     /* set by the checker: the (first) primary key field */
    ast_names pk_decl; /* `primary key (a, b);`, if written */
    ast_loc pk_decl_loc;
    ast_field *pks[AST_MAX_NAMES]; /* set by the checker: every key field */
    size_t npk;
    ast_field *version; /* set by the checker */
};

typedef struct ast_schema_decl {
    ast_name name;
    size_t entities_before; /* entities written above it: it must come first */
} ast_schema_decl;

typedef struct ast_schema {
    const char *file;               /* borrowed */
    AST_VEC(ast_schema_decl) decls; /* every `schema NAME;`, to diagnose extras */
    AST_VEC(ast_entity *) entities;
    bool syntax_errors;
    bool lost_items; /* a syntax error swallowed something, maybe an entity */
    /* set by the checker */
    const char *name;
} ast_schema;

/* Appends a zeroed element to an AST_VEC and returns it; aborts on OOM. */
void *ast_vec_push(void *vec, size_t elem_size);
#define AST_PUSH(vec) ast_vec_push(&(vec), sizeof *(vec).v)

ast_schema *ast_schema_new(const char *file);
void ast_schema_free(ast_schema *);
void ast_entity_free(ast_entity *);
void ast_name_free(ast_name *);
void ast_names_free(ast_names *);

/* Allocation that cannot fail: memoc is a short-lived tool, so running out of
 * memory prints a message and exits 2. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);

const char *ast_type_name(ast_type);

#endif
