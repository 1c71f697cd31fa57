/* The repository: configuration, open and close, and the registry of the
 * entities it has seen. */
#include <stddef.h>
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

/* The width of a key field's value. */
static size_t key_width(memo_type t)
{
    return t == MEMO_INT32  ? sizeof(int32_t)
           : t == MEMO_TEXT ? sizeof(char *)
                            : sizeof(int64_t);
}

/* The primary key: 1 to MEMOP_MAX_PK distinct int32, int64 or text fields,
 * not nullable, flagged MEMO_FIELD_PK (and no other field is), each aligned
 * inside a key value of key_size bytes; a key of one field is that field's
 * value alone. */
static bool key_ok(const memo_entity_desc *d)
{
    if (d->npk == 0 || d->npk > MEMOP_MAX_PK || !d->pks || !d->pk_offsets ||
        d->pks[0] != d->pk || d->key_size == 0 || d->key_size > MEMOP_KEY_SIZE_MAX)
        return false;
    unsigned flagged = 0;
    for (unsigned i = 0; i < d->nfields; i++)
        flagged += (d->fields[i].flags & MEMO_FIELD_PK) != 0;
    if (flagged != d->npk)
        return false;
    for (unsigned k = 0; k < d->npk; k++) {
        if (d->pks[k] >= d->nfields)
            return false;
        const memo_field_desc *f = &d->fields[d->pks[k]];
        size_t width = key_width(f->type), off = d->pk_offsets[k];
        if ((f->type != MEMO_INT32 && f->type != MEMO_INT64 && f->type != MEMO_TEXT) ||
            (f->flags & MEMO_FIELD_NULLABLE) || !(f->flags & MEMO_FIELD_PK) ||
            width > d->key_size || off > d->key_size - width || off % width != 0)
            return false;
        for (unsigned j = 0; j < k; j++)
            if (d->pks[j] == d->pks[k])
                return false;
    }
    return d->npk > 1 ||
           (d->pk_offsets[0] == 0 && d->key_size == key_width(d->fields[d->pk].type));
}

/* A rule names fields of d of the types of what it keys: the target's key
 * fields, in order, or the target list's group. */
static bool rule_ok(const memo_entity_desc *d, const memo_rule_desc *r)
{
    const memo_entity_desc *t = r->target;
    if (!t || !r->fields || r->nfields == 0 || r->nfields > MEMOP_MAX_PK ||
        r->field >= d->nfields || r->fields[0] != r->field || !t->fields || t->npk == 0 ||
        t->npk > MEMOP_MAX_PK || !t->pks)
        return false;
    for (unsigned k = 0; k < r->nfields; k++)
        if (r->fields[k] >= d->nfields)
            return false;
    if (r->list >= 0) {
        if ((unsigned)r->list >= t->nlists || r->nfields != 1 ||
            t->lists[r->list].group >= t->nfields)
            return false;
        return d->fields[r->field].type == t->fields[t->lists[r->list].group].type;
    }
    if (r->nfields != t->npk)
        return false;
    for (unsigned k = 0; k < r->nfields; k++)
        if (t->pks[k] >= t->nfields ||
            d->fields[r->fields[k]].type != t->fields[t->pks[k]].type)
            return false;
    return true;
}

/* Descriptors come from generated code, but a stale object file or a
 * hand-written one must not crash the engine. */
static memo_status check_desc(memo_repo *repo, const memo_entity_desc *d)
{
    if (d->abi != MEMO_ABI)
        return memop_fail(
            repo, MEMO_ERR_SCHEMA,
            "entity %s was generated for memo ABI %u, this library is ABI %d: "
            "regenerate it with this memoc",
            d->name ? d->name : "?", d->abi, MEMO_ABI);
    if (!d->schema || !d->name || !d->table || !d->fields || d->nfields == 0 ||
        d->nfields > MEMO_MAX_FIELDS || d->pk >= d->nfields || d->row.field != d->pk)
        return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed descriptor",
                          d->name ? d->name : "?");
    if (!key_ok(d))
        return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed primary key",
                          d->name);
    unsigned versions = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const memo_field_desc *f = &d->fields[i];
        /* a version is written back as an int64 */
        if ((f->flags & MEMO_FIELD_VERSION) &&
            (++versions > 1 || f->type != MEMO_INT64 || (f->flags & MEMO_FIELD_PK) ||
             (f->flags & MEMO_FIELD_NULLABLE)))
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed version field",
                              d->name);
    }
    for (unsigned i = 0; i < d->nuniques; i++)
        if (d->uniques[i].field >= d->nfields || d->uniques[i].near_entries)
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed lookup",
                              d->name);
    /* memoc's bound: a near cache's tables are sized by it */
    if (d->row.near_entries > MEMOP_NEAR_ENTRIES_MAX)
        return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed near cache",
                          d->name);
    for (unsigned i = 0; i < d->nlists; i++)
        if (d->lists[i].group >= d->nfields || d->lists[i].order >= d->nfields)
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed list",
                              d->name);
    for (unsigned i = 0; i < d->nrules; i++)
        if (!rule_ok(d, &d->rules[i]))
            return memop_fail(repo, MEMO_ERR_SCHEMA, "entity %s: malformed rule",
                              d->name);
    return MEMO_OK;
}

