/* SHA-256 (FIPS 180-4): fingerprints in memoc, over-long key parts in the
 * runtime. Shared by both, so both hash the same way. */
#ifndef MEMO_SHA256_H
#define MEMO_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct memop_sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t used;
} memop_sha256;

void memop_sha256_init(memop_sha256 *);
void memop_sha256_update(memop_sha256 *, const void *data, size_t n);
void memop_sha256_final(memop_sha256 *, unsigned char out[32]);
/* The first `chars` hex digits (at most 64) of data's digest, NUL-terminated. */
void memop_sha256_hex(const void *data, size_t n, char *out, size_t chars);

#endif
