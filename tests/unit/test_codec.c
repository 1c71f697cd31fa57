/* The row codec: JSON encode/decode of every memo_type, nulls, awkward
 * strings and numbers, refusal of corrupt values; row copy, compare and
 * clear. Pure: no servers. Run under LeakSanitizer to catch leaks on the
 * failure paths. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "test.h"

#include "internal.h"

/* A row with one member of each type, then a nullable one of each. Strings
 * come first so a later failing member has strings to free. */
typedef struct row {
    int64_t id;
    char *text;
    char *n_text;
    char *json;
    char *n_json;
    int32_t i32;
    int64_t i64;
    double f64;
    bool flag;
    int64_t ts;
    int32_t n_i32;
    bool n_i32_is_null;
    int64_t n_i64;
    bool n_i64_is_null;
    double n_f64;
    bool n_f64_is_null;
    bool n_flag;
    bool n_flag_is_null;
    int64_t n_ts;
    bool n_ts_is_null;
} row;

#define F(n, t, fl)                                                                      \
    {                                                                                    \
        .name = #n, .type = (t), .flags = (fl), .offset = offsetof(row, n)               \
    }
#define N(n, t)                                                                          \
    {                                                                                    \
        .name = #n, .type = (t), .flags = MEMO_FIELD_NULLABLE,                           \
        .offset = offsetof(row, n), .null_offset = offsetof(row, n##_is_null)            \
    }

static const memo_field_desc fields[] = {
    F(id, MEMO_INT64, MEMO_FIELD_PK),
    F(text, MEMO_TEXT, 0),
    F(n_text, MEMO_TEXT, MEMO_FIELD_NULLABLE),
    F(json, MEMO_JSON, 0),
    F(n_json, MEMO_JSON, MEMO_FIELD_NULLABLE),
    F(i32, MEMO_INT32, 0),
    F(i64, MEMO_INT64, 0),
    F(f64, MEMO_FLOAT64, 0),
    F(flag, MEMO_BOOL, 0),
    F(ts, MEMO_TIMESTAMP, 0),
    N(n_i32, MEMO_INT32),
    N(n_i64, MEMO_INT64),
    N(n_f64, MEMO_FLOAT64),
    N(n_flag, MEMO_BOOL),
    N(n_ts, MEMO_TIMESTAMP),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static const memo_entity_desc desc = {
    .abi = MEMO_ABI,
    .schema = "t",
    .name = "row",
    .table = "rows",
    .size = sizeof(row),
    .fields = fields,
    .nfields = NFIELDS,
    .pk = 0,
    .row = {.field = 0, .key = {.head = "row:", .tail = "", .tag = "0"}},
    .fingerprint = "0",
};

static char *xstrdup(const char *s)
{
    char *c = strdup(s);
    assert_non_null(c);
    return c;
}

/* A row with every member set and nothing null; the caller clears it. */
static void sample(row *r)
{
    memset(r, 0, sizeof *r);
    r->id = 42;
    r->text = xstrdup("hello");
    r->n_text = xstrdup("maybe");
    r->json = xstrdup("{\"a\":[1,2,{\"b\":null}]}");
    r->n_json = xstrdup("[]");
    r->i32 = -123456;
    r->i64 = 1234567890123LL;
    r->f64 = 3.25;
    r->flag = true;
    r->ts = 1700000000123456LL;
    r->n_i32 = 7;
    r->n_i64 = -8;
    r->n_f64 = 0.5;
    r->n_flag = true;
    r->n_ts = -1;
}

static void assert_zero(const row *r)
{
    static const row zero;
    assert_memory_equal(r, &zero, sizeof zero);
}

/* Every member, compared one by one (not through memop_row_equal, which is
 * tested on its own). Doubles bit for bit, but any NaN matches any NaN. */
static void assert_double_same(double got, double want)
{
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    assert_memory_equal(&got, &want, sizeof got);
}

static void assert_str_same(const char *got, const char *want)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
}

static void assert_rows_same(const row *got, const row *want)
{
    assert_int_equal(got->id, want->id);
    assert_str_same(got->text, want->text);
    assert_str_same(got->n_text, want->n_text);
    assert_str_same(got->json, want->json);
    assert_str_same(got->n_json, want->n_json);
    assert_int_equal(got->i32, want->i32);
    assert_int_equal(got->i64, want->i64);
    assert_double_same(got->f64, want->f64);
    assert_int_equal(got->flag, want->flag);
    assert_int_equal(got->ts, want->ts);
    assert_int_equal(got->n_i32_is_null, want->n_i32_is_null);
    assert_int_equal(got->n_i64_is_null, want->n_i64_is_null);
    assert_int_equal(got->n_f64_is_null, want->n_f64_is_null);
    assert_int_equal(got->n_flag_is_null, want->n_flag_is_null);
    assert_int_equal(got->n_ts_is_null, want->n_ts_is_null);
    /* a null member's value is not carried */
    if (!want->n_i32_is_null)
        assert_int_equal(got->n_i32, want->n_i32);
    if (!want->n_i64_is_null)
        assert_int_equal(got->n_i64, want->n_i64);
    if (!want->n_f64_is_null)
        assert_double_same(got->n_f64, want->n_f64);
    if (!want->n_flag_is_null)
        assert_int_equal(got->n_flag, want->n_flag);
    if (!want->n_ts_is_null)
        assert_int_equal(got->n_ts, want->n_ts);
}

/* Encodes `in`, decodes into `out` (zeroed first); the encoded text stays in
 * buf for the caller to look at. */
static void round_trip(const row *in, row *out, memop_buf *buf)
{
    assert_int_equal(memop_row_encode(&desc, in, buf), MEMO_OK);
    assert_false(buf->failed);
    assert_int_equal(buf->len, strlen(buf->s));
    memset(out, 0, sizeof *out);
    char why[256] = "";
    memo_status st = memop_row_decode(&desc, buf->s, buf->len, out, why, sizeof why);
    if (st != MEMO_OK)
        fail_msg("decode of %.200s: %s", buf->s, why);
    assert_rows_same(out, in);
}

/* The encoded member `name` as jansson sees it; the caller decrefs. */
static json_t *member(const memop_buf *buf, const char *name)
{
    json_error_t e;
    json_t *obj = json_loadb(buf->s, buf->len, 0, &e);
    if (!obj)
        fail_msg("encoded value is not JSON: %s", e.text);
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), NFIELDS);
    json_t *v = json_object_get(obj, name);
    assert_non_null(v);
    json_incref(v);
    json_decref(obj);
    return v;
}

