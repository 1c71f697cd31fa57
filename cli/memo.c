/* memo: see and steer a memo cache without writing code.
 *
 *   memo [--schema FILE] [--redis URL] [--db URL] COMMAND ...
 *
 * It reads a schema file with memoc's own front end and builds the same
 * descriptors the generated code has, so it addresses the same keys; it
 * talks to Redis and PostgreSQL through libmemo. Exit status: 0 done, 1 the
 * command found a problem (a stale entry, an unreachable server), 2 usage. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ast.h"
#include "check.h"
#include "diag.h"
#include "internal.h"
#include "lex.h"
#include "lower.h"
#include "shared.h"

static const char usage[] =
    "usage: memo [--schema FILE] [--redis URL] [--db URL] COMMAND [ARGS]\n"
    "\n"
    "  ping [--warn-retained BYTES] round trips and versions of Redis and PostgreSQL,\n"
    "                               entries left by an older schema, and what memo "
    "watch\n"
    "                               needs: wal_level, REPLICATION, the publication, and\n"
    "                               every memo_* replication slot with the WAL it keeps\n"
    "                               (exit status 1 past BYTES, 1 GiB unless given)\n"
    "  stats [--json|--prom] [--watch SECONDS [--count N]]\n"
    "                               statistics summed over every process using this "
    "Redis;\n"
    "                               --watch: a table every SECONDS (0.1 to 3600), N "
    "times\n"
    "  get ENTITY KEY... [--json]   what the cache holds next to what the database "
    "holds;\n"
    "                               KEY is a primary key (a composite one as a JSON\n"
    "                               array: '[7,3]'), FIELD=VALUE for a cached "
    "lookup,\n"
    "                               or LIST=VALUE for a list; the entry is none, a "
    "value,\n"
    "                               negative (the row does not exist) or corrupt (shown\n"
    "                               escaped; exit status 1), \"entry\" in --json\n"
    "  flush ENTITY [--list NAME]   drop an entity's entries (SCAN + UNLINK)\n"
    "  flush --all                  drop every entity's entries\n"
    "  warm ENTITY (--ids FILE | --top N) [--json]\n"
    "                               load rows through the cache (leases respected);\n"
    "                               FILE: a key a line (composite: a JSON array);\n"
    "                               --top N: the N rows with the highest primary keys\n"
    "                               (N from 1 to 10000000)\n"
    "  watch [--slot NAME]          follow PostgreSQL's change stream and delete the "
    "keys\n"
    "                               every committed change makes stale, until SIGTERM "
    "or\n"
    "                               SIGINT (slot memo_SCHEMA; see docs/watch.md)\n"
    "  watch --drop-slot [--slot NAME]\n"
    "                               drop the replication slot, which keeps WAL while it\n"
    "                               exists\n"
    "\n"
    "The schema is the .memo file the application's code was generated from\n"
    "(--schema, else MEMO_SCHEMA); `stats` needs none. Servers come from --redis and\n"
    "--db, else the environment memo_config_from_env() reads: MEMO_REDIS_URL or\n"
    "REDIS_URL, MEMO_DATABASE_URL or DATABASE_URL, MEMO_KEY_PREFIX.\n";

static memo_repo *repo;
static model *mdl;
static const char *schema_name;

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("memo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------ untrusted text */

/* What Redis holds is untrusted; shown, it goes through here. Printable
 * ASCII stays, a backslash doubles, every other byte becomes \xHH: no
 * control character (ESC, CR, newline) and no invalid UTF-8 reaches a
 * terminal or a JSON string. At most max bytes of s are shown, then "...".
 * malloc'd; the caller frees. */
static char *escaped(const char *s, size_t len, size_t max)
{
    memop_buf b = {0};
    memop_buf_puts(&b, "");
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            memop_buf_puts(&b, "\\\\");
        else if (c >= 0x20 && c < 0x7f)
            memop_buf_append(&b, &s[i], 1);
        else
            memop_buf_printf(&b, "\\x%02x", c);
    }
    if (n < len)
        memop_buf_puts(&b, "...");
    if (b.failed)
        die(1, "out of memory");
    return b.s;
}

/* ------------------------------------------------------------- schema */

static ast_schema *schema_ast;
static char *schema_src;

