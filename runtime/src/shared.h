/* What memoc and the runtime must agree on, in one header both include:
 * one rule each, so that what memoc generates and what the runtime expects
 * cannot drift apart. */
#ifndef MEMO_SHARED_H
#define MEMO_SHARED_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "memo/memo.h"

/* The fields an entity's keys are made of: its primary key, its cached
 * unique fields, its lists' group and order fields, its rules' fields.
 * Invalidation reads their old and new values; memoc asks PostgreSQL to log
 * their old values for memo watch (REPLICA IDENTITY FULL). */
/* use[i] is set for each field i of d that a key is made of. */
static inline void memop_key_fields(const memo_entity_desc *d, bool use[MEMO_MAX_FIELDS])
{
    memset(use, 0, MEMO_MAX_FIELDS * sizeof *use);
    for (unsigned k = 0; k < d->npk; k++)
        use[d->pks[k]] = true;
    for (unsigned u = 0; u < d->nuniques; u++)
        use[d->uniques[u].field] = true;
    for (unsigned l = 0; l < d->nlists; l++)
        use[d->lists[l].group] = use[d->lists[l].order] = true;
    for (unsigned r = 0; r < d->nrules; r++) {
        use[d->rules[r].field] = true;
        for (unsigned k = 0; k < d->rules[r].nfields; k++)
            use[d->rules[r].fields[k]] = true;
    }
}

/* "memo_<schema>", lowercased: the publication memoc creates and the
 * replication slot memo watch uses by default (slot names are lowercase in
 * PostgreSQL). A schema name is at most 63 characters of [A-Za-z0-9_]. */
static inline void memop_stream_name(const char *schema, char out[64])
{
    snprintf(out, 64, "memo_%.58s", schema);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

#endif
