/* memoc's grammar. Actions only build the AST; meaning is check.c's job.
 * Errors recover at the next ';' inside an entity and at '}' around one, so
 * one run reports every error of a file; yylex (at the end) inserts the ';'
 * or '}' a reader would see is missing, so recovery loses less. */
%require "3.8"
%define api.pure full
%locations
%define parse.error custom
%define parse.lac full
%define api.token.prefix {TOK_}
%define api.value.type union
%param {yyscan_t scanner}
%expect 0

%code requires {
#include <stdbool.h>
#include <stdint.h>
#include "ast.h"
typedef void *yyscan_t;
/* One option of a `cache` line, before it joins the others. */
struct option {
    int token;
    uint64_t num;
    char *text;
    ast_loc kw, value;
    bool has_ttl; /* `near N ttl D`: D and where */
    uint64_t ttl;
    ast_loc ttl_value;
};
}

%code provides {
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
}

%code {
#include <stdlib.h>
#include <string.h>
#include "diag.h"
#include "lex.h"

struct yyguts_t;
struct lex_extra *yyget_extra(yyscan_t scanner);

static ast_loc loc_of(YYLTYPE l)
{
    return (ast_loc){l.first_line, l.first_column, l.last_line, l.last_column};
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, const char *msg)
{
    struct lex_extra *x = yyget_extra(scanner);
    x->schema->syntax_errors = true;
    diag_error(x->diag, loc_of(*loc), "%s", msg);
}

static ast_name name_of(char *text, YYLTYPE l)
{
    return (ast_name){text, loc_of(l)};
}

/* A keyword used as a name: the keyword's own spelling. */
#define KW(text, l) name_of(xstrdup(text), l)

/* Adds a name to a list, or past AST_MAX_NAMES only notes where. */
static void names_add(ast_names *ns, ast_name n, YYLTYPE l)
{
    if (ns->n < AST_MAX_NAMES) {
        ns->v[ns->n++] = n;
        return;
    }
    if (!ns->extra.line)
        ns->extra = loc_of(l);
    ast_name_free(&n);
}

/* A rule's fields: the first, and the others (a composite key's). */
static void rule_fields(ast_rule *r, ast_names *ns)
{
    r->field = ns->v[0];
    r->more.extra = ns->extra;
    for (size_t i = 1; i < ns->n; i++)
        r->more.v[r->more.n++] = ns->v[i];
}

static ast_entity *current(yyscan_t scanner)
{
    return yyget_extra(scanner)->cur;
}

static void modifier(yyscan_t scanner, ast_field *f, unsigned bit, int index,
                     YYLTYPE l, const char *spelling)
{
    if (f->flags & bit) {
        struct lex_extra *x = yyget_extra(scanner);
        diag_error(x->diag, loc_of(l), "duplicate '%s'", spelling);
        diag_note(x->diag, f->flag_loc[index], "first written here");
    }
    f->flags |= bit;
    f->flag_loc[index] = loc_of(l);
}

static void duplicate_option(yyscan_t scanner, bool set, ast_loc first, ast_loc at,
                             const char *what)
{
    if (!set)
        return;
    struct lex_extra *x = yyget_extra(scanner);
    diag_error(x->diag, at, "'%s' given twice", what);
    diag_note(x->diag, first, "first given here");
}

static ast_num num(uint64_t v, ast_loc l)
{
    return (ast_num){true, v, l};
}

static void cache_option(yyscan_t scanner, ast_cache *c, struct option *o)
{
    switch (o->token) {
    case TOK_KEY:
        duplicate_option(scanner, c->key.text != NULL, c->key.loc, o->kw, "key");
        ast_name_free(&c->key);
        c->key = (ast_name){o->text, o->value};
        o->text = NULL;
        break;
    case TOK_TTL:
        duplicate_option(scanner, c->ttl.set, c->ttl.loc, o->kw, "ttl");
        c->ttl = num(o->num, o->value);
        break;
    case TOK_JITTER:
        duplicate_option(scanner, c->jitter.set, c->jitter.loc, o->kw, "jitter");
        c->jitter = num(o->num, o->value);
        break;
    case TOK_NEGATIVE:
        duplicate_option(scanner, c->negative.set, c->negative.loc, o->kw, "negative");
        c->negative = num(o->num, o->value);
        break;
    case TOK_NEAR:
        duplicate_option(scanner, c->near.set, c->near.loc, o->kw, "near");
        c->near = num(o->num, o->value);
        c->near_ttl = o->has_ttl ? num(o->ttl, o->ttl_value) : (ast_num){0};
        break;
    }
}

static void cache_push(yyscan_t scanner, ast_name *field, ast_cache *opts, YYLTYPE l)
{
    ast_cache *c = AST_PUSH(current(scanner)->caches);
    *c = *opts;
    c->loc = loc_of(l);
    if (field)
        c->field = *field;
}
}

