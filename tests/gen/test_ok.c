/* Every example schema compiles: memoc accepts it, its generated C compiles
 * under -Wall -Wextra -Werror -pedantic (as C11 and as C++ would be nice, C
 * is the contract), and its SQL applies to the private PostgreSQL, twice. */
#define _GNU_SOURCE 1
#include "test.h"

#include <dirent.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int run(const char *const argv[])
{
    pid_t pid;
    /* posix_spawn's argv is not const for historical reasons only */
    if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)(uintptr_t)argv,
                     environ) != 0)
        fail_msg("cannot run %s", argv[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct schema_case {
    char path[512];
    char name[128];
} schema_case;

static void compiles_and_applies(void **state)
{
    const schema_case *c = *state;
    const char *memoc = test_env("MEMOC");
    const char *top = test_env("MEMO_TOP");
    char dir[] = "/tmp/memo-ok-XXXXXX";
    assert_non_null(mkdtemp(dir));

    const char *gen[] = {memoc, "-o", dir, c->path, NULL};
    assert_int_equal(run(gen), 0);

    char src[600], obj[600], inc[600], sql[600];
    snprintf(src, sizeof src, "%s/%s.c", dir, c->name);
    snprintf(obj, sizeof obj, "%s/%s.o", dir, c->name);
    snprintf(inc, sizeof inc, "-I%s/runtime/include", top);
    snprintf(sql, sizeof sql, "%s/%s.sql", dir, c->name);
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
    assert_int_equal(run(compile), 0);

    /* Twice: IF NOT EXISTS everywhere, so deploying again is harmless. */
    test_sql_file(sql);
    test_sql_file(sql);

    const char *rm[] = {"rm", "-rf", dir, NULL};
    run(rm);
}

/* Collects *.memo of a directory into cases. */
static size_t collect(const char *dir, schema_case *cases, size_t n, size_t max)
{
    DIR *d = opendir(dir);
    if (!d)
        return n;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < max) {
        size_t len = strlen(ent->d_name);
        if (len < 6 || strcmp(ent->d_name + len - 5, ".memo") != 0)
            continue;
        snprintf(cases[n].path, sizeof cases[n].path, "%s/%s", dir, ent->d_name);
        /* the schemas here name themselves after their file */
        snprintf(cases[n].name, sizeof cases[n].name, "%.*s", (int)(len - 5),
                 ent->d_name);
        n++;
    }
    closedir(d);
    return n;
}

int main(void)
{
    static schema_case cases[64];
    static struct CMUnitTest tests[64];
    const char *top = getenv("MEMO_TOP") ? getenv("MEMO_TOP") : ".";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/schemas", top);
    size_t n = collect(dir, cases, 0, 64);
    snprintf(dir, sizeof dir, "%s/tests/gen/ok", top);
    n = collect(dir, cases, n, 64);
    if (n < 2) {
        fprintf(stderr, "test_ok: expected the example schemas under %s/schemas\n", top);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        tests[i] = (struct CMUnitTest){cases[i].path, compiles_and_applies, NULL, NULL,
                                       &cases[i]};
    }
    return _cmocka_run_group_tests("memoc: example schemas", tests, n, NULL, NULL);
}
