#include "names.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"

struct name_slot {
    const void *scope;
    const char *name;
    void *value; /* NULL: the slot is free */
    uint64_t hash;
};

/* FNV-1a of the name and the scope's address, then mixed (MurmurHash3's
 * finaliser): FNV's low bits, which pick the slot, are weak on their own. */
static uint64_t hash_of(const void *scope, const char *name)
{
    uint64_t h = 14695981039346656037u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    h ^= (uint64_t)(uintptr_t)scope;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

/* The slot of (scope, name), or the free slot where it would go. */
static name_slot *find(const name_map *m, const void *scope, const char *name, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        name_slot *s = &m->slots[i];
        if (!s->value ||
            (s->hash == h && s->scope == scope && strcmp(s->name, name) == 0))
            return s;
    }
}

void *name_map_get(const name_map *m, const void *scope, const char *name)
{
    if (m->n == 0)
        return NULL;
    return find(m, scope, name, hash_of(scope, name))->value;
}

/* Doubles the table (at least 64 slots), placing every entry again. */
static void grow(name_map *m)
{
    name_map bigger = {xcalloc(m->cap ? 2 * m->cap : 64, sizeof *m->slots), m->n,
                       m->cap ? 2 * m->cap : 64};
    for (size_t i = 0; i < m->cap; i++) {
        name_slot *s = &m->slots[i];
        if (s->value)
            *find(&bigger, s->scope, s->name, s->hash) = *s;
    }
    free(m->slots);
    *m = bigger;
}

void *name_map_add(name_map *m, const void *scope, const char *name, void *value)
{
    /* at most half full, so probes stay short and one slot is always free */
    if (2 * (m->n + 1) > m->cap)
        grow(m);
    uint64_t h = hash_of(scope, name);
    name_slot *s = find(m, scope, name, h);
    if (s->value)
        return s->value;
    *s = (name_slot){scope, name, value, h};
    m->n++;
    return NULL;
}

void name_map_free(name_map *m)
{
    free(m->slots);
    *m = (name_map){0};
}