%token SCHEMA "'schema'" ENTITY "'entity'" TABLE "'table'" PRIMARY "'primary'"
       KEY "'key'" UNIQUE "'unique'" NULLABLE "'nullable'" REFERENCES "'references'"
       VERSION "'version'"
       CACHE "'cache'" TTL "'ttl'" JITTER "'jitter'" NEGATIVE "'negative'" NEAR "'near'"
       LIST "'list'" ORDER "'order'" BY "'by'" ASC "'asc'" DESC "'desc'"
       LIMIT "'limit'" ON "'on'" CHANGE "'change'" INSERT "'insert'"
       UPDATE "'update'" DELETE "'delete'" INVALIDATE "'invalidate'"
%token <char *> IDENT "identifier" STRING "string"
%token <uint64_t> DURATION "duration" PERCENT "percentage" NUMBER "number"
/* `near N ttl D`: a 'ttl' right after `near N` is the near cache's */
%precedence NEAR_ALONE
%precedence "'ttl'"
%token INVALID "invalid character" BADNUMBER "invalid number"
       BADSTRING "unterminated string" BADCOMMENT "unterminated comment"

%type <ast_name> name table_opt
%type <ast_names> names
%type <ast_field> modifiers
%type <ast_cache> cache_options1
%type <struct option> cache_option
%type <ast_list> list_options
%type <unsigned> event
%type <bool> direction

%destructor { free($$); } <char *>
%destructor { ast_name_free(&$$); } <ast_name>
%destructor { ast_names_free(&$$); } <ast_names>
%destructor { ast_name_free(&$$.references); } <ast_field>
%destructor { ast_name_free(&$$.key); } <ast_cache>
%destructor { free($$.text); } <struct option>
%destructor { ast_name_free(&$$.order); } <ast_list>

%%

file:
  %empty
| file item
;

item:
  "'schema'" name ';' {
      ast_schema *s = yyget_extra(scanner)->schema;
      ast_schema_decl *d = AST_PUSH(s->decls);
      d->name = $2;
      d->entities_before = s->entities.n;
  }
| entity
| error ';' { yyget_extra(scanner)->schema->lost_items = true; }
| error '}' { yyget_extra(scanner)->schema->lost_items = true; }
;

entity:
  entity_head '{' members '}'
| entity_head '{' members error '}' { current(scanner)->damaged = true; }
| "'entity'" name error '}' {
      /* Keep the name, so references to it do not cascade into errors. */
      struct lex_extra *x = yyget_extra(scanner);
      ast_entity *e = xcalloc(1, sizeof *e);
      e->name = $2;
      e->damaged = true;
      *(ast_entity **)AST_PUSH(x->schema->entities) = e;
  }
;

/* The entity exists before its body, so members can attach to it. */
entity_head:
  "'entity'" name table_opt {
      struct lex_extra *x = yyget_extra(scanner);
      ast_entity *e = xcalloc(1, sizeof *e);
      e->name = $2;
      e->table = $3;
      *(ast_entity **)AST_PUSH(x->schema->entities) = e;
      x->cur = e;
  }
;

table_opt:
  %empty { $$ = (ast_name){0}; }
| "'table'" name { $$ = $2; }
;

members:
  %empty
| members member
| members error ';' { current(scanner)->damaged = true; yyerrok; }
;

member:
  field ';'
| primary_key ';'
| cache ';'
| list ';'
| rule ';'
;

/* `primary key (a, b);`: a key of several fields (check.c makes sense of it) */
primary_key:
  "'primary'" "'key'" '(' names ')' {
      ast_entity *e = current(scanner);
      YYLTYPE l = @1;
      l.last_line = @2.last_line;
      l.last_column = @2.last_column;
      if (e->pk_decl.n) {
          struct lex_extra *x = yyget_extra(scanner);
          diag_error(x->diag, loc_of(l), "duplicate 'primary key (...)'");
          diag_note(x->diag, e->pk_decl_loc, "first written here");
          ast_names_free(&$4);
      } else {
          e->pk_decl = $4;
          e->pk_decl_loc = loc_of(l);
      }
  }
