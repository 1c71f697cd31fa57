/* memoc: compiles schema files into typed C repositories. The pipeline, which
 * never calls back: lex and parse (lexer.l, parser.y) -> AST -> check (check.c)
 * -> lower (lower.c: the descriptor model) -> emit (emit_h.c, emit_c.c,
 * emit_sql.c). Exit status: 0 done, 1 errors in a schema, 2 usage or I/O
 * errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ast.h"
#include "check.h"
#include "diag.h"
#include "emit.h"
#include "lex.h"
#include "lower.h"
#include "migrate.h"
#include "names.h"

static const char usage[] =
    "usage: memoc [-o DIR] [--check] FILE...\n"
    "       memoc --migrate OLD NEW\n"
    "\n"
    "Compiles memo schema files. For `schema NAME;` it writes NAME.h, NAME.c and\n"
    "NAME.sql: typed C repository code for libmemo and the tables it needs.\n"
    "\n"
    "  -o, --output DIR  write into DIR, created if missing (default: .)\n"
    "      --check       check the schemas and write nothing\n"
    "      --migrate     print the SQL that takes a database from the tables of\n"
    "                    the schema file OLD to those of NEW (one transaction),\n"
    "                    and the flushes of what the cache no longer reads\n"
    "  -h, --help        print this help\n"
    "  -V, --version     print memoc's version\n"
    "\n"
    "Errors are printed as FILE:LINE:COL: error: MESSAGE. Exit status: 0 on\n"
    "success, 1 when a schema has errors (nothing is written), 2 on usage or\n"
    "I/O errors.\n";

typedef struct unit {
    const char *path;
    char *src;
    size_t len;
    ast_schema *schema;
} unit;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        char *grown = realloc(buf, cap);
        if (!grown) {
            fputs("memoc: out of memory\n", stderr);
            exit(2);
        }
        buf = grown;
    }
    int err = ferror(f);
    int saved = errno;
    fclose(f);
    if (err) {
        free(buf);
        errno = saved;
        return NULL;
    }
    *len = n;
    return buf;
}

/* Writes one output file through a temporary in the same directory and a
 * rename, so a reader never sees half a file. Returns 0 or -1 (reported). */
