/* What the lexer and the parser share. */
#ifndef MEMOC_LEX_H
#define MEMOC_LEX_H

#include "ast.h"
#include "diag.h"
#include "parser.h"

struct lex_extra {
    int line, col;      /* position of the next character */
    YYLTYPE comment;    /* where an open comment started */
    diag *diag;
    ast_schema *schema;
    ast_entity *cur;    /* the entity whose body is being read */
};

/* Parses src (len bytes) into schema, reporting into d. Returns the number of
 * syntax errors. */
int memoc_parse(const char *src, size_t len, ast_schema *schema, diag *d);

#endif