/* --------------------------------------------------------------- round trip */

static void test_round_trip_every_type(void **state)
{
    (void)state;
    row in, out;
    memop_buf buf = {0};
    sample(&in);
    round_trip(&in, &out, &buf);

    /* the members have the JSON types a reader expects */
    json_t *v = member(&buf, "i32");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), -123456);
    json_decref(v);
    v = member(&buf, "flag");
    assert_true(json_is_true(v));
    json_decref(v);
    v = member(&buf, "f64");
    assert_true(json_is_real(v));
    json_decref(v);
    v = member(&buf, "json");
    assert_true(json_is_string(v)); /* JSON text, kept as text */
    assert_string_equal(json_string_value(v), in.json);
    json_decref(v);
    v = member(&buf, "ts");
    assert_int_equal(json_integer_value(v), 1700000000123456LL);
    json_decref(v);

    /* the decoded strings are the row's own */
    assert_ptr_not_equal(out.text, in.text);
    memo_row_clear(&desc, &out);
    memo_row_clear(&desc, &in);
    assert_zero(&in);
    memop_buf_free(&buf);
}

/* Encoding into a used buffer replaces what it held. */
static void test_encode_replaces_buffer(void **state)
{
    (void)state;
    row in;
    memop_buf buf = {0};
    sample(&in);
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);
    char *first = xstrdup(buf.s);
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);
    assert_string_equal(buf.s, first);
    assert_int_equal(buf.len, strlen(first));
    free(first);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