static int write_output(const char *dir, const char *name, const char *ext, const unit *u,
                        const model *m, void (*emit)(emitter *))
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    snprintf(tmp, sizeof tmp, "%s/.%s%s.XXXXXX", dir, name, ext);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "memoc: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    FILE *out = fdopen(fd, "w");
    if (!out) {
        fprintf(stderr, "memoc: cannot write '%s': %s\n", path, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    emitter em = {out, 0, m, u->path};
    emit(&em);
    int bad = fflush(out) != 0 || ferror(out);
    int saved = errno;
    if (fclose(out) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    /* mkstemp makes 0600; generated sources are ordinary files. */
    mode_t mask = umask(0);
    umask(mask);
    if (!bad && chmod(tmp, 0666 & ~mask) != 0) {
        bad = 1;
        saved = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        saved = errno;
    }
    if (bad) {
        fprintf(stderr, "memoc: cannot write '%s': %s\n", path, strerror(saved));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Reads, parses and checks one file, its errors into *out (to flush and
 * free). Returns how many (an unreadable file: -1, reported, no *out). */
static int load_unit(unit *u, diag **out)
{
    u->src = read_file(u->path, &u->len);
    if (!u->src) {
        fprintf(stderr, "memoc: cannot read '%s': %s\n", u->path, strerror(errno));
        return -1;
    }
    diag *d = diag_new(u->path, u->src, u->len);
    u->schema = ast_schema_new(u->path);
    memoc_parse(u->src, u->len, u->schema, d);
    check_schema(u->schema, d);
    *out = d;
    return diag_count(d);
}

/* memoc --migrate OLD NEW: NEW's errors (its own, or a change memoc will not
 * make) are reported at NEW's declarations. */
static int migrate(const char *old_path, const char *new_path)
{
    unit u[2] = {{.path = old_path}, {.path = new_path}};
    diag *od = NULL, *d = NULL;
    int a = load_unit(&u[0], &od);
    if (od) {
        diag_flush(od, stderr);
        diag_free(od);
    }
    int b = load_unit(&u[1], &d);
    int status = a < 0 || b < 0 ? 2 : a + b > 0 ? 1 : 0;
    if (status == 0) {
        model *om = model_build(u[0].schema), *nm = model_build(u[1].schema);
        migrate_input old = {old_path, u[0].schema, om},
                      new = {new_path, u[1].schema, nm};
        if (emit_migration(stdout, &old, &new, d) > 0)
            status = 1;
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "memoc: cannot write the migration: %s\n", strerror(errno));
            status = 2;
        }
        model_free(om);
        model_free(nm);
    }
    if (d) {
        diag_flush(d, stderr);
        diag_free(d);
    }
    for (int i = 0; i < 2; i++) {
        ast_schema_free(u[i].schema);
        free(u[i].src);
    }
    return status;
}

static int ensure_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "memoc: output '%s' is not a directory\n", dir);
            return -1;
        }
        if (access(dir, W_OK) != 0) {
            fprintf(stderr, "memoc: cannot write to directory '%s': %s\n", dir,
                    strerror(errno));
            return -1;
        }
        return 0;
    }
    if (mkdir(dir, 0777) != 0) {
        fprintf(stderr, "memoc: cannot create directory '%s': %s\n", dir,
                strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *outdir = ".";
    bool check_only = false;
    const char **files = xcalloc((size_t)argc, sizeof *files);
    size_t nfiles = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            free(files);
            return 0;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("memoc %s (memo ABI %d)\n", MEMO_VERSION, MEMO_ABI);
            free(files);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            check_only = true;
        } else if (strcmp(a, "--migrate") == 0) {
            if (argc != i + 3 || i != 1) {
                fprintf(stderr,
                        "memoc: --migrate takes two schema files, OLD and NEW, and "
                        "nothing else\n%s",
                        usage);
                free(files);
                return 2;
            }
            free(files);
            return migrate(argv[i + 1], argv[i + 2]);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "memoc: %s needs a directory\n%s", a, usage);
                free(files);
                return 2;
            }
            outdir = argv[++i];
        } else if (strncmp(a, "--output=", 9) == 0) {
            outdir = a + 9;
        } else if (strncmp(a, "-o", 2) == 0 && a[2]) {
            outdir = a + 2;
        } else if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                files[nfiles++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "memoc: unknown option '%s'\n%s", a, usage);
            free(files);
            return 2;
        } else {
            files[nfiles++] = a;
        }
    }
    if (nfiles == 0) {
        fprintf(stderr, "memoc: no schema file given\n%s", usage);
        free(files);
        return 2;
    }

    unit *units = xcalloc(nfiles, sizeof *units);
    name_map clean = {0}; /* schema name -> the first clean unit declaring it */
    int status = 0;
    for (size_t i = 0; i < nfiles; i++) {
        unit *u = &units[i];
        u->path = files[i];
        diag *d = NULL;
        if (load_unit(u, &d) < 0) {
            status = 2;
            continue;
        }
        const unit *first =
            u->schema->name ? name_map_get(&clean, NULL, u->schema->name) : NULL;
        if (first)
            diag_error(d, u->schema->decls.v[0].name.loc,
                       "schema '%s' is also declared in %s; both would write %s.h",
                       u->schema->name, first->path, u->schema->name);
        if (diag_count(d) > 0 && status == 0)
            status = 1;
        if (diag_count(d) > 0)
            u->schema->name = NULL; /* nothing to emit */
        else if (u->schema->name)
            name_map_add(&clean, NULL, u->schema->name, u);
        diag_flush(d, stderr);
        diag_free(d);
    }

    if (status == 0 && !check_only) {
        if (ensure_dir(outdir) != 0)
            status = 2;
        for (size_t i = 0; i < nfiles && status == 0; i++) {
            unit *u = &units[i];
            const char *name = u->schema->name;
            model *m = model_build(u->schema);
            if (write_output(outdir, name, ".h", u, m, emit_header) != 0 ||
                write_output(outdir, name, ".c", u, m, emit_source) != 0 ||
                write_output(outdir, name, ".sql", u, m, emit_sql) != 0)
                status = 2;
            model_free(m);
        }
    }

    name_map_free(&clean);
    for (size_t i = 0; i < nfiles; i++) {
        ast_schema_free(units[i].schema);
        free(units[i].src);
    }
    free(units);
    free(files);
    return status;
}
