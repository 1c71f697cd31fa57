/* Small tools: clocks, randomness, growable strings, error messages. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

uint64_t memop_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void memop_sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* xorshift64*: jitter and back-off need speed, not secrecy; each thread has
 * its own state, seeded from the kernel. */
static _Thread_local uint64_t rng;

uint64_t memop_random(void)
{
    if (rng == 0) {
        if (getrandom(&rng, sizeof rng, 0) != (ssize_t)sizeof rng)
            rng = memop_now_us() ^ (uint64_t)(uintptr_t)&rng;
        rng |= 1;
    }
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static void buf_reserve(memop_buf *b, size_t extra)
{
    if (b->failed || b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = b->borrowed ? malloc(cap) : realloc(b->s, cap);
    if (!s) {
        b->failed = true;
        return;
    }
    if (b->borrowed) {
        memcpy(s, b->s, b->len);
        b->borrowed = false;
    }
    b->s = s;
    b->cap = cap;
}

void memop_buf_append(memop_buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void memop_buf_puts(memop_buf *b, const char *s)
{
    memop_buf_append(b, s, strlen(s));
}

void memop_buf_printf(memop_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    buf_reserve(b, (size_t)n);
    if (b->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void memop_buf_free(memop_buf *b)
{
    if (!b->borrowed)
        free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- errors */

#define ERR_SIZE 512

/* Each thread's message buffer for a repository. The buffers are listed in
 * the repository, so that memo_close frees those of threads that are still
 * running too; a thread that ends first frees its own (the key's
 * destructor). */
struct memop_err_buf {
    struct memop_err_buf *next, *prev;
    memo_repo *repo;
    char msg[ERR_SIZE];
};

void memop_err_buf_destroy(void *p)
{
    memop_err_buf *b = p;
    memo_repo *repo = b->repo;
    pthread_mutex_lock(&repo->errs_lock);
    if (b->prev)
        b->prev->next = b->next;
    else
        repo->errs = b->next;
    if (b->next)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&repo->errs_lock);
    free(b);
}

void memop_err_bufs_free(memo_repo *repo)
{
    while (repo->errs) {
        memop_err_buf *next = repo->errs->next;
        free(repo->errs);
        repo->errs = next;
    }
}

static char *thread_error(memo_repo *repo)
{
    memop_err_buf *b = pthread_getspecific(repo->err_key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return NULL;
        b->repo = repo;
        if (pthread_setspecific(repo->err_key, b) != 0) {
            free(b);
            return NULL;
        }
        pthread_mutex_lock(&repo->errs_lock);
        b->next = repo->errs;
        if (b->next)
            b->next->prev = b;
        repo->errs = b;
        pthread_mutex_unlock(&repo->errs_lock);
    }
    return b->msg;
}

memo_status memop_fail(memo_repo *repo, memo_status st, const char *fmt, ...)
{
    char *msg = thread_error(repo);
    if (msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return st;
}

const char *memo_last_error(memo_repo *repo)
{
    if (!repo)
        return "no repository";
    const memop_err_buf *b = pthread_getspecific(repo->err_key);
    return b ? b->msg : "";
}

const char *memo_version(void)
{
    return MEMO_VERSION;
}

const char *memo_status_str(memo_status st)
{
    switch (st) {
#define MEMO_STATUS_CASE(name, value, text)                                              \
    case name:                                                                           \
        return text;
        MEMO_STATUS_LIST(MEMO_STATUS_CASE)
#undef MEMO_STATUS_CASE
    }
    return "unknown status";
}

/* ------------------------------------------------------- TTLs and tokens */

uint64_t memop_ttl_ms(uint64_t ttl_ms, unsigned jitter_pct)
{
    if (jitter_pct == 0 || ttl_ms == 0)
        return ttl_ms;
    /* uniform in [ttl, ttl * (1 + jitter)]: keys filled together expire apart */
    uint64_t spread = ttl_ms * jitter_pct / 100;
    return ttl_ms + memop_random() % (spread + 1);
}

void memop_make_token(memo_repo *repo, char *out, size_t size)
{
    uint64_t n = atomic_fetch_add(&repo->token_counter, 1);
    snprintf(out, size, "%016" PRIx64 "%016" PRIx64, repo->token_prefix,
             n ^ memop_random());
}

size_t memop_i64_text(int64_t v, char out[21])
{
    char tmp[20];
    size_t n = 0, k = 0;
    /* the magnitude as unsigned: -INT64_MIN does not fit an int64_t */
    uint64_t u = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    out[k] = '\0';
    return k;
}

void memop_make_lease(memo_repo *repo, char out[MEMOP_LEASE_MAX])
{
    memcpy(out, MEMOP_LEASE_MARK, sizeof MEMOP_LEASE_MARK - 1);
    memop_make_token(repo, out + sizeof MEMOP_LEASE_MARK - 1,
                     MEMOP_LEASE_MAX - (sizeof MEMOP_LEASE_MARK - 1));
}

bool memop_is_lease(const char *s, size_t n)
{
    return n >= sizeof MEMOP_LEASE_MARK - 1 &&
           memcmp(s, MEMOP_LEASE_MARK, sizeof MEMOP_LEASE_MARK - 1) == 0;
}

uint64_t memop_row_ttl(memo_repo *repo, const memo_lookup_desc *l)
{
    return memop_ttl_ms(l->ttl_ms ? l->ttl_ms : (uint64_t)repo->cfg.default_ttl_ms,
                        l->jitter_pct);
}

uint64_t memop_negative_ttl(memo_repo *repo, const memo_lookup_desc *l)
{
    return memop_ttl_ms(l->negative_ttl_ms ? l->negative_ttl_ms
                                           : (uint64_t)repo->cfg.negative_ttl_ms,
                        l->jitter_pct);
}