static void test_nulls(void **state)
{
    (void)state;
    row in, out;
    memop_buf buf = {0};
    sample(&in);
    free(in.n_text);
    free(in.n_json);
    in.n_text = in.n_json = NULL;
    /* the flag decides, whatever the value beside it says */
    in.n_i32_is_null = in.n_i64_is_null = in.n_f64_is_null = in.n_flag_is_null =
        in.n_ts_is_null = true;
    round_trip(&in, &out, &buf);

    static const char *const nullable[] = {"n_text", "n_json", "n_i32", "n_i64",
                                           "n_f64",  "n_flag", "n_ts"};
    for (size_t i = 0; i < sizeof nullable / sizeof nullable[0]; i++) {
        json_t *v = member(&buf, nullable[i]);
        if (!json_is_null(v))
            fail_msg("%s is not null in %s", nullable[i], buf.s);
        json_decref(v);
    }
    assert_null(out.n_text);
    assert_null(out.n_json);
    assert_true(out.n_i32_is_null && out.n_i64_is_null && out.n_f64_is_null &&
                out.n_flag_is_null && out.n_ts_is_null);
    assert_int_equal(out.n_i32, 0);
    assert_int_equal(out.n_ts, 0);
    memo_row_clear(&desc, &out);

    /* not null, and zero: a value, not a null */
    in.n_i32_is_null = in.n_i64_is_null = in.n_f64_is_null = in.n_flag_is_null =
        in.n_ts_is_null = false;
    in.n_i32 = 0;
    in.n_i64 = 0;
    in.n_f64 = 0;
    in.n_flag = false;
    in.n_ts = 0;
    in.n_text = xstrdup("");
    round_trip(&in, &out, &buf);
    json_t *v = member(&buf, "n_i32");
    assert_true(json_is_integer(v));
    json_decref(v);
    v = member(&buf, "n_flag");
    assert_true(json_is_false(v));
    json_decref(v);
    assert_non_null(out.n_text);
    assert_string_equal(out.n_text, "");
    assert_false(out.n_i32_is_null);
    memo_row_clear(&desc, &out);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

static void test_strings(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87",
        "\"quoted\" 'single' \\back\\slash\\ /slash/",
        "\x01\x02\x03\b\f\n\r\t\x1f\x7f end",
        "\\u0000 is not a NUL here",
        "{\"looks\": \"like json\"}",
        "null",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        row in, out;
        memop_buf buf = {0};
        sample(&in);
        free(in.text);
        free(in.n_json);
        in.text = xstrdup(cases[i]);
        in.n_json = xstrdup(cases[i]);
        round_trip(&in, &out, &buf);
        memo_row_clear(&desc, &out);
        memo_row_clear(&desc, &in);
        memop_buf_free(&buf);
    }
}

