/* The fields an entity's keys are made of: its primary key, its cached
 * unique fields, its lists' group and order fields, its rules' fields.
 * Invalidation reads their old and new values; memoc asks PostgreSQL to log
 * their old values for memo watch (REPLICA IDENTITY FULL). One rule for
 * both, in a header memoc and the runtime share. */
#ifndef MEMO_KEYFIELDS_H
#define MEMO_KEYFIELDS_H

#include <stdbool.h>
#include <string.h>

#include "memo/memo.h"

/* use[i] is set for each field i of d that a key is made of. */
static inline void memop_key_fields(const memo_entity_desc *d, bool use[MEMO_MAX_FIELDS])
{
    memset(use, 0, MEMO_MAX_FIELDS * sizeof *use);
    use[d->pk] = true;
    for (unsigned u = 0; u < d->nuniques; u++)
        use[d->uniques[u].field] = true;
    for (unsigned l = 0; l < d->nlists; l++)
        use[d->lists[l].group] = use[d->lists[l].order] = true;
    for (unsigned r = 0; r < d->nrules; r++)
        use[d->rules[r].field] = true;
}

#endif
