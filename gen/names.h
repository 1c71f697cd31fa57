/* A hash map from a name in a scope to a pointer: how the checker finds
 * entities, fields, lists and generated C names in constant time, so a
 * schema's check is linear in its size. The map is never iterated: nothing
 * memoc writes depends on the hash. */
#ifndef MEMOC_NAMES_H
#define MEMOC_NAMES_H

#include <stddef.h>

typedef struct name_slot name_slot;

/* Zero-initialised: empty. */
typedef struct name_map {
    name_slot *slots;
    size_t n, cap; /* cap: 0 or a power of two */
} name_map;

/* The value stored for (scope, name), or NULL. scope is any pointer that
 * tells names apart (the entity a field belongs to), or NULL. */
void *name_map_get(const name_map *, const void *scope, const char *name);

/* Stores value (not NULL) for (scope, name) unless that key is there; returns
 * the value already there, or NULL when it stored this one. So the first of
 * a name wins, and a second is found as it is added. The key's pointers are
 * borrowed and must outlive the map. Aborts on OOM, as xmalloc. */
void *name_map_add(name_map *, const void *scope, const char *name, void *value);

/* Frees the slots (not the keys or values); the map is empty again. */
void name_map_free(name_map *);

#endif