static void test_large_text(void **state)
{
    (void)state;
    row in, out;
    memop_buf buf = {0};
    sample(&in);
    free(in.text);
    size_t n = 100 * 1024;
    in.text = malloc(n + 1);
    assert_non_null(in.text);
    for (size_t i = 0; i < n; i++)
        in.text[i] = (char)('a' + i % 26);
    in.text[n - 1] = '"'; /* one escape at the very end */
    in.text[n] = '\0';
    round_trip(&in, &out, &buf);
    assert_int_equal(strlen(out.text), n);
    assert_true(buf.len > n);
    memo_row_clear(&desc, &out);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

/* Text that is not UTF-8 cannot be a JSON string: refused, not mangled. */
static void test_encode_refuses_bad_utf8(void **state)
{
    (void)state;
    row in;
    memop_buf buf = {0};
    sample(&in);
    free(in.text);
    in.text = xstrdup("bad \xff\xfe byte");
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_ERR_ARG);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

static void test_integer_extremes(void **state)
{
    (void)state;
    static const int32_t i32[] = {0, 1, -1, INT32_MAX, INT32_MIN};
    static const int64_t i64[] = {0,
                                  -1,
                                  INT64_MAX,
                                  INT64_MIN,
                                  INT64_MAX - 1,
                                  INT64_MIN + 1,
                                  9007199254740993LL /* 2^53 + 1 */};
    for (size_t i = 0; i < sizeof i64 / sizeof i64[0]; i++) {
        row in, out;
        memop_buf buf = {0};
        sample(&in);
        in.i32 = i32[i % 5];
        in.n_i32 = i32[(i + 1) % 5];
        in.id = in.i64 = in.n_i64 = i64[i];
        in.ts = in.n_ts = i64[i];
        round_trip(&in, &out, &buf);
        memo_row_clear(&desc, &out);
        memo_row_clear(&desc, &in);
        memop_buf_free(&buf);
    }
}

static void test_doubles(void **state)
{
    (void)state;
    const double cases[] = {0.0,
                            -0.0,
                            0.1,
                            -0.1,
                            1.0 / 3.0,
                            1e308,
                            -1e308,
                            DBL_MAX,
                            -DBL_MAX,
                            DBL_MIN,
                            5e-324,
                            1e-300,
                            123456789012345678.0,
                            2.5,
                            NAN,
                            INFINITY,
                            -INFINITY,
                            9007199254740993.0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        row in, out;
        memop_buf buf = {0};
        sample(&in);
        in.f64 = in.n_f64 = cases[i];
        round_trip(&in, &out, &buf);
        if (cases[i] == 0)
            assert_int_equal(!!signbit(out.f64), !!signbit(cases[i]));

        /* JSON has no NaN or infinities: they travel as strings */
        json_t *v = member(&buf, "f64");
        if (isnan(cases[i]))
            assert_string_equal(json_string_value(v), "NaN");
        else if (isinf(cases[i]))
            assert_string_equal(json_string_value(v),
                                cases[i] > 0 ? "Infinity" : "-Infinity");
        else
            assert_true(json_is_real(v));
        json_decref(v);
        memo_row_clear(&desc, &out);
        memo_row_clear(&desc, &in);
        memop_buf_free(&buf);
    }
}

/* A float member written as a JSON integer (by another writer) is read. */
static void test_double_from_integer(void **state)
{
    (void)state;
    row in, out;
    memop_buf buf = {0};
    sample(&in);
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);
    json_t *obj = json_loadb(buf.s, buf.len, 0, NULL);
    assert_non_null(obj);
    json_object_set_new(obj, "f64", json_integer(-17));
    char *s = json_dumps(obj, JSON_COMPACT);
    memset(&out, 0, sizeof out);
    char why[256];
    assert_int_equal(memop_row_decode(&desc, s, strlen(s), &out, why, sizeof why),
                     MEMO_OK);
    assert_true(out.f64 == -17.0);
    free(s);
    json_decref(obj);
    memo_row_clear(&desc, &out);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

/* ----------------------------------------------------------------- refusal */

/* Decodes data into a zeroed row: MEMO_ERR_ARG, a reason holding `reason`,
 * and the row zeroed again (strings decoded before the failure freed; the
 * leak checker sees it if not). */
static void assert_refused(const char *data, size_t len, const char *reason)
{
    row out;
    memset(&out, 0, sizeof out);
    char why[256] = "";
    memo_status st = memop_row_decode(&desc, data, len, &out, why, sizeof why);
    if (st != MEMO_ERR_ARG)
        fail_msg("%.200s: status %d, want MEMO_ERR_ARG", data, st);
    if (!strstr(why, reason))
        fail_msg("%.200s: reason \"%s\" does not say \"%s\"", data, why, reason);
    assert_zero(&out);
}

/* The sample row's JSON with member `name` replaced by v (NULL: removed),
 * refused for `reason`. Takes v. */
static void assert_member_refused(const char *name, json_t *v, const char *reason)
{
    row in;
    memop_buf buf = {0};
    sample(&in);
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);
    json_t *obj = json_loadb(buf.s, buf.len, 0, NULL);
    assert_non_null(obj);
    if (v)
        assert_int_equal(json_object_set_new(obj, name, v), 0);
    else
        assert_int_equal(json_object_del(obj, name), 0);
    char *s = json_dumps(obj, JSON_COMPACT);
    assert_non_null(s);
    assert_refused(s, strlen(s), reason);
    free(s);
    json_decref(obj);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

/* The reader scans strings eight bytes at a time: each kind of byte that
 * ends a plain run (a quote, a backslash, a control character, UTF-8, and
 * DEL, which does not) at every offset of a string of every length up to
 * 40 round-trips; raw, a control character or a bad UTF-8 byte there is
 * refused. */
static void test_string_every_offset(void **state)
{
    (void)state;
    static const char *const specials[] = {"\"",   "\\",       "\n",
                                           "\x7f", "\xc3\xa9", "\xf0\x9f\x98\x80"};
    for (size_t len = 0; len <= 40; len++)
        for (size_t at = 0; at <= len; at++)
            for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
                char text[64];
                memset(text, 'a', len);
                size_t sl = strlen(specials[k]);
                memcpy(text + at, specials[k], sl);
                text[at + sl + (len - at)] = '\0';
                memset(text + at + sl, 'b', len - at);
                row in, out;
                memop_buf buf = {0};
                sample(&in);
                free(in.text);
                in.text = xstrdup(text);
                round_trip(&in, &out, &buf);
                memo_row_clear(&desc, &out);
                memo_row_clear(&desc, &in);
                memop_buf_free(&buf);
            }
    /* the sample row's JSON, its text member's value replaced */
    row in;
    memop_buf buf = {0};
    sample(&in);
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);
    const char *at_text = strstr(buf.s, "\"hello\"");
    assert_non_null(at_text);
    size_t before = (size_t)(at_text - buf.s) + 1, after_at = before + 5;
    static const char *const raw[] = {"\x01", "\x1f", "\xff", "\xc3("};
    for (size_t len = 0; len <= 24; len++)
        for (size_t at = 0; at <= len; at++)
            for (size_t k = 0; k < sizeof raw / sizeof raw[0]; k++) {
                char data[1024], text[40];
                memset(text, 'a', len);
                text[len] = '\0';
                int n = snprintf(data, sizeof data, "%.*s%.*s%s%s%s", (int)before, buf.s,
                                 (int)at, text, raw[k], text + at, buf.s + after_at);
                assert_true(n > 0 && (size_t)n < sizeof data);
                assert_refused(data, (size_t)n, "not JSON");
                /* and the same bytes as plain ones decode */
                n = snprintf(data, sizeof data, "%.*s%.*s%s%s", (int)before, buf.s,
                             (int)at, text, text + at, buf.s + after_at);
                row out;
                char why[128];
                assert_int_equal(
                    memop_row_decode(&desc, data, (size_t)n, &out, why, sizeof why),
                    MEMO_OK);
                assert_int_equal(strlen(out.text), len);
                memo_row_clear(&desc, &out);
            }
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

