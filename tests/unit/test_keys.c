/* Keys: escaping of user parts, hashing of long ones, values of every key
 * type, the layout of built keys, and leases. Pure: no servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "internal.h"

/* Room past MEMOP_KEY_PART_MAX, to see that nothing writes beyond it. */
#define OUT_SIZE (MEMOP_KEY_PART_MAX + 64)
#define GUARD 0x5A

/* Escapes s[0..n) into a NUL-terminated string, checking the length it
 * returns and that nothing past MEMOP_KEY_PART_MAX + 1 was touched (a hashed
 * part is followed by its NUL, an escaped one need not be). */
static size_t part(const char *s, size_t n, char *out)
{
    char buf[OUT_SIZE];
    memset(buf, GUARD, sizeof buf);
    size_t len = memop_key_part(s, n, buf);
    assert_true(len <= MEMOP_KEY_PART_MAX);
    for (size_t i = MEMOP_KEY_PART_MAX + 1; i < sizeof buf; i++)
        assert_int_equal((unsigned char)buf[i], GUARD);
    memcpy(out, buf, len);
    out[len] = '\0';
    return len;
}

static size_t part_str(const char *s, char *out)
{
    return part(s, strlen(s), out);
}

static void assert_part(const char *in, const char *want)
{
    char out[OUT_SIZE];
    size_t len = part_str(in, out);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

/* What must never appear in a part: Redis glob characters, the key
 * separators and the hash-tag braces, whitespace. */
static void assert_safe(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        assert_null(strchr(":*?[]{}", c ? c : 'x'));
        assert_false(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
                     c == '\f');
        assert_true(c > 0x20 && c < 0x7f);
    }
}

static bool is_hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ------------------------------------------------------------- escaping */

static void test_plain_bytes_kept(void **state)
{
    (void)state;
    assert_part("abcxyzABCXYZ0189", "abcxyzABCXYZ0189");
    assert_part("-_.@+", "-_.@+");
    assert_part("user@example.com", "user@example.com");
    assert_part("", "");
}

static void test_special_bytes_escaped(void **state)
{
    (void)state;
    assert_part(":", "%3A");
    assert_part("*", "%2A");
    assert_part("?", "%3F");
    assert_part("[", "%5B");
    assert_part("]", "%5D");
    assert_part("{", "%7B");
    assert_part("}", "%7D");
    assert_part("%", "%25");
    assert_part("~", "%7E");
    assert_part(" ", "%20");
    assert_part("\n", "%0A");
    assert_part("\t", "%09");
    assert_part("/", "%2F");
    assert_part("\"", "%22");
    assert_part("\\", "%5C");
    assert_part("a:b", "a%3Ab");
    assert_part("user:{42}*", "user%3A%7B42%7D%2A");
    /* UTF-8 bytes, uppercase hex */
    assert_part("\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9");
    assert_part("\xe2\x82\xac", "%E2%82%AC");
    assert_part("\xff", "%FF");
    assert_part("\x7f", "%7F");
}

static void test_nul_byte_escaped(void **state)
{
    (void)state;
    char out[OUT_SIZE];
    size_t len = part("a\0b", 3, out);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "a%00b", 5);
}

