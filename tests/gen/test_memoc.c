/* memoc's error tests and command line.
 *
 * Every tests/gen/bad/NAME.memo must be rejected: exit status 1, exactly
 * NAME.err on stderr, nothing on stdout, and nothing written, both with
 * --check and with -o into a fresh directory. memoc runs in the case's
 * directory with the bare file name, so the .err files name the file as
 * `NAME.memo` wherever the tree lives. To add a case, write NAME.memo (first
 * line: a `//` comment saying what it tests), then in tests/gen/bad run
 * `../../../build/memoc --check NAME.memo 2> NAME.err` and read the result.
 *
 * Environment: MEMOC (default build/memoc), MEMO_BAD_DIR (default
 * tests/gen/bad), MEMO_TOP (default .), for schemas/blog.memo and the
 * runtime's headers, MEMO_CC (default cc), to compile generated code. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Absolute paths, resolved once: memoc runs in other directories. */
static char *memoc;
static char *bad_dir;
static char *blog_schema;
static char *top;

/* What one run of memoc did. */
typedef struct result {
    int status; /* exit status, or -1 if it did not exit (a signal) */
    char *out;  /* stdout, malloc'd */
    char *err;  /* stderr, malloc'd */
} result;

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Reads a whole file, malloc'd and NUL-terminated; NULL if it cannot. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        cap *= 2;
        char *grown = realloc(buf, cap);
        if (!grown)
            free(buf);
        buf = grown;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void make_temp_dir(char *buf, size_t size)
{
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(buf, size, "%s/memoc-test-XXXXXX", tmp);
    if (!mkdtemp(buf))
        fail_msg("mkdtemp %s: %s", buf, strerror(errno));
}

/* Directory entries other than . and .., sorted, as "a b c" (malloc'd);
 * NULL if the directory cannot be opened. */
static char *listing(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *names[64];
    size_t n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < 64) {
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0)
            names[n++] = strdup(ent->d_name);
    }
    closedir(d);
    /* insertion sort: a handful of names */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *s = calloc(1, len);
    for (size_t i = 0; !s && i < n; i++)
        free(names[i]);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, names[i]);
        free(names[i]);
    }
    return s;
}

/* Removes a directory of plain files (all memoc writes), then the directory. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d))) {
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Runs prog (searched in PATH if it has no '/') with argv (argv[0] is
 * ignored) in directory cwd (NULL: here), no shell involved; stdout and
 * stderr go through files in a private directory, so neither pipe can fill
 * up and block. */
static result spawn_in(const char *prog, const char *cwd, const char *const argv[])
{
    char io[4096], out_path[4200], err_path[4200];
    make_temp_dir(io, sizeof io);
    snprintf(out_path, sizeof out_path, "%s/stdout", io);
    snprintf(err_path, sizeof err_path, "%s/stderr", io);

    size_t argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc(argc + 1, sizeof *args);
    assert_non_null(args);
    args[0] = (char *)(uintptr_t)prog;
    for (size_t i = 1; i < argc; i++)
        args[i] = (char *)(uintptr_t)argv[i]; /* execv's argv is not const, for history */

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execvp(prog, args);
        _exit(127);
    }
    free(args);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));

    result r = {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_path),
                slurp(err_path)};
    unlink(out_path);
    unlink(err_path);
    rmdir(io);
    if (r.status == 126 || r.status == 127)
        fail_msg("could not run %s (in %s)", prog, cwd ? cwd : ".");
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

/* Runs memoc, as spawn_in. */
static result run_in(const char *cwd, const char *const argv[])
{
    return spawn_in(memoc, cwd, argv);
}

static result run(const char *const argv[])
{
    return run_in(NULL, argv);
}

/* Fails with both texts side by side, line by line, when they differ. */
static void assert_text(const char *what, const char *expected, const char *got)
{
    if (strcmp(expected, got) == 0)
        return;
    print_error("%s differs (- expected, + got):\n", what);
    const char *e = expected, *g = got;
    int shown = 0;
    while ((*e || *g) && shown < 80) {
        size_t el = strcspn(e, "\n"), gl = strcspn(g, "\n");
        if (el == gl && strncmp(e, g, el) == 0 && (e[el] == '\n') == (g[gl] == '\n')) {
            print_error("  %.*s\n", (int)el, e);
        } else {
            if (*e)
                print_error("- %.*s%s\n", (int)el, e, e[el] ? "" : "  [no newline]");
            if (*g)
                print_error("+ %.*s%s\n", (int)gl, g, g[gl] ? "" : "  [no newline]");
        }
        shown++;
        e += el + (e[el] == '\n');
        g += gl + (g[gl] == '\n');
    }
    fail_msg("%s is not as expected", what);
}