static void test_decode_refuses_non_objects(void **state)
{
    (void)state;
    static const char *const docs[] = {"", "{", "nonsense", "{\"id\":1,}", "'x'"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        assert_refused(docs[i], strlen(docs[i]), "not JSON");
    assert_refused("[1,2]", 5, "not a JSON object");
    assert_refused("[]", 2, "not a JSON object");
    /* the negative-cache literal is not a row */
    assert_refused(memop_null_value, strlen(memop_null_value), "");
    assert_refused("42", 2, "");
    assert_refused("\"row\"", 5, "");
    /* the length is obeyed: a valid prefix of a longer buffer is cut */
    assert_refused("{}", 1, "not JSON");
}

static void test_decode_refuses_trailing_and_duplicates(void **state)
{
    (void)state;
    row in;
    memop_buf buf = {0};
    sample(&in);
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);

    /* something after the object */
    memop_buf_puts(&buf, " x");
    assert_refused(buf.s, buf.len, "not JSON");

    /* a member twice: which one would win? */
    buf.len -= 3; /* drop " x" and the closing brace */
    buf.s[buf.len] = '\0';
    memop_buf_puts(&buf, ",\"id\":43}");
    assert_refused(buf.s, buf.len, "not JSON");

    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

static void test_decode_refuses_missing_members(void **state)
{
    (void)state;
    for (size_t i = 0; i < NFIELDS; i++) {
        char reason[64];
        snprintf(reason, sizeof reason, "member \"%s\" is missing", fields[i].name);
        assert_member_refused(fields[i].name, NULL, reason);
    }
    assert_refused("{}", 2, "member \"id\" is missing");
}

static void test_decode_refuses_wrong_types(void **state)
{
    (void)state;
    assert_member_refused("id", json_string("42"), "member \"id\" is not a valid value");
    assert_member_refused("id", json_real(42.0), "member \"id\"");
    assert_member_refused("i32", json_string("5"), "member \"i32\" is not a valid");
    assert_member_refused("i32", json_real(1.5), "member \"i32\"");
    assert_member_refused("i32", json_true(), "member \"i32\"");
    assert_member_refused("i64", json_array(), "member \"i64\"");
    assert_member_refused("ts", json_string("2024-01-01T00:00:00Z"), "member \"ts\"");
    assert_member_refused("ts", json_real(1.0), "member \"ts\"");
    assert_member_refused("flag", json_integer(1), "member \"flag\"");
    assert_member_refused("flag", json_string("true"), "member \"flag\"");
    assert_member_refused("f64", json_string("nan"), "member \"f64\"");
    assert_member_refused("f64", json_string("1.5"), "member \"f64\"");
    assert_member_refused("f64", json_false(), "member \"f64\"");
    assert_member_refused("text", json_integer(1), "member \"text\"");
    assert_member_refused("text", json_object(), "member \"text\"");
    assert_member_refused("json", json_object(), "member \"json\"");
    assert_member_refused("n_text", json_integer(0),
                          "member \"n_text\" is not a valid value or null");
    assert_member_refused("n_i32", json_string("0"),
                          "member \"n_i32\" is not a valid value or null");
    assert_member_refused("n_ts", json_real(0.5), "member \"n_ts\"");
    /* a C string cannot hold a NUL (jansson or the codec refuses it) */
    assert_member_refused("text", json_stringn("a\0b", 3), "");
    assert_member_refused("n_json", json_stringn("\0", 1), "");
}

static void test_decode_refuses_int32_out_of_range(void **state)
{
    (void)state;
    json_int_t max = INT32_MAX, min = INT32_MIN;
    assert_member_refused("i32", json_integer(max + 1), "member \"i32\"");
    assert_member_refused("i32", json_integer(min - 1), "member \"i32\"");
    assert_member_refused("n_i32", json_integer(INT64_MAX), "member \"n_i32\"");
    assert_member_refused("n_i32", json_integer(INT64_MIN), "member \"n_i32\"");
}

static void test_decode_refuses_null_for_non_nullable(void **state)
{
    (void)state;
    static const char *const names[] = {"id",  "text", "json", "i32",
                                        "i64", "f64",  "flag", "ts"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char reason[64];
        snprintf(reason, sizeof reason, "member \"%s\" is not a valid value", names[i]);
        assert_member_refused(names[i], json_null(), reason);
    }
}

/* A value too large for a double is not a row (jansson refuses it). */
static void test_decode_refuses_overflowing_double(void **state)
{
    (void)state;
    row in;
    memop_buf buf = {0};
    sample(&in);
    in.f64 = 1.5;
    assert_int_equal(memop_row_encode(&desc, &in, &buf), MEMO_OK);
    char *at = strstr(buf.s, "\"f64\":1.5");
    assert_non_null(at);
    memop_buf big = {0};
    memop_buf_append(&big, buf.s, (size_t)(at - buf.s));
    memop_buf_puts(&big, "\"f64\":1e999");
    memop_buf_puts(&big, at + strlen("\"f64\":1.5"));
    assert_refused(big.s, big.len, "not JSON");
    memop_buf_free(&big);
    memo_row_clear(&desc, &in);
    memop_buf_free(&buf);
}

/* ----------------------------------------------------- copy, equal, clear */

static void test_copy(void **state)
{
    (void)state;
    row a, b;
    sample(&a);
    free(a.n_json);
    a.n_json = NULL;
    a.n_ts_is_null = true;
    assert_int_equal(memop_row_copy(&desc, &a, &b), MEMO_OK);
    assert_rows_same(&b, &a);
    /* deep: the copy owns its strings */
    assert_ptr_not_equal(b.text, a.text);
    assert_ptr_not_equal(b.n_text, a.n_text);
    assert_ptr_not_equal(b.json, a.json);
    assert_null(b.n_json);
    a.text[0] = 'J';
    assert_string_equal(b.text, "hello");
    assert_true(memop_row_equal(&desc, &a, &a));
    memo_row_clear(&desc, &a);
    assert_string_equal(b.json, "{\"a\":[1,2,{\"b\":null}]}");
    memo_row_clear(&desc, &b);
    assert_zero(&b);
}

/* Changes member i of r so that it differs from the sample. */
static void mutate(row *r, size_t i)
{
    switch (i) {
    case 0:
        r->id++;
        break;
    case 1:
        r->text[0] = 'H';
        break;
    case 2:
        r->n_text[0] = 'M';
        break;
    case 3:
        r->json[1] = 'x';
        break;
    case 4:
        free(r->n_json);
        r->n_json = xstrdup("[ ]");
        break;
    case 5:
        r->i32 = -r->i32;
        break;
    case 6:
        r->i64 ^= 1;
        break;
    case 7:
        r->f64 = nextafter(r->f64, 10);
        break;
    case 8:
        r->flag = !r->flag;
        break;
    case 9:
        r->ts++;
        break;
    case 10:
        r->n_i32++;
        break;
    case 11:
        r->n_i64 = INT64_MIN;
        break;
    case 12:
        r->n_f64 = -r->n_f64;
        break;
    case 13:
        r->n_flag = false;
        break;
    case 14:
        r->n_ts = 0;
        break;
    default:
        fail();
    }
}

static void test_equal_each_member(void **state)
{
    (void)state;
    row a, b;
    sample(&a);
    sample(&b);
    assert_true(memop_row_equal(&desc, &a, &b));
    memo_row_clear(&desc, &b);
    for (size_t i = 0; i < NFIELDS; i++) {
        sample(&b);
        mutate(&b, i);
        if (memop_row_equal(&desc, &a, &b) || memop_row_equal(&desc, &b, &a))
            fail_msg("a change of %s is not seen", fields[i].name);
        memo_row_clear(&desc, &b);
    }
    memo_row_clear(&desc, &a);
}

static void test_equal_nulls(void **state)
{
    (void)state;
    row a, b;
    sample(&a);
    sample(&b);

    /* null against a value, either way round */
    b.n_i32_is_null = true;
    assert_false(memop_row_equal(&desc, &a, &b));
    assert_false(memop_row_equal(&desc, &b, &a));
    /* both null: the values beside the flags do not matter */
    a.n_i32_is_null = true;
    b.n_i32 = 999;
    assert_true(memop_row_equal(&desc, &a, &b));

    /* a NULL string is not the empty string */
    free(a.n_text);
    free(b.n_text);
    a.n_text = NULL;
    b.n_text = xstrdup("");
    assert_false(memop_row_equal(&desc, &a, &b));
    assert_false(memop_row_equal(&desc, &b, &a));
    free(b.n_text);
    b.n_text = NULL;
    assert_true(memop_row_equal(&desc, &a, &b));

    /* NaN equals NaN here: a cached NaN is as fresh as the database's */
    a.f64 = NAN;
    b.f64 = NAN;
    assert_true(memop_row_equal(&desc, &a, &b));
    b.f64 = 0;
    assert_false(memop_row_equal(&desc, &a, &b));
    memo_row_clear(&desc, &a);
    memo_row_clear(&desc, &b);
}

static void test_clear_accepts_null(void **state)
{
    (void)state;
    row r;
    memo_row_clear(NULL, &r);
    memo_row_clear(&desc, NULL);
    memo_row_clear(NULL, NULL);
    memo_rows rows = {0};
    memo_rows_clear(NULL, &rows);
    memo_rows_clear(&desc, NULL);
    memo_rows_clear(NULL, NULL);
    memo_rows_clear(&desc, &rows); /* empty */
    assert_null(rows.items);
    assert_int_equal(rows.len, 0);

    /* a cleared row is zero, and clearing it again is harmless */
    sample(&r);
    memo_row_clear(&desc, &r);
    assert_zero(&r);
    memo_row_clear(&desc, &r);
    assert_zero(&r);
}

static void test_rows_clear(void **state)
{
    (void)state;
    memo_rows rows = {.items = calloc(3, sizeof(row)), .len = 3};
    assert_non_null(rows.items);
    row *r = rows.items;
    for (size_t i = 0; i < 3; i++)
        sample(&r[i]);
    memo_rows_clear(&desc, &rows); /* LeakSanitizer checks the strings went */
    assert_null(rows.items);
    assert_int_equal(rows.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_encode_replaces_buffer),
        cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_string_every_offset),
        cmocka_unit_test(test_large_text),
        cmocka_unit_test(test_encode_refuses_bad_utf8),
        cmocka_unit_test(test_integer_extremes),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_double_from_integer),
        cmocka_unit_test(test_decode_refuses_non_objects),
        cmocka_unit_test(test_decode_refuses_trailing_and_duplicates),
        cmocka_unit_test(test_decode_refuses_missing_members),
        cmocka_unit_test(test_decode_refuses_wrong_types),
        cmocka_unit_test(test_decode_refuses_int32_out_of_range),
        cmocka_unit_test(test_decode_refuses_null_for_non_nullable),
        cmocka_unit_test(test_decode_refuses_overflowing_double),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_equal_each_member),
        cmocka_unit_test(test_equal_nulls),
        cmocka_unit_test(test_clear_accepts_null),
        cmocka_unit_test(test_rows_clear),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
