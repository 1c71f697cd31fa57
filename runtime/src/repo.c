/* The repository: configuration, open and close, and the registry of the
 * entities it has seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"

memop_hooks memop_test_hooks;

/* ------------------------------------------------------------- entities */

static size_t slot_of(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= 0xed5ad4bbu;
    x ^= x >> 11;
    return (size_t)x % (MEMOP_MAX_ENTITIES * 2);
}

/* Descriptors come from generated code, but a stale object file or a
 * hand-written one must not crash the engine. */
static memo_status check_desc(memo_repo *repo, const memo_entity_desc *d)
{
    if (d->abi != MEMO_ABI)
        return memop_fail(repo, MEMO_ERR_SCHEMA,
                          "entity %s was generated for memo ABI %u, this library is ABI %d: "
                          "regenerate it with this memoc",
                          d->name ? d->name : "?", d->abi, MEMO_ABI);
    if (!d->schema || !d->name || !d->table || !d->fields || d->nfields == 0 ||
        d->nfields > 64 || d->pk >= d->nfields || d->row.field != d->pk)
        return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed descriptor",
                          d->name ? d->name : "?");
    for (unsigned i = 0; i < d->nuniques; i++)
        if (d->uniques[i].field >= d->nfields)
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed lookup", d->name);
    for (unsigned i = 0; i < d->nlists; i++)
        if (d->lists[i].group >= d->nfields || d->lists[i].order >= d->nfields)
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed list", d->name);
    for (unsigned i = 0; i < d->nrules; i++)
        if (d->rules[i].field >= d->nfields || !d->rules[i].target ||
            (d->rules[i].list >= 0 && (unsigned)d->rules[i].list >= d->rules[i].target->nlists))
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed rule", d->name);
    return MEMO_OK;
}