/* ------------------------------------------------------------ bad schemas */

/* state: the case's path, ".../NAME.memo". */
static void rejects_bad_schema(void **state)
{
    const char *path = *state;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char err_path[4096];
    snprintf(err_path, sizeof err_path, "%.*s.err", (int)(strlen(path) - strlen(".memo")),
             path);
    char *expected = slurp(err_path);
    if (!expected)
        fail_msg("cannot read %s: every case needs its expected stderr", err_path);

    const char *check[] = {"memoc", "--check", name, NULL};
    result c = run_in(bad_dir, check);

    char dir[4096];
    make_temp_dir(dir, sizeof dir);
    const char *gen[] = {"memoc", "-o", dir, name, NULL};
    result o = run_in(bad_dir, gen);
    char *written = listing(dir);
    remove_dir(dir);

    /* Compare after cleaning up: a failed assertion does not return. */
    assert_text("stderr of --check", expected, c.err);
    assert_int_equal(c.status, 1);
    assert_string_equal(c.out, "");
    assert_text("stderr of -o", expected, o.err);
    assert_int_equal(o.status, 1);
    assert_string_equal(o.out, "");
    assert_non_null(written);
    assert_string_equal(written, ""); /* a schema with errors writes nothing */

    free(written);
    result_free(&c);
    result_free(&o);
    free(expected);
}

/* ----------------------------------------------------------- command line */

static void help_prints_usage(void **state)
{
    (void)state;
    const char *argv[] = {"memoc", "--help", NULL};
    result r = run(argv);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "usage: memoc ", 13) == 0);
    assert_non_null(strstr(r.out, "--check"));
    assert_string_equal(r.err, "");
    result_free(&r);

    const char *short_argv[] = {"memoc", "-h", NULL};
    r = run(short_argv);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "usage: memoc ", 13) == 0);
    result_free(&r);
}

static void version_prints_version(void **state)
{
    (void)state;
    const char *argv[] = {"memoc", "--version", NULL};
    result r = run(argv);
    assert_int_equal(r.status, 0);
    /* "memoc <MEMO_VERSION>", maybe followed by more on the line */
    char want[64];
    size_t n = (size_t)snprintf(want, sizeof want, "memoc %s", MEMO_VERSION);
    assert_true(strncmp(r.out, want, n) == 0);
    assert_true(r.out[n] == '\n' || r.out[n] == ' ');
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void missing_file_is_usage_error(void **state)
{
    (void)state;
    char dir[4096];
    make_temp_dir(dir, sizeof dir);
    const char *argv[] = {"memoc", "--check", "x", NULL};
    result r = run_in(dir, argv);
    remove_dir(dir);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "memoc: cannot read 'x': No such file or directory\n");
    assert_string_equal(r.out, "");
    result_free(&r);
}

static void no_file_is_usage_error(void **state)
{
    (void)state;
    const char *argv[] = {"memoc", "--check", NULL};
    result r = run(argv);
    assert_int_equal(r.status, 2);
    assert_true(strncmp(r.err, "memoc: no schema file given\n", 28) == 0);
    result_free(&r);

    const char *no_dir[] = {"memoc", "-o", NULL};
    r = run(no_dir);
    assert_int_equal(r.status, 2);
    assert_true(strncmp(r.err, "memoc: -o needs a directory\n", 28) == 0);
    result_free(&r);
}

static void unknown_option_is_usage_error(void **state)
{
    (void)state;
    const char *argv[] = {"memoc", "--frobnicate", blog_schema, NULL};
    result r = run(argv);
    assert_int_equal(r.status, 2);
    assert_true(strncmp(r.err, "memoc: unknown option '--frobnicate'\n", 37) == 0);
    assert_non_null(strstr(r.err, "usage: memoc"));
    assert_string_equal(r.out, "");
    result_free(&r);
}

/* -o under a regular file, and -o naming one: exit 2, a message naming the
 * path and the reason, and nothing created. */
