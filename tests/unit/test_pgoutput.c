/* pgoutput messages (protocol 1, binary tuples), as memo watch reads them
 * from a replication slot: each kind parsed from bytes laid out as
 * PostgreSQL's documentation says, and every cut, overlong or garbled
 * message refused whole. Pure: no servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "internal.h"

/* A message under construction, big-endian as on the wire. */
typedef struct msg {
    char b[512];
    size_t n;
} msg;

static void u8(msg *m, unsigned v)
{
    m->b[m->n++] = (char)v;
}

static void be(msg *m, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        u8(m, (unsigned)(v >> (8 * i)) & 0xff);
}

static void cstr(msg *m, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(m->b + m->n, s, n);
    m->n += n;
}

static void bin(msg *m, const char *data, int len)
{
    u8(m, 'b');
    be(m, (uint64_t)len, 4);
    memcpy(m->b + m->n, data, (size_t)len);
    m->n += (size_t)len;
}

static bool parse(memop_pgparser *ps, const msg *m, memop_pgmsg *out)
{
    return memop_pgoutput_parse(ps, m->b, m->n, out);
}

static void begin_and_commit(void **state)
{
    (void)state;
    memop_pgparser ps = {0};
    memop_pgmsg out;
    msg b = {.n = 0};
    u8(&b, 'B');
    be(&b, 0x100000200ull, 8); /* final LSN */
    be(&b, 123456789, 8);      /* commit time */
    be(&b, 77, 4);             /* xid */
    assert_true(parse(&ps, &b, &out));
    assert_int_equal(out.type, 'B');
    assert_int_equal(out.lsn, 0x100000200ull);
    assert_int_equal(out.ts, 123456789);
    assert_int_equal(out.xid, 77);

    msg c = {.n = 0};
    u8(&c, 'C');
    u8(&c, 0);                 /* flags */
    be(&c, 0x100000200ull, 8); /* commit LSN */
    be(&c, 0x100000238ull, 8); /* end LSN */
    be(&c, 123456789, 8);
    assert_true(parse(&ps, &c, &out));
    assert_int_equal(out.type, 'C');
    assert_int_equal(out.lsn, 0x100000200ull);
    assert_int_equal(out.end_lsn, 0x100000238ull);
    memop_pgparser_free(&ps);
}

/* Relation users (id int8 key, email text, bio text) */
static msg relation(void)
{
    msg r = {.n = 0};
    u8(&r, 'R');
    be(&r, 16384, 4);
    cstr(&r, "public");
    cstr(&r, "users");
    u8(&r, 'f');
    be(&r, 3, 2);
    const char *names[] = {"id", "email", "bio"};
    uint32_t types[] = {20, 25, 25};
    for (int i = 0; i < 3; i++) {
        u8(&r, i == 0);
        cstr(&r, names[i]);
        be(&r, types[i], 4);
        be(&r, 0xffffffffu, 4); /* typmod -1 */
    }
    return r;
}

static void relation_message(void **state)
{
    (void)state;
    memop_pgparser ps = {0};
    memop_pgmsg out;
    msg r = relation();
    assert_true(parse(&ps, &r, &out));
    assert_int_equal(out.type, 'R');
    assert_int_equal(out.relid, 16384);
    assert_string_equal(out.nspname, "public");
    assert_string_equal(out.relname, "users");
    assert_int_equal(out.replident, 'f');
    assert_int_equal(out.ncols, 3);
    assert_string_equal(out.cols[1].name, "email");
    assert_int_equal(out.cols[0].type, 20);
    assert_true(out.cols[0].key);
    assert_false(out.cols[2].key);
    memop_pgparser_free(&ps);
}

/* old (id 7, "a@x", TOASTed unchanged) -> new (id 7, "b@x", null) */
static msg update(void)
{
    msg u = {.n = 0};
    u8(&u, 'U');
    be(&u, 16384, 4);
    u8(&u, 'O');
    be(&u, 3, 2);
    bin(&u, "\0\0\0\0\0\0\0\7", 8);
    bin(&u, "a@x", 3);
    u8(&u, 'u');
    u8(&u, 'N');
    be(&u, 3, 2);
    bin(&u, "\0\0\0\0\0\0\0\7", 8);
    bin(&u, "b@x", 3);
    u8(&u, 'n');
    return u;
}

