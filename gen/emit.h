/* The emitters: blog.h, blog.c and blog.sql from a checked schema. Output is
 * deterministic (schema order, no timestamps). */
#ifndef MEMOC_EMIT_H
#define MEMOC_EMIT_H

#include <stdio.h>

#include "ast.h"

#define MEMOC_VERSION "0.1.0"
/* A list without `limit` holds at most this many keys (also the maximum). */
#define MEMOC_DEFAULT_LIST_LIMIT 10000u

typedef struct emitter {
    FILE *out;
    int indent;
    const ast_schema *s;
    const char *source; /* the schema's path as given to memoc */
} emitter;

/* Writes one line at the current indent. */
void emit_line(emitter *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void emit_blank(emitter *);

void emit_header(emitter *);
void emit_source(emitter *);
void emit_sql(emitter *);

/* Shared facts about the schema, for the emitters. */
const char *c_type(ast_type);
/* The C parameter type of a key of field f: "int64_t", "const char *". */
const char *c_key_type(const ast_field *);
const char *table_of(const ast_entity *);
size_t field_index(const ast_entity *, const ast_field *);
size_t pk_cache_index(const ast_entity *); /* SIZE_MAX when none */

/* The two faces of every operation: on a repository, and in a transaction
 * (name suffix "_tx"); each calls the runtime function of its face. */
typedef struct variant {
    const char *suffix;  /* "" or "_tx" */
    const char *handle;  /* "memo_repo *repo" or "memo_tx *tx" */
    const char *arg;     /* "repo" or "tx" */
    const char *runtime; /* "memo_" or "memo_tx_" */
} variant;
extern const variant variant_repo, variant_tx;

/* The signature of each generated operation, without ';' or body, written
 * into out (a get_many signature spans two lines). The header and the source
 * both use these, so they cannot disagree. */
void sig_get(char *out, size_t size, const emitter *, const ast_entity *, const variant *);
void sig_get_by(char *out, size_t size, const emitter *, const ast_entity *, const ast_field *,
                const variant *);
void sig_list(char *out, size_t size, const emitter *, const ast_entity *, const ast_list *,
              const variant *);
void sig_get_many(char *out, size_t size, const emitter *, const ast_entity *, const variant *);
void sig_insert(char *out, size_t size, const emitter *, const ast_entity *, const variant *);
void sig_update(char *out, size_t size, const emitter *, const ast_entity *, const variant *);
void sig_delete(char *out, size_t size, const emitter *, const ast_entity *, const variant *);

/* Key layout of a lookup: <head><value><tail>, and its 8-hex-digit tag. */
typedef struct key_parts {
    char *head, *tail;
    char tag[9];
} key_parts;
void entity_fingerprint(const ast_entity *, char out[17]);
void row_key(const ast_entity *, key_parts *);
void unique_key(const ast_entity *, const ast_cache *, key_parts *);
void list_key(const ast_entity *, const ast_list *, key_parts *);
void key_parts_free(key_parts *);

#endif