static void unwritable_output_is_io_error(void **state)
{
    (void)state;
    char dir[4096], plain[4200], under[4300], want[4500];
    make_temp_dir(dir, sizeof dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    write_text(plain, "not a directory\n");

    snprintf(under, sizeof under, "%s/out", plain);
    const char *argv[] = {"memoc", "-o", under, blog_schema, NULL};
    result r = run(argv);
    const char *file_argv[] = {"memoc", "-o", plain, blog_schema, NULL};
    result f = run(file_argv);
    char *left = listing(dir);
    char *content = slurp(plain);
    remove_dir(dir);

    assert_int_equal(r.status, 2);
    snprintf(want, sizeof want, "memoc: cannot create directory '%s': Not a directory\n",
             under);
    assert_text("stderr of -o under a file", want, r.err);
    assert_int_equal(f.status, 2);
    snprintf(want, sizeof want, "memoc: output '%s' is not a directory\n", plain);
    assert_text("stderr of -o on a file", want, f.err);
    assert_string_equal(left, "plain");
    assert_string_equal(content, "not a directory\n");
    free(left);
    free(content);
    result_free(&r);
    result_free(&f);
}

static void good_schema_writes_three_files(void **state)
{
    (void)state;
    char dir[4096];
    make_temp_dir(dir, sizeof dir);
    const char *argv[] = {"memoc", "-o", dir, blog_schema, NULL};
    result r = run(argv);
    char *written = listing(dir);
    remove_dir(dir);
    assert_text("stderr", "", r.err);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    /* exactly these: no temporary file left behind */
    assert_string_equal(written, "blog.c blog.h blog.sql");
    free(written);
    result_free(&r);
}

/* -o into a directory that does not exist yet creates it. */
static void output_dir_is_created(void **state)
{
    (void)state;
    char dir[4096], sub[4200];
    make_temp_dir(dir, sizeof dir);
    snprintf(sub, sizeof sub, "%s/gen", dir);
    const char *argv[] = {"memoc", "-o", sub, blog_schema, NULL};
    result r = run(argv);
    char *written = listing(sub);
    remove_dir(sub);
    remove_dir(dir);
    assert_int_equal(r.status, 0);
    assert_non_null(written);
    assert_string_equal(written, "blog.c blog.h blog.sql");
    free(written);
    result_free(&r);
}

static void check_writes_nothing(void **state)
{
    (void)state;
    char dir[4096];
    make_temp_dir(dir, sizeof dir);
    const char *argv[] = {"memoc", "--check", blog_schema, NULL};
    result r = run_in(dir, argv);
    char *written = listing(dir);
    remove_dir(dir);
    assert_text("stderr", "", r.err);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(written, "");
    free(written);
    result_free(&r);
}

/* Two files with one schema name would write the same NAME.h: an error in
 * the second, and nothing written for either. */
static void same_schema_twice_is_error(void **state)
{
    (void)state;
    static const char schema[] = "schema dup;\n"
                                 "entity item {\n"
                                 "    id int64 primary key;\n"
                                 "    cache ttl 1m;\n"
                                 "}\n";
    char dir[4096], a[4200], b[4200];
    make_temp_dir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/a.memo", dir);
    snprintf(b, sizeof b, "%s/b.memo", dir);
    write_text(a, schema);
    write_text(b, schema);

    const char *check[] = {"memoc", "--check", "a.memo", "b.memo", NULL};
    result c = run_in(dir, check);
    const char *gen[] = {"memoc", "-o", ".", "a.memo", "b.memo", NULL};
    result o = run_in(dir, gen);
    char *left = listing(dir);
    remove_dir(dir);

    static const char want[] =
        "b.memo:1:8: error: schema 'dup' is also declared in a.memo; both would write "
        "dup.h\n"
        "    1 | schema dup;\n"
        "      |        ^~~\n";
    assert_int_equal(c.status, 1);
    assert_text("stderr of --check", want, c.err);
    assert_int_equal(o.status, 1);
    assert_text("stderr of -o", want, o.err);
    assert_string_equal(left, "a.memo b.memo");
    free(left);
    result_free(&c);
    result_free(&o);
}

/* The first line of an output file (malloc'd, without the newline), or NULL. */
static char *first_line(const char *path)
{
    char *text = slurp(path);
    if (text)
        text[strcspn(text, "\n")] = '\0';
    return text;
}

/* memoc names the schema's path in each output's first line. A path can hold
 * any byte: here a star-slash (a directory "x*"), newlines around a line of
 * C, an escape. The outputs still compile under -Werror -pedantic, and the
 * line holds the path cleaned: printable ASCII but '*', the rest '?'. */
static void hostile_path_is_cleaned(void **state)
{
    (void)state;
    static const char schema[] = "schema evil;\n"
                                 "entity item {\n"
                                 "    id int64 primary key;\n"
                                 "    cache ttl 1m;\n"
                                 "}\n";
    char dir[4096], sub[4200], path[4300], out[4200], src[4300], obj[4300], inc[4200];
    make_temp_dir(dir, sizeof dir);
    snprintf(sub, sizeof sub, "%s/x*", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/\n#error injected\n\x1b[1m.memo", sub);
    write_text(path, schema);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(src, sizeof src, "%s/evil.c", out);
    snprintf(obj, sizeof obj, "%s/evil.o", out);
    snprintf(inc, sizeof inc, "-I%s/runtime/include", top);

    const char *gen[] = {"memoc", "-o", out, path, NULL};
    result g = run(gen);
    const char *cc = getenv("MEMO_CC") && *getenv("MEMO_CC") ? getenv("MEMO_CC") : "cc";
    const char *compile[] = {cc,
                             "-std=c11",
                             "-Wall",
                             "-Wextra",
                             "-Werror",
                             "-pedantic",
                             "-Wshadow",
                             "-Wstrict-prototypes",
                             "-Wmissing-prototypes",
                             "-Wwrite-strings",
                             "-Wconversion",
                             inc,
                             "-c",
                             src,
                             "-o",
                             obj,
                             NULL};
    result c = spawn_in(cc, NULL, compile);
    char h_path[4300], sql_path[4300];
    snprintf(h_path, sizeof h_path, "%s/evil.h", out);
    snprintf(sql_path, sizeof sql_path, "%s/evil.sql", out);
    char *lines[] = {first_line(src), first_line(h_path), first_line(sql_path)};
    unlink(path);
    remove_dir(out);
    remove_dir(sub);
    remove_dir(dir);

    assert_text("stderr of memoc", "", g.err);
    assert_int_equal(g.status, 0);
    assert_text("stderr of the compiler", "", c.err);
    assert_int_equal(c.status, 0);
    char clean[4400], want[4600];
    snprintf(clean, sizeof clean, "%s/x?/?#error injected??[1m.memo", dir);
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(lines[i]);
        snprintf(want, sizeof want, "%s Generated by memoc %s from %s. DO NOT EDIT.%s",
                 i < 2 ? "/*" : "--", MEMO_VERSION, clean, i < 2 ? " */" : "");
        assert_text("first line", want, lines[i]);
        /* what the exact text implies, said plainly */
        const char *end = strstr(lines[i], "*/");
        assert_true(!end || end[2] == '\0');
        for (const char *p = lines[i]; *p; p++)
            assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        free(lines[i]);
    }
    result_free(&g);
    result_free(&c);
}

/* A list's group field is a parameter of its functions, named after the
 * field: fields named like the other parameters (n, last, count, after)
 * still give code that compiles under -Werror. */
static void group_fields_named_like_parameters(void **state)
{
    (void)state;
    char dir[4096], path[4200], inc[4200], obj[4300];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pn.memo", dir);
    write_text(path,
               "schema pn;\nentity thing {\n    id int64 primary key;\n"
               "    n int64;\n    last int64;\n    count int64;\n    after int64;\n"
               "    cache ttl 1m;\n    list by_n(n) ttl 1m;\n"
               "    list by_last(last) order by n ttl 1m;\n"
               "    list by_count(count) ttl 1m;\n    list by_after(after) ttl 1m;\n}\n");
    snprintf(inc, sizeof inc, "-I%s/runtime/include", top);
    snprintf(obj, sizeof obj, "%s/pn.o", dir);
    const char *gen[] = {"memoc", "-o", ".", "pn.memo", NULL};
    result g = run_in(dir, gen);
    const char *cc = getenv("MEMO_CC") && *getenv("MEMO_CC") ? getenv("MEMO_CC") : "cc";
    const char *compile[] = {cc,          "-std=c11", "-Wall", "-Wextra", "-Werror",
                             "-pedantic", "-Wshadow", inc,     "-c",      "pn.c",
                             "-o",        obj,        NULL};
    result c = spawn_in(cc, dir, compile);
    remove_dir(dir);
    assert_text("stderr of memoc", "", g.err);
    assert_int_equal(g.status, 0);
    assert_text("stderr of the compiler", "", c.err);
    assert_int_equal(c.status, 0);
    result_free(&g);
    result_free(&c);
}

/* The publication's name is the slot's default, and PostgreSQL's slot names
 * are lowercase: a schema named with capitals gets memo_<lowercase>. */
static void stream_names_are_lowercase(void **state)
{
    (void)state;
    char dir[4096], path[4200], sql_path[4300];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/Shop.memo", dir);
    write_text(path,
               "schema Shop;\nentity item {\n    id int64 primary key;\n"
               "    sku text unique;\n    cache ttl 1m;\n    cache sku ttl 1m;\n}\n");
    const char *gen[] = {"memoc", "-o", ".", "Shop.memo", NULL};
    result g = run_in(dir, gen);
    snprintf(sql_path, sizeof sql_path, "%s/Shop.sql", dir);
    char *sql = slurp(sql_path);
    remove_dir(dir);
    assert_text("stderr", "", g.err);
    assert_int_equal(g.status, 0);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "CREATE PUBLICATION \"memo_shop\" FOR TABLE \"item\""));
    assert_non_null(
        strstr(sql, "ALTER TABLE \"item\" REPLICA IDENTITY FULL; -- old sku"));
    free(sql);
    result_free(&g);
}

