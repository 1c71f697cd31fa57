#ifndef MEMOC_CHECK_H
#define MEMOC_CHECK_H

#include "ast.h"
#include "diag.h"

/* The most keys a list holds: the largest `limit` accepted, and what a list
 * without one gets (lower.c). The most fields an entity may have is memo.h's
 * MEMO_MAX_FIELDS, the runtime's own limit. */
#define MEMOC_LIST_LIMIT 10000u

/* Checks a parsed schema, resolving names and types for the lowering.
 * Returns the number of errors it reported. */
int check_schema(ast_schema *, diag *);

#endif
