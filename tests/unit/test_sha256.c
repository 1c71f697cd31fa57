/* SHA-256 against FIPS 180-4 vectors and across padding boundaries; updates
 * in any chunking give the one-shot digest. Pure: no servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "sha256.h"

static void hex_of(const unsigned char d[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void assert_hex(const void *data, size_t n, const char *want)
{
    char out[65];
    memop_sha256_hex(data, n, out, 64);
    assert_string_equal(out, want);

    /* the raw digest says the same */
    memop_sha256 s;
    unsigned char d[32];
    memop_sha256_init(&s);
    memop_sha256_update(&s, data, n);
    memop_sha256_final(&s, d);
    hex_of(d, out);
    assert_string_equal(out, want);
}

/* FIPS 180-4 / NIST CAVP examples */
static void test_fips_vectors(void **state)
{
    (void)state;
    assert_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_hex("abc", 3,
               "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(strlen(m448) * 8, 448);
    assert_hex(m448, strlen(m448),
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    assert_int_equal(strlen(m896) * 8, 896);
    assert_hex(m896, strlen(m896),
               "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a', fed in uneven chunks. */
static void test_million_a(void **state)
{
    (void)state;
    static const char want[] =
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    memop_sha256 s;
    memop_sha256_init(&s);
    size_t left = 1000000, step = 1;
    while (left > 0) {
        size_t n = step < left ? step : left;
        memop_sha256_update(&s, chunk, n);
        left -= n;
        step = step % 997 + 1; /* 1, 2, ... 997, 1, ...: every offset in a block */
    }
    unsigned char d[32];
    char out[65];
    memop_sha256_final(&s, d);
    hex_of(d, out);
    assert_string_equal(out, want);

    /* and in one call */
    char *all = malloc(1000000);
    assert_non_null(all);
    memset(all, 'a', 1000000);
    assert_hex(all, 1000000, want);
    free(all);
}

/* Lengths around the padding: 55 fits one block, 56..63 need a second,
 * 64 is exactly one block. */
static void test_padding_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
        {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
    };
    char a[128];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_hex(a, cases[i].n, cases[i].hex);
}

/* Every byte value, so no byte is mishandled as signed. */
static void test_all_bytes(void **state)
{
    (void)state;
    unsigned char b[256];
    for (int i = 0; i < 256; i++)
        b[i] = (unsigned char)i;
    assert_hex(b, sizeof b,
               "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

/* Any split of a message into updates gives the one-shot digest, empty
 * updates included. */
static void test_chunked_equals_one_shot(void **state)
{
    (void)state;
    unsigned char msg[1031];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof msg; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        msg[i] = (unsigned char)x;
    }
    for (size_t len = 0; len <= sizeof msg; len += len < 200 ? 1 : 37) {
        char one[65], many[65];
        memop_sha256_hex(msg, len, one, 64);
        for (size_t chunk = 1; chunk <= 130; chunk += chunk < 70 ? 1 : 13) {
            memop_sha256 s;
            unsigned char d[32];
            memop_sha256_init(&s);
            for (size_t off = 0; off < len; off += chunk) {
                memop_sha256_update(&s, msg + off, len - off < chunk ? len - off : chunk);
                memop_sha256_update(&s, msg, 0);
            }
            memop_sha256_final(&s, d);
            hex_of(d, many);
            if (strcmp(one, many) != 0)
                fail_msg("length %zu in chunks of %zu: %s, one shot %s", len, chunk, many,
                         one);
        }
    }
}

/* The hex form: a prefix of the digest, NUL-terminated, at most 64. */
static void test_hex_prefix(void **state)
{
    (void)state;
    char out[80];
    memset(out, 'X', sizeof out);
    memop_sha256_hex("abc", 3, out, 32);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223");
    assert_int_equal(out[33], 'X');

    memop_sha256_hex("abc", 3, out, 7); /* odd: half a byte */
    assert_string_equal(out, "ba7816b");

    memop_sha256_hex("abc", 3, out, 0);
    assert_string_equal(out, "");

    memset(out, 'X', sizeof out);
    memop_sha256_hex("abc", 3, out, 100);
    assert_string_equal(
        out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(out[65], 'X');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_all_bytes),
        cmocka_unit_test(test_chunked_equals_one_shot),
        cmocka_unit_test(test_hex_prefix),
    };
    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