/* ---------------------------------------------------------------- at scale */

#define BIG_ENTITIES 6000

/* Writes one line to f and counts it in *line (the number of the line
 * written last). */
static void put(FILE *f, int *line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put(FILE *f, int *line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    (*line)++;
}

/* BIG_ENTITIES entities, each referencing another one and invalidating
 * another two, forward and back, so every lookup is by name across the file
 * and the tables' order has cycles. With errors, three more entities follow,
 * each wrong by a name it shares with one far above: where they start is
 * returned in lines[3]. With bad_types, every entity has a field of an
 * unknown type. */
static void write_big(const char *path, bool errors, bool bad_types, int lines[3])
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    int line = 0;
    put(f, &line, "schema big;");
    for (int i = 0; i < BIG_ENTITIES; i++) {
        put(f, &line, "entity e%d {", i);
        put(f, &line, "    id       int64 primary key;");
        put(f, &line, "    slug     %s unique;", bad_types ? "txt" : "text");
        put(f, &line, "    other_id int64 references e%d;", (i * 7 + 3) % BIG_ENTITIES);
        put(f, &line, "    cache ttl 5m;");
        put(f, &line, "    cache slug ttl 5m;");
        put(f, &line, "    list by_other(other_id) ttl 1m;");
        put(f, &line, "    on change invalidate e%d.by_other(other_id);",
            (i * 13 + 1) % BIG_ENTITIES);
        put(f, &line, "    on change invalidate e%d(other_id);",
            (i * 17 + 5) % BIG_ENTITIES);
        put(f, &line, "}");
    }
    if (errors) {
        static const char *const heads[] = {"entity e0 {", "entity e5_list {",
                                            "entity t table e17 {"};
        for (int k = 0; k < 3; k++) {
            put(f, &line, "%s", heads[k]);
            lines[k] = line;
            put(f, &line, "    id int64 primary key;");
            put(f, &line, "    cache ttl 5m;");
            put(f, &line, "}");
        }
    }
    assert_int_equal(fclose(f), 0);
}

