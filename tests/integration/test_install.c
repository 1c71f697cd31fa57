/* make install into a fresh prefix, then build examples/blog out of tree
 * against the installed copy with nothing but its memoc and
 * `pkg-config --cflags --libs memo`, and run it on the private servers. */
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sh(const char *cmd, char **out)
{
    const char *argv[] = {"sh", "-c", cmd, NULL};
    return test_run(argv, NULL, out);
}

static void install_and_build_out_of_tree(void **state)
{
    (void)state;
    const char *top = test_env("MEMO_TOP"), *build = test_env("MEMO_BUILD_DIR");
    const char *san = getenv("MEMO_SAN_CFLAGS") ? getenv("MEMO_SAN_CFLAGS") : "";
    char prefix[] = "/tmp/memo-prefix-XXXXXX", work[] = "/tmp/memo-app-XXXXXX";
    assert_non_null(mkdtemp(prefix));
    assert_non_null(mkdtemp(work));
    char cmd[4096];
    char *out;

    snprintf(cmd, sizeof cmd, "make -s -C '%s' B='%s' install PREFIX='%s' >&2", top,
             build, prefix);
    assert_int_equal(sh(cmd, NULL), 0);
    static const char *const files[] = {"bin/memoc",           "bin/memo",
                                        "lib/libmemo.a",       "lib/libmemo.so",
                                        "include/memo/memo.h", "lib/pkgconfig/memo.pc"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(cmd, sizeof cmd, "test -e '%s/%s'", prefix, files[i]);
        if (sh(cmd, NULL) != 0)
            fail_msg("make install did not write %s", files[i]);
    }

    /* the application's side: its schema, the installed memoc, pkg-config */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && cp '%s/schemas/blog.memo' '%s/examples/blog/main.c' . && "
             "'%s/bin/memoc' -o gen blog.memo && "
             "export PKG_CONFIG_PATH='%s/lib/pkgconfig' && "
             "cc -std=c11 -Wall -Wextra -Werror %s $(pkg-config --cflags memo) -Igen "
             "main.c gen/blog.c $(pkg-config --libs memo) -lm -o blog-demo",
             work, top, top, prefix, prefix, san);
    assert_int_equal(sh(cmd, NULL), 0);
    /* it links the installed shared library */
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH='%s/lib' ldd '%s/blog-demo'", prefix,
             work);
    assert_int_equal(sh(cmd, &out), 0);
    char want[600];
    snprintf(want, sizeof want, "%s/lib/libmemo.so.0", prefix);
    assert_non_null(strstr(out, want));
    free(out);

    char sql[600];
    snprintf(sql, sizeof sql, "%s/gen/blog.sql", work);
    test_sql_file(sql);
    test_sql("TRUNCATE comments, posts, users, orgs RESTART IDENTITY CASCADE");
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH='%s/lib' '%s/blog-demo' 500", prefix,
             work);
    assert_int_equal(sh(cmd, &out), 0);
    assert_non_null(strstr(out, "compared with PostgreSQL: 0 stale"));
    free(out);

    /* libmemo.a through memo-static.pc: nothing of memo is loaded at run
     * time, and no LD_LIBRARY_PATH is needed */
    snprintf(
        cmd, sizeof cmd,
        "cd '%s' && export PKG_CONFIG_PATH='%s/lib/pkgconfig' && "
        "cc -std=c11 -Wall -Wextra -Werror %s $(pkg-config --cflags memo-static) -Igen "
        "main.c gen/blog.c $(pkg-config --libs memo-static) -o blog-static",
        work, prefix, san);
    assert_int_equal(sh(cmd, NULL), 0);
    snprintf(cmd, sizeof cmd, "ldd '%s/blog-static'", work);
    assert_int_equal(sh(cmd, &out), 0);
    assert_null(strstr(out, "libmemo"));
    free(out);
    test_sql("TRUNCATE comments, posts, users, orgs RESTART IDENTITY CASCADE");
    freeReplyObject(test_redis_cmd("FLUSHDB"));
    snprintf(cmd, sizeof cmd, "'%s/blog-static' 200", work);
    assert_int_equal(sh(cmd, &out), 0);
    assert_non_null(strstr(out, "compared with PostgreSQL: 0 stale"));
    free(out);

    snprintf(cmd, sizeof cmd, "'%s/bin/memo' --version", prefix);
    assert_int_equal(sh(cmd, &out), 0);
    char version[64];
    snprintf(version, sizeof version, "memo %s\n", memo_version());
    assert_string_equal(out, version);
    free(out);

    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", prefix, work);
    sh(cmd, NULL);
}