static void changes(void **state)
{
    (void)state;
    memop_pgparser ps = {0};
    memop_pgmsg out;
    msg u = update();
    assert_true(parse(&ps, &u, &out));
    assert_int_equal(out.type, 'U');
    assert_int_equal(out.relid, 16384);
    assert_int_equal(out.old_kind, 'O');
    assert_int_equal(out.nold, 3);
    assert_int_equal(out.nnew, 3);
    assert_int_equal(out.old[1].kind, 'b');
    assert_int_equal(out.old[1].len, 3);
    assert_memory_equal(out.old[1].data, "a@x", 3);
    assert_int_equal(out.old[2].kind, 'u');
    assert_memory_equal(out.new[1].data, "b@x", 3);
    assert_int_equal(out.new[2].kind, 'n');

    /* an update that logged no old values */
    msg plain = {.n = 0};
    u8(&plain, 'U');
    be(&plain, 16384, 4);
    u8(&plain, 'N');
    be(&plain, 1, 2);
    bin(&plain, "\0\0\0\0\0\0\0\7", 8);
    assert_true(parse(&ps, &plain, &out));
    assert_int_equal(out.old_kind, 0);
    assert_null(out.old);
    assert_int_equal(out.nnew, 1);

    msg ins = {.n = 0};
    u8(&ins, 'I');
    be(&ins, 16384, 4);
    u8(&ins, 'N');
    be(&ins, 1, 2);
    bin(&ins, "\0\0\0\0\0\0\0\10", 8);
    assert_true(parse(&ps, &ins, &out));
    assert_int_equal(out.type, 'I');
    assert_memory_equal(out.new[0].data, "\0\0\0\0\0\0\0\10", 8);

    msg del = {.n = 0};
    u8(&del, 'D');
    be(&del, 16384, 4);
    u8(&del, 'K');
    be(&del, 1, 2);
    bin(&del, "\0\0\0\0\0\0\0\10", 8);
    assert_true(parse(&ps, &del, &out));
    assert_int_equal(out.type, 'D');
    assert_int_equal(out.old_kind, 'K');
    assert_null(out.new);

    msg t = {.n = 0};
    u8(&t, 'T');
    be(&t, 2, 4);
    u8(&t, 0);
    be(&t, 16384, 4);
    be(&t, 0x01020304, 4);
    assert_true(parse(&ps, &t, &out));
    assert_int_equal(out.nrels, 2);
    assert_int_equal(memop_pgoutput_relid(&out, 0), 16384);
    assert_int_equal(memop_pgoutput_relid(&out, 1), 0x01020304);
    memop_pgparser_free(&ps);
}

/* Every prefix of a valid message is refused, as is one byte more; so is a
 * length that runs past the end, a column kind that does not exist, a
 * tuple without its 'N', and a message type of another protocol. */
static void refused_whole(void **state)
{
    (void)state;
    memop_pgparser ps = {0};
    memop_pgmsg out;
    msg all[] = {relation(), update()};
    for (size_t k = 0; k < 2; k++) {
        msg m = all[k];
        for (size_t n = 0; n < m.n; n++)
            assert_false(memop_pgoutput_parse(&ps, m.b, n, &out));
        m.b[m.n++] = 0;
        assert_false(parse(&ps, &m, &out));
    }

    msg u = update();
    u.b[1 + 4 + 1 + 2 + 1] = 0x7f; /* the first column's length: far beyond the end */
    assert_false(parse(&ps, &u, &out));

    u = update();
    u.b[1 + 4 + 1 + 2] = 'x'; /* a kind that does not exist */
    assert_false(parse(&ps, &u, &out));

    msg ins = {.n = 0};
    u8(&ins, 'I');
    be(&ins, 1, 4);
    u8(&ins, 'O'); /* an insert has no old tuple */
    be(&ins, 0, 2);
    assert_false(parse(&ps, &ins, &out));

    msg t = {.n = 0};
    u8(&t, 'T');
    be(&t, 0x40000000, 4); /* a billion relations in a few bytes */
    u8(&t, 0);
    be(&t, 1, 4);
    assert_false(parse(&ps, &t, &out));

    msg s = {.n = 0};
    u8(&s, 'S'); /* streamed transactions: protocol 2 */
    be(&s, 1, 4);
    assert_false(parse(&ps, &s, &out));

    /* a relation that is not NUL-terminated */
    msg r = {.n = 0};
    u8(&r, 'R');
    be(&r, 1, 4);
    memcpy(r.b + r.n, "public", 6);
    r.n += 6;
    assert_false(parse(&ps, &r, &out));
    memop_pgparser_free(&ps);
}

/* Random bytes, and valid messages with random bytes changed: parsed or
 * refused, never read beyond their length (AddressSanitizer watches: each
 * message is a heap block of exactly its size). */
static void garbage(void **state)
{
    (void)state;
    memop_pgparser ps = {0};
    memop_pgmsg out;
    srand(7);
    const char types[] = "BCORIUDTY";
    msg base[] = {relation(), update()};
    for (int round = 0; round < 20000; round++) {
        size_t n;
        char *buf;
        if (round % 2) {
            n = (size_t)(rand() % 64);
            buf = malloc(n ? n : 1);
            for (size_t i = 0; i < n; i++)
                buf[i] = (char)rand();
            if (n)
                buf[0] = types[rand() % 9];
        } else {
            const msg *m = &base[rand() % 2];
            n = m->n;
            buf = malloc(n);
            memcpy(buf, m->b, n);
            for (int k = 0; k < 3; k++)
                buf[rand() % n] = (char)rand();
        }
        if (memop_pgoutput_parse(&ps, buf, n, &out) && (out.old || out.new)) {
            /* what parsed points inside the message */
            for (int i = 0; i < out.nold; i++)
                assert_true(!out.old[i].data ||
                            (out.old[i].data >= buf &&
                             out.old[i].data + out.old[i].len <= buf + n));
            for (int i = 0; i < out.nnew; i++)
                assert_true(!out.new[i].data ||
                            (out.new[i].data >= buf &&out.new[i].data + out.new[i].len <=
                             buf + n));
        }
        free(buf);
    }
    memop_pgparser_free(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(begin_and_commit), cmocka_unit_test(relation_message),
        cmocka_unit_test(changes),          cmocka_unit_test(refused_whole),
        cmocka_unit_test(garbage),
    };
    return cmocka_run_group_tests_name("pgoutput", tests, NULL, NULL);
}