/* How many times needle occurs in haystack. */
static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* memoc finds names through hash maps and source lines through an index, so
 * its work grows linearly with the schema (it was quadratic: 6000 entities
 * took half a minute). Tests never time anything: this one checks that a
 * schema of that size is checked correctly, clean, with errors among names
 * far apart, and with an error in every entity. */
static void many_entities(void **state)
{
    (void)state;
    char dir[4096], path[4200];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/big.memo", dir);
    int lines[3];
    write_big(path, false, false, lines);
    const char *check[] = {"memoc", "--check", "big.memo", NULL};
    result clean = run_in(dir, check);
    const char *gen[] = {"memoc", "-o", "out", "big.memo", NULL};
    result g = run_in(dir, gen);
    char out[4200], sql_path[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(sql_path, sizeof sql_path, "%s/big.sql", out);
    char *sql = slurp(sql_path);
    char *written = listing(out);
    remove_dir(out);
    write_big(path, true, false, lines);
    result bad = run_in(dir, check);
    write_big(path, false, true, lines);
    result types = run_in(dir, check);
    unlink(path);
    remove_dir(dir);

    assert_text("stderr of a clean big schema", "", clean.err);
    assert_int_equal(clean.status, 0);

    assert_text("stderr of -o", "", g.err);
    assert_int_equal(g.status, 0);
    assert_string_equal(written, "big.c big.h big.sql");
    assert_non_null(sql);
    /* Every table once, and each reference either to a table created above
     * it or, closing a cycle, added by ALTER TABLE at the end. */
    bool *created = calloc(BIG_ENTITIES, sizeof *created);
    assert_non_null(created);
    size_t tables = 0, inline_refs = 0;
    for (const char *p = sql; (p = strstr(p, "\"e")); p++) {
        int id = atoi(p + 2);
        assert_true(id >= 0 && id < BIG_ENTITIES);
        size_t at = (size_t)(p - sql);
        if (at >= 27 && strncmp(p - 27, "CREATE TABLE IF NOT EXISTS ", 27) == 0) {
            assert_false(created[id]);
            created[id] = true;
            tables++;
        } else if (at >= 13 && strncmp(p - 13, "\" REFERENCES ", 13) == 0) {
            /* "other_id" bigint NOT NULL CONSTRAINT "..." REFERENCES "eN" ("id") */
            assert_true(created[id]);
            inline_refs++;
        }
    }
    assert_int_equal(tables, BIG_ENTITIES);
    /* the publication lists every table, on one line however long */
    const char *pub = strstr(sql, "CREATE PUBLICATION \"memo_big\" FOR TABLE ");
    assert_non_null(pub);
    const char *eol = strchr(pub, '\n');
    assert_non_null(eol);
    char *line = strndup(pub, (size_t)(eol - pub));
    assert_int_equal(count(line, ", ") + 1, BIG_ENTITIES);
    assert_non_null(strstr(line, "\"e5999\" WITH (publish_via_partition_root = true);"));
    free(line);
    /* no entity references itself: 6i + 3 is odd, so 7i + 3 = i (mod 6000)
     * never holds */
    assert_int_equal(inline_refs + count(sql, "ADD CONSTRAINT"), BIG_ENTITIES);
    free(created);
    free(sql);
    free(written);

    assert_int_equal(bad.status, 1);
    char want[3][256];
    snprintf(want[0], sizeof want[0], "big.memo:%d:8: error: duplicate entity 'e0'\n",
             lines[0]);
    snprintf(want[1], sizeof want[1],
             "big.memo:%d:8: error: entity 'e5_list' would generate 'big_e5_list', which "
             "entity 'e5' already generates\n",
             lines[1]);
    snprintf(want[2], sizeof want[2],
             "big.memo:%d:16: error: entities 'e17' and 't' use the same table 'e17'\n",
             lines[2]);
    for (int k = 0; k < 3; k++)
        if (!strstr(bad.err, want[k]))
            fail_msg("missing from stderr: %sstderr:\n%s", want[k], bad.err);
    assert_int_equal(count(bad.err, ": error: "), 3);
    /* the notes point back at the first of each name */
    assert_non_null(strstr(bad.err, "big.memo:2:8: note: previous definition is here\n"));
    assert_int_equal(count(bad.err, ": note: "), 3);

    /* every error of the file, in order, each with its line */
    assert_int_equal(types.status, 1);
    assert_int_equal(
        count(types.err, ": error: unknown type 'txt' (did you mean 'text'?)"),
        BIG_ENTITIES);
    assert_int_equal(count(types.err, ": error: "), BIG_ENTITIES);
    int last = 1 + 10 * (BIG_ENTITIES - 1) + 3;
    char tail[512];
    snprintf(
        tail, sizeof tail,
        "big.memo:%d:14: error: unknown type 'txt' (did you mean 'text'?); the types are "
        "int32, int64, float64, bool, text, timestamp and json\n"
        "%5d |     slug     txt unique;\n"
        "      |              ^~~\n",
        last, last);
    size_t len = strlen(types.err), tlen = strlen(tail);
    assert_true(len >= tlen);
    assert_text("the last error", tail, types.err + len - tlen);
    result_free(&clean);
    result_free(&g);
    result_free(&bad);
    result_free(&types);
}

/* ------------------------------------------------------------------ main */

/* path made absolute against the working directory (malloc'd), or NULL,
 * reported, if nothing is there. */
static char *absolute(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "test_memoc: %s '%s': %s\n", what, path, strerror(errno));
        return NULL;
    }
    char cwd[4096] = "";
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "test_memoc: getcwd: %s\n", strerror(errno));
        return NULL;
    }
    size_t len = strlen(cwd) + 1 + strlen(path) + 1;
    char *abs = malloc(len);
    if (abs)
        snprintf(abs, len, "%s%s%s", cwd, cwd[0] ? "/" : "", path);
    return abs;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --migrate refuses what it cannot do safely, at NEW's declarations, and
 * prints no SQL then: a narrowed type, another conversion, a column made NOT
 * NULL, a new primary key, a table renamed, a new reference or unique column
 * that is NOT NULL, another schema; and bad invocations. (What it
 * does do is applied to a real database by test_migrate.) */