;

names:
  name { memset(&$$, 0, sizeof $$); names_add(&$$, $1, @1); }
| names ',' name { $$ = $1; names_add(&$$, $3, @3); }
;

/* Keywords are names too, except the three that start a member. */
name:
  IDENT { $$ = name_of($1, @1); }
| "'schema'" { $$ = KW("schema", @1); }
| "'entity'" { $$ = KW("entity", @1); }
| "'table'" { $$ = KW("table", @1); }
| "'primary'" { $$ = KW("primary", @1); }
| "'key'" { $$ = KW("key", @1); }
| "'unique'" { $$ = KW("unique", @1); }
| "'nullable'" { $$ = KW("nullable", @1); }
| "'version'" { $$ = KW("version", @1); }
| "'references'" { $$ = KW("references", @1); }
| "'ttl'" { $$ = KW("ttl", @1); }
| "'jitter'" { $$ = KW("jitter", @1); }
| "'negative'" { $$ = KW("negative", @1); }
| "'near'" { $$ = KW("near", @1); }
| "'order'" { $$ = KW("order", @1); }
| "'by'" { $$ = KW("by", @1); }
| "'asc'" { $$ = KW("asc", @1); }
| "'desc'" { $$ = KW("desc", @1); }
| "'limit'" { $$ = KW("limit", @1); }
| "'change'" { $$ = KW("change", @1); }
| "'insert'" { $$ = KW("insert", @1); }
| "'update'" { $$ = KW("update", @1); }
| "'delete'" { $$ = KW("delete", @1); }
| "'invalidate'" { $$ = KW("invalidate", @1); }
;

field:
  name IDENT modifiers {
      ast_field *f = AST_PUSH(current(scanner)->fields);
      *f = $3;
      f->name = $1;
      f->type_name = name_of($2, @2);
  }
;

modifiers:
  %empty { memset(&$$, 0, sizeof $$); }
| modifiers "'primary'" "'key'" {
      $$ = $1;
      YYLTYPE l = @2;
      l.last_line = @3.last_line;
      l.last_column = @3.last_column;
      modifier(scanner, &$$, AST_F_PRIMARY, 0, l, "primary key");
  }
| modifiers "'unique'" { $$ = $1; modifier(scanner, &$$, AST_F_UNIQUE, 1, @2, "unique"); }
| modifiers "'nullable'" {
      $$ = $1;
      modifier(scanner, &$$, AST_F_NULLABLE, 2, @2, "nullable");
  }
| modifiers "'version'" {
      $$ = $1;
      modifier(scanner, &$$, AST_F_VERSION, 4, @2, "version");
  }
| modifiers "'references'" name {
      $$ = $1;
      modifier(scanner, &$$, AST_F_REFERENCES, 3, @2, "references");
      ast_name_free(&$$.references);
      $$.references = $3;
  }
;

/* The options are non-empty before the first is known, so that after `cache`
 * a keyword like `key` can still be a field's name: `cache key ttl 1m;`. */
cache:
  "'cache'" { cache_push(scanner, NULL, &(ast_cache){0}, @1); }
| "'cache'" cache_options1 { cache_push(scanner, NULL, &$2, @1); }
| "'cache'" name { cache_push(scanner, &$2, &(ast_cache){0}, @1); }
| "'cache'" name cache_options1 { cache_push(scanner, &$2, &$3, @1); }
;

cache_options1:
  cache_option { memset(&$$, 0, sizeof $$); cache_option(scanner, &$$, &$1); }
| cache_options1 cache_option { $$ = $1; cache_option(scanner, &$$, &$2); }
;

cache_option:
  "'key'" STRING { $$ = (struct option){.token = TOK_KEY, .text = $2, .kw = loc_of(@1), .value = loc_of(@2)}; }
| "'ttl'" DURATION { $$ = (struct option){.token = TOK_TTL, .num = $2, .kw = loc_of(@1), .value = loc_of(@2)}; }
| "'jitter'" PERCENT { $$ = (struct option){.token = TOK_JITTER, .num = $2, .kw = loc_of(@1), .value = loc_of(@2)}; }
| "'negative'" DURATION { $$ = (struct option){.token = TOK_NEGATIVE, .num = $2, .kw = loc_of(@1), .value = loc_of(@2)}; }
| "'near'" NUMBER %prec NEAR_ALONE {
      $$ = (struct option){.token = TOK_NEAR, .num = $2, .kw = loc_of(@1), .value = loc_of(@2)};
  }
