/* Redis keys recomputed by the tests, for the integration tests (which link
 * the generated repositories): the blog keys spelled out as blog.h
 * documents them, <schema>:{<head><part><tail>}:<tag>, the tag read from
 * the descriptor; the wiki keys from their descriptors' head and tail, with
 * the escaping done here (test_wiki_keys pins both to the documented
 * templates). Every key returned stays valid until the process exits. */
#ifndef MEMO_SCHEMA_KEYS_H
#define MEMO_SCHEMA_KEYS_H

#include <stdint.h>

/* blog:{user:<id>}:<tag>, a user's row. */
const char *test_user_key(int64_t id);
/* blog:{user:email=<escaped>}:<tag>, the email lookup (escaped by the caller). */
const char *test_email_key(const char *escaped);
/* blog:{user:by_org=<org>}:<tag>, the list of an org's users. */
const char *test_by_org_key(int64_t org);
/* blog:{post:<id>}:<tag>, a post's row. */
const char *test_post_key(int64_t id);
/* blog:{org:<id>}:<tag>, an org's row. */
const char *test_org_key(int64_t id);
/* blog:{comment:by_post=<post>}:<tag>, a post's comment list. */
const char *test_by_post_key(int64_t post);

/* A key part, as documented: [A-Za-z0-9-_.@+] stay, every other byte is
 * %XX; a part longer than 128 bytes becomes "~" and the first 32 hex digits
 * of the SHA-256 of the raw value, computed here by PostgreSQL. Malloc'd. */
char *test_key_part(const char *value);
/* wiki:{page/<escaped slug>}:<tag>, a page's row. */
const char *test_page_key(const char *slug);
/* wiki:{page:in_space=<escaped space>}:<tag>, the list of a space's pages. */
const char *test_space_key(const char *space);
/* wiki:{revision:history=<escaped slug>}:<tag>, a page's revisions. */
const char *test_history_key(const char *slug);
/* wiki:{revision:<id>}:<tag>, a revision's row. */
const char *test_revision_key(int64_t id);

#endif