static void migrate_refuses_unsafe_changes(void **state)
{
    (void)state;
    static const char old[] = "schema shop;\n"
                              "entity item {\n"
                              "    id    int64 primary key;\n"
                              "    count int64;\n"
                              "    price float64;\n"
                              "    note  text nullable;\n"
                              "    cache ttl 1m;\n"
                              "}\n"
                              "entity tag {\n"
                              "    id   int64 primary key;\n"
                              "    cache ttl 1m;\n"
                              "}\n"
                              "entity user table users {\n"
                              "    id   int64 primary key;\n"
                              "}\n";
    static const char new[] = "schema shop;\n"
                              "entity item {\n"
                              "    id    int64 primary key;\n"
                              "    count int32;\n"
                              "    price text;\n"
                              "    note  text;\n"
                              "    cache ttl 1m;\n"
                              "}\n"
                              "entity tag {\n"
                              "    name text primary key;\n"
                              "    cache ttl 1m;\n"
                              "}\n"
                              "entity user table people {\n"
                              "    id   int64 primary key;\n"
                              "}\n";
    /* on a table that stays: a new reference or unique column must be
     * nullable */
    static const char old2[] = "schema shop;\n"
                               "entity tag {\n"
                               "    id int64 primary key;\n"
                               "}\n"
                               "entity user table users {\n"
                               "    id int64 primary key;\n"
                               "}\n";
    static const char new2[] = "schema shop;\n"
                               "entity tag {\n"
                               "    id int64 primary key;\n"
                               "}\n"
                               "entity user table users {\n"
                               "    id   int64 primary key;\n"
                               "    tag  int64 references tag;\n"
                               "    code text unique;\n"
                               "}\n";
    char dir[4096], a[4200], b[4200], c[4200];
    make_temp_dir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/old.memo", dir);
    snprintf(b, sizeof b, "%s/new.memo", dir);
    snprintf(c, sizeof c, "%s/other.memo", dir);
    write_text(a, old);
    write_text(b, new);
    write_text(c, "schema other;\nentity tag {\n    id int64 primary key;\n}\n");

    const char *argv[] = {"memoc", "--migrate", "old.memo", "new.memo", NULL};
    result r = run_in(dir, argv);
    const char *other[] = {"memoc", "--migrate", "old.memo", "other.memo", NULL};
    result o = run_in(dir, other);
    const char *three[] = {"memoc", "--migrate", "old.memo", NULL};
    result t = run_in(dir, three);
    const char *late[] = {"memoc", "--check", "--migrate", "old.memo", "new.memo", NULL};
    result l = run_in(dir, late);
    write_text(a, old2);
    write_text(b, new2);
    result n = run_in(dir, argv);
    remove_dir(dir);

    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_text("stderr",
                "new.memo:4:5: error: item.count: changing int64 to int32 narrows "
                "it; memoc widens int32 to int64 only\n"
                "    4 |     count int32;\n"
                "      |     ^~~~~\n"
                "new.memo:5:5: error: item.price: changing float64 to text may "
                "not convert every value; memoc widens int32 to int64 only\n"
                "    5 |     price text;\n"
                "      |     ^~~~~\n"
                "new.memo:6:5: error: item.note: making a nullable column NOT NULL "
                "is not safe without a default (rows may hold NULL); fill them and "
                "alter the column by hand, or keep it nullable\n"
                "    6 |     note  text;\n"
                "      |     ^~~~\n"
                "new.memo:10:5: error: table 'tag': the primary key changes from "
                "id int64 to name text; memoc does not migrate primary keys\n"
                "   10 |     name text primary key;\n"
                "      |     ^~~~\n"
                "new.memo:13:8: error: entity 'user' moves from table 'users' to "
                "'people': memoc does not rename tables (it would drop 'users' and its "
                "rows); rename it in the database (ALTER TABLE \"users\" RENAME TO "
                "\"people\"), then migrate from a schema that names it\n"
                "   13 | entity user table people {\n"
                "      |        ^~~~\n",
                r.err);
    assert_int_equal(n.status, 1);
    assert_string_equal(n.out, "");
    assert_text("stderr of new columns",
                "new.memo:7:5: error: users.tag: a new column that references another "
                "table must be nullable (the rows there have no key to put in it)\n"
                "    7 |     tag  int64 references tag;\n"
                "      |     ^~~\n"
                "new.memo:8:5: error: users.code: a new unique column must be nullable "
                "(the rows there would all get one value)\n"
                "    8 |     code text unique;\n"
                "      |     ^~~~\n",
                n.err);
    result_free(&n);
    assert_int_equal(o.status, 1);
    assert_string_equal(o.out, "");
    assert_text("stderr of another schema",
                "other.memo:1:8: error: schema 'other' is not the schema of old.memo "
                "('shop'): a migration is between two versions of one schema\n"
                "    1 | schema other;\n"
                "      |        ^~~~~\n",
                o.err);
    assert_int_equal(t.status, 2);
    assert_int_equal(l.status, 2);
    assert_non_null(strstr(t.err, "--migrate takes two schema files"));
    result_free(&r);
    result_free(&o);
    result_free(&t);
    result_free(&l);
}