memo_status memop_entity_get(memo_repo *repo, const memo_entity_desc *d, memop_entity **out)
{
    size_t h = slot_of(d);
    for (size_t i = 0; i < MEMOP_MAX_ENTITIES * 2; i++) {
        memop_entity *e = atomic_load_explicit(&repo->entity_slots[(h + i) % (MEMOP_MAX_ENTITIES * 2)],
                                               memory_order_acquire);
        if (!e)
            break;
        if (e->desc == d) {
            *out = e;
            return MEMO_OK;
        }
    }

    /* First use: build it under the lock, publish it with a release store. */
    memo_status st = MEMO_OK;
    pthread_mutex_lock(&repo->entities_lock);
    size_t free_slot = SIZE_MAX;
    for (size_t i = 0; i < MEMOP_MAX_ENTITIES * 2; i++) {
        size_t s = (h + i) % (MEMOP_MAX_ENTITIES * 2);
        memop_entity *e = atomic_load(&repo->entity_slots[s]);
        if (!e) {
            free_slot = s;
            break;
        }
        if (e->desc == d) {
            *out = e;
            goto out;
        }
    }
    unsigned n = atomic_load(&repo->nentities);
    if (n >= MEMOP_MAX_ENTITIES || free_slot == SIZE_MAX) {
        st = memop_fail(repo, MEMO_ERR_SCHEMA, "more than %d entities in one repository",
                        MEMOP_MAX_ENTITIES);
        goto out;
    }
    if ((st = check_desc(repo, d)) != MEMO_OK)
        goto out;
    memop_entity *e = calloc(1, sizeof *e);
    if (!e) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    e->desc = d;
    e->index = n;
    if (memop_sql_build(e) != MEMO_OK) {
        memop_sql_free(e);
        free(e);
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    repo->entity_list[n] = e;
    atomic_store(&repo->nentities, n + 1);
    atomic_store_explicit(&repo->entity_slots[free_slot], e, memory_order_release);
    *out = e;
out:
    pthread_mutex_unlock(&repo->entities_lock);
    return st;
}

/* ---------------------------------------------------------- open / close */

static memo_status config_error(memo_error *err, memo_status st, const char *msg)
{
    snprintf(err->message, sizeof err->message, "%s", msg);
    err->status = st;
    return st;
}

static memo_status apply_defaults(memo_config *c, memo_error *err)
{
    struct {
        int *v;
        int def, max;
        const char *name;
    } ints[] = {
        {&c->connect_timeout_ms, 2000, 3600000, "connect_timeout_ms"},
        {&c->command_timeout_ms, 500, 3600000, "command_timeout_ms"},
        {&c->query_timeout_ms, 30000, 86400000, "query_timeout_ms"},
        {&c->pool_size, 8, 1024, "pool_size"},
        {&c->default_ttl_ms, 60000, 2000000000, "default_ttl_ms"},
        {&c->negative_ttl_ms, 5000, 2000000000, "negative_ttl_ms"},
        {&c->lease_ms, 1000, 600000, "lease_ms"},
        {&c->lease_wait_ms, 0, 600000, "lease_wait_ms"},
        {&c->stats_publish_ms, 1000, 3600000, "stats_publish_ms"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (*ints[i].v < 0 || *ints[i].v > ints[i].max) {
            snprintf(err->message, sizeof err->message,
                     "memo_config.%s must be between 0 (the default) and %d", ints[i].name,
                     ints[i].max);
            err->status = MEMO_ERR_CONFIG;
            return MEMO_ERR_CONFIG;
        }
        if (*ints[i].v == 0)
            *ints[i].v = ints[i].def;
    }
    /* waiters outlast a lease, so a crashed holder's lease expires first and
     * one of them fills; past that they read PostgreSQL */
    if (c->lease_wait_ms == 0)
        c->lease_wait_ms = c->lease_ms + c->lease_ms / 2;
    return MEMO_OK;
}

memo_status memo_open(memo_repo **out, const memo_config *config, memo_error *err)
{
    memo_error local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    if (!out)
        return config_error(err, MEMO_ERR_ARG, "memo_open: out is NULL");
    *out = NULL;
    if (!config)
        return config_error(err, MEMO_ERR_ARG, "memo_open: config is NULL");
    if (!config->database_url || !*config->database_url)
        return config_error(err, MEMO_ERR_CONFIG, "memo_config.database_url is not set");
    if (config->key_prefix &&
        (strlen(config->key_prefix) > 128 || strpbrk(config->key_prefix, "{}")))
        return config_error(err, MEMO_ERR_CONFIG,
                            "memo_config.key_prefix must be at most 128 bytes, without '{' "
                            "or '}' (they would change the keys' hash tags)");

    memo_repo *repo = calloc(1, sizeof *repo);
    if (!repo)
        return config_error(err, MEMO_ERR_NOMEM, "out of memory");
    memo_status st;
    repo->cfg = *config;
    if ((st = apply_defaults(&repo->cfg, err)) != MEMO_OK) {
        free(repo);
        return st;
    }
    char msg[256];
    st = memop_redis_url_parse(config->redis_url, &repo->redis, msg, sizeof msg);
    if (st != MEMO_OK) {
        free(repo);
        return config_error(err, st, msg);
    }
    memop_redis_target_name(&repo->redis, repo->redis_name, sizeof repo->redis_name);
    repo->database_url = strdup(config->database_url);
    repo->key_prefix = strdup(config->key_prefix ? config->key_prefix : "");
    if (!repo->database_url || !repo->key_prefix) {
        free(repo->database_url);
        free(repo->key_prefix);
        memop_redis_target_free(&repo->redis);
        free(repo);
        return config_error(err, MEMO_ERR_NOMEM, "out of memory");
    }
    repo->key_prefix_len = strlen(repo->key_prefix);
    repo->cfg.redis_url = NULL; /* the copy keeps no borrowed strings */
    repo->cfg.database_url = repo->database_url;
    repo->cfg.key_prefix = repo->key_prefix;
    pthread_mutex_init(&repo->entities_lock, NULL);
    pthread_mutex_init(&repo->flights_lock, NULL);
    if (pthread_key_create(&repo->err_key, free) != 0) {
        pthread_mutex_destroy(&repo->entities_lock);
        pthread_mutex_destroy(&repo->flights_lock);
        free(repo->database_url);
        free(repo->key_prefix);
        memop_redis_target_free(&repo->redis);
        free(repo);
        return config_error(err, MEMO_ERR_NOMEM, "out of thread-specific keys");
    }
    if (getrandom(&repo->token_prefix, sizeof repo->token_prefix, 0) !=
        (ssize_t)sizeof repo->token_prefix)
        repo->token_prefix = memop_random();

    repo->db_opened = true;
    if ((st = memop_db_open(repo, err)) != MEMO_OK) {
        err->status = st;
        memo_close(repo);
        return st;
    }
    repo->redis_opened = true;
    if ((st = memop_redis_open(repo, err)) != MEMO_OK) {
        err->status = st;
        memo_close(repo);
        return st;
    }
    *out = repo;
    return MEMO_OK;
}

void memo_close(memo_repo *repo)
{
    if (!repo)
        return;
    if (repo->redis_opened) {
        memop_stats_publish(repo); /* the last word, for `memo stats` */
        memop_redis_close(repo);
    }
    if (repo->db_opened)
        memop_db_close(repo);
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++) {
        memop_sql_free(repo->entity_list[i]);
        free(repo->entity_list[i]);
    }
    /* this thread's message; other threads' are freed as they exit */
    free(pthread_getspecific(repo->err_key));
    pthread_setspecific(repo->err_key, NULL);
    pthread_key_delete(repo->err_key);
    pthread_mutex_destroy(&repo->entities_lock);
    pthread_mutex_destroy(&repo->flights_lock);
    memop_redis_target_free(&repo->redis);
    free(repo->database_url);
    free(repo->key_prefix);
    free(repo);
}