static void load_schema(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(2, "cannot read schema '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    schema_src = xmalloc(cap);
    size_t got;
    while ((got = fread(schema_src + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            schema_src = realloc(schema_src, cap *= 2);
    }
    fclose(f);
    diag *d = diag_new(path, schema_src, n);
    schema_ast = ast_schema_new(path);
    memoc_parse(schema_src, n, schema_ast, d);
    check_schema(schema_ast, d);
    int errors = diag_count(d);
    diag_flush(d, stderr);
    diag_free(d);
    if (errors)
        die(2, "%s has errors (run memoc on it)", path);
    mdl = model_build(schema_ast);
    schema_name = schema_ast->name;
}

static const memo_entity_desc *entity(const char *name)
{
    if (!mdl)
        die(2, "this command needs the schema: --schema FILE or MEMO_SCHEMA");
    /* "user" or "blog.user" */
    const char *dot = strchr(name, '.');
    if (dot && (strncmp(name, schema_name, (size_t)(dot - name)) != 0 ||
                schema_name[dot - name] != '\0'))
        die(2, "entity '%s' is not in schema '%s'", name, schema_name);
    const memo_entity_desc *d = model_entity(mdl, dot ? dot + 1 : name);
    if (!d)
        die(2, "schema '%s' has no entity '%s'", schema_name, dot ? dot + 1 : name);
    return d;
}

/* A key value written on the command line or in a file, as the field's C
 * type. */
typedef union value {
    int32_t i32;
    int64_t i64;
    bool b;
    char *text;
} value;

/* Parses s, all of it, as field f's C type into *out (text is borrowed).
 * False, with the reason in why, when it is not one. */
static bool value_of(const memo_field_desc *f, const char *s, value *out, char *why,
                     size_t whysize)
{
    const char *want = NULL;
    switch (f->type) {
    case MEMO_INT32:
    case MEMO_INT64:
    case MEMO_TIMESTAMP: {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end != s && !isspace((unsigned char)*s) && !*end && !errno &&
            (f->type != MEMO_INT32 || (v >= INT32_MIN && v <= INT32_MAX))) {
            if (f->type == MEMO_INT32)
                out->i32 = (int32_t)v;
            else
                out->i64 = v;
            return true;
        }
        want = f->type == MEMO_INT32 ? "a valid int32" : "a valid int64";
        break;
    }
    case MEMO_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
            out->b = s[0] == 't';
            return true;
        }
        want = "true or false";
        break;
    case MEMO_TEXT:
        out->text = (char *)s;
        return true;
    case MEMO_FLOAT64:
    case MEMO_JSON:
        snprintf(why, whysize, "%s cannot be a key", f->name);
        return false;
    }
    char *shown = escaped(s, strlen(s), 60);
    snprintf(why, whysize, "'%s' is not %s for %s", shown, want, f->name);
    free(shown);
    return false;
}

static void parse_value(const memo_field_desc *f, const char *s, value *out)
{
    char why[256];
    if (!value_of(f, s, out, why, sizeof why))
        die(2, "%s", why);
}

/* ------------------------------------------------------------- servers */

static void open_repo(const char *redis_url, const char *db_url, bool publish)
{
    memo_config cfg = {0};
    memo_error err;
    if (memo_config_from_env(&cfg, &err) != MEMO_OK)
        die(2, "%s", err.message);
    if (redis_url)
        cfg.redis_url = redis_url;
    if (db_url)
        cfg.database_url = db_url;
    if (!cfg.redis_url)
        die(2, "no Redis URL: set MEMO_REDIS_URL or REDIS_URL, or pass --redis");
    if (!cfg.database_url)
        die(2, "no database URL: set MEMO_DATABASE_URL or DATABASE_URL, or pass --db");
    if (!publish)
        cfg.flags |= MEMO_STATS_PRIVATE; /* the tool's own reads are not the service's */
    /* what the tool reads (memo get, check) is Redis's and PostgreSQL's, not
     * a copy of its own; and memo watch needs no subscriber */
    cfg.flags |= MEMO_NEAR_OFF;
    memo_status st = memo_open(&repo, &cfg, &err);
    if (st != MEMO_OK)
        die(1, "%s", err.message);
}

/* One command through the repository's pool: the reply is copied out. */
static redisReply *redis_call(memop_rconn **c, int argc, const char **argv,
                              const size_t *lens)
{
    if (!*c && !(*c = memop_redis_acquire(repo)))
        die(1, "%s", memo_last_error(repo));
    redisReply *r = memop_redis_command(repo, *c, argc, argv, lens);
    if (!r)
        die(1, "%s", memo_last_error(repo));
    return r;
}

/* SCAN on one node (of a cluster; -1 on one Redis): each node holds its
 * share of the keys. */
static redisReply *scan_call(memop_rconn **c, int node, const char **argv)
{
    if (!*c && !(*c = memop_redis_acquire(repo)))
        die(1, "%s", memo_last_error(repo));
    memop_rconn_pin(*c, node);
    redisReply *r = redis_call(c, 6, argv, NULL);
    memop_rconn_pin(*c, -1);
    return r;
}

/* A cluster's masters and their slot ranges ("0-5460 10923"), one a line,
 * for `memo ping`; NULL on one Redis. */
static json_t *cluster_nodes(void)
{
    if (!atomic_load(&repo->cluster.on))
        return NULL;
    json_t *a = json_array();
    int nodes[MEMOP_NODES_MAX];
    size_t n = memop_redis_masters(repo, nodes);
    for (size_t i = 0; i < n; i++) {
        memop_buf ranges = {0};
        for (size_t s = 0; s < MEMOP_SLOTS;) {
            if (atomic_load(&repo->cluster.slot[s]) != nodes[i]) {
                s++;
                continue;
            }
            size_t e = s;
            while (e + 1 < MEMOP_SLOTS &&
                   atomic_load(&repo->cluster.slot[e + 1]) == nodes[i])
                e++;
            if (ranges.len)
                memop_buf_puts(&ranges, " ");
            if (e == s)
                memop_buf_printf(&ranges, "%zu", s);
            else
                memop_buf_printf(&ranges, "%zu-%zu", s, e);
            s = e + 1;
        }
        json_array_append_new(a, json_pack("{s:s,s:s}", "node",
                                           repo->cluster.nodes[nodes[i]]->name, "slots",
                                           ranges.s ? ranges.s : ""));
        memop_buf_free(&ranges);
    }
    return a;
}

/* A direct connection to PostgreSQL for what the repository does not do:
 * versions, round trips and the keys of `warm --top`. */
static void pg_die(PGconn *pg)
{
    char msg[512]; /* libpq may quote the conninfo: masked */
    memop_pg_message(repo->database_url, PQerrorMessage(pg), msg, sizeof msg);
    die(1, "PostgreSQL: %s", msg);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *pg_open(void)
{
    PGconn *pg = PQconnectdb(repo->database_url);
    if (PQstatus(pg) != CONNECTION_OK)
        pg_die(pg);
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    return pg;
}

/* ---------------------------------------------------------------- ping */

/* What memo watch needs of PostgreSQL, and the slots it left: a slot keeps
 * WAL from its restart point for as long as it exists, read or not. */
typedef struct stream_state {
    char wal_level[32];
    bool may_replicate;
    int slots_used, slots_max;
    int publication; /* the schema's: 1 present, 0 missing, -1 no schema */
    PGresult *slots; /* name, active, retained bytes, wal_status */
} stream_state;

static void stream_state_of(PGconn *pg, stream_state *st)
{
    memset(st, 0, sizeof *st);
    PGresult *r =
        PQexec(pg, "SELECT current_setting('wal_level'), coalesce((SELECT "
                   "rolreplication OR rolsuper FROM pg_roles WHERE rolname = "
                   "current_user), false), current_setting('max_replication_slots'), "
                   "(SELECT count(*) FROM pg_replication_slots)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        pg_die(pg);
    snprintf(st->wal_level, sizeof st->wal_level, "%s", PQgetvalue(r, 0, 0));
    st->may_replicate = PQgetvalue(r, 0, 1)[0] == 't';
    st->slots_max = atoi(PQgetvalue(r, 0, 2));
    st->slots_used = atoi(PQgetvalue(r, 0, 3));
    PQclear(r);
    st->slots = PQexec(pg, "SELECT slot_name, active, coalesce(pg_wal_lsn_diff(CASE WHEN "
                           "pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE "
                           "pg_current_wal_lsn() END, restart_lsn), 0)::bigint, "
                           "coalesce(wal_status, '') FROM pg_replication_slots WHERE "
                           "slot_name LIKE 'memo\\_%' ORDER BY slot_name");
    if (PQresultStatus(st->slots) != PGRES_TUPLES_OK)
        pg_die(pg);
    st->publication = -1;
    if (mdl) {
        char name[64];
        memop_stream_name(schema_name, name);
        const char *params[] = {name};
        r = PQexecParams(pg, "SELECT count(*) FROM pg_publication WHERE pubname = $1", 1,
                         NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            pg_die(pg);
        st->publication = atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
    }
}

static char *human_bytes(long long n, char *buf, size_t size)
{
    const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}

static int cmd_ping(bool json, long long warn_retained)
{
    memop_rconn *c = NULL;
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t0 = now_ms();
        const char *argv[] = {"PING"};
        redis_call(&c, 1, argv, NULL);
        double t = now_ms() - t0;
        best = t < best ? t : best;
    }
    const char *info[] = {"INFO", "server"};
    redisReply *r = redis_call(&c, 2, info, NULL);
    char version[32] = "?";
    const char *v =
        r->type == REDIS_REPLY_STRING ? strstr(r->str, "redis_version:") : NULL;
    if (v)
        sscanf(v + 14, "%31[^\r\n]", version);
    double redis_rtt = best;

    PGconn *pg = pg_open();
    best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t0 = now_ms();
        PGresult *res = PQexec(pg, "SELECT 1");
        double t = now_ms() - t0;
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            pg_die(pg);
        PQclear(res);
        best = t < best ? t : best;
    }
    const char *pgv = PQparameterStatus(pg, "server_version");
    stream_state ss;
    stream_state_of(pg, &ss);
    int rc = 0;

    /* Entries of this schema whose tag no lookup of the current schema has
     * were written by an older shape of it: they are never read again and
     * wait for their TTL. A bounded scan. */
    long scanned = 0, older = 0;
    char example[256] = "";
    if (mdl) {
        const memo_schema_desc *s = model_schema(mdl);
        memop_buf pat = {0};
        memop_buf_printf(&pat, "%s%s:{*", repo->key_prefix, s->name);
        int nodes[MEMOP_NODES_MAX];
        size_t nnodes = memop_redis_masters(repo, nodes);
        for (size_t node = 0; node < nnodes; node++) {
            char cursor[32] = "0";
            do {
                const char *argv[] = {"SCAN", cursor, "MATCH", pat.s, "COUNT", "1000"};
                redisReply *sr = scan_call(&c, nodes[node], argv);
                if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2)
                    die(1, "SCAN: unexpected reply");
                snprintf(cursor, sizeof cursor, "%s", sr->element[0]->str);
                for (size_t i = 0; i < sr->element[1]->elements; i++) {
                    const char *key = sr->element[1]->element[i]->str;
                    const char *tag = strrchr(key, '}');
                    if (!tag || tag[1] != ':')
                        continue;
                    tag += 2;
                    scanned++;
                    bool known = false;
                    for (unsigned k = 0; k < s->nentities && !known; k++) {
                        const memo_entity_desc *d = s->entities[k];
                        known = strncmp(tag, d->row.key.tag, 8) == 0;
                        for (unsigned u = 0; u < d->nuniques && !known; u++)
                            known = strncmp(tag, d->uniques[u].key.tag, 8) == 0;
                        for (unsigned l = 0; l < d->nlists && !known; l++)
                            known = strncmp(tag, d->lists[l].key.tag, 8) == 0;
                    }
                    if (!known && older++ == 0)
                        snprintf(example, sizeof example, "%s", key);
                }
                memop_redis_release(repo, c, false); /* one batch of replies at a time */
                c = NULL;
            } while (strcmp(cursor, "0") != 0 && scanned < 1000000);
        }
        memop_buf_free(&pat);
    }
    if (c)
        memop_redis_release(repo, c, false);

    if (json) {
        json_t *o = json_pack("{s:{s:s,s:s,s:f},s:{s:s,s:f}}", "redis", "server",
                              repo->redis_name, "version", version, "rtt_ms", redis_rtt,
                              "postgresql", "version", pgv ? pgv : "?", "rtt_ms", best);
        json_t *cl = cluster_nodes();
        if (cl)
            json_object_set_new(json_object_get(o, "redis"), "cluster", cl);
        if (mdl)
            json_object_set_new(o, "schema",
                                json_pack("{s:s,s:I,s:I,s:s}", "name", schema_name,
                                          "scanned", (json_int_t)scanned, "older",
                                          (json_int_t)older, "example", example));
        json_t *slots = json_array();
        for (int k = 0; k < PQntuples(ss.slots); k++) {
            long long retained = atoll(PQgetvalue(ss.slots, k, 2));
            bool over = retained > warn_retained;
            rc |= over;
            json_array_append_new(
                slots,
                json_pack("{s:s,s:b,s:I,s:s,s:b}", "name", PQgetvalue(ss.slots, k, 0),
                          "active", PQgetvalue(ss.slots, k, 1)[0] == 't',
                          "retained_bytes", (json_int_t)retained, "wal_status",
                          PQgetvalue(ss.slots, k, 3), "over_threshold", over));
        }
        json_t *cs = json_pack("{s:s,s:b,s:i,s:i,s:o}", "wal_level", ss.wal_level,
                               "may_replicate", ss.may_replicate, "slots_used",
                               ss.slots_used, "slots_max", ss.slots_max, "slots", slots);
        if (ss.publication >= 0)
            json_object_set_new(cs, "publication", json_boolean(ss.publication));
        json_object_set_new(o, "change_stream", cs);
        char *s = json_dumps(o, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("redis       %-24s Redis %-10s round trip %.3f ms\n", repo->redis_name,
               version, redis_rtt);
        json_t *cl = cluster_nodes();
        for (size_t i = 0; cl && i < json_array_size(cl); i++)
            printf("  cluster   %-24s slots %s\n",
                   json_string_value(json_object_get(json_array_get(cl, i), "node")),
                   json_string_value(json_object_get(json_array_get(cl, i), "slots")));
        json_decref(cl);
        char where[160];
        snprintf(where, sizeof where, "%s:%s/%s", PQhost(pg) ? PQhost(pg) : "?",
                 PQport(pg) ? PQport(pg) : "?", PQdb(pg) ? PQdb(pg) : "?");
        printf("postgresql  %-24s PostgreSQL %-10s round trip %.3f ms\n", where,
               pgv ? pgv : "?", best);
        if (mdl) {
            printf("schema %s: %ld keys scanned, %ld of an older fingerprint",
                   schema_name, scanned, older);
            if (older)
                printf(" (e.g. %s): no reader uses them; they expire by their TTL",
                       example);
            printf("\n");
        }
        printf("change stream: wal_level %s%s, the role %s, %d of %d replication slots "
               "used\n",
               ss.wal_level,
               strcmp(ss.wal_level, "logical") == 0
                   ? ""
                   : " (memo watch needs logical: set it in postgresql.conf and restart)",
               ss.may_replicate ? "may replicate"
                                : "may not replicate (memo watch needs "
                                  "REPLICATION)",
               ss.slots_used, ss.slots_max);
        if (ss.publication == 0) {
            char name[64];
            memop_stream_name(schema_name, name);
            printf("change stream: no publication %s (apply the schema's .sql)\n", name);
        }
        for (int k = 0; k < PQntuples(ss.slots); k++) {
            long long retained = atoll(PQgetvalue(ss.slots, k, 2));
            char size[32];
            bool active = PQgetvalue(ss.slots, k, 1)[0] == 't';
            printf("slot %-24s %-8s retains %s of WAL%s%s\n", PQgetvalue(ss.slots, k, 0),
                   active ? "active" : "idle", human_bytes(retained, size, sizeof size),
                   PQgetvalue(ss.slots, k, 3)[0] ? ", wal_status " : "",
                   PQgetvalue(ss.slots, k, 3));
            if (retained > warn_retained) {
                rc = 1;
                char limit[32];
                fprintf(stderr,
                        "memo: warning: slot %s retains %s of WAL (more than %s): %s\n",
                        PQgetvalue(ss.slots, k, 0), size,
                        human_bytes(warn_retained, limit, sizeof limit),
                        active
                            ? "its watch falls behind"
                            : "run memo watch, or drop the slot (memo watch --drop-slot "
                              "--slot NAME) before the disk fills");
            }
        }
    }
    PQclear(ss.slots);
    PQfinish(pg);
    return rc;
}

/* --------------------------------------------------------------- stats */

/* `memo stats` reads what any program may have written under memo:stats:*.
 * A publication is summed only when it has the shape memo publishes: at most
 * PUB_MAX_BYTES of JSON, an object whose "entities" maps `schema.entity`
 * identifiers to counters that are whole numbers from 0 to 2^53 and to
 * histograms whose buckets are in range. Anything else is ignored whole and
 * counted, so no name or number from Redis reaches the output unchecked: a
 * name is an identifier (no label can be closed, no line or escape
 * injected), a sum saturates. The host and pid a process publishes are not
 * shown. */
enum {
    PUB_MAX = 10000,         /* publications read */
    PUB_MAX_BYTES = 1 << 20, /* one publication */
    PUB_MAX_ENTITIES = 1024, /* distinct entities, over all publications */
    ENTITY_NAME_MAX = 127,   /* "schema.entity" */
};
/* Exact in a double, the way Prometheus reads a sample. */
#define COUNTER_MAX ((json_int_t)1 << 53)

typedef struct summed {
    size_t n;
    char **names;
    memop_stats **stats;
    int processes;
    int ignored;     /* publications that are not memo's */
    const char *why; /* the first one's reason */
    char *example;   /* ... and its key, escaped */
    bool truncated;  /* more than PUB_MAX publications: the rest unread */
    /* memo watch, summed over the processes that run one */
    memop_watch_stats watch;
    unsigned watchers, streaming;
} summed;

static memop_stats *find_entry(const summed *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->stats[i];
    return NULL;
}

static memop_stats *entry(summed *s, const char *name)
{
    memop_stats *found = find_entry(s, name);
    if (found)
        return found;
    s->names = realloc(s->names, (s->n + 1) * sizeof *s->names);
    s->stats = realloc(s->stats, (s->n + 1) * sizeof *s->stats);
    if (!s->names || !s->stats)
        die(1, "out of memory");
    s->names[s->n] = xstrdup(name);
    s->stats[s->n] = xcalloc(1, sizeof(memop_stats));
    return s->stats[s->n++];
}

static bool is_ident(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* "schema.entity", both memoc identifiers. */
static bool entity_name_ok(const char *name)
{
    size_t len = strlen(name);
    const char *dot = strchr(name, '.');
    return len <= ENTITY_NAME_MAX && dot && is_ident(name, (size_t)(dot - name)) &&
           is_ident(dot + 1, len - (size_t)(dot + 1 - name));
}

/* Absent (zero), or a whole number from 0 to COUNTER_MAX. */
static bool counter_ok(const json_t *v)
{
    return !v || (json_is_integer(v) && json_integer_value(v) >= 0 &&
                  json_integer_value(v) <= COUNTER_MAX);
}

/* Absent, or {"sum": N, "b": [[bucket, count], ...]} with buckets in range. */
static bool hist_ok(const json_t *h)
{
    if (!h)
        return true;
    const json_t *b = json_object_get(h, "b");
    if (!json_is_object(h) || !counter_ok(json_object_get(h, "sum")) ||
        (b && !json_is_array(b)) || json_array_size(b) > MEMOP_HIST_BUCKETS)
        return false;
    for (size_t i = 0; i < json_array_size(b); i++) {
        const json_t *pair = json_array_get(b, i), *at = json_array_get(pair, 0),
                     *count = json_array_get(pair, 1);
        if (json_array_size(pair) != 2 || !json_is_integer(at) ||
            json_integer_value(at) < 0 || json_integer_value(at) >= MEMOP_HIST_BUCKETS ||
            !count || !counter_ok(count))
            return false;
    }
    return true;
}

/* Why a publication is not memo's, or NULL when it is. s: what is summed so
 * far, for the bound on distinct entities. */
static const char *publication_problem(const json_t *doc, const summed *s)
{
    static const char bad_counter[] =
        "a counter that is not a whole number from 0 to 2^53",
                      bad_hist[] = "a histogram that is not memo's";
    const json_t *entities = json_object_get(doc, "entities");
    if (!json_is_object(doc) || !json_is_object(entities))
        return "not a JSON object with an \"entities\" object";
    size_t fresh = 0;
    const char *name;
    json_t *e;
    json_object_foreach((json_t *)entities, name, e)
    {
        if (!entity_name_ok(name))
            return "an entity name that is not schema.entity";
        if (!json_is_object(e))
            return "an entity that is not an object";
            /* the counters of an entity, as the runtime names them */
#define CHECK(field, help)                                                               \
    if (!counter_ok(json_object_get(e, #field)))                                         \
        return bad_counter;
        MEMOP_COUNTERS(CHECK)
        MEMOP_GAUGES(CHECK)
#undef CHECK
        if (!hist_ok(json_object_get(e, "hit_latency_us")) ||
            !hist_ok(json_object_get(e, "miss_latency_us")))
            return bad_hist;
        const json_t *ops = json_object_get(e, "ops");
        if (ops && !json_is_object(ops))
            return "\"ops\" that is not an object";
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            const json_t *o = json_object_get(ops, memop_op_name(op));
            if (o && (!json_is_object(o) || !counter_ok(json_object_get(o, "calls"))))
                return bad_counter;
            if (!hist_ok(json_object_get(o, "latency_us")))
                return bad_hist;
        }
        fresh += !find_entry(s, name);
    }
    if (s->n + fresh > PUB_MAX_ENTITIES)
        return "more entities than memo stats sums (1024)";
    const json_t *w = json_object_get(doc, "watch");
    if (w) {
        if (!json_is_object(w))
            return "\"watch\" that is not an object";
#define CHECK_WATCH(field, help)                                                         \
    if (!counter_ok(json_object_get(w, #field)))                                         \
        return bad_counter;
        MEMOP_WATCH_COUNTERS(CHECK_WATCH)
#undef CHECK_WATCH
        if (!counter_ok(json_object_get(w, "lag_bytes")))
            return bad_counter;
        if (!hist_ok(json_object_get(w, "lag_us")))
            return bad_hist;
        const json_t *state = json_object_get(w, "state");
        if (state && !json_is_string(state))
            return "a watch state that is not a string";
    }
    return NULL;
}

/* Adds a checked counter; a sum saturates instead of wrapping. */
static void add(_Atomic uint64_t *to, const json_t *v)
{
    uint64_t a = atomic_load(to), b = (uint64_t)json_integer_value(v);
    atomic_store(to, a > UINT64_MAX - b ? UINT64_MAX : a + b);
}

static void add_hist(memop_hist *h, const json_t *v)
{
    add(&h->sum_us, json_object_get(v, "sum"));
    const json_t *b = json_object_get(v, "b");
    for (size_t i = 0; i < json_array_size(b); i++) {
        const json_t *pair = json_array_get(b, i);
        add(&h->b[json_integer_value(json_array_get(pair, 0))], json_array_get(pair, 1));
    }
}

/* Sums a publication publication_problem accepted. */
static void add_publication(summed *out, const json_t *doc)
{
    const char *name;
    json_t *e;
    json_object_foreach(json_object_get(doc, "entities"), name, e)
    {
        memop_stats *s = entry(out, name);
#define SUM(field, help) add(&s->field, json_object_get(e, #field));
        MEMOP_COUNTERS(SUM)
        MEMOP_GAUGES(SUM)
#undef SUM
        add_hist(&s->hit_latency, json_object_get(e, "hit_latency_us"));
        add_hist(&s->miss_latency, json_object_get(e, "miss_latency_us"));
        const json_t *ops = json_object_get(e, "ops");
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            const json_t *o = json_object_get(ops, memop_op_name(op));
            add(&s->ops[op], json_object_get(o, "calls"));
            add_hist(&s->op_latency[op], json_object_get(o, "latency_us"));
        }
    }
    out->processes++;
    const json_t *w = json_object_get(doc, "watch");
    if (w) {
#define SUM_WATCH(field, help) add(&out->watch.field, json_object_get(w, #field));
        MEMOP_WATCH_COUNTERS(SUM_WATCH)
#undef SUM_WATCH
        add(&out->watch.lag_bytes, json_object_get(w, "lag_bytes"));
        add_hist(&out->watch.lag, json_object_get(w, "lag_us"));
        out->watchers++;
        /* compared, never printed: no text from Redis reaches the output */
        out->streaming +=
            json_is_string(json_object_get(w, "state")) &&
            strcmp(json_string_value(json_object_get(w, "state")), "streaming") == 0;
    }
}

static void ignore(summed *out, const char *key, size_t len, const char *why)
{
    if (out->ignored++ == 0) {
        out->why = why;
        out->example = escaped(key, len, 120);
    }
}

typedef struct rkey {
    char *s;
    size_t len;
} rkey;

static int rkey_cmp(const void *a, const void *b)
{
    const rkey *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Every process's publication, summed per entity. */
static void collect(summed *out)
{
    memset(out, 0, sizeof *out);
    memop_rconn *c = NULL;
    char pattern[256];
    snprintf(pattern, sizeof pattern, "%smemo:stats:*", repo->key_prefix);
    char cursor[32] = "0";
    rkey *keys = NULL;
    size_t nkeys = 0;
    int nodes[MEMOP_NODES_MAX];
    size_t nnodes = memop_redis_masters(repo, nodes);
    for (size_t node = 0; node < nnodes && !out->truncated; node++) {
        snprintf(cursor, sizeof cursor, "0");
        do {
            const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
            redisReply *r = scan_call(&c, nodes[node], argv);
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[1]->type != REDIS_REPLY_ARRAY)
                die(1, "SCAN: unexpected reply");
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const redisReply *k = r->element[1]->element[i];
                if (k->type != REDIS_REPLY_STRING)
                    continue;
                if (nkeys == PUB_MAX) {
                    out->truncated = true;
                    break;
                }
                keys = realloc(keys, (nkeys + 1) * sizeof *keys);
                if (!keys)
                    die(1, "out of memory");
                keys[nkeys].s = xmalloc(k->len + 1);
                memcpy(keys[nkeys].s, k->str, k->len + 1);
                keys[nkeys++].len = k->len;
            }
            memop_redis_release(repo, c, false); /* one batch of replies at a time */
            c = NULL;
        } while (strcmp(cursor, "0") != 0 && !out->truncated);
    }
    /* SCAN may return a key twice */
    if (nkeys)
        qsort(keys, nkeys, sizeof *keys, rkey_cmp);
    char range[16];
    snprintf(range, sizeof range, "%d", PUB_MAX_BYTES); /* inclusive: one byte more */
    for (size_t k = 0; k < nkeys; k++) {
        if (k > 0 && rkey_cmp(&keys[k - 1], &keys[k]) == 0)
            continue;
        const char *argv[] = {"GETRANGE", keys[k].s, "0", range};
        size_t lens[] = {8, keys[k].len, 1, strlen(range)};
        redisReply *r = redis_call(&c, 4, argv, lens);
        if (r->type != REDIS_REPLY_STRING) {
            ignore(out, keys[k].s, keys[k].len, "not a string");
        } else if (r->len == 0) {
            /* expired between SCAN and GETRANGE */
        } else if (r->len > PUB_MAX_BYTES) {
            ignore(out, keys[k].s, keys[k].len, "larger than 1 MiB");
        } else {
            json_t *doc = json_loadb(r->str, r->len, 0, NULL);
            const char *why = doc ? publication_problem(doc, out) : "not JSON";
            if (why)
                ignore(out, keys[k].s, keys[k].len, why);
            else
                add_publication(out, doc);
            json_decref(doc);
        }
        memop_redis_release(repo, c, false); /* one reply at a time: they can be large */
        c = NULL;
    }
    for (size_t k = 0; k < nkeys; k++)
        free(keys[k].s);
    free(keys);
}

/* What was not summed, on stderr: the output itself stays clean. */
static void report_ignored(const summed *s)
{
    if (s->ignored)
        fprintf(stderr,
                "memo: ignored %d publication%s under %smemo:stats:* that %s not memo "
                "statistics (%s: %s)\n",
                s->ignored, s->ignored == 1 ? "" : "s", repo->key_prefix,
                s->ignored == 1 ? "is" : "are", s->example, s->why);
    if (s->truncated)
        fprintf(stderr, "memo: more than %d publications: summed the first %d\n", PUB_MAX,
                PUB_MAX);
}

static void summed_free(summed *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->stats[i]);
    }
    free(s->names);
    free(s->stats);
    free(s->example);
}

static uint64_t v(const _Atomic uint64_t *x)
{
    return atomic_load(x);
}

static uint64_t calls_of(const memop_stats *s)
{
    uint64_t n = 0;
    for (unsigned op = 0; op < MEMOP_OP_COUNT; op++)
        n += v(&s->ops[op]);
    return n;
}

static void table(const summed *s, const summed *before, double secs)
{
    printf("%d process%s publishing", s->processes, s->processes == 1 ? "" : "es");
    if (s->ignored)
        printf(", %d publication%s ignored (not memo statistics)", s->ignored,
               s->ignored == 1 ? "" : "s");
    printf("\n");
    printf("%-18s %10s %9s %7s %8s %7s %7s %8s %8s %8s %6s %14s %14s\n", "entity",
           before ? "calls/s" : "calls", "lookups", "hit %", "neg hit", "fills", "waits",
           "invalid.", "queries", "degraded", "errors", "hit p50/p99", "miss p50/p99");
    for (size_t i = 0; i < s->n; i++) {
        const memop_stats *t = s->stats[i];
        uint64_t hits = v(&t->hits) + v(&t->negative_hits), keys = hits + v(&t->misses);
        if (calls_of(t) == 0 && keys == 0)
            continue; /* an entity a process knows but did not use */
        double calls = (double)calls_of(t);
        if (before) {
            double prev = 0;
            for (size_t k = 0; k < before->n; k++)
                if (strcmp(before->names[k], s->names[i]) == 0)
                    prev = (double)calls_of(before->stats[k]);
            calls = (calls - prev) / secs;
        }
        char hp[32], mp[32];
        snprintf(hp, sizeof hp, "%" PRIu64 "/%" PRIu64 " us",
                 memop_hist_quantile(&t->hit_latency, 0.5),
                 memop_hist_quantile(&t->hit_latency, 0.99));
        snprintf(mp, sizeof mp, "%" PRIu64 "/%" PRIu64 " us",
                 memop_hist_quantile(&t->miss_latency, 0.5),
                 memop_hist_quantile(&t->miss_latency, 0.99));
        printf("%-18s %10.0f %9" PRIu64 " %6.1f%% %8" PRIu64 " %7" PRIu64 " %7" PRIu64
               " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %6" PRIu64 " %14s %14s\n",
               s->names[i], calls, keys, keys ? 100.0 * (double)hits / (double)keys : 0.0,
               v(&t->negative_hits), v(&t->fills), v(&t->lease_waits),
               v(&t->invalidations), v(&t->db_queries), v(&t->degraded), v(&t->errors),
               hp, mp);
    }
    if (s->watchers) {
        const memop_watch_stats *w = &s->watch;
        printf("watch: %u of %u streaming; %" PRIu64 " changes, %" PRIu64
               " keys deleted, %" PRIu64 " entity drops, %" PRIu64
               " reconnects; lag p50/p99 %" PRIu64 "/%" PRIu64 " us, %" PRIu64
               " bytes behind\n",
               s->streaming, s->watchers, v(&w->changes), v(&w->keys_deleted),
               v(&w->entity_drops), v(&w->reconnects), memop_hist_quantile(&w->lag, 0.5),
               memop_hist_quantile(&w->lag, 0.99), v(&w->lag_bytes));
    }
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int cmd_stats(bool json, bool prom, double watch, long count)
{
    if (watch <= 0) {
        summed s;
        collect(&s);
        report_ignored(&s);
        memop_buf b = {0};
        if (json || prom) {
            if (json) {
                memop_buf_printf(&b, "{\"processes\":%d,\"ignored\":%d,\"entities\":",
                                 s.processes, s.ignored);
                memop_stats_write_json(&b, (const char *const *)s.names,
                                       (const memop_stats *const *)s.stats, s.n, false);
                if (s.watchers) {
                    memop_buf_printf(
                        &b, ",\"watch\":{\"processes\":%u,\"streaming\":%u,\"sum\":",
                        s.watchers, s.streaming);
                    memop_watch_write_json(&b, &s.watch, false);
                    memop_buf_puts(&b, "}");
                }
                memop_buf_puts(&b, "}\n");
            } else {
                memop_buf_printf(
                    &b,
                    "# HELP memo_processes Processes publishing statistics.\n"
                    "# TYPE memo_processes gauge\nmemo_processes %d\n",
                    s.processes);
                memop_stats_write_prometheus(&b, (const char *const *)s.names,
                                             (const memop_stats *const *)s.stats, s.n);
                if (s.watchers)
                    memop_watch_write_prometheus(&b, &s.watch, s.watchers, s.streaming);
            }
            fputs(b.s, stdout);
        } else {
            table(&s, NULL, 0);
        }
        memop_buf_free(&b);
        summed_free(&s);
        return 0;
    }
    /* like redis-cli --stat: a compact table again every interval */
    signal(SIGINT, on_signal);
    bool tty = isatty(STDOUT_FILENO);
    summed prev;
    collect(&prev);
    double t0 = now_ms();
    for (long i = 0; (count == 0 || i < count) && !interrupted; i++) {
        memop_sleep_us((uint64_t)(watch * 1e6));
        summed cur;
        collect(&cur);
        double t1 = now_ms();
        if (tty)
            fputs("\033[H\033[2J", stdout);
        time_t now = time(NULL);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%H:%M:%S", localtime(&now));
        printf("%s  ", stamp);
        table(&cur, &prev, (t1 - t0) / 1e3);
        fflush(stdout);
        summed_free(&prev);
        prev = cur;
        t0 = t1;
    }
    summed_free(&prev);
    return 0;
}

/* ----------------------------------------------------------------- get */

/* A KEY argument of `memo get`, parsed. All of them are parsed before
 * anything is printed, so a bad one is a usage error with no half output. */
typedef struct get_arg {
    const char *text;             /* as written */
    int lookup, list;             /* the cached lookup or list; both -1: the row */
    const memo_field_desc *field; /* the key's field */
    value key;
    /* a row's key value: key's, or a composite key's fields (its strings
     * malloc'd, freed by cmd_get) */
    _Alignas(int64_t) char pk[MEMOP_KEY_SIZE_MAX];
} get_arg;

static void parse_get_arg(const memo_entity_desc *d, const char *arg, get_arg *out)
{
    out->text = arg;
    out->lookup = out->list = -1;
    out->field = &d->fields[d->pk];
    json_t *utf8 = json_string(arg);
    if (!utf8)
        die(2, "a key must be UTF-8 text");
    json_decref(utf8);
    const char *eq = strchr(arg, '='), *text = arg;
    if (eq) {
        size_t n = (size_t)(eq - arg);
        for (unsigned u = 0; u < d->nuniques; u++) {
            const char *name = d->fields[d->uniques[u].field].name;
            if (strlen(name) == n && strncmp(name, arg, n) == 0)
                out->lookup = (int)u;
        }
        for (unsigned l = 0; l < d->nlists; l++)
            if (strlen(d->lists[l].name) == n && strncmp(d->lists[l].name, arg, n) == 0)
                out->list = (int)l;
        if (out->lookup < 0 && out->list < 0)
            die(2, "%s.%s has no cached lookup or list '%.*s'", d->schema, d->name,
                (int)n, arg);
        out->field = out->lookup >= 0 ? &d->fields[d->uniques[out->lookup].field]
                                      : &d->fields[d->lists[out->list].group];
        text = eq + 1;
    }
    if (!eq && d->npk > 1) {
        /* a key of several fields, as its lookups hold it: a JSON array */
        if (!memop_pk_decode(d, text, strlen(text), out->pk)) {
            char example[8 * 8] = "";
            for (unsigned k = 0, n = 0; k < d->npk; k++)
                n += (unsigned)snprintf(
                    example + n, sizeof example - n, "%s%s", k ? ", " : "",
                    d->fields[d->pks[k]].type == MEMO_TEXT ? "\"x\"" : "7");
            die(2, "%s.%s's key has %u fields: write it as a JSON array, [%s]", d->schema,
                d->name, d->npk, example);
        }
        return;
    }
    parse_value(out->field, text, &out->key);
    memcpy(out->pk, &out->key, d->key_size <= sizeof out->key ? d->key_size : 0);
}

/* Bytes of a corrupt value shown. */
enum { RAW_SHOWN = 200 };

/* The cached entry, as `memo get` reports it: "entry" says which it is and
 * "cached" holds it:
 *   "none"      null
 *   "negative"  {"missing_row": true}: the row is remembered as missing
 *   "corrupt"   {"corrupt": true, "why": ..., "bytes": N, "raw": the first
 *               RAW_SHOWN bytes, escaped}
 *   "value"     the row, the lookup's primary key, the list's keys */
static void set_entry(json_t *o, const char *entry, json_t *cached)
{
    json_object_set_new(o, "entry", json_string(entry));
    json_object_set_new(o, "cached", cached);
}

static json_t *corrupt_json(const redisReply *r, const char *why)
{
    bool str = r->type == REDIS_REPLY_STRING;
    char *raw = escaped(str ? r->str : "", str ? r->len : 0, RAW_SHOWN);
    json_t *j = json_pack("{s:b,s:s,s:I,s:s}", "corrupt", 1, "why", why, "bytes",
                          (json_int_t)(str ? r->len : 0), "raw", raw);
    free(raw);
    return j;
}

static json_t *row_json(const memo_entity_desc *d, const void *row)
{
    memop_buf b = {0};
    if (memop_row_encode(d, row, &b) != MEMO_OK)
        return json_string("(not encodable)");
    json_t *j = json_loadb(b.s, b.len, 0, NULL);
    memop_buf_free(&b);
    return j;
}

static json_t *get_row(const memo_entity_desc *d, const get_arg *a)
{
    void *cached = xcalloc(1, d->size), *db = xcalloc(1, d->size);
    memo_check_result r;
    memo_status st = memo_check(repo, d, a->pk, cached, db, &r);
    if (st != MEMO_OK)
        die(1, "%s", memo_last_error(repo));
    memop_key k;
    memop_key_row(repo, d, a->pk, &k);
    json_t *o = json_pack("{s:s,s:s}", "key", a->text, "redis_key", k.s);
    if (!r.cached) {
        set_entry(o, "none", json_null());
    } else if (!r.cached_row) {
        set_entry(o, "negative", json_pack("{s:b}", "missing_row", 1));
    } else if (r.corrupt) {
        /* memo_check keeps no bytes: read them again, and why they do not decode */
        memop_rconn *c = NULL;
        const char *g[] = {"GET", k.s};
        redisReply *raw = redis_call(&c, 2, g, NULL);
        char why[128] = "not a string";
        void *row = xcalloc(1, d->size);
        if (raw->type == REDIS_REPLY_STRING &&
            (memop_is_lease(raw->str, raw->len) ||
             memop_row_decode(d, raw->str, raw->len, row, why, sizeof why) == MEMO_OK))
            snprintf(why, sizeof why, "replaced while read: run again");
        memo_row_clear(d, row);
        free(row);
        set_entry(o, "corrupt", corrupt_json(raw, why));
        memop_redis_release(repo, c, false);
    } else {
        set_entry(o, "value", row_json(d, cached));
    }
    json_object_set_new(o, "ttl_ms", json_integer(r.ttl_ms));
    json_object_set_new(o, "leased", json_boolean(r.leased));
    json_object_set_new(o, "database", r.in_db ? row_json(d, db) : json_null());
    json_object_set_new(o, "agree", json_boolean(r.fresh));
    memo_row_clear(d, cached);
    memo_row_clear(d, db);
    free(cached);
    free(db);
    return o;
}

/* A lookup's or a list's entry; a reply of GET. */
static void other_entry(const memo_entity_desc *d, const get_arg *a, const redisReply *r,
                        json_t *o)
{
    if (r->type == REDIS_REPLY_NIL ||
        (r->type == REDIS_REPLY_STRING && memop_is_lease(r->str, r->len))) {
        set_entry(o, "none", json_null()); /* (a lease: "leased" says so) */
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        set_entry(o, "corrupt", corrupt_json(r, "not a string"));
        return;
    }
    const char *why;
    if (a->lookup >= 0) {
        if (r->len == 4 && memcmp(r->str, memop_null_value, 4) == 0) {
            set_entry(o, "negative", json_pack("{s:b}", "missing_row", 1));
            return;
        }
        _Alignas(int64_t) char v[MEMOP_KEY_SIZE_MAX];
        bool ok = memop_pk_decode(d, r->str, r->len, v);
        if (ok)
            memop_pk_free(d, v);
        why = ok ? NULL : "not a primary key";
    } else {
        void *keys = NULL;
        size_t n = 0;
        /* a list holds up to limit + 1 keys (the last says it is cut); one
         * more tells a list too long from one not a list */
        size_t most = (size_t)d->lists[a->list].limit + 1;
        bool ok = memop_pk_array_decode(d, r->str, r->len, most + 1, &keys, &n);
        for (size_t i = 0; ok && i < n; i++)
            memop_pk_free(d, (char *)keys + i * d->key_size);
        free(keys);
        why = !ok        ? "not a list of primary keys (or far too long)"
              : n > most ? "more keys than the list's limit and one"
                         : NULL;
    }
    json_t *j = why ? NULL : json_loadb(r->str, r->len, JSON_DECODE_ANY, NULL);
    if (j)
        set_entry(o, "value", j);
    else
        set_entry(o, "corrupt", corrupt_json(r, why ? why : "not JSON"));
}

/* FIELD=VALUE for a cached lookup, LIST=VALUE for a list: the raw entry next
 * to what the database answers, in a read-only transaction. */
static json_t *get_other(const memo_entity_desc *d, const get_arg *a)
{
    const memo_key_desc *kd =
        a->lookup >= 0 ? &d->uniques[a->lookup].key : &d->lists[a->list].key;
    memop_key k;
    memop_key_of(repo, d, kd, a->field, &a->key, &k);

    json_t *o = json_pack("{s:s,s:s}", "key", a->text, "redis_key", k.s);
    memop_rconn *c = NULL;
    const char *g[] = {"GET", k.s}, *t[] = {"PTTL", k.s};
    const redisReply *v = redis_call(&c, 2, g, NULL);
    bool leased = v->type == REDIS_REPLY_STRING && memop_is_lease(v->str, v->len);
    other_entry(d, a, v, o);
    const redisReply *ttl = redis_call(&c, 2, t, NULL);
    json_object_set_new(
        o, "ttl_ms",
        json_integer(ttl->type == REDIS_REPLY_INTEGER && !leased ? ttl->integer : -2));
    json_object_set_new(o, "leased", json_boolean(leased));
    memop_redis_release(repo, c, false);

    /* what the database says, the way the cache would have stored it */
    memo_tx *tx;
    if (memo_begin(repo, &tx) != MEMO_OK)
        die(1, "%s", memo_last_error(repo));
    json_t *db;
    memo_status st;
    if (a->lookup >= 0) {
        void *row = xcalloc(1, d->size);
        st = memo_tx_get_by(tx, d, (unsigned)a->lookup, &a->key, row);
        if (st == MEMO_OK) {
            memop_buf b = {0};
            _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
            memop_pk_of_row(d, row, key);
            memop_pk_encode(d, key, &b);
            db = json_loadb(b.s, b.len, JSON_DECODE_ANY, NULL);
            memop_buf_free(&b);
        } else {
            db = json_null();
        }
        memo_row_clear(d, row);
        free(row);
    } else {
        /* a cut list keeps the key past its limit: the next row's */
        memo_rows rows = {0}, next = {0};
        st = memo_tx_list(tx, d, (unsigned)a->list, &a->key, &rows);
        if (st == MEMO_OK && rows.more && rows.len > 0)
            st = memo_tx_list_after(tx, d, (unsigned)a->list, &a->key,
                                    (const char *)rows.items + (rows.len - 1) * d->size,
                                    1, &next);
        db = json_array();
        for (size_t i = 0; i < rows.len + next.len && st == MEMO_OK; i++) {
            const char *row = i < rows.len
                                  ? (const char *)rows.items + i * d->size
                                  : (const char *)next.items + (i - rows.len) * d->size;
            memop_buf b = {0};
            _Alignas(int64_t) char key[MEMOP_KEY_SIZE_MAX];
            memop_pk_of_row(d, row, key);
            memop_pk_encode(d, key, &b);
            json_array_append_new(db, json_loadb(b.s, b.len, JSON_DECODE_ANY, NULL));
            memop_buf_free(&b);
        }
        memo_rows_clear(d, &rows);
        memo_rows_clear(d, &next);
    }
    memo_rollback(tx);
    if (st != MEMO_OK && st != MEMO_NOT_FOUND)
        die(1, "%s", memo_last_error(repo));
    /* no entry agrees with anything; a negative one with no row; a value
     * must be equal */
    const char *entry = json_string_value(json_object_get(o, "entry"));
    bool agree =
        strcmp(entry, "none") == 0 ||
        (strcmp(entry, "negative") == 0 && json_is_null(db)) ||
        (strcmp(entry, "value") == 0 && json_equal(json_object_get(o, "cached"), db));
    json_object_set_new(o, "database", db);
    json_object_set_new(o, "agree", json_boolean(agree));
    return o;
}

/* JSON text on a terminal: what jansson leaves as it is, DEL and the C1
 * controls (U+0080..U+009F, some terminals obey them), is escaped too. */
static void put_json(const char *s, FILE *out)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x7f) {
            fputs("\\u007f", out);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fprintf(out, "\\u%04x", p[1]);
            p++;
        } else {
            fputc(*p, out);
        }
    }
}

static void print_value(const char *label, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("  %-9s ", label);
    put_json(s ? s : "?", stdout);
    putchar('\n');
    free(s);
}

static int cmd_get(const memo_entity_desc *d, const get_arg *keys, int n, bool json)
{
    json_t *all = json_array();
    int status = 0;
    for (int i = 0; i < n; i++) {
        json_t *o = keys[i].lookup < 0 && keys[i].list < 0 ? get_row(d, &keys[i])
                                                           : get_other(d, &keys[i]);
        if (d->npk > 1 && keys[i].lookup < 0 && keys[i].list < 0)
            memop_pk_free(d, (void *)keys[i].pk);
        if (!json_is_true(json_object_get(o, "agree")))
            status = 1;
        if (json) {
            json_array_append_new(all, o);
            continue;
        }
        printf("%s.%s %s\n", d->schema, d->name, keys[i].text);
        printf("  %-9s %s\n", "key", json_string_value(json_object_get(o, "redis_key")));
        const char *entry = json_string_value(json_object_get(o, "entry"));
        json_t *cached = json_object_get(o, "cached");
        if (strcmp(entry, "none") == 0) {
            printf("  %-9s (no entry)\n", "cache");
        } else if (strcmp(entry, "negative") == 0) {
            printf("  %-9s negative: the row does not exist\n", "cache");
        } else if (strcmp(entry, "corrupt") == 0) {
            json_int_t bytes = json_integer_value(json_object_get(cached, "bytes"));
            printf("  %-9s corrupt (%s", "cache",
                   json_string_value(json_object_get(cached, "why")));
            if (bytes)
                printf("; %" JSON_INTEGER_FORMAT " bytes)\n  %-9s %s\n", bytes, "raw",
                       json_string_value(json_object_get(cached, "raw")));
            else
                printf(")\n");
        } else {
            print_value("cache", cached);
        }
        long long ttl = json_integer_value(json_object_get(o, "ttl_ms"));
        if (ttl >= 0)
            printf("  %-9s %.1f s\n", "ttl", (double)ttl / 1e3);
        printf("  %-9s %s\n", "lease",
               json_is_true(json_object_get(o, "leased")) ? "held by a filler" : "none");
        json_t *db = json_object_get(o, "database");
        if (json_is_null(db))
            printf("  %-9s (no row)\n", "database");
        else
            print_value("database", db);
        printf("  %-9s %s\n", "agree",
               json_is_true(json_object_get(o, "agree")) ? "yes"
               : strcmp(entry, "corrupt") == 0 ? "NO: the cached value is corrupt"
                                               : "NO: the cache is stale");
        json_decref(o);
    }
    if (json) {
        char *s = json_dumps(all, JSON_COMPACT);
        put_json(s, stdout);
        putchar('\n');
        free(s);
    }
    json_decref(all);
    return status;
}

/* --------------------------------------------------------------- flush */

static bool progress_tty;
static void flush_progress(long removed, void *arg)
{
    if (progress_tty)
        fprintf(stderr, "\rflushing %s: %ld keys", (const char *)arg, removed);
}

static int cmd_flush(const char *name, const char *list, bool all, bool json)
{
    if (!mdl)
        die(2, "flush needs the schema: --schema FILE or MEMO_SCHEMA");
    progress_tty = isatty(STDERR_FILENO);
    const memo_schema_desc *s = model_schema(mdl);
    json_t *out = json_object();
    for (unsigned i = 0; i < s->nentities; i++) {
        const memo_entity_desc *d = s->entities[i];
        if (!all && d != entity(name))
            continue;
        char full[160];
        snprintf(full, sizeof full, "%s.%s", d->schema, d->name);
        long removed = 0;
        memo_status st = memo_flush(repo, d, list, flush_progress, full, &removed);
        if (progress_tty)
            fputc('\n', stderr);
        if (st != MEMO_OK)
            die(st == MEMO_ERR_ARG ? 2 : 1, "%s", memo_last_error(repo));
        json_object_set_new(out, full, json_integer(removed));
        if (!json)
            printf("%s%s%s: %ld keys removed\n", full, list ? " list " : "",
                   list ? list : "", removed);
    }
    if (json) {
        char *t = json_dumps(out, JSON_COMPACT);
        puts(t);
        free(t);
    }
    json_decref(out);
    return 0;
}

/* ---------------------------------------------------------------- warm */

/* Parses the keys, one per line of any length, into an array of the key's
 * C type. Empty lines are skipped; a bad line is a usage error that names
 * FILE:LINE, before anything is warmed. */
static void *read_ids(const memo_entity_desc *d, const char *path, size_t *n)
{
    bool std = strcmp(path, "-") == 0;
    const char *name = std ? "<stdin>" : path;
    FILE *f = std ? stdin : fopen(path, "r");
    if (!f)
        die(2, "cannot read %s: %s", path, strerror(errno));
    const memo_field_desc *pk = &d->fields[d->pk];
    size_t width = memop_pk_width(d), cap = 1024;
    char *ids = xmalloc(cap * width), *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    *n = 0;
    char why[256] = "";
    long bad = 0; /* the line of the first bad key */
    for (long lineno = 1; (len = getline(&line, &linecap, f)) >= 0; lineno++) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        value v;
        if (strlen(line) != (size_t)len) {
            snprintf(why, sizeof why, "a NUL byte in a key");
            bad = lineno;
            break;
        }
        if (*n == cap && !(ids = realloc(ids, (cap *= 2) * width)))
            die(1, "out of memory");
        if (d->npk > 1) { /* a JSON array of the key's fields */
            if (!memop_pk_decode(d, line, (size_t)len, ids + *n * width)) {
                snprintf(why, sizeof why, "not a key of %u fields as a JSON array",
                         d->npk);
                bad = lineno;
                break;
            }
            (*n)++;
            continue;
        }
        if (!value_of(pk, line, &v, why, sizeof why)) {
            bad = lineno;
            break;
        }
        if (pk->type == MEMO_TEXT)
            v.text = xstrdup(line);
        memcpy(ids + *n * width, &v, width);
        (*n)++;
    }
    free(line);
    if (bad || ferror(f)) { /* (what was read is freed: a usage error leaks nothing) */
        int err = errno;
        for (size_t i = 0; i < *n; i++)
            memop_pk_free(d, ids + i * width);
        free(ids);
        if (bad)
            die(2, "%s:%ld: %s", name, bad, why);
        die(2, "cannot read %s: %s", name, strerror(err));
    }
    if (!std)
        fclose(f);
    return ids;
}

static void *top_ids(const memo_entity_desc *d, long top, size_t *n)
{
    const memo_field_desc *pk = &d->fields[d->pk];
    PGconn *pg = pg_open();
    /* the keys, newest first (by the key), as text: a value, or the JSON
     * array of a composite key's fields */
    char cols[8 * 70] = "", order[8 * 80] = "";
    for (unsigned k = 0, a = 0, b = 0; k < d->npk; k++) {
        const char *c = d->fields[d->pks[k]].name;
        a += (unsigned)snprintf(cols + a, sizeof cols - a, "%s\"%s\"", k ? ", " : "", c);
        b += (unsigned)snprintf(order + b, sizeof order - b, "%s\"%s\" DESC",
                                k ? ", " : "", c);
    }
    char sql[1600];
    if (d->npk > 1)
        snprintf(sql, sizeof sql,
                 "SELECT json_build_array(%s)::text FROM \"%s\" ORDER BY %s LIMIT %ld",
                 cols, d->table, order, top);
    else
        snprintf(sql, sizeof sql, "SELECT %s FROM \"%s\" ORDER BY %s LIMIT %ld", cols,
                 d->table, order, top);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        pg_die(pg);
    size_t width = memop_pk_width(d);
    *n = (size_t)PQntuples(res);
    char *ids = xcalloc(*n ? *n : 1, width);
    for (size_t i = 0; i < *n; i++) {
        value v;
        const char *text = PQgetvalue(res, (int)i, 0);
        if (d->npk > 1) {
            if (!memop_pk_decode(d, text, strlen(text), ids + i * width))
                die(1, "%s: an unreadable key %s", d->table, text);
            continue;
        }
        parse_value(pk, text, &v);
        if (pk->type == MEMO_TEXT)
            v.text = xstrdup(text);
        memcpy(ids + i * width, &v, width);
    }
    PQclear(res);
    PQfinish(pg);
    return ids;
}

/* ids: read by read_ids (n of them), or NULL to warm the top rows. */
static int cmd_warm(const memo_entity_desc *d, char *ids, size_t n, long top, bool json)
{
    if (!ids)
        ids = top_ids(d, top, &n);
    size_t width = memop_pk_width(d), found = 0;
    memo_entity_stats before = MEMO_ENTITY_STATS_INIT, after = MEMO_ENTITY_STATS_INIT;
    memo_stats_entity(repo, d, &before);
    bool tty = isatty(STDERR_FILENO);
    double t0 = now_ms();
    /* through the batch path: one MGET, leases, one query, fills */
    for (size_t at = 0; at < n; at += 100) {
        size_t k = n - at < 100 ? n - at : 100;
        memo_rows rows = {0};
        memo_status st = memo_get_many(repo, d, ids + at * width, k, &rows);
        if (st != MEMO_OK)
            die(1, "%s", memo_last_error(repo));
        found += rows.len;
        memo_rows_clear(d, &rows);
        if (tty) {
            int bar = (int)(30.0 * (double)(at + k) / (double)n);
            fprintf(stderr, "\r[%-30.*s] %zu/%zu", bar, "##############################",
                    at + k, n);
        }
    }
    if (tty && n)
        fputc('\n', stderr);
    memo_stats_entity(repo, d, &after);
    for (size_t i = 0; i < n; i++)
        memop_pk_free(d, ids + i * width);
    free(ids);
    unsigned long long filled = after.fills - before.fills;
    unsigned long long cached = (after.hits - before.hits);
    if (json)
        printf("{\"entity\":\"%s.%s\",\"requested\":%zu,\"found\":%zu,\"filled\":%llu,"
               "\"already_cached\":%llu,\"missing\":%zu,\"ms\":%.0f}\n",
               d->schema, d->name, n, found, filled, cached, n - found, now_ms() - t0);
    else
        printf("warmed %s.%s: %zu keys, %llu filled, %llu already cached, %zu not in the "
               "database (%.0f ms)\n",
               d->schema, d->name, n, filled, cached, n - found, now_ms() - t0);
    return 0;
}

/* ---------------------------------------------------------------- watch */

static memo_watch *the_watch;

static void stop_watch(int sig)
{
    (void)sig;
    memo_watch_stop(the_watch); /* async-signal-safe */
}

static void watch_log(void *arg, const char *message)
{
    (void)arg;
    time_t now = time(NULL);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime(&now));
    fprintf(stderr, "%s memo watch: %s\n", stamp, message);
}