/* Every byte value: plain ones stay, the rest are %XX in uppercase. */
static void test_every_byte(void **state)
{
    (void)state;
    static const char plain[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789-_.@+";
    for (int c = 0; c < 256; c++) {
        char in = (char)c, out[OUT_SIZE], want[4];
        size_t len = part(&in, 1, out);
        if (c != 0 && strchr(plain, c)) {
            assert_int_equal(len, 1);
            assert_int_equal((unsigned char)out[0], c);
        } else {
            snprintf(want, sizeof want, "%%%02X", c);
            assert_int_equal(len, 3);
            assert_memory_equal(out, want, 3);
        }
        assert_safe(out, len);
    }
}

/* Tricky inputs, including ones that look like escaped or hashed output:
 * no two may share a part. */
/* "e\xcc\x81" is é decomposed: other bytes than "\xc3\xa9", so another key */
static const char *const tricky[] = {
    "",        "a",         "b",  "ab",  "a b", "a:b", "A:B",   "a%3Ab", "a%3ab",
    "a%253Ab", "a%%3Ab",    "%",  "%25", "~",   "%7E", "a:",    ":a",    "a::b",
    "a}:b",    "a{b}",      "*",  "?",   "[a]", "a\n", "a\r\n", "a\t",   "\xc3\xa9",
    "%C3%A9",  "e\xcc\x81", "42", "042", "-42", "+42", "4 2",
};

static void test_injective(void **state)
{
    (void)state;
    size_t n = sizeof tricky / sizeof tricky[0];
    char(*outs)[OUT_SIZE] = calloc(n, OUT_SIZE);
    size_t *lens = calloc(n, sizeof *lens);
    assert_non_null(outs);
    assert_non_null(lens);
    for (size_t i = 0; i < n; i++) {
        lens[i] = part_str(tricky[i], outs[i]);
        assert_safe(outs[i], lens[i]);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (lens[i] == lens[j] && memcmp(outs[i], outs[j], lens[i]) == 0)
                fail_msg("\"%s\" and \"%s\" share the part \"%s\"", tricky[i], tricky[j],
                         outs[i]);
    free(outs);
    free(lens);
}

/* ----------------------------------------------------------- long parts */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void assert_hashed(const char *out, size_t len)
{
    assert_int_equal(len, 33);
    assert_int_equal(out[0], '~');
    assert_true(is_hex_lower(out + 1, 32));
}

static void test_boundary_128(void **state)
{
    (void)state;
    char out[OUT_SIZE];

    /* 128 plain bytes: exactly the limit, kept */
    char *s = repeat('a', 128);
    assert_int_equal(part_str(s, out), 128);
    assert_string_equal(out, s);
    free(s);

    /* 42 colons escape to 126 bytes, kept; 43 to 129, hashed */
    s = repeat(':', 42);
    assert_int_equal(part_str(s, out), 126);
    assert_memory_equal(out, "%3A%3A%3A", 9);
    free(s);

    /* 125 + "%3A" = 128: kept */
    s = repeat('a', 126);
    s[125] = ':';
    assert_int_equal(part_str(s, out), 128);
    assert_memory_equal(out + 125, "%3A", 3);
    free(s);
}

static void test_long_parts_hashed(void **state)
{
    (void)state;
    char out[OUT_SIZE];

    /* The hash is of the raw input (SHA-256, first 32 hex digits). */
    char *s = repeat('a', 129);
    size_t len = part_str(s, out);
    assert_hashed(out, len);
    assert_string_equal(out, "~c12cb024a2e5551cca0e08fce8f1c5e3");
    free(s);

    s = repeat(':', 43);
    len = part_str(s, out);
    assert_hashed(out, len);
    assert_string_equal(out, "~bbcca58c01d35d433acf2bc3494643fb");
    free(s);

    /* 126 + "%3A" = 129: one byte over */
    s = repeat('a', 127);
    s[126] = ':';
    len = part_str(s, out);
    assert_hashed(out, len);
    assert_string_equal(out, "~83354ee662d30e24b51b721b04b3aa69");
    free(s);
}

static void test_long_parts_distinct(void **state)
{
    (void)state;
    char a[OUT_SIZE], b[OUT_SIZE], again[OUT_SIZE];

    /* same first 128 escaped bytes, different tails */
    char *x = repeat('x', 300), *y = repeat('x', 300);
    y[299] = 'y';
    part_str(x, a);
    part_str(y, b);
    assert_string_not_equal(a, b);
    part_str(x, again);
    assert_string_equal(a, again); /* deterministic */

    /* only the length differs */
    char *z = repeat('x', 301);
    part_str(z, b);
    assert_string_not_equal(a, b);

    /* a user cannot forge a hashed part: '~' is escaped */
    char forged[OUT_SIZE];
    size_t len = part_str(a, forged);
    assert_int_equal(len, 35);
    assert_memory_equal(forged, "%7E", 3);
    assert_string_not_equal(forged, a);
    free(x);
    free(y);
    free(z);
}

/* A long part of multi-byte characters: hashed too, and safe. */
static void test_long_utf8(void **state)
{
    (void)state;
    char in[3 * 50 + 1] = "";
    for (int i = 0; i < 50; i++)
        strcat(in, "\xe2\x82\xac");
    char out[OUT_SIZE];
    size_t len = part_str(in, out);
    assert_hashed(out, len);
    assert_safe(out, len);
}

/* ------------------------------------------------------------ key values */

static void assert_value(memo_type type, const void *value, const char *want)
{
    memo_field_desc f = {.name = "f", .type = type};
    char out[MEMOP_KEY_PART_MAX + 1];
    size_t len = memop_key_value(&f, value, out);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
}

static void test_key_values(void **state)
{
    (void)state;
    int32_t i32[] = {0, 42, -1, INT32_MAX, INT32_MIN};
    const char *i32s[] = {"0", "42", "-1", "2147483647", "-2147483648"};
    for (size_t i = 0; i < 5; i++)
        assert_value(MEMO_INT32, &i32[i], i32s[i]);

    int64_t i64[] = {0, 42, -7, INT64_MAX, INT64_MIN, 4294967296};
    const char *i64s[] = {
        "0", "42", "-7", "9223372036854775807", "-9223372036854775808", "4294967296"};
    for (size_t i = 0; i < 6; i++) {
        assert_value(MEMO_INT64, &i64[i], i64s[i]);
        assert_value(MEMO_TIMESTAMP, &i64[i], i64s[i]);
    }

    bool t = true, f = false;
    assert_value(MEMO_BOOL, &t, "true");
    assert_value(MEMO_BOOL, &f, "false");

    const char *texts[] = {"alice", "a:b*", "", "\xc3\xa9"};
    const char *want[] = {"alice", "a%3Ab%2A", "", "%C3%A9"};
    for (size_t i = 0; i < 4; i++)
        assert_value(MEMO_TEXT, &texts[i], want[i]);

    /* a long text value is hashed, like any part */
    char *lng = repeat('a', 129);
    assert_value(MEMO_TEXT, &lng, "~c12cb024a2e5551cca0e08fce8f1c5e3");
    free(lng);
}

/* ---------------------------------------------------------- key layout */

typedef struct user {
    int64_t id;
    char *email;
} user;

static const memo_field_desc user_fields[] = {
    {.name = "id",
     .type = MEMO_INT64,
     .flags = MEMO_FIELD_PK,
     .offset = offsetof(user, id)},
    {.name = "email",
     .type = MEMO_TEXT,
     .flags = MEMO_FIELD_UNIQUE,
     .offset = offsetof(user, email)},
};

static const memo_lookup_desc user_uniques[] = {
    {.field = 1, .key = {.head = "user:email:", .tail = "", .tag = "e1f2"}},
};

static const memo_entity_desc user_desc = {
    .abi = MEMO_ABI,
    .schema = "blog",
    .name = "user",
    .table = "users",
    .size = sizeof(user),
    .fields = user_fields,
    .nfields = 2,
    .pk = 0,
    .row = {.field = 0, .key = {.head = "user:", .tail = "", .tag = "9f2c1ab0"}},
    .uniques = user_uniques,
    .nuniques = 1,
    .fingerprint = "9f2c1ab0",
};

/* memop_key_build reads only the prefix of the repository. */
static void build(const char *prefix, const memo_key_desc *k, const memo_field_desc *f,
                  const void *value, memop_key *out)
{
    memo_repo repo;
    memset(&repo, 0, sizeof repo);
    repo.key_prefix = (char *)prefix;
    repo.key_prefix_len = strlen(prefix);
    char p[MEMOP_KEY_PART_MAX + 1];
    size_t plen = memop_key_value(f, value, p);
    memop_key_build(&repo, &user_desc, k, p, plen, out);
    assert_int_equal(out->len, strlen(out->s));
}

static void test_build_layout(void **state)
{
    (void)state;
    memop_key k;
    int64_t id = 42;
    build("", &user_desc.row.key, &user_fields[0], &id, &k);
    assert_string_equal(k.s, "blog:{user:42}:9f2c1ab0");

    build("app1:", &user_desc.row.key, &user_fields[0], &id, &k);
    assert_string_equal(k.s, "app1:blog:{user:42}:9f2c1ab0");

    const char *email = "a:b@x.org";
    build("", &user_uniques[0].key, &user_fields[1], &email, &k);
    assert_string_equal(k.s, "blog:{user:email:a%3Ab@x.org}:e1f2");

    /* a tail after the part stays inside the hash tag */
    memo_key_desc tailed = {.head = "post:by_author:", .tail = ":list", .tag = "77"};
    build("p-", &tailed, &user_fields[0], &id, &k);
    assert_string_equal(k.s, "p-blog:{post:by_author:42:list}:77");
}

/* The GET_BY script escapes text keys in Lua with MEMOP_KEY_PLAIN_LUA: for
 * every byte, that class keeps exactly what memop_key_part keeps. */
static bool lua_class_has(const char *cls, unsigned char c)
{
    for (const char *p = cls; *p; p++) {
        if (*p == '%' && p[1] == 'w') {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9'))
                return true;
            p++;
        } else if (*p == '%' && p[1]) {
            if ((unsigned char)*++p == c)
                return true;
        } else if ((unsigned char)*p == c) {
            return true;
        }
    }
    return false;
}

static void test_lua_class_matches_escaping(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        char in = (char)b, out[OUT_SIZE];
        size_t len = part(&in, 1, out);
        bool kept = len == 1 && out[0] == in;
        if (kept != lua_class_has(MEMOP_KEY_PLAIN_LUA, (unsigned char)b))
            fail_msg("byte 0x%02X: escaping %s it, the Lua class %s it", b,
                     kept ? "keeps" : "escapes", kept ? "escapes" : "keeps");
    }
}

/* The parts around a value, the SCAN pattern of a key kind, memo's own
 * keys: all from the one layout. */
static void test_around_pattern_memo(void **state)
{
    (void)state;
    memo_repo repo;
    memset(&repo, 0, sizeof repo);
    repo.key_prefix = (char *)"a*[b]:";
    repo.key_prefix_len = strlen(repo.key_prefix);
    memop_key before, after, whole;
    memop_key_around(&repo, &user_desc, &user_uniques[0].key, &before, &after);
    memop_key_build(&repo, &user_desc, &user_uniques[0].key, "V", 1, &whole);
    char joined[2 * MEMOP_KEY_MAX];
    snprintf(joined, sizeof joined, "%sV%s", before.s, after.s);
    assert_string_equal(joined, whole.s);
    assert_int_equal(before.len + 1 + after.len, whole.len);

    memop_buf pat = {0};
    memop_key_pattern(&repo, &user_desc, &user_desc.row.key, &pat);
    assert_string_equal(pat.s, "a\\*\\[b\\]:blog:{user:*}:9f2c1ab0*");
    memop_buf_free(&pat);

    memop_key m;
    memop_key_memo(&repo, "lock", "nightly job:1", &m);
    assert_string_equal(m.s, "a*[b]:memo:lock:{nightly%20job%3A1}");
    assert_int_equal(m.len, strlen(m.s));
}

/* A hostile value cannot close the hash tag or add a separator. */
static void test_build_no_forgery(void **state)
{
    (void)state;
    const char *evil = "x}:9f2c1ab0 {user:1";
    memop_key k;
    build("", &user_uniques[0].key, &user_fields[1], &evil, &k);
    assert_string_equal(k.s, "blog:{user:email:x%7D%3A9f2c1ab0%20%7Buser%3A1}:e1f2");
    assert_int_equal(strchr(k.s, '{') - k.s, 5);
    assert_ptr_equal(strchr(k.s, '}'), strrchr(k.s, '}'));
    assert_ptr_equal(strchr(k.s, '{'), strrchr(k.s, '{'));
}

/* A lease lives in its value key: the mark and a token, unique per call,
 * told apart from every value memo writes (JSON, which never starts with
 * '~'), even one that spells the mark inside a string. */
static void test_lease(void **state)
{
    (void)state;
    memo_repo repo;
    memset(&repo, 0, sizeof repo);
    repo.token_prefix = 0x1234;
    char a[MEMOP_LEASE_MAX], b[MEMOP_LEASE_MAX];
    memop_make_lease(&repo, a);
    memop_make_lease(&repo, b);
    assert_int_equal(strncmp(a, "~lease:", 7), 0);
    assert_int_equal(strlen(a), 7 + 32);
    assert_true(strlen(a) < MEMOP_LEASE_MAX);
    assert_string_not_equal(a, b);
    assert_true(memop_is_lease(a, strlen(a)));
    assert_true(memop_is_lease(b, strlen(b)));
    const char *values[] = {"null",         "{\"id\":1}", "[1,2]", "12",       "-3",
                            "\"~lease:x\"", "~leas",      "",      " ~lease:x"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        assert_false(memop_is_lease(values[i], strlen(values[i])));
}

/* Slots as Redis's CLUSTER KEYSLOT documents them, and hash tags as Redis
 * reads them (tests/integration/test_cluster.c asks a real cluster). */
static void test_cluster_slots(void **state)
{
    (void)state;
#define SLOT(s) memop_key_slot((s), strlen(s))
    assert_int_equal(SLOT("foo"), 12182);
    assert_int_equal(SLOT("somekey"), 11058);
    assert_int_equal(SLOT("foo{hash_tag}"), 2515);
    assert_int_equal(SLOT("123456789"), 0x31C3 & 16383); /* CRC16/XMODEM's check */
    assert_int_equal(SLOT("{user1000}.following"), SLOT("{user1000}.followers"));
    assert_int_equal(SLOT("{user1000}.following"), SLOT("user1000"));
    /* an empty tag: the whole key, neither "" nor "bar" */
    assert_int_not_equal(SLOT("foo{}{bar}"), SLOT(""));
    assert_int_not_equal(SLOT("foo{}{bar}"), SLOT("bar"));
    assert_int_equal(SLOT("foo{{bar}}zap"), SLOT("{bar"));
    assert_int_equal(SLOT("foo{bar}{zap}"), SLOT("bar"));
    assert_int_not_equal(SLOT("a{b"), SLOT("b")); /* no closing brace: the key */
    assert_int_equal(SLOT(""), 0);
#undef SLOT
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_bytes_kept),
        cmocka_unit_test(test_special_bytes_escaped),
        cmocka_unit_test(test_nul_byte_escaped),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_injective),
        cmocka_unit_test(test_boundary_128),
        cmocka_unit_test(test_long_parts_hashed),
        cmocka_unit_test(test_long_parts_distinct),
        cmocka_unit_test(test_long_utf8),
        cmocka_unit_test(test_key_values),
        cmocka_unit_test(test_build_layout),
        cmocka_unit_test(test_build_no_forgery),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_lua_class_matches_escaping),
        cmocka_unit_test(test_around_pattern_memo),
        cmocka_unit_test(test_cluster_slots),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
