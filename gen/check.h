#ifndef MEMOC_CHECK_H
#define MEMOC_CHECK_H

#include "ast.h"
#include "diag.h"

/* Checks a parsed schema, resolving names and types for the emitters.
 * Returns the number of errors it reported. */
int check_schema(ast_schema *, diag *);

#endif
