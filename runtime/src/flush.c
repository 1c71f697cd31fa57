/* Dropping cached entries wholesale: SCAN + UNLINK over the patterns of an
 * entity's keys (never KEYS, never FLUSHDB), for memo_flush, `memo flush`
 * and the drops of entities whose invalidations were lost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Drops every key of one lookup or list: SCAN + UNLINK, never KEYS. Returns
 * the number of keys removed, or -1 when Redis failed. */
typedef struct flush_progress {
    void (*fn)(long removed, void *arg);
    void *arg;
    long before; /* removed by earlier key kinds */
} flush_progress;

static long flush_node(memo_repo *repo, memop_rconn *c, const memop_buf *pat,
                       long removed, const flush_progress *progress);

static long flush_key_desc(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d,
                           const memo_key_desc *k, int only,
                           const flush_progress *progress)
{
    memop_buf pat = {0};
    memop_key_pattern(repo, d, k, &pat);
    if (pat.failed) {
        memop_buf_free(&pat);
        return -1;
    }
    long removed = 0;
    /* every node that serves slots holds its share of the keys */
    int nodes[MEMOP_NODES_MAX];
    size_t nnodes = memop_redis_masters(repo, nodes);
    if (only >= 0) { /* one node of a cluster */
        nodes[0] = only;
        nnodes = 1;
    }
    for (size_t node = 0; node < nnodes && removed >= 0; node++) {
        memop_rconn_pin(c, nodes[node]);
        removed = flush_node(repo, c, &pat, removed, progress);
    }
    memop_rconn_pin(c, -1);
    memop_buf_free(&pat);
    return removed;
}

/* One node's keys matching pat: SCAN + UNLINK. removed: the count so far. */
static long flush_node(memo_repo *repo, memop_rconn *c, const memop_buf *pat,
                       long removed, const flush_progress *progress)
{
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pat->s, "COUNT", "1000"};
        size_t lens[] = {4, strlen(cursor), 5, pat->len, 5, 4};
        redisReply *r = memop_redis_command(repo, c, 6, argv, lens);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r && r->type == REDIS_REPLY_ERROR)
                memop_redis_reply_failed(repo, r, "SCAN");
            else if (r)
                memop_fail(repo, MEMO_ERR_REDIS, "Redis %s: SCAN: unexpected reply",
                           repo->redis_name);
            removed = -1;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements > 0) {
            const char **av = malloc((keys->elements + 1) * sizeof *av);
            size_t *al = malloc((keys->elements + 1) * sizeof *al);
            redisReply *u = NULL;
            if (av && al) {
                av[0] = "UNLINK";
                al[0] = 6;
                for (size_t i = 0; i < keys->elements; i++) {
                    av[i + 1] = keys->element[i]->str;
                    al[i + 1] = keys->element[i]->len;
                }
                u = memop_redis_command(repo, c, (int)keys->elements + 1, av, al);
            }
            if (u && u->type == REDIS_REPLY_INTEGER) {
                removed += u->integer;
            } else {
                if (!av || !al)
                    memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                else if (u && u->type == REDIS_REPLY_ERROR)
                    memop_redis_reply_failed(repo, u, "UNLINK");
                removed = -1;
            }
            free(av);
            free(al);
        }
        memop_rconn_reset_arena(
            c); /* done with both replies: keep a big scan's memory flat */
        if (progress && progress->fn && removed >= 0)
            progress->fn(progress->before + removed, progress->arg);
    } while (removed >= 0 && strcmp(cursor, "0") != 0);
    return removed;
}

/* Every key of the entity, or of one list (list >= 0). */
static long flush_entity(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d,
                         int list, int only, flush_progress *progress)
{
    /* the key kinds: the row, each lookup, each list */
    size_t n = list >= 0 ? 1 : 1 + d->nuniques + d->nlists;
    long total = 0;
    for (size_t i = 0; i < n; i++) {
        const memo_key_desc *k = list >= 0          ? &d->lists[list].key
                                 : i == 0           ? &d->row.key
                                 : i <= d->nuniques ? &d->uniques[i - 1].key
                                                    : &d->lists[i - 1 - d->nuniques].key;
        if (progress)
            progress->before = total;
        long got = flush_key_desc(repo, c, d, k, only, progress);
        if (got < 0)
            return -1;
        total += got;
    }
    return total;
}

long memop_redis_flush_entity(memo_repo *repo, memop_rconn *c, const memo_entity_desc *d)
{
    return flush_entity(repo, c, d, -1, -1, NULL);
}

long memop_redis_flush_entity_on(memo_repo *repo, memop_rconn *c,
                                 const memo_entity_desc *d, int node)
{
    return flush_entity(repo, c, d, -1, node, NULL);
}

memo_status memo_flush(memo_repo *repo, const memo_entity_desc *d, const char *list,
                       void (*progress)(long removed, void *arg), void *arg,
                       long *removed)
{
    if (!repo)
        return MEMO_ERR_ARG;
    if (removed)
        *removed = 0;
    memop_entity *e;
    memo_status st;
    if (!d)
        return memop_fail(repo, MEMO_ERR_ARG, "memo_flush: NULL descriptor");
    if ((st = memop_entity_get(repo, d, &e)) != MEMO_OK)
        return st;
    int which = -1;
    if (list) {
        for (unsigned i = 0; i < d->nlists; i++)
            if (strcmp(d->lists[i].name, list) == 0)
                which = (int)i;
        if (which < 0)
            return memop_fail(repo, MEMO_ERR_ARG, "%s.%s has no list '%s'", d->schema,
                              d->name, list);
    }
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return MEMO_ERR_REDIS;
    flush_progress p = {progress, arg, 0};
    long n = flush_entity(repo, c, d, which, -1, &p);
    memop_redis_release(repo, c, n < 0);
    if (which < 0)
        memop_near_clear(e); /* the messages would do it, a little later */
    if (n < 0)
        return MEMO_ERR_REDIS;
    if (removed)
        *removed = n;
    return MEMO_OK;
}