int main(void)
{
    const char *env_memoc = getenv("MEMOC");
    const char *env_bad = getenv("MEMO_BAD_DIR");
    const char *env_top = getenv("MEMO_TOP");
    memoc =
        absolute(env_memoc && *env_memoc ? env_memoc : "build/memoc", "memoc (MEMOC)");
    bad_dir = absolute(env_bad && *env_bad ? env_bad : "tests/gen/bad",
                       "case directory (MEMO_BAD_DIR)");
    char blog[4096];
    snprintf(blog, sizeof blog, "%s/schemas/blog.memo",
             env_top && *env_top ? env_top : ".");
    blog_schema = absolute(blog, "example schema (MEMO_TOP)");
    top = absolute(env_top && *env_top ? env_top : ".", "source tree (MEMO_TOP)");
    if (!memoc || !bad_dir || !blog_schema || !top)
        return 1;

    /* One test per NAME.memo, found now, so a new case needs no code. */
    DIR *d = opendir(bad_dir);
    if (!d) {
        fprintf(stderr, "test_memoc: cannot open %s: %s\n", bad_dir, strerror(errno));
        return 1;
    }
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *ent;
    while (names && (ent = readdir(d))) {
        size_t len = strlen(ent->d_name);
        if (len <= 5 || strcmp(ent->d_name + len - 5, ".memo") != 0)
            continue;
        if (n == cap) {
            cap *= 2;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                free(names);
                names = NULL;
                break;
            }
            names = grown;
        }
        names[n++] = strdup(ent->d_name);
    }
    closedir(d);
    if (!names || n == 0) {
        fprintf(stderr, "test_memoc: no *.memo cases in %s\n", bad_dir);
        return 1;
    }
    qsort(names, n, sizeof *names, by_name);

    struct CMUnitTest *bad = calloc(n, sizeof *bad);
    char **paths = calloc(n, sizeof *paths);
    if (!bad || !paths)
        return 1;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(bad_dir) + 1 + strlen(names[i]) + 1;
        paths[i] = malloc(len);
        if (!paths[i])
            return 1;
        snprintf(paths[i], len, "%s/%s", bad_dir, names[i]);
        bad[i] = (struct CMUnitTest){
            .name = names[i], .test_func = rejects_bad_schema, .initial_state = paths[i]};
    }

    const struct CMUnitTest cli[] = {
        cmocka_unit_test(help_prints_usage),
        cmocka_unit_test(version_prints_version),
        cmocka_unit_test(missing_file_is_usage_error),
        cmocka_unit_test(no_file_is_usage_error),
        cmocka_unit_test(unknown_option_is_usage_error),
        cmocka_unit_test(unwritable_output_is_io_error),
        cmocka_unit_test(good_schema_writes_three_files),
        cmocka_unit_test(output_dir_is_created),
        cmocka_unit_test(check_writes_nothing),
        cmocka_unit_test(same_schema_twice_is_error),
        cmocka_unit_test(hostile_path_is_cleaned),
        cmocka_unit_test(stream_names_are_lowercase),
        cmocka_unit_test(group_fields_named_like_parameters),
        cmocka_unit_test(many_entities),
        cmocka_unit_test(migrate_refuses_unsafe_changes),
    };

    int failed = _cmocka_run_group_tests("memoc: bad schemas", bad, n, NULL, NULL);
    failed += cmocka_run_group_tests_name("memoc: command line", cli, NULL, NULL);

    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(paths[i]);
    }
    free(names);
    free(paths);
    free(bad);
    free(memoc);
    free(bad_dir);
    free(blog_schema);
    free(top);
    return failed ? 1 : 0;
}