static memop_entity *find(memo_repo *repo, const memo_entity_desc *d)
{
    size_t h = slot_of(d);
    for (size_t i = 0; i < MEMOP_MAX_ENTITIES * 2; i++) {
        memop_entity *e =
            atomic_load_explicit(&repo->entity_slots[(h + i) % (MEMOP_MAX_ENTITIES * 2)],
                                 memory_order_acquire);
        if (!e || e->desc == d)
            return e;
    }
    return NULL;
}

static void entity_free(memop_entity *e)
{
    if (!e)
        return;
    memop_sql_free(e);
    memop_near_free(e);
    free(e->targets);
    free(e);
}

/* Registers d together with every entity its rules reach, all or none: a
 * write's invalidation then finds each target registered (and so can
 * never fail to name it). Under entities_lock. */
static memo_status register_locked(memo_repo *repo, const memo_entity_desc *d)
{
    const memo_entity_desc *pending_descs[MEMOP_MAX_ENTITIES];
    memop_entity *made[MEMOP_MAX_ENTITIES] = {0};
    size_t npending = 0;
    unsigned n = atomic_load(&repo->nentities);
    memo_status st = MEMO_OK;
    pending_descs[npending++] = d;
    for (size_t i = 0; i < npending; i++) {
        if ((st = check_desc(repo, pending_descs[i])) != MEMO_OK)
            return st;
        for (unsigned r = 0; r < pending_descs[i]->nrules; r++) {
            const memo_entity_desc *t = pending_descs[i]->rules[r].target;
            bool known = find(repo, t) != NULL;
            for (size_t k = 0; k < npending && !known; k++)
                known = pending_descs[k] == t;
            if (known)
                continue;
            if (n + npending >= MEMOP_MAX_ENTITIES)
                return memop_fail(repo, MEMO_ERR_SCHEMA,
                                  "more than %d entities in one repository",
                                  MEMOP_MAX_ENTITIES);
            pending_descs[npending++] = t;
        }
    }
    if (n + npending > MEMOP_MAX_ENTITIES)
        return memop_fail(repo, MEMO_ERR_SCHEMA,
                          "more than %d entities in one repository", MEMOP_MAX_ENTITIES);
    bool near = false;
    for (size_t i = 0; i < npending; i++) {
        memop_entity *e = made[i] = calloc(1, sizeof *e);
        if (!e ||
            (pending_descs[i]->nrules &&
             !(e->targets = calloc(pending_descs[i]->nrules, sizeof *e->targets)))) {
            st = MEMO_ERR_NOMEM;
            goto fail;
        }
        e->desc = pending_descs[i];
        e->index = n + (unsigned)i;
        if ((st = memop_sql_build(e)) != MEMO_OK ||
            (st = memop_near_new(repo, e)) != MEMO_OK)
            goto fail;
        near = near || e->near;
    }
    /* the near caches' thread, before anything is published: all or none */
    if (near && (st = memop_near_start(repo)) != MEMO_OK) {
        for (size_t i = 0; i < npending; i++)
            entity_free(made[i]);
        return memop_fail(repo, st, "cannot start the near cache's thread");
    }
    for (size_t i = 0; i < npending; i++)
        for (unsigned r = 0; r < pending_descs[i]->nrules; r++) {
            const memo_entity_desc *t = pending_descs[i]->rules[r].target;
            memop_entity *target = find(repo, t);
            for (size_t k = 0; k < npending && !target; k++)
                if (pending_descs[k] == t)
                    target = made[k];
            made[i]->targets[r] = target;
        }
    /* publish: the list first, then the count, then the slots readers use */
    for (size_t i = 0; i < npending; i++)
        repo->entity_list[n + i] = made[i];
    atomic_store(&repo->nentities, n + (unsigned)npending);
    for (size_t i = 0; i < npending; i++) {
        size_t h = slot_of(pending_descs[i]);
        while (atomic_load(&repo->entity_slots[h]))
            h = (h + 1) % (MEMOP_MAX_ENTITIES * 2);
        atomic_store_explicit(&repo->entity_slots[h], made[i], memory_order_release);
    }
    /* the subscriber tracks the new near caches' keys (a new connection) */
    if (near)
        memop_near_track(repo);
    return MEMO_OK;
fail:
    for (size_t i = 0; i < npending; i++)
        entity_free(made[i]);
    return memop_fail(repo, st, "out of memory");
}