/* Follows the change stream until SIGTERM or SIGINT, or drops the slot. */
static int cmd_watch(const char *slot, bool drop)
{
    char name[64];
    if (!slot) {
        memop_stream_name(schema_name, name);
        slot = name;
    }
    if (drop) {
        memo_status st = memo_watch_drop_slot(repo, slot);
        if (st != MEMO_OK)
            die(1, "%s", memo_last_error(repo));
        printf("dropped the replication slot %s\n", slot);
        return 0;
    }
    memo_watch_config cfg = MEMO_WATCH_CONFIG_INIT;
    cfg.schema = model_schema(mdl);
    cfg.slot = slot;
    cfg.log = watch_log;
    if (memo_watch_open(repo, &cfg, &the_watch) != MEMO_OK)
        die(1, "%s", memo_last_error(repo));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_watch;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    memo_status st = memo_watch_run(the_watch);
    int rc = 0;
    if (st != MEMO_OK) {
        fprintf(stderr, "memo: %s\n", memo_last_error(repo));
        rc = 1;
    } else {
        const memop_watch_stats *w = repo->watch;
        uint64_t lsn = atomic_load(&w->confirmed_lsn);
        char msg[256];
        snprintf(msg, sizeof msg,
                 "stopped: %" PRIu64 " changes in %" PRIu64 " transactions, %" PRIu64
                 " keys deleted, confirmed up to %X/%X",
                 atomic_load(&w->changes), atomic_load(&w->transactions),
                 atomic_load(&w->keys_deleted), (unsigned)(lsn >> 32), (unsigned)lsn);
        watch_log(NULL, msg);
    }
    /* no signal may reach a watch being freed; the process is exiting */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    memo_watch *w = the_watch;
    the_watch = NULL;
    memo_watch_close(w);
    return rc;
}

