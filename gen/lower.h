/* The lowering: a checked schema becomes the runtime's own descriptors
 * (memo_schema_desc, memo_entity_desc, ... of memo.h) plus the few names the
 * emitters print. Every value memoc computes is computed here, once: defaults
 * (table name, TTL, negative TTL and jitter left to the repository, a list's
 * limit), key heads, tails and tags, fingerprints, field indexes and the row
 * layout. memoc's emitters print this model and never read the AST; the `memo`
 * tool loads it instead of linking generated code; tests/gen/test_model.c
 * compares it, field by field, with the descriptors the generated C holds.
 *
 * Offsets and sizes: the generated C states them as offsetof() and sizeof()
 * of the generated struct, so the compiler decides them there. The model lays
 * a row out itself, by the rule C compilers follow for that struct (each
 * member at the next multiple of its alignment, in order, a `bool
 * <name>_is_null` after a nullable scalar, the size rounded up to the largest
 * alignment), and the tool allocates rows of desc.size bytes. The model test
 * requires both to be equal, so a change to the struct the header declares
 * that the model does not follow is caught.
 *
 * The model owns every string and array it points to: the AST may be freed
 * once model_build returns. */
#ifndef MEMOC_LOWER_H
#define MEMOC_LOWER_H

#include <stdbool.h>
#include <stddef.h>

#include <memo/memo.h>

#include "ast.h"

/* What the emitters need of a field beyond its memo_field_desc. */
typedef struct lowered_field {
    bool null_flag; /* the struct has `bool <name>_is_null`: a nullable scalar */
    long ref;       /* index of the entity it references; -1: none */
} lowered_field;

typedef struct lowered_entity {
    /* First member: a rule's target (a memo_entity_desc *) is also its
     * lowered_entity, so model_index() is constant time. */
    memo_entity_desc desc;
    char *c_name;          /* "blog_user": the struct's name, every symbol's prefix */
    lowered_field *fields; /* beside desc.fields, by index */
} lowered_entity;

typedef struct model {
    memo_schema_desc schema;  /* entities point into `entities` */
    lowered_entity *entities; /* schema order */
    size_t n;
    /* private: every other allocation, for model_free */
    void **owned;
    size_t nowned, capowned;
} model;

/* Lowers a schema that check_schema accepted without errors. Never fails
 * (memory runs out as in xmalloc). Free with model_free. */
model *model_build(const ast_schema *);
const memo_schema_desc *model_schema(const model *);
/* The entity called name, or NULL. */
const memo_entity_desc *model_entity(const model *, const char *name);
/* The index in m->entities of d, which must be one of m's descriptors. */
size_t model_index(const model *, const memo_entity_desc *d);
/* NULL is allowed. */
void model_free(model *);

/* The schema language's name of a type, "int64"; the C type of a struct
 * member, "int64_t" or "char *"; of a key parameter, "const char *" for text. */
const char *model_type_name(memo_type);
const char *model_c_type(memo_type);
const char *model_c_key_type(memo_type);

#endif