| "'near'" NUMBER "'ttl'" DURATION {
      $$ = (struct option){.token = TOK_NEAR, .num = $2, .kw = loc_of(@1),
                            .value = loc_of(@2), .has_ttl = true, .ttl = $4,
                            .ttl_value = loc_of(@4)};
  }
;

list:
  "'list'" name '(' name ')' list_options {
      ast_list *l = AST_PUSH(current(scanner)->lists);
      *l = $6;
      l->name = $2;
      l->group = $4;
  }
;

list_options:
  %empty { memset(&$$, 0, sizeof $$); }
| list_options "'order'" "'by'" name direction {
      $$ = $1;
      duplicate_option(scanner, $$.order.text != NULL, $$.order.loc, loc_of(@2), "order by");
      ast_name_free(&$$.order);
      $$.order = $4;
      $$.desc = $5;
  }
| list_options "'limit'" NUMBER {
      $$ = $1;
      duplicate_option(scanner, $$.limit.set, $$.limit.loc, loc_of(@2), "limit");
      $$.limit = num($3, loc_of(@3));
  }
| list_options "'ttl'" DURATION {
      $$ = $1;
      duplicate_option(scanner, $$.ttl.set, $$.ttl.loc, loc_of(@2), "ttl");
      $$.ttl = num($3, loc_of(@3));
  }
| list_options "'jitter'" PERCENT {
      $$ = $1;
      duplicate_option(scanner, $$.jitter.set, $$.jitter.loc, loc_of(@2), "jitter");
      $$.jitter = num($3, loc_of(@3));
  }
;

direction:
  %empty { $$ = false; }
| "'asc'" { $$ = false; }
| "'desc'" { $$ = true; }
;

rule:
  "'on'" event "'invalidate'" name '(' names ')' {
      ast_rule *r = AST_PUSH(current(scanner)->rules);
      r->loc = loc_of(@1);
      r->events = $2;
      r->target = $4;
      rule_fields(r, &$6);
  }
| "'on'" event "'invalidate'" name '.' name '(' names ')' {
      ast_rule *r = AST_PUSH(current(scanner)->rules);
      r->loc = loc_of(@1);
      r->events = $2;
      r->target = $4;
      r->list = $6;
      rule_fields(r, &$8);
  }
;

event:
  "'change'" { $$ = AST_ON_CHANGE; }
| "'insert'" { $$ = AST_ON_INSERT; }
| "'update'" { $$ = AST_ON_UPDATE; }
| "'delete'" { $$ = AST_ON_DELETE; }
;

%%

#include "lexer.h"

/* ---- Tokens between the scanner and the parser.
 * yylex wraps the scanner to recover from the two commonest slips the way a
 * reader would: an entity left open before the next one (or the end of the
 * file) gets its '}' inserted, and a ';' missing at the end of a line is
 * inserted by yyreport_syntax_error putting ';' and the lookahead back. */

static void token_free(struct token *t)
{
    if (t->kind == TOK_IDENT)
        free(t->value.TOK_IDENT);
    else if (t->kind == TOK_STRING)
        free(t->value.TOK_STRING);
}

/* An identifier or a keyword: a word that may be an entity's name. */
static bool namelike(int kind)
{
    return kind == TOK_IDENT || (kind >= TOK_SCHEMA && kind <= TOK_INVALIDATE);
}

/* The n-th token not yet given to the parser (0: the next), reading ahead. */
static const struct token *peek(struct lex_extra *x, yyscan_t scanner, int n)
{
    while (x->nahead <= n) {
        struct token *t = &x->ahead[x->nahead++];
        memset(t, 0, sizeof *t);
        t->kind = memoc_lex(&t->value, &t->loc, scanner);
        if (t->kind == TOK_YYEOF) {
            /* The scanner leaves no position for the end: put it right after
             * the last token, where a missing ';' or '}' would go. */
            t->loc = (YYLTYPE){x->lexed.last_line, x->lexed.last_column,
                               x->lexed.last_line, x->lexed.last_column + 1};
        } else {
            x->lexed = t->loc;
            x->swallowed = t->kind == TOK_BADCOMMENT;
        }
    }
    return &x->ahead[n];
}