/* ---------------------------------------------------------------- main */

/* Bounds of the numeric options. */
#define WATCH_MIN_S 0.1
#define WATCH_MAX_S 3600.0
enum { COUNT_MAX = 1000000, TOP_MAX = 10000000 };

/* The options each command takes, besides --json. */
static const struct command {
    const char *name, *options;
} commands[] = {
    {"ping", "--warn-retained"},
    {"stats", "--prom --watch --count"},
    {"get", ""},
    {"flush", "--all --list"},
    {"warm", "--ids --top"},
    {"watch", "--slot --drop-slot"},
};

static bool in_list(const char *list, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = list; (p = strstr(p, opt)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* The value of the option at argv[*i]: the next argument, not an option. */
static const char *option_value(int argc, char **argv, int *i)
{
    const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!next || (next[0] == '-' && next[1] == '-' && next[2]))
        die(2, "option %s needs a value", argv[*i]);
    return argv[++*i];
}

/* The whole of s as a number: no blanks, nothing after it. */
static long long whole_option(const char *opt, const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || isspace((unsigned char)*s) || *end || errno || v < lo || v > hi)
        die(2, "option %s needs a whole number from %lld to %lld, not '%s'", opt, lo, hi,
            s);
    return v;
}

static double seconds_option(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || isspace((unsigned char)*s) || *end || errno || !isfinite(v) ||
        v < lo || v > hi)
        die(2, "option %s needs a number of seconds from %g to %g, not '%s'", opt, lo, hi,
            s);
    return v;
}

