/* What the lexer and the parser share. */
#ifndef MEMOC_LEX_H
#define MEMOC_LEX_H

#include <stdbool.h>

#include "ast.h"
#include "diag.h"
#include "parser.h"

/* A token on its way from the scanner to the parser. */
struct token {
    int kind;      /* TOK_... or a character */
    YYSTYPE value; /* owned while queued: IDENT and STRING hold malloc'd text */
    YYLTYPE loc;
    bool made; /* inserted by error recovery: not in the source */
};

/* Tokens read ahead or put back, next first. Error recovery needs at most
 * four read ahead (`entity NAME table NAME {`) plus two put back. */
#define LEX_AHEAD 8

struct lex_extra {
    int line, col;   /* position of the next character */
    YYLTYPE comment; /* where an open comment started */
    diag *diag;
    ast_schema *schema;
    ast_entity *cur; /* the entity whose body is being read */

    /* Kept by yylex in parser.y, for messages and recovery. */
    struct token ahead[LEX_AHEAD];
    int nahead;
    YYLTYPE lexed;     /* the last token the scanner produced */
    bool swallowed;    /* ... was an unterminated comment, to the end */
    struct token last; /* the last token given to the parser (its lookahead);
                          the value is borrowed, the parser owns it */
    YYLTYPE prev;      /* the token given to the parser before that */
    bool in_body;      /* between an entity's '{' and its '}' */
    YYLTYPE open;      /* that '{' */
    YYLTYPE entity;    /* the name after the last top-level 'entity' (line 0: none) */
};

/* The raw scanner (lexer.l); the parser calls yylex, which wraps it. */
int memoc_lex(YYSTYPE *yylval_param, YYLTYPE *yylloc_param, yyscan_t yyscanner);

/* Parses src (len bytes) into schema, reporting into d. Returns the number of
 * syntax errors. */
int memoc_parse(const char *src, size_t len, ast_schema *schema, diag *d);

#endif