memo_status memop_entity_get(memo_repo *repo, const memo_entity_desc *d,
                             memop_entity **out)
{
    memop_entity *e = find(repo, d);
    if (e) {
        *out = e;
        return MEMO_OK;
    }
    /* First use: register it under the lock, published with release stores. */
    pthread_mutex_lock(&repo->entities_lock);
    memo_status st = MEMO_OK;
    if (!(e = find(repo, d)) && (st = register_locked(repo, d)) == MEMO_OK)
        e = find(repo, d);
    pthread_mutex_unlock(&repo->entities_lock);
    if (st == MEMO_OK)
        *out = e;
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
        {&c->pool_wait_ms, 5000, 3600000, "pool_wait_ms"},
        {&c->default_ttl_ms, 60000, 2000000000, "default_ttl_ms"},
        {&c->negative_ttl_ms, 5000, 2000000000, "negative_ttl_ms"},
        {&c->lease_ms, 1000, MEMOP_LEASE_MS_MAX, "lease_ms"},
        {&c->lease_wait_ms, 0, 600000, "lease_wait_ms"},
        {&c->stats_publish_ms, 1000, 3600000, "stats_publish_ms"},
        {&c->max_value_bytes, 4 << 20, 512 << 20, "max_value_bytes"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (*ints[i].v < 0 || *ints[i].v > ints[i].max) {
            snprintf(err->message, sizeof err->message,
                     "memo_config.%s must be between 0 (the default) and %d",
                     ints[i].name, ints[i].max);
            err->status = MEMO_ERR_CONFIG;
            return MEMO_ERR_CONFIG;
        }
        if (*ints[i].v == 0)
            *ints[i].v = ints[i].def;
    }
    /* A filler keeps its lease alive while its query runs, which takes at
     * most query_timeout_ms: waiters outlast that, so a slow row is still
     * read once per stampede. A filler that dies frees its lease within
     * lease_ms, and one of the waiters takes it over. */
    if (c->lease_wait_ms == 0)
        c->lease_wait_ms = c->query_timeout_ms + c->lease_ms;
    if (c->near_max_bytes == 0)
        c->near_max_bytes = 64u << 20;
    if (c->near_max_bytes > MEMOP_NEAR_MAX_BYTES_MAX) {
        snprintf(err->message, sizeof err->message,
                 "memo_config.near_max_bytes must be at most 1 TiB");
        err->status = MEMO_ERR_CONFIG;
        return MEMO_ERR_CONFIG;
    }
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
        return config_error(
            err, MEMO_ERR_CONFIG,
            "memo_config.key_prefix must be at most 128 bytes, without '{' "
            "or '}' (they would change the keys' hash tags)");

    memo_repo *repo = calloc(1, sizeof *repo);
    if (!repo)
        return config_error(err, MEMO_ERR_NOMEM, "out of memory");
    memo_status st;
    /* an application built with an older memo.h has fewer fields: the rest
     * keep their defaults; one built with a newer one asks for what this
     * library cannot do */
    size_t size = config->size ? config->size : sizeof *config;
    if (size > sizeof *config || size < offsetof(memo_config, redis_url)) {
        free(repo);
        return config_error(err, MEMO_ERR_CONFIG,
                            "memo_config.size does not match this libmemo: rebuild the "
                            "application against its memo.h");
    }
    memcpy(&repo->cfg, config, size);
    repo->cfg.size = sizeof repo->cfg;
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
    pthread_mutex_init(&repo->errs_lock, NULL);
    pthread_mutex_init(&repo->near.lock, NULL);
    if (pthread_key_create(&repo->err_key, memop_err_buf_destroy) != 0) {
        pthread_mutex_destroy(&repo->entities_lock);
        pthread_mutex_destroy(&repo->flights_lock);
        pthread_mutex_destroy(&repo->errs_lock);
        pthread_mutex_destroy(&repo->near.lock);
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
    memop_near_stop(repo);
    if (repo->redis_opened) {
        memop_stats_publish(repo); /* the last word, for `memo stats` */
        memop_redis_close(repo);
    }
    if (repo->db_opened)
        memop_db_close(repo);
    memop_watch_stats_free(repo);
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++)
        entity_free(repo->entity_list[i]);
    /* every thread's message: once the key is gone no thread frees its own */
    pthread_key_delete(repo->err_key);
    memop_err_bufs_free(repo);
    pthread_mutex_destroy(&repo->errs_lock);
    pthread_mutex_destroy(&repo->entities_lock);
    pthread_mutex_destroy(&repo->flights_lock);
    pthread_mutex_destroy(&repo->near.lock);
    memop_redis_target_free(&repo->redis);
    free(repo->database_url);
    free(repo->key_prefix);
    free(repo);
}