int main(int argc, char **argv)
{
    const char *schema = getenv("MEMO_SCHEMA"), *redis_url = NULL, *db_url = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("memo %s\n", MEMO_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--schema") == 0) {
            schema = option_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--redis") == 0) {
            redis_url = option_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--db") == 0) {
            db_url = option_value(argc, argv, &i);
        } else {
            fprintf(stderr, "memo: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    const struct command *command = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            command = &commands[k];
    if (!command)
        die(2, "unknown command '%s' (memo --help)", cmd);
    /* the command's own options, anywhere after it */
    bool json = false, prom = false, all = false;
    double watch = 0;
    long count = 0, top = 0;
    const char *list = NULL, *ids = NULL, *slot = NULL;
    bool drop_slot = false;
    long long warn_retained = 1LL << 30;
    char **args = xcalloc((size_t)argc, sizeof *args);
    int nargs = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        /* "-" is stdin, "-5" a key */
        if (a[0] != '-' || !a[1] || (a[1] >= '0' && a[1] <= '9')) {
            args[nargs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--json") != 0 && !in_list(command->options, a)) {
            for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
                if (in_list(commands[k].options, a))
                    die(2, "option %s does not apply to %s", a, cmd);
            die(2, "unknown option '%s' for %s", a, cmd);
        }
        if (strcmp(a, "--json") == 0)
            json = true;
        else if (strcmp(a, "--prom") == 0)
            prom = true;
        else if (strcmp(a, "--all") == 0)
            all = true;
        else if (strcmp(a, "--watch") == 0)
            watch =
                seconds_option(a, option_value(argc, argv, &i), WATCH_MIN_S, WATCH_MAX_S);
        else if (strcmp(a, "--count") == 0)
            count = (long)whole_option(a, option_value(argc, argv, &i), 1, COUNT_MAX);
        else if (strcmp(a, "--list") == 0)
            list = option_value(argc, argv, &i);
        else if (strcmp(a, "--ids") == 0)
            ids = option_value(argc, argv, &i);
        else if (strcmp(a, "--slot") == 0)
            slot = option_value(argc, argv, &i);
        else if (strcmp(a, "--warn-retained") == 0)
            warn_retained = whole_option(a, option_value(argc, argv, &i), 0, 1LL << 60);
        else if (strcmp(a, "--drop-slot") == 0)
            drop_slot = true;
        else if (strcmp(a, "--top") == 0)
            top = (long)whole_option(a, option_value(argc, argv, &i), 1, TOP_MAX);
    }
    if (json && prom)
        die(2, "--json or --prom, not both");
    if (count && !watch)
        die(2, "option --count needs --watch (it counts the tables --watch draws)");
    if (watch && (json || prom))
        die(2, "--watch draws a table: not with --json or --prom");
    if (strcmp(cmd, "get") == 0 && nargs < 2)
        die(2, "usage: memo get ENTITY KEY...");
    if (strcmp(cmd, "flush") == 0 && (all ? nargs != 0 || list : nargs != 1))
        die(2, "usage: memo flush ENTITY [--list NAME] | memo flush --all");
    if (strcmp(cmd, "warm") == 0 && (nargs != 1 || !ids == !top))
        die(2, "usage: memo warm ENTITY (--ids FILE | --top N)");
    if ((strcmp(cmd, "ping") == 0 || strcmp(cmd, "stats") == 0 ||
         strcmp(cmd, "watch") == 0) &&
        nargs != 0)
        die(2, "%s takes no arguments: '%s'", cmd, args[0]);

    if (schema)
        load_schema(schema);
    /* the keys of get and warm --ids, all of them, before any output */
    const memo_entity_desc *d = NULL;
    get_arg *keys = NULL;
    char *warm_ids = NULL;
    size_t nwarm = 0;
    if (strcmp(cmd, "get") == 0) {
        d = entity(args[0]);
        keys = xcalloc((size_t)nargs, sizeof *keys);
        for (int k = 1; k < nargs; k++)
            parse_get_arg(d, args[k], &keys[k - 1]);
    } else if (strcmp(cmd, "warm") == 0) {
        d = entity(args[0]);
        if (ids)
            warm_ids = read_ids(d, ids, &nwarm);
    } else if (strcmp(cmd, "flush") == 0 && !all) {
        entity(args[0]);
    }
    if (strcmp(cmd, "watch") == 0 && !mdl && !(slot && drop_slot))
        die(2, "watch needs the schema (--schema FILE or MEMO_SCHEMA); --drop-slot needs "
               "it or --slot NAME");
    /* a watch publishes its statistics, for memo stats */
    open_repo(redis_url, db_url, strcmp(cmd, "watch") == 0 && !drop_slot);
    int rc;
    if (strcmp(cmd, "ping") == 0)
        rc = cmd_ping(json, warn_retained);
    else if (strcmp(cmd, "stats") == 0)
        rc = cmd_stats(json, prom, watch, count);
    else if (strcmp(cmd, "get") == 0)
        rc = cmd_get(d, keys, nargs - 1, json);
    else if (strcmp(cmd, "flush") == 0)
        rc = cmd_flush(all ? NULL : args[0], list, all, json);
    else if (strcmp(cmd, "watch") == 0)
        rc = cmd_watch(slot, drop_slot);
    else
        rc = cmd_warm(d, warm_ids, nwarm, top, json);
    memo_close(repo);
    model_free(mdl);
    ast_schema_free(schema_ast);
    free(schema_src);
    free(keys);
    free(args);
    return rc;
}