/* How many lines of `text` start with `word` and a space. */
static int lines_starting(const char *text, const char *word)
{
    int n = 0;
    size_t len = strlen(word);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, word, len) == 0 && p[len] == ' ';
    return n;
}

/* The Makefile runs each generator once, even under -j, and adds the
 * user's CPPFLAGS and LDFLAGS to every compile and link (dry runs, into a
 * build directory of their own). */
static void makefile_honours_the_users_flags(void **state)
{
    (void)state;
    const char *top = test_env("MEMO_TOP");
    char dir[] = "/tmp/memo-make-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[2048], *out;
    snprintf(
        cmd, sizeof cmd,
        "make -n -j2 -C '%s' B='%s' CPPFLAGS=-DMEMO_PROBE_CPP LDFLAGS=-Wl,-O1,--probe-ld "
        "'%s/memoc' '%s/libmemo.so.%s'",
        top, dir, dir, dir, memo_version());
    assert_int_equal(sh(cmd, &out), 0);
    assert_int_equal(lines_starting(out, "bison"), 1);
    assert_int_equal(lines_starting(out, "flex"), 1);
    int compiles = 0, links = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "cc ", 3) != 0)
            continue;
        if (strstr(line, " -c ")) {
            compiles++;
            if (!strstr(line, "-DMEMO_PROBE_CPP"))
                fail_msg("compiled without CPPFLAGS: %s", line);
        } else {
            links++;
            if (!strstr(line, "--probe-ld"))
                fail_msg("linked without LDFLAGS: %s", line);
        }
    }
    assert_true(compiles > 10);
    assert_int_equal(links, 2); /* memoc and libmemo.so */
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    sh(cmd, NULL);
}

/* Words of the form memo_xxx that `text` holds, each once, sorted. */
static size_t names(const char *text, bool calls_only, char (*out)[64], size_t max)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "memo_")) != NULL;) {
        bool start = p == text || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'));
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        bool call = p[len] == '(';
        if (start && (!calls_only || call) && len < 64 && n < max) {
            char word[64];
            memcpy(word, p, len);
            word[len] = '\0';
            bool seen = false;
            for (size_t i = 0; i < n && !seen; i++)
                seen = strcmp(out[i], word) == 0;
            if (!seen)
                snprintf(out[n++], 64, "%s", word);
        }
        p += len;
    }
    qsort(out, n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* The API is locked: the functions memo.h declares, the version script's
 * list and what libmemo.so exports are the same set. */
static void exported_symbols_are_the_api(void **state)
{
    (void)state;
    const char *top = test_env("MEMO_TOP"), *build = test_env("MEMO_BUILD_DIR");
    char cmd[1024], *header, *map, *exported;
    snprintf(cmd, sizeof cmd, "cat '%s/runtime/include/memo/memo.h'", top);
    assert_int_equal(sh(cmd, &header), 0);
    snprintf(cmd, sizeof cmd,
             "sed -n 's/^ *\\(memo_[a-z_]*\\);$/\\1(/p' '%s/runtime/libmemo.map'", top);
    assert_int_equal(sh(cmd, &map), 0);
    snprintf(cmd, sizeof cmd,
             "nm -D --defined-only '%s/libmemo.so.%s' | awk '$2 == \"T\" {sub(/@.*/, "
             "\"\", $3); print $3 \"(\"}'",
             build, memo_version());
    assert_int_equal(sh(cmd, &exported), 0);
    static char h[128][64], m[128][64], x[128][64];
    size_t nh = names(header, true, h, 128), nm = names(map, true, m, 128),
           nx = names(exported, true, x, 128);
    assert_true(nh > 30);
    for (size_t i = 0; i < nh || i < nm || i < nx; i++) {
        const char *a = i < nh ? h[i] : "-", *b = i < nm ? m[i] : "-",
                   *c = i < nx ? x[i] : "-";
        if (strcmp(a, b) != 0 || strcmp(a, c) != 0)
            fail_msg("memo.h, libmemo.map and libmemo.so differ at %s / %s / %s", a, b,
                     c);
    }
    free(header);
    free(map);
    free(exported);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(install_and_build_out_of_tree),
                                       cmocka_unit_test(makefile_honours_the_users_flags),
                                       cmocka_unit_test(exported_symbols_are_the_api)};
    return cmocka_run_group_tests_name("install", tests, NULL, NULL);
}
