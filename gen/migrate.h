/* memoc --migrate: the SQL from one version of a schema's tables to the
 * next (migrate.c). */
#ifndef MEMOC_MIGRATE_H
#define MEMOC_MIGRATE_H

#include <stdio.h>

#include "ast.h"
#include "diag.h"
#include "lower.h"

/* One version: the file, its checked AST (for error locations) and its
 * model. */
typedef struct migrate_input {
    const char *path;
    const ast_schema *schema;
    const model *model;
} migrate_input;

/* Prints to out the SQL that takes OLD's tables to NEW's, and the flushes
 * that reclaim the cached entries NEW no longer reads; or, for a change it
 * cannot make safely, errors at NEW's declarations in d (NEW's file) and
 * prints nothing. Returns the number of errors. */
int emit_migration(FILE *out, const migrate_input *old, const migrate_input *new,
                   diag *d);

#endif