static struct token take(struct lex_extra *x, yyscan_t scanner)
{
    peek(x, scanner, 0);
    struct token t = x->ahead[0];
    x->nahead--;
    memmove(&x->ahead[0], &x->ahead[1], (size_t)x->nahead * sizeof x->ahead[0]);
    return t;
}

/* Puts t in front of the tokens not yet given to the parser. */
static void put_back(struct lex_extra *x, struct token t)
{
    if (x->nahead == LEX_AHEAD) { /* cannot happen: at most 4 + 2 */
        token_free(&t);
        return;
    }
    memmove(&x->ahead[1], &x->ahead[0], (size_t)x->nahead * sizeof x->ahead[0]);
    x->ahead[0] = t;
    x->nahead++;
}

/* Inside an entity's body, `entity NAME [table NAME] {` can only be the next
 * entity: no member contains '{'. */
static bool next_entity_starts(struct lex_extra *x, yyscan_t scanner)
{
    if (!namelike(peek(x, scanner, 0)->kind))
        return false;
    int n = 1;
    if (peek(x, scanner, 1)->kind == TOK_TABLE) {
        if (!namelike(peek(x, scanner, 2)->kind))
            return false;
        n = 3;
    }
    return peek(x, scanner, n)->kind == '{';
}

/* Reports the entity left open when `at` (the next 'entity' or the end of
 * the file) arrives, and returns the '}' that closes it. */
static struct token close_entity(struct lex_extra *x, const struct token *at)
{
    char *name = x->entity.first_line ? diag_text(x->diag, loc_of(x->entity)) : NULL;
    x->schema->syntax_errors = true;
    diag_error(x->diag, loc_of(at->loc), "%s%s%s is not closed: expected '}' before %s",
               name ? "entity '" : "the entity", name ? name : "", name ? "'" : "",
               at->kind == TOK_YYEOF ? "end of file" : "'entity'");
    diag_note(x->diag, loc_of(x->open), "to match this '{'");
    free(name);
    struct token close = {.kind = '}', .loc = at->loc, .made = true};
    close.loc.last_line = close.loc.first_line;
    close.loc.last_column = close.loc.first_column + 1;
    return close;
}

int yylex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner)
{
    struct lex_extra *x = yyget_extra(scanner);
    struct token t = take(x, scanner);
    if (x->in_body && !t.made && t.kind == TOK_YYEOF && x->swallowed) {
        /* An unterminated comment ate the '}': that error says it all. */
        put_back(x, t);
        t = (struct token){.kind = '}', .loc = t.loc, .made = true};
    } else if (x->in_body && !t.made &&
        (t.kind == TOK_YYEOF || (t.kind == TOK_ENTITY && next_entity_starts(x, scanner)))) {
        struct token close = close_entity(x, &t);
        put_back(x, t);
        t = close;
    }

    /* Bodies do not nest: a stray '{' inside one is the parser's to report. */
    if (t.kind == '{' && !x->in_body) {
        x->in_body = true;
        x->open = t.loc;
    } else if (t.kind == '}') {
        x->in_body = false;
    } else if (t.kind == TOK_ENTITY && !x->in_body) {
        x->entity = (YYLTYPE){0};
    } else if (x->last.kind == TOK_ENTITY && !x->in_body && namelike(t.kind)) {
        x->entity = t.loc;
    }

    x->prev = x->last.loc;
    x->last = t;
    *lval = t.value;
    *lloc = t.loc;
    return t.kind;
}

/* After "expected ';'" on a lookahead that starts a new line: gives the
 * parser a ';' and then the lookahead again, so error recovery (which
 * discards the lookahead and resumes after a ';') loses only the unfinished
 * member, not the next one too. */
static void insert_semicolon(struct lex_extra *x, YYLTYPE at)
{
    struct token again = x->last;
    again.made = false;
    if (again.kind == TOK_IDENT)
        again.value.TOK_IDENT = xstrdup(again.value.TOK_IDENT);
    else if (again.kind == TOK_STRING)
        again.value.TOK_STRING = xstrdup(again.value.TOK_STRING);
    put_back(x, again);
    put_back(x, (struct token){.kind = ';', .loc = at, .made = true});
}

