/* Runtime descriptors built from a checked schema, for tools that read a
 * schema file instead of linking generated code (the `memo` command). Keys,
 * tags and fingerprints come from the same functions as memoc's output, so
 * both address the same Redis keys. Rows are laid out by the model: allocate
 * desc->size bytes (zeroed) per row. */
#ifndef MEMOC_MODEL_H
#define MEMOC_MODEL_H

#include <memo/memo.h>

#include "ast.h"

typedef struct model model;

model *model_build(const ast_schema *);
const memo_schema_desc *model_schema(const model *);
/* The entity called name, or NULL. */
const memo_entity_desc *model_entity(const model *, const char *name);
void model_free(model *);

#endif
