/* Diagnostics in gcc's form: `file:line:col: error: message`, the source line
 * and a caret. They are collected and printed sorted by position, so the
 * parser's and the checker's findings read top to bottom. */
#ifndef MEMOC_DIAG_H
#define MEMOC_DIAG_H

#include <stdio.h>

#include "ast.h"

typedef struct diag diag;

/* src (len bytes) is borrowed and must outlive the diag. */
diag *diag_new(const char *file, const char *src, size_t len);
void diag_free(diag *);

/* A loc with line 0 has no position: `file: error: message`. */
void diag_error(diag *, ast_loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A note belongs to the error reported just before it. */
void diag_note(diag *, ast_loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int diag_count(const diag *);
/* Edit distance of two words, for "did you mean" hints (99 past 64 bytes). */
size_t diag_distance(const char *a, const char *b);
/* The source text at loc (one line at most), for messages; "" if none. */
char *diag_text(const diag *, ast_loc);
/* Prints every diagnostic, sorted, and forgets them. */
void diag_flush(diag *, FILE *);

#endif