/* Messages in gcc's manner: "expected ';' before '}'", or "unexpected
 * identifier 'prmary', expected 'primary', 'unique', ...". A state that takes
 * a name accepts every keyword that can be one; those collapse into "a name". */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner)
{
    struct lex_extra *x = yyget_extra(scanner);
    diag *d = x->diag;
    const YYLTYPE *l = yypcontext_location(ctx);
    ast_loc loc = loc_of(*l);
    yysymbol_kind_t tok = yypcontext_token(ctx);
    x->schema->syntax_errors = true;

    char *text = diag_text(d, loc);
    switch (tok) {
    case YYSYMBOL_INVALID:
        diag_error(d, loc, "unexpected character '%s'", text);
        free(text);
        return 0;
    case YYSYMBOL_BADSTRING:
        diag_error(d, loc, "unterminated string");
        free(text);
        return 0;
    case YYSYMBOL_BADCOMMENT:
        diag_error(d, loc, "unterminated comment");
        free(text);
        return 0;
    default:
        break;
    }

    enum { MAX = YYNTOKENS };
    yysymbol_kind_t exp[MAX];
    int n = yypcontext_expected_tokens(ctx, exp, MAX);
    if (n < 0)
        n = 0;

    /* "10x": say what the place takes, a duration, a percentage or a count. */
    if (tok == YYSYMBOL_BADNUMBER) {
        const char *want = "";
        for (int i = 0; i < n; i++)
            if (exp[i] == YYSYMBOL_DURATION)
                want = " (a duration ends in ms, s, m, h or d, as in '30s')";
            else if (exp[i] == YYSYMBOL_PERCENT)
                want = " (a percentage ends in %, as in '10%')";
            else if (exp[i] == YYSYMBOL_NUMBER)
                want = " (a count is digits only)";
        diag_error(d, loc, "invalid number '%s'%s", text, want);
        free(text);
        return 0;
    }

    /* A ';' forgotten at the end of a line: say so where it belongs, after
     * the previous token, like gcc, rather than at the next line's start. */
    bool want_semi = false;
    for (int i = 0; i < n; i++)
        if (strcmp(yysymbol_name(exp[i]), "';'") == 0)
            want_semi = true;
    if (want_semi && tok != YYSYMBOL_YYEOF && x->prev.last_line > 0 &&
        (x->last.made || l->first_line > x->prev.last_line)) {
        YYLTYPE at = {x->prev.last_line, x->prev.last_column, x->prev.last_line,
                      x->prev.last_column + 1};
        char *after = diag_text(d, loc_of(x->prev));
        diag_error(d, loc_of(at), "expected ';' after '%s'", after);
        free(after);
        free(text);
        /* A '}' is taken by error recovery itself, and closes the entity. */
        if (x->last.kind != '}')
            insert_semicolon(x, at);
        return 0;
    }

    /* The keywords a name may be (see the `name` rule). */
    static const yysymbol_kind_t name_kw[] = {
        YYSYMBOL_SCHEMA,     YYSYMBOL_ENTITY,   YYSYMBOL_TABLE,      YYSYMBOL_PRIMARY,
        YYSYMBOL_KEY,        YYSYMBOL_UNIQUE,   YYSYMBOL_NULLABLE,   YYSYMBOL_REFERENCES,
        YYSYMBOL_TTL,        YYSYMBOL_JITTER,   YYSYMBOL_NEGATIVE,   YYSYMBOL_ORDER,
        YYSYMBOL_BY,         YYSYMBOL_ASC,      YYSYMBOL_DESC,       YYSYMBOL_LIMIT,
        YYSYMBOL_CHANGE,     YYSYMBOL_INSERT,   YYSYMBOL_UPDATE,     YYSYMBOL_DELETE,
        YYSYMBOL_INVALIDATE, YYSYMBOL_VERSION,  YYSYMBOL_NEAR,
    };
    size_t nkw = sizeof name_kw / sizeof name_kw[0];
    size_t seen = 0;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < nkw; k++)
            if (exp[i] == name_kw[k])
                seen++;
    bool takes_name = seen == nkw;

    const char *shown[MAX];
    int m = 0;
    for (int i = 0; i < n; i++) {
        bool is_kw = false;
        for (size_t k = 0; k < nkw; k++)
            if (exp[i] == name_kw[k])
                is_kw = true;
        if (takes_name && is_kw)
            continue;
        shown[m++] = exp[i] == YYSYMBOL_IDENT ? (takes_name ? "a name" : "a type")
                                                : yysymbol_name(exp[i]);
    }

    /* A misspelt keyword, "uniqe" for 'unique': name the closest expected. */
    char hint[64] = "";
    if (tok == YYSYMBOL_IDENT) {
        size_t best = (size_t)-1;
        for (int i = 0; i < n; i++) {
            const char *kw = yysymbol_name(exp[i]);
            size_t len = strlen(kw);
            if (kw[0] != '\'' || len < 4 || kw[1] < 'a' || kw[1] > 'z')
                continue;
            char bare[32];
            snprintf(bare, sizeof bare, "%.*s", (int)(len - 2), kw + 1);
            size_t dist = diag_distance(text, bare);
            if (dist < best && dist <= (strlen(bare) > 4 ? 2u : 1u)) {
                best = dist;
                snprintf(hint, sizeof hint, " (did you mean %s?)", kw);
            }
        }
    }
    /* A misspelt 'cache' or 'on' reads as a field's name, so the error
     * comes one word later, where a type was due: name the word. */
    bool wants_type = false;
    for (int i = 0; i < n; i++)
        if (exp[i] == YYSYMBOL_IDENT && !takes_name)
            wants_type = true;
    if (wants_type && !hint[0] && x->prev.first_line > 0) {
        /* Only when the word after it is what the keyword takes next. */
        static const struct {
            const char *kw;
            yysymbol_kind_t next[4];
        } starts[] = {
            {"cache", {YYSYMBOL_TTL, YYSYMBOL_KEY, YYSYMBOL_JITTER, YYSYMBOL_NEGATIVE}},
            {"on", {YYSYMBOL_CHANGE, YYSYMBOL_INSERT, YYSYMBOL_UPDATE, YYSYMBOL_DELETE}},
        };
        char *word = diag_text(d, loc_of(x->prev));
        for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
            bool fits = false;
            for (size_t k = 0; k < 4; k++)
                fits |= tok == starts[i].next[k];
            size_t dist = diag_distance(word, starts[i].kw);
            if (fits && dist > 0 && dist <= (strlen(starts[i].kw) > 4 ? 2u : 1u)) {
                diag_error(d, loc_of(x->prev), "unknown keyword '%s' (did you mean '%s'?)",
                           word, starts[i].kw);
                free(word);
                free(text);
                return 0;
            }
        }
        free(word);
    }

    char what[256];
    switch (tok) {
    case YYSYMBOL_YYEOF:
        snprintf(what, sizeof what, "end of file");
        break;
    case YYSYMBOL_IDENT:
        snprintf(what, sizeof what, "'%s'", text);
        break;
    case YYSYMBOL_STRING:
        snprintf(what, sizeof what, "string %s", text);
        break;
    case YYSYMBOL_DURATION:
    case YYSYMBOL_PERCENT:
    case YYSYMBOL_NUMBER:
        snprintf(what, sizeof what, "%s '%s'", yysymbol_name(tok), text);
        break;
    default:
        snprintf(what, sizeof what, "%s", yysymbol_name(tok));
        break;
    }
    free(text);

    char msg[1024];
    if (m == 1) {
        snprintf(msg, sizeof msg, "expected %s before %s", shown[0], what);
    } else if (m > 1 && m <= 7) {
        int len = snprintf(msg, sizeof msg, "unexpected %s, expected ", what);
        for (int i = 0; i < m && len < (int)sizeof msg; i++)
            len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%s",
                            i == 0 ? "" : i == m - 1 ? " or " : ", ", shown[i]);
    } else {
        snprintf(msg, sizeof msg, "unexpected %s", what);
    }
    diag_error(d, loc, "%s%s", msg, hint);
    return 0;
}

int memoc_parse(const char *src, size_t len, ast_schema *schema, diag *d)
{
    yyscan_t scanner;
    struct lex_extra extra = {.line = 1, .col = 1, .diag = d, .schema = schema};
    if (yylex_init_extra(&extra, &scanner) != 0) {
        fputs("memoc: out of memory\n", stderr);
        exit(2);
    }
    int before = diag_count(d);
    YY_BUFFER_STATE buf = yy_scan_bytes(src, (int)len, scanner);
    int rc = yyparse(scanner);
    /* An aborted parse can leave tokens read ahead or put back. */
    for (int i = 0; i < extra.nahead; i++)
        token_free(&extra.ahead[i]);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    if (rc == 2) {
        fputs("memoc: out of memory\n", stderr);
        exit(2);
    }
    /* yyparse returns 0 after recovered errors: count them instead. */
    return diag_count(d) - before;
}
