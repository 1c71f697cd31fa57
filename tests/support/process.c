/* Child processes for the tests: commands run with a pipe on each side,
 * this binary run again, forked children waited for, and the memory a run's
 * children report in. */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int test_run(const char *const *argv, const char *input, char **out)
{
    int in[2], outp[2];
    if (pipe(in) != 0 || pipe(outp) != 0)
        fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        close(in[0]);
        close(in[1]);
        close(outp[0]);
        close(outp[1]);
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    if (input) {
        size_t n = strlen(input), done = 0;
        while (done < n) {
            ssize_t w = write(in[1], input + done, n - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
    }
    close(in[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(outp[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(outp[0]);
    if (buf)
        buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t test_fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    return pid;
}

pid_t test_spawn_self(const char *const *argv, int in_fd, int fd3)
{
    pid_t pid = test_fork();
    if (pid == 0) {
        /* only async-signal-safe calls until exec: the parent runs threads */
        if (in_fd >= 0)
            dup2(in_fd, 0);
        if (fd3 >= 0)
            dup2(fd3, 3);
        for (int fd = fd3 >= 0 ? 4 : 3; fd < 1024; fd++)
            close(fd);
        execv("/proc/self/exe", (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

void test_wait_children(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child %d ended with status %d", i, status);
    }
}

void *test_shared_new(size_t size)
{
    void *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(s != MAP_FAILED);
    memset(s, 0, size);
    return s;
}

void test_shared_free(void *shared, size_t size)
{
    munmap(shared, size);
}
