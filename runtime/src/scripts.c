/* The Lua scripts memo runs in Redis, each with its KEYS/ARGV contract, and
 * running them: EVALSHA, and EVAL again when Redis lost a script (a restart
 * or SCRIPT FLUSH). The SHA1s are read from SCRIPT LOAD when a connection
 * is made (redis.c). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A lease lives in its value key (MEMOP_LEASE_MARK and a token): scripts
 * tell the two apart by the mark. A read's first ask is the native SET NX
 * GET PX (fill.c), so a hit costs Redis no script; this script is the ask
 * after that, for a reader waiting on a lease and for the batch path.
 *
 * KEYS[1] value; ARGV[1] lease, ARGV[2] lease ms, ARGV[3] the largest value
 * the caller reads. The value, else 1 when this caller took the lease, else
 * 0 (another holds it), else 2 (the value is too large to send: corrupt).
 * Every lease memo sets expires within its holder's lease_ms (the keeper
 * renews it to that): one without a time to live, or with more than twice
 * this caller's lease_ms to live, was not set by memo (or by a memo
 * configured far otherwise), and is taken over rather than waited for. Taking over is
 * always safe, a fill needs the key to hold its own lease; it only costs a query. */
static const char script_lease[] =
    "if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[3]) then return 2 end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "local m = '" MEMOP_LEASE_MARK "'\n"
    "if v and string.sub(v, 1, #m) == m then\n"
    "  local t = redis.call('PTTL', KEYS[1])\n"
    "  if t >= 0 and t <= 2 * tonumber(ARGV[2]) then return 0 end\n"
    "  v = nil\n"
    "end\n"
    "if v then return v end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

/* KEYS[1] value; ARGV[1] lease, ARGV[2] value, ARGV[3] ttl ms. Writes the
 * value only while the key still holds this caller's lease: a write that
 * committed meanwhile deleted it, so a stale fill is refused. */
static const char script_fill[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
                                  "  return 1\n"
                                  "end\n"
                                  "return 0\n";

/* KEYS[1] a key holding a lease, or a lock; ARGV[1] the lease or the
 * lock's token. Deletes it only while it is the caller's: a filler that
 * could not load the row gives its lease up so others need not wait for
 * it; a lock holder releases. */
static const char script_release[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('DEL', KEYS[1]) end\n"
                                     "return 0\n";

/* KEYS[1] a unique lookup; ARGV[1] and ARGV[2] the row key around the
 * primary key's part, ARGV[3] "1" when the key is text, "2" when it is
 * composite (the row key is then not built here), ARGV[4] the largest
 * value the caller reads. The lookup and the row in one round trip: {pk,
 * row}, or {pk} when the row key could not be built here (a part long
 * enough to be hashed), the row is too large, or the lookup is negative, or
 * nil on a miss, a lease or a lookup too large (the lookup path sorts
 * those out). Sizes are measured in Lua (#v) rather than with STRLEN: a
 * call fewer for each key on the hit path, whose cost is the script's.
 * The row key is not declared, so this runs on a single Redis, not across
 * Cluster slots. The escaping is keys.c's (MEMOP_KEY_PLAIN_LUA). */
static const char script_get_by[] =
    "local max = tonumber(ARGV[4])\n"
    "local v = redis.call('GET', KEYS[1])\n"
    /* '~' (126) begins a lease and no value: the lookup path sorts it out */
    "if not v or #v > max or string.byte(v, 1) == 126 then return nil end\n"
    "if v == 'null' or ARGV[3] == '2' then return {v} end\n"
    "local part = v\n"
    "if ARGV[3] == '1' then\n"
    "  local ok, s = pcall(cjson.decode, v)\n"
    "  if not ok or type(s) ~= 'string' then return {v} end\n"
    "  part = string.gsub(s, '[^" MEMOP_KEY_PLAIN_LUA "]', function(c)\n"
    "    return string.format('%%%02X', string.byte(c)) end)\n"
    "  if #part > " MEMOP_STR(
        MEMOP_KEY_PART_MAX) " then return {v} end\n"
                            "end\n"
                            "local r = redis.call('GET', ARGV[1] .. part .. ARGV[2])\n"
                            "if r and (#r > max or string.byte(r, 1) == 126) then return "
                            "{v} end\n"
                            "return {v, r}\n";

/* KEYS[1] a key holding a lease, or a lock; ARGV[1] the lease or the
 * holder's token, ARGV[2] ms. Extends it only while it is the caller's: a
 * lease a write deleted stays deleted.
 * (Both are released by script_release.) */
static const char script_extend[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                    "end\n"
                                    "return 0\n";

static const char *const scripts[MEMOP_SCRIPT_COUNT] = {
    [MEMOP_SCRIPT_EXTEND] = script_extend,   [MEMOP_SCRIPT_GET_BY] = script_get_by,
    [MEMOP_SCRIPT_LEASE] = script_lease,     [MEMOP_SCRIPT_FILL] = script_fill,
    [MEMOP_SCRIPT_RELEASE] = script_release,
};

const char *memop_script_text(enum memop_script which)
{
    return scripts[which];
}

/* EVALSHA sha nkeys keys... args... into the connection's buffer. */
void memop_redis_append_script(memo_repo *repo, memop_rconn *c, enum memop_script which,
                               bool sha, int nkeys, int argc, const char *const *argv,
                               const size_t *lens)
{
    const char *av[16];
    size_t al[16];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = sha ? "EVALSHA" : "EVAL";
    al[0] = strlen(av[0]);
    av[1] = sha ? repo->script_sha[which] : scripts[which];
    al[1] = strlen(av[1]);
    av[2] = nk;
    al[2] = strlen(nk);
    assert(argc <= 13);
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens[i];
    }
    memop_redis_append(c, argc + 3, av, al);
}

static bool noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

redisReply *memop_redis_script(memo_repo *repo, memop_rconn *c, enum memop_script which,
                               int nkeys, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = NULL;
    memop_redis_append_script(repo, c, which, true, nkeys, argc, argv, lens);
    if (memop_redis_exchange(repo, c, 1, &r, "EVALSHA") != 0)
        return NULL;
    if (noscript(r)) {
        /* Redis restarted or was flushed: EVAL runs and caches it again */
        memop_redis_append_script(repo, c, which, false, nkeys, argc, argv, lens);
        if (memop_redis_exchange(repo, c, 1, &r, "EVAL") != 0)
            return NULL;
    }
    return r;
}

int memop_redis_script_many(memo_repo *repo, memop_rconn *c, enum memop_script which,
                            int nkeys, memop_script_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memop_redis_append_script(repo, c, which, true, nkeys, calls[i].argc,
                                  calls[i].argv, calls[i].lens);
    redisReply **replies = n <= 128 ? (redisReply *[128]){0} : calloc(n, sizeof *replies);
    if (!replies)
        return -1;
    int rc = memop_redis_exchange(repo, c, n, replies, "EVALSHA pipeline");
    for (size_t i = 0; i < n && rc == 0; i++) {
        calls[i].reply = replies[i];
        /* after a restart the scripts are gone: run those calls again */
        if (noscript(replies[i]) &&
            !(calls[i].reply = memop_redis_script(repo, c, which, nkeys, calls[i].argc,
                                                  calls[i].argv, calls[i].lens)))
            rc = -1;
    }
    if (n > 128)
        free(replies);
    return rc;
}
