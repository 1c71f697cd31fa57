/* Redis Cluster: the slot map, and the router a pooled connection becomes
 * on a cluster. The engine above is the same on one Redis and on a
 * cluster: it appends commands and exchanges them on "a connection"; here
 * each command goes to the node that serves its key's slot (a connection
 * per node, made when first needed), multi-key commands are split by slot
 * (a cluster refuses keys of several slots in one command) and their
 * replies joined, every node's share is written before any reply is read,
 * and MOVED, ASK and TRYAGAIN are followed within the call. memo's keys put
 * a row and its lease in one slot, so every script touches one slot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

enum { JOIN_NONE, JOIN_ARRAY, JOIN_SUM };

struct memop_route {
    size_t start, len; /* its RESP in c->out */
    size_t logical;    /* which of the caller's replies it is (part of) */
    size_t pos, npos;  /* a split command: its keys' places, in c->keypos */
    uint16_t slot;
    unsigned char node;
    unsigned char join;
    unsigned char asked; /* the node an ASK named, + 1 (0: none) */
    bool keyed;          /* routed by a key: MOVED and ASK apply */
};

void memop_cluster_init(memo_repo *repo)
{
    memop_cluster *cl = &repo->cluster;
    pthread_mutex_init(&cl->lock, NULL);
    for (size_t i = 0; i < MEMOP_SLOTS; i++)
        atomic_store_explicit(&cl->slot[i], MEMOP_NO_NODE, memory_order_relaxed);
}

static void node_free(memop_rnode *nd)
{
    free(nd->host);
    free(nd);
}

void memop_cluster_destroy(memo_repo *repo)
{
    memop_cluster *cl = &repo->cluster;
    unsigned n = atomic_load(&cl->nnodes);
    for (unsigned i = 0; i < n; i++)
        node_free(cl->nodes[i]);
    while (cl->retired) {
        memop_rnode *next = cl->retired->retired;
        node_free(cl->retired);
        cl->retired = next;
    }
    pthread_mutex_destroy(&cl->lock);
}

/* A host a cluster names: a name or an address, nothing else (it comes
 * from Redis, and ends up in messages and in connect()). */
static bool host_ok(const char *host, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
              (host[i] >= '0' && host[i] <= '9') || strchr(".-_:%", host[i])))
            return false;
    return true;
}

/* An index no slot names, no seed holds and no node down needs: where a
 * new node goes once the table is full (nodes come and go under
 * orchestrators). -1 if none. Under the lock. */
static int reusable(memo_repo *repo, unsigned n)
{
    memop_cluster *cl = &repo->cluster;
    bool used[MEMOP_NODES_MAX] = {false};
    for (size_t s = 0; s < MEMOP_SLOTS; s++) {
        unsigned v = atomic_load_explicit(&cl->slot[s], memory_order_relaxed);
        if (v < MEMOP_NODES_MAX)
            used[v] = true;
    }
    const memop_redis_target *t = &repo->redis;
    for (unsigned i = 0; i < n; i++) {
        const memop_rnode *nd = cl->nodes[i];
        bool seed = false;
        for (size_t k = 0; k < t->nseeds && !seed; k++)
            seed =
                nd->port == t->seeds[k].port && strcmp(nd->host, t->seeds[k].host) == 0;
        if (!used[i] && !seed && !atomic_load(&nd->down))
            return (int)i;
    }
    return -1;
}

int memop_cluster_node(memo_repo *repo, const char *host, size_t hostlen, int port)
{
    memop_cluster *cl = &repo->cluster;
    if (!host_ok(host, hostlen) || port <= 0 || port > 65535)
        return -1;
    pthread_mutex_lock(&cl->lock);
    unsigned n = atomic_load(&cl->nnodes);
    int found = -1;
    for (unsigned i = 0; i < n && found < 0; i++)
        if (cl->nodes[i]->port == port && strlen(cl->nodes[i]->host) == hostlen &&
            memcmp(cl->nodes[i]->host, host, hostlen) == 0)
            found = (int)i;
    int at = found >= 0 ? -1 : n < MEMOP_NODES_MAX ? (int)n : reusable(repo, n);
    memop_rnode *nd = at >= 0 ? calloc(1, sizeof *nd) : NULL;
    if (nd && (nd->host = strndup(host, hostlen))) {
        nd->port = port;
        memop_host_port_name(nd->host, port, nd->name, sizeof nd->name);
        /* epochs differ across every node an index ever held: a connection
         * made to the old one is never taken for the new one's */
        atomic_store(&nd->epoch, atomic_fetch_add(&cl->epochs, 1) + 1);
        if ((unsigned)at < n) {
            /* replaced, not freed: a thread may still read it */
            cl->nodes[at]->retired = cl->retired;
            cl->retired = cl->nodes[at];
            atomic_store(&cl->nodes[at], nd);
        } else {
            atomic_store(&cl->nodes[at], nd);
            atomic_store_explicit(&cl->nnodes, n + 1, memory_order_release);
        }
        found = at;
    } else {
        free(nd);
    }
    pthread_mutex_unlock(&cl->lock);
    return found;
}

static memop_rnode *node_at(memo_repo *repo, unsigned i)
{
    return i < atomic_load_explicit(&repo->cluster.nnodes, memory_order_acquire)
               ? repo->cluster.nodes[i]
               : NULL;
}

size_t memop_redis_masters(memo_repo *repo, int *out)
{
    if (!atomic_load(&repo->cluster.on)) {
        out[0] = -1;
        return 1;
    }
    bool seen[MEMOP_NODES_MAX] = {false};
    size_t n = 0;
    for (size_t s = 0; s < MEMOP_SLOTS; s++) {
        unsigned v = atomic_load_explicit(&repo->cluster.slot[s], memory_order_acquire);
        if (v < MEMOP_NODES_MAX && !seen[v]) {
            seen[v] = true;
            out[n++] = (int)v;
        }
    }
    return n;
}

/* ------------------------------------------------------------ the slot map */

static const redisReply *elem(const redisReply *r, size_t i, int type)
{
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements && r->element[i] &&
                   r->element[i]->type == type
               ? r->element[i]
               : NULL;
}

/* CLUSTER SLOTS: [[start, end, [host, port, id...], replicas...]...]. A
 * reply another program may shape: every field is checked, every count
 * bounded. asked: the node that answered (a host "" or "?" is its own). */
static memo_status apply_slots(memo_repo *repo, const redisReply *r,
                               const memop_rnode *asked, char *err, size_t size)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements > MEMOP_SLOTS) {
        snprintf(err, size, "Redis %s: CLUSTER SLOTS: unexpected reply", asked->name);
        return MEMO_ERR_REDIS;
    }
    static const unsigned char none = MEMOP_NO_NODE;
    unsigned char map[MEMOP_SLOTS];
    memset(map, none, sizeof map);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        const redisReply *lo = elem(range, 0, REDIS_REPLY_INTEGER),
                         *hi = elem(range, 1, REDIS_REPLY_INTEGER),
                         *master = elem(range, 2, REDIS_REPLY_ARRAY);
        const redisReply *host = elem(master, 0, REDIS_REPLY_STRING),
                         *port = elem(master, 1, REDIS_REPLY_INTEGER);
        if (!lo || !hi || !host || !port || lo->integer < 0 ||
            hi->integer < lo->integer || hi->integer >= MEMOP_SLOTS) {
            snprintf(err, size, "Redis %s: CLUSTER SLOTS: unexpected reply", asked->name);
            return MEMO_ERR_REDIS;
        }
        bool own = host->len == 0 || (host->len == 1 && host->str[0] == '?');
        int node = memop_cluster_node(
            repo, own ? asked->host : host->str, own ? strlen(asked->host) : host->len,
            port->integer > 0 && port->integer <= 65535 ? (int)port->integer : -1);
        if (node < 0) {
            snprintf(err, size,
                     "Redis %s: CLUSTER SLOTS: a bad node address, or more than %d nodes",
                     asked->name, MEMOP_NODES_MAX);
            return MEMO_ERR_REDIS;
        }
        memset(map + lo->integer, node, (size_t)(hi->integer - lo->integer + 1));
    }
    /* a slot that moves to a node that served none (a replica promoted: a
     * failover, seen here or not; or a node just added, whose keys came by
     * MIGRATE) or from a node that is down: that node is down itself until
     * the prober has emptied it of memo's keys, for the old master may have
     * acknowledged a DEL its replica never got. (A slot moving between
     * masters that serve slots is resharding: MIGRATE moves keys whole.) */
    bool was_master[MEMOP_NODES_MAX] = {false};
    for (size_t s = 0; s < MEMOP_SLOTS; s++) {
        unsigned old = atomic_load(&repo->cluster.slot[s]);
        if (old < MEMOP_NODES_MAX)
            was_master[old] = true;
    }
    size_t unserved = 0;
    for (size_t s = 0; s < MEMOP_SLOTS; s++) {
        unsigned old = atomic_load(&repo->cluster.slot[s]);
        if (old < MEMOP_NODES_MAX && map[s] != none && map[s] != old &&
            (atomic_load(&repo->cluster.nodes[old]->down) || !was_master[map[s]]) &&
            !atomic_exchange(&repo->cluster.nodes[map[s]]->needs_flush, true)) {
            memop_cluster_node_down(
                repo, map[s],
                "took over slots (a failover): emptied of memo's keys before use");
            atomic_fetch_add(&repo->cluster.failovers, 1);
        }
        /* a slot the answer leaves unserved keeps the owner memo knew: a
         * node that is joining or was reset does not blank the map */
        unserved += map[s] == none;
        if (map[s] != none)
            atomic_store_explicit(&repo->cluster.slot[s], map[s], memory_order_release);
    }
    if (unserved > 0) {
        snprintf(err, size, "Redis Cluster at %s: %zu of %d slots are served by no node",
                 asked->name, unserved, MEMOP_SLOTS);
        return MEMO_ERR_REDIS;
    }
    atomic_fetch_add(&repo->cluster.refreshes, 1);
    return MEMO_OK;
}

/* Asks one node for the map. */
static memo_status refresh_from(memo_repo *repo, const memop_rnode *nd, char *err,
                                size_t size)
{
    bool refused;
    redisContext *ctx = memop_redis_connect(repo, nd->host, nd->port, NULL, nd->name, err,
                                            size, &refused);
    if (!ctx)
        return refused ? MEMO_ERR_CONFIG : MEMO_ERR_REDIS;
    redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
    memo_status st;
    if (r && r->type == REDIS_REPLY_ERROR) {
        char text[200];
        memop_redis_error_text(r, text, sizeof text);
        bool noperm = memop_redis_error_kind(r) == MEMOP_REDIS_NOPERM;
        snprintf(err, size, "Redis %.100s: CLUSTER SLOTS: %.200s%s", nd->name, text,
                 noperm ? " (see \"Redis permissions\" in docs/operations.md)" : "");
        st = noperm ? MEMO_ERR_CONFIG : MEMO_ERR_REDIS;
    } else if (!r) {
        char why[256];
        memop_redis_context_error(ctx, why, sizeof why);
        snprintf(err, size, "Redis %.100s: CLUSTER SLOTS: %.200s", nd->name, why);
        st = MEMO_ERR_REDIS;
    } else {
        st = apply_slots(repo, r, nd, err, size);
    }
    freeReplyObject(r);
    redisFree(ctx);
    return st;
}

memo_status memop_cluster_refresh(memo_repo *repo, char *err, size_t size)
{
    /* the nodes serving slots first, then the URL's: a failover or a
     * reshard leaves at least one of them knowing the new map */
    int masters[MEMOP_NODES_MAX];
    size_t nm = memop_redis_masters(repo, masters);
    const memop_redis_target *t = &repo->redis;
    memo_status st = MEMO_ERR_REDIS;
    snprintf(err, size, "no node of the Redis Cluster answered");
    atomic_store(&repo->cluster.stale, false);
    for (size_t i = 0; i < nm + t->nseeds; i++) {
        const memop_rnode *nd;
        if (i < nm) {
            nd = node_at(repo, (unsigned)masters[i]);
        } else {
            const memop_redis_seed *seed = &t->seeds[i - nm];
            int k = memop_cluster_node(repo, seed->host, strlen(seed->host), seed->port);
            nd = k < 0 ? NULL : node_at(repo, (unsigned)k);
        }
        if (!nd)
            continue;
        char why[512];
        st = refresh_from(repo, nd, why, sizeof why);
        snprintf(err, size, "%s", why);
        if (st == MEMO_OK || st == MEMO_ERR_CONFIG)
            break;
    }
    if (st != MEMO_OK)
        atomic_store(&repo->cluster.stale, true);
    return st;
}

/* ------------------------------------------------------------- the router */

static bool named(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

/* Keyless commands: the pinned node, else the one serving slot 0. */
static int keyless_node(memo_repo *repo, const memop_rconn *c)
{
    if (c->pin >= 0)
        return c->pin;
    return atomic_load_explicit(&repo->cluster.slot[0], memory_order_acquire);
}

static bool add_route(memop_rconn *c, const struct memop_route *r)
{
    if (c->nroutes == c->routecap) {
        size_t cap = c->routecap ? c->routecap * 2 : 16;
        struct memop_route *grown = realloc(c->routes, cap * sizeof *grown);
        if (!grown)
            return false;
        c->routes = grown;
        c->routecap = cap;
    }
    c->routes[c->nroutes++] = *r;
    return true;
}

static bool add_keypos(memop_rconn *c, uint32_t pos)
{
    if (c->nkeypos == c->keyposcap) {
        size_t cap = c->keyposcap ? c->keyposcap * 2 : 64;
        uint32_t *grown = realloc(c->keypos, cap * sizeof *grown);
        if (!grown)
            return false;
        c->keypos = grown;
        c->keyposcap = cap;
    }
    c->keypos[c->nkeypos++] = pos;
    return true;
}

/* The keys of a command: the first's index and how many (0: keyless), and
 * how a split command's replies join. memo sends no other keyed command. */
static int command_keys(int argc, const char *const *argv, const size_t *lens, int *nkeys,
                        int *join)
{
    *nkeys = 0;
    *join = JOIN_NONE;
    if (argc < 2)
        return 0;
    size_t n0 = lens ? lens[0] : strlen(argv[0]);
    if (named(argv[0], n0, "MGET")) {
        *join = JOIN_ARRAY;
        *nkeys = argc - 1;
        return 1;
    }
    if (named(argv[0], n0, "DEL") || named(argv[0], n0, "UNLINK") ||
        named(argv[0], n0, "EXISTS")) {
        *join = JOIN_SUM;
        *nkeys = argc - 1;
        return 1;
    }
    if (named(argv[0], n0, "EVALSHA") || named(argv[0], n0, "EVAL")) {
        /* memo's scripts declare one key, or none */
        if (argc > 3 && !((lens ? lens[2] : strlen(argv[2])) == 1 && argv[2][0] == '0'))
            *nkeys = 1;
        return 3;
    }
    static const char *const single[] = {"GET",    "SET", "PTTL",   "PEXPIRE",
                                         "EXPIRE", "TTL", "STRLEN", "TYPE"};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (named(argv[0], n0, single[i])) {
            *nkeys = 1;
            return 1;
        }
    return 0;
}

typedef struct keyed {
    uint32_t i;
    uint16_t slot;
} keyed;

static int by_slot(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static unsigned slot_of(const char *const *argv, const size_t *lens, int i)
{
    return memop_key_slot(argv[i], lens ? lens[i] : strlen(argv[i]));
}

static int node_of_slot(memo_repo *repo, unsigned slot)
{
    /* acquire: the node it names was published before it */
    return atomic_load_explicit(&repo->cluster.slot[slot], memory_order_acquire);
}

void memop_cluster_append(memop_rconn *c, int node, int argc, const char *const *argv,
                          const size_t *lens)
{
    memo_repo *repo = c->repo;
    size_t logical = c->nlogical++;
    int nkeys = 0, join = JOIN_NONE;
    int first = node < 0 ? command_keys(argc, argv, lens, &nkeys, &join) : 0;
    struct memop_route r = {.start = c->out.len, .logical = logical};
    if (nkeys == 0) {
        r.node = (unsigned char)(node >= 0 ? node : keyless_node(repo, c));
        memop_resp_append(&c->out, argc, argv, lens);
        r.len = c->out.len - r.start;
        if (!add_route(c, &r))
            c->out.failed = true;
        return;
    }
    unsigned slot = slot_of(argv, lens, first);
    bool one = true;
    for (int i = first + 1; i < first + nkeys && one; i++)
        one = slot_of(argv, lens, i) == slot;
    r.keyed = true;
    if (one) {
        r.slot = (uint16_t)slot;
        r.node = (unsigned char)node_of_slot(repo, slot);
        memop_resp_append(&c->out, argc, argv, lens);
        r.len = c->out.len - r.start;
        if (!add_route(c, &r))
            c->out.failed = true;
        return;
    }
    /* keys of several slots: a command per slot, in one pipeline */
    keyed *k = malloc((size_t)nkeys * sizeof *k);
    const char **av = malloc(((size_t)nkeys + 1) * sizeof *av);
    size_t *al = malloc(((size_t)nkeys + 1) * sizeof *al);
    if (!k || !av || !al) {
        c->out.failed = true;
        goto out;
    }
    for (int i = 0; i < nkeys; i++)
        k[i] = (keyed){(uint32_t)i, (uint16_t)slot_of(argv, lens, first + i)};
    qsort(k, (size_t)nkeys, sizeof *k, by_slot);
    av[0] = argv[0];
    al[0] = lens ? lens[0] : strlen(argv[0]);
    for (int at = 0; at < nkeys;) {
        int end = at;
        r.start = c->out.len;
        r.slot = k[at].slot;
        r.node = (unsigned char)node_of_slot(repo, k[at].slot);
        r.join = (unsigned char)join;
        r.pos = c->nkeypos;
        for (; end < nkeys && k[end].slot == k[at].slot; end++) {
            av[end - at + 1] = argv[first + (int)k[end].i];
            al[end - at + 1] =
                lens ? lens[first + (int)k[end].i] : strlen(av[end - at + 1]);
            if (!add_keypos(c, k[end].i))
                c->out.failed = true;
        }
        r.npos = (size_t)(end - at);
        memop_resp_append(&c->out, end - at + 1, av, al);
        r.len = c->out.len - r.start;
        if (!add_route(c, &r))
            c->out.failed = true;
        at = end;
    }
out:
    free(k);
    free(av);
    free(al);
}

void memop_rconn_pin(memop_rconn *c, int node)
{
    c->pin = node;
}

void memop_cluster_node_down(memo_repo *repo, unsigned node, const char *why)
{
    memop_rnode *nd = node_at(repo, node);
    bool up = false;
    if (!nd || !atomic_compare_exchange_strong(&nd->down, &up, true))
        return;
    atomic_store(&nd->epoch, atomic_fetch_add(&repo->cluster.epochs, 1) + 1);
    atomic_fetch_add(&repo->cluster.ndown, 1);
    memop_fail(repo, MEMO_ERR_REDIS, "Redis %s: %s", nd->name, why);
    /* the map may have changed (a failover): the prober reads it */
    atomic_store(&repo->cluster.stale, true);
    memop_prober_wake(repo);
}

static bool node_usable(memo_repo *repo, const memop_rconn *c, unsigned node)
{
    memop_rnode *nd = node_at(repo, node);
    return nd && (!atomic_load(&nd->down) || c->probing == (int)node);
}

/* Drops c's connection to a node (it failed, or is from before the node
 * last went down). */
static void node_drop(memop_rconn *c, unsigned node)
{
    redisFree(c->nctx[node]);
    c->nctx[node] = NULL;
}

/* The connection to a node, made now if it is not yet; NULL (the node is
 * then down) when it cannot be. */
static redisContext *node_ctx(memo_repo *repo, memop_rconn *c, unsigned node)
{
    memop_rnode *nd = node_at(repo, node);
    if (c->nctx[node] && c->nepoch[node] == atomic_load(&nd->epoch))
        return c->nctx[node];
    node_drop(c, node);
    char err[512];
    bool refused;
    uint64_t epoch = atomic_load(&nd->epoch);
    redisContext *ctx = memop_redis_connect(repo, nd->host, nd->port, NULL, nd->name, err,
                                            sizeof err, &refused);
    if (!ctx) {
        /* down, or refusing (its ACL): its keys wait for the prober */
        memop_cluster_node_down(repo, node, err);
        memop_fail(repo, MEMO_ERR_REDIS, "%s", err);
        return NULL;
    }
    memop_rconn_use_arena(c, ctx);
    c->nctx[node] = ctx;
    c->nepoch[node] = epoch;
    return ctx;
}

/* A node's connection failed in the middle of an exchange: it goes, the
 * node is down, the other nodes' replies are still read. */
static void node_failed(memo_repo *repo, memop_rconn *c, unsigned node, const char *what)
{
    char why[256];
    memop_redis_context_error(c->nctx[node], why, sizeof why);
    char msg[400];
    snprintf(msg, sizeof msg, "%.100s: %.200s", what, why);
    node_drop(c, node);
    memop_cluster_node_down(repo, node, msg);
}

/* The reply of a command whose node is down (why NULL), or that a
 * migrating slot kept refusing: an outage of that key alone. */
static redisReply *down_reply(memo_repo *repo, memop_rconn *c, unsigned node,
                              const char *why)
{
    char text[400];
    memop_rnode *nd = node_at(repo, node);
    int n = snprintf(text, sizeof text, "MEMODOWN Redis %s %s", nd ? nd->name : "?",
                     why ? why : "is unavailable (circuit open)");
    redisReply *r = memop_rconn_alloc(c, sizeof *r);
    char *str = memop_rconn_alloc(c, (size_t)n + 1);
    if (!r || !str)
        return NULL;
    memset(r, 0, sizeof *r);
    r->type = REDIS_REPLY_ERROR;
    memcpy(str, text, (size_t)n + 1);
    r->str = str;
    r->len = (size_t)n;
    return r;
}

bool memop_redis_node_down_reply(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MEMODOWN ", 9) == 0;
}

/* Sends one route's command to a node (after ASKING for an ASK) and reads
 * its reply into *out (a down reply if the node fails). 0, or -1 after an
 * oversized reply (c is then dead). */
static int resend(memo_repo *repo, memop_rconn *c, const struct memop_route *r,
                  unsigned node, bool asking, size_t *budget, redisReply **out,
                  const char *what)
{
    redisContext *ctx = node_usable(repo, c, node) ? node_ctx(repo, c, node) : NULL;
    if (!ctx) {
        *out = down_reply(repo, c, node, NULL);
        return *out ? 0 : -1;
    }
    static const char ask[] = "*1\r\n$6\r\nASKING\r\n";
    c->scratch.len = 0;
    if (asking)
        memop_buf_append(&c->scratch, ask, sizeof ask - 1);
    memop_buf_append(&c->scratch, c->out.s + r->start, r->len);
    if (c->scratch.failed) {
        c->scratch.failed = false;
        c->dead = true;
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return -1;
    }
    if (memop_ctx_write(ctx, c->scratch.s, c->scratch.len) != 0) {
        node_failed(repo, c, node, what);
        *out = down_reply(repo, c, node, NULL);
        return *out ? 0 : -1;
    }
    for (int i = 0; i < (asking ? 2 : 1); i++) {
        void *v = NULL;
        int rc = memop_ctx_read(ctx, budget, &v);
        if (rc == 0) {
            memop_redis_oversize(repo, c, ctx, repo->cluster.nodes[node]->name, what);
            return -1;
        }
        if (rc < 0) {
            node_failed(repo, c, node, what);
            *out = down_reply(repo, c, node, NULL);
            return *out ? 0 : -1;
        }
        *out = v;
    }
    return 0;
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the node it names (an empty
 * host is the node that answered), -1 when it cannot be read or kept. */
static int redirect_node(memo_repo *repo, const redisReply *r, unsigned from,
                         unsigned *slot)
{
    const char *p = strchr(r->str, ' ');
    char *end;
    long s = p ? strtol(p + 1, &end, 10) : -1;
    if (!p || s < 0 || s >= MEMOP_SLOTS || *end != ' ')
        return -1;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || *end != '\0' || port <= 0 || port > 65535)
        return -1;
    *slot = (unsigned)s;
    const char *host = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen == 0) {
        host = repo->cluster.nodes[from]->host;
        hlen = strlen(host);
    }
    return memop_cluster_node(repo, host, hlen, (int)port);
}

/* Whether a node serves some slot in memo's map. */
static bool serves_slots(memo_repo *repo, unsigned node)
{
    for (size_t s = 0; s < MEMOP_SLOTS; s++)
        if (atomic_load_explicit(&repo->cluster.slot[s], memory_order_relaxed) == node)
            return true;
    return false;
}

static bool starts(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* Follows redirections: MOVED (the map changed: the slot is corrected now,
 * the whole map by the prober), ASK (a slot being migrated: this key is on
 * the target already), TRYAGAIN (keys of a slot in migration: a short
 * wait). A few rounds, and never past the command time-out; what is left
 * stays an error reply for the caller. */
static int follow(memo_repo *repo, memop_rconn *c, redisReply **sub, size_t *budget,
                  const char *what)
{
    memop_cluster *cl = &repo->cluster;
    uint64_t deadline = memop_now_us() + (uint64_t)repo->cfg.command_timeout_ms * 1000u;
    for (int round = 0; round < 5; round++) {
        bool any = false;
        for (size_t i = 0; i < c->nroutes; i++) {
            struct memop_route *r = &c->routes[i];
            bool moved = starts(sub[i], "MOVED "), ask = starts(sub[i], "ASK "),
                 again = starts(sub[i], "TRYAGAIN");
            if (!r->keyed || !(moved || ask || again))
                continue;
            /* a slot in migration answers TRYAGAIN where ASK sent it */
            unsigned to = again && r->asked ? r->asked - 1u : r->node, slot;
            if (moved || ask) {
                /* (about this command's slot only: a reply names no other) */
                int k = redirect_node(repo, sub[i], r->node, &slot);
                if (k < 0 || slot != r->slot)
                    continue;
                to = (unsigned)k;
            }
            if (moved) {
                /* not followed when the slot's owner is down here, or the
                 * target serves no slot here (a replica promoted, a node
                 * added): it may miss a DEL, and the prober, reading the
                 * map, has it emptied first */
                unsigned owner = (unsigned)node_of_slot(repo, slot);
                if ((owner < MEMOP_NODES_MAX && atomic_load(&cl->nodes[owner]->down)) ||
                    !serves_slots(repo, to)) {
                    if (!atomic_exchange(&cl->stale, true))
                        memop_prober_wake(repo);
                    continue;
                }
                atomic_store_explicit(&cl->slot[slot], (unsigned char)to,
                                      memory_order_release);
                atomic_fetch_add(&cl->moved, 1);
                if (!atomic_exchange(&cl->stale, true))
                    memop_prober_wake(repo);
                r->node = (unsigned char)to;
            } else if (ask) {
                atomic_fetch_add(&cl->asked, 1);
                r->asked = (unsigned char)(to + 1);
            } else {
                uint64_t now = memop_now_us();
                if (now >= deadline)
                    continue;
                atomic_fetch_add(&cl->tryagain, 1);
                uint64_t us = 10000u * (uint64_t)(round + 1);
                if (us > deadline - now)
                    us = deadline - now;
                struct timespec ts = {(time_t)(us / 1000000u),
                                      (long)(us % 1000000u) * 1000};
                nanosleep(&ts, NULL);
            }
            if (resend(repo, c, r, to, ask || (again && r->asked), budget, &sub[i],
                       what) != 0)
                return -1;
            any = true;
        }
        if (!any)
            break;
    }
    /* a slot still in migration: not an outage of the node, nor of Redis */
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].keyed && starts(sub[i], "TRYAGAIN") &&
            !(sub[i] = down_reply(repo, c, c->routes[i].node,
                                  "cannot serve a slot being migrated (TRYAGAIN)")))
            return -1;
    return 0;
}

static redisReply *new_reply(memop_rconn *c, int type)
{
    redisReply *r = memop_rconn_alloc(c, sizeof *r);
    if (r) {
        memset(r, 0, sizeof *r);
        r->type = type;
    }
    return r;
}

/* The replies of a split command, as one: MGET's arrays in the order the
 * keys were asked (a node that is down answers nil for its keys: misses,
 * which the caller reads from the database), or the sum of DEL's counts;
 * another error part is the reply. */
static redisReply *join_parts(memop_rconn *c, size_t from, size_t to, redisReply **sub)
{
    const struct memop_route *routes = c->routes;
    bool array = routes[from].join == JOIN_ARRAY;
    for (size_t i = from; i < to; i++)
        if (sub[i]->type == REDIS_REPLY_ERROR &&
            !(array && memop_redis_node_down_reply(sub[i])))
            return sub[i];
    redisReply *r;
    if (!array) {
        if (!(r = new_reply(c, REDIS_REPLY_INTEGER)))
            return NULL;
        for (size_t i = from; i < to; i++) {
            if (sub[i]->type != REDIS_REPLY_INTEGER)
                return sub[i]; /* unexpected: the caller says so */
            r->integer += sub[i]->integer;
        }
        return r;
    }
    size_t total = 0;
    for (size_t i = from; i < to; i++) {
        if (sub[i]->type != REDIS_REPLY_ERROR &&
            (sub[i]->type != REDIS_REPLY_ARRAY || sub[i]->elements != routes[i].npos))
            return sub[i];
        total += routes[i].npos;
    }
    redisReply *nil = new_reply(c, REDIS_REPLY_NIL);
    if (!nil || !(r = new_reply(c, REDIS_REPLY_ARRAY)) ||
        !(r->element = memop_rconn_alloc(c, total * sizeof *r->element)))
        return NULL;
    r->elements = total;
    for (size_t i = from; i < to; i++)
        for (size_t e = 0; e < routes[i].npos; e++) {
            uint32_t at = c->keypos[routes[i].pos + e];
            if (at >= total)
                return sub[i];
            r->element[at] = sub[i]->type == REDIS_REPLY_ERROR ? nil : sub[i]->element[e];
        }
    return r;
}

int memop_cluster_exchange(memo_repo *repo, memop_rconn *c, size_t n,
                           redisReply **replies, const char *what)
{
    size_t budget = c->budget ? c->budget : memop_redis_reply_budget(repo, n);
    c->budget = 0;
    c->oversize = false;
    size_t nr = c->nroutes;
    redisReply *few[16] = {NULL}, **sub = NULL; /* (a hit allocates nothing here) */
    int rc = -1;
    if (c->dead) { /* replies of an exchange that failed may wait unread */
        memop_fail(repo, MEMO_ERR_REDIS, "%s: the connection failed before", what);
        goto out;
    }
    if (c->out.failed || !(sub = nr <= 16 ? few : calloc(nr ? nr : 1, sizeof *sub))) {
        c->out.failed = false;
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (c->nlogical != n) { /* a caller's mistake: never sent */
        memop_fail(repo, MEMO_ERR_REDIS, "%s: %zu replies asked of %zu commands", what, n,
                   c->nlogical);
        goto out;
    }
    /* the nodes in the order they first appear, each connected (or down:
     * its commands get a down reply, the others go on) */
    unsigned char order[MEMOP_NODES_MAX];
    size_t norder = 0;
    bool seen[MEMOP_NODES_MAX] = {false}, up[MEMOP_NODES_MAX] = {false};
    for (size_t i = 0; i < nr; i++) {
        unsigned node = c->routes[i].node;
        if (node >= MEMOP_NODES_MAX) { /* a slot no node serves, as far as memo knows */
            memop_fail(repo, MEMO_ERR_REDIS,
                       "Redis Cluster: %s: the slot map is not known (no node answered)",
                       what);
            memop_redis_trip(repo);
            goto out;
        }
        if (!seen[node]) {
            seen[node] = true;
            order[norder++] = (unsigned char)node;
            up[node] = node_usable(repo, c, node) && node_ctx(repo, c, node);
        }
    }
    /* every node's share written before any reply is read */
    for (size_t k = 0; k < norder; k++) {
        unsigned node = order[k];
        if (!up[node])
            continue;
        /* one node: the commands as appended; several: each its share */
        const memop_buf *share = norder == 1 ? &c->out : &c->scratch;
        c->scratch.len = 0;
        for (size_t i = 0; i < nr && norder > 1; i++)
            if (c->routes[i].node == node)
                memop_buf_append(&c->scratch, c->out.s + c->routes[i].start,
                                 c->routes[i].len);
        if (c->scratch.failed) {
            c->scratch.failed = false;
            c->dead = true;
            memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (memop_ctx_write(c->nctx[node], share->s, share->len) != 0) {
            node_failed(repo, c, node, what);
            up[node] = false;
        }
    }
    for (size_t k = 0; k < norder; k++) {
        unsigned node = order[k];
        for (size_t i = 0; i < nr; i++) {
            if (c->routes[i].node != node)
                continue;
            void *v = NULL;
            int got = up[node] ? memop_ctx_read(c->nctx[node], &budget, &v) : -1;
            if (got == 0) {
                memop_redis_oversize(repo, c, c->nctx[node],
                                     repo->cluster.nodes[node]->name, what);
                goto out;
            }
            if (got < 0 && up[node]) {
                node_failed(repo, c, node, what);
                up[node] = false;
            }
            if (got < 0 && !(v = down_reply(repo, c, node, NULL))) {
                c->dead = true;
                memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                goto out;
            }
            sub[i] = v;
        }
    }
    if (follow(repo, c, sub, &budget, what) != 0)
        goto out;
    for (size_t i = 0, j = 0; j < n; j++) {
        size_t end = i + 1;
        while (end < nr && c->routes[end].logical == j)
            end++;
        replies[j] = end == i + 1 && c->routes[i].join == JOIN_NONE
                         ? sub[i]
                         : join_parts(c, i, end, sub);
        if (!replies[j]) {
            c->dead = true;
            memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
            goto out;
        }
        i = end;
    }
    rc = 0;
out:
    c->out.len = 0;
    c->nroutes = c->nlogical = c->nkeypos = 0;
    if (sub != few)
        free(sub);
    return rc;
}

/* ------------------------------------------------------- nodes coming back */

void memop_cluster_node_up(memo_repo *repo, int node)
{
    memop_rnode *nd = node_at(repo, (unsigned)node);
    bool down = true;
    if (nd && atomic_compare_exchange_strong(&nd->down, &down, false))
        atomic_fetch_sub(&repo->cluster.ndown, 1);
}

/* A node that is down, back: PING; after a failover memo's keys dropped;
 * its queued invalidations sent; then up (memop_pending_flush_node), over
 * a connection that may use it meanwhile. */
static void bring_back(memo_repo *repo, unsigned node)
{
    memop_rnode *nd = repo->cluster.nodes[node];
    char err[512];
    bool refused;
    memop_rconn *c = memop_rconn_new(repo, err, sizeof err, &refused);
    if (!c)
        return;
    c->probing = (int)node;
    const char *ping[] = {"PING"};
    memop_cluster_append(c, (int)node, 1, ping, NULL);
    redisReply *r = NULL;
    bool ok =
        memop_redis_exchange(repo, c, 1, &r, "PING") == 0 && r->type != REDIS_REPLY_ERROR;
    if (ok && atomic_load(&nd->needs_flush)) {
        unsigned n = atomic_load(&repo->nentities);
        for (unsigned i = 0; i < n && ok; i++)
            ok = memop_redis_flush_entity_on(repo, c, repo->entity_list[i]->desc,
                                             (int)node) >= 0;
        if (ok)
            atomic_store(&nd->needs_flush, false);
    }
    if (ok)
        memop_pending_flush_node(repo, c, (int)node);
    memop_rconn_free(c);
}

void memop_cluster_recover(memo_repo *repo)
{
    memop_cluster *cl = &repo->cluster;
    char err[512];
    memop_cluster_refresh(repo, err, sizeof err); /* best effort: the old map else */
    int masters[MEMOP_NODES_MAX];
    size_t nm = memop_redis_masters(repo, masters);
    bool serves[MEMOP_NODES_MAX] = {false};
    for (size_t i = 0; i < nm; i++)
        serves[masters[i]] = true;
    unsigned n = atomic_load(&cl->nnodes);
    for (unsigned i = 0; i < n; i++) {
        memop_rnode *nd = cl->nodes[i];
        if (!atomic_load(&nd->down))
            continue;
        if (serves[i]) {
            bring_back(repo, i);
        } else {
            /* a node that serves no slot (a failed master replaced) is
             * routed to by nobody: no longer held down (if it takes slots
             * over again, the map says so first) */
            atomic_store(&nd->needs_flush, false);
            memop_cluster_node_up(repo, (int)i);
        }
    }
}

void memop_cluster_conn_free(memop_rconn *c)
{
    free(c->routes);
    free(c->keypos);
    memop_buf_free(&c->scratch);
    c->routes = NULL;
    c->keypos = NULL;
    c->nroutes = c->routecap = c->nkeypos = c->keyposcap = c->nlogical = 0;
}

bool memop_cluster_trim(memop_rconn *c)
{
    /* after a large batch, as the transport's buffers */
    if (c->routecap > 4096 || c->keyposcap > 16384 || c->scratch.cap > 256 * 1024)
        memop_cluster_conn_free(c);
    return true;
}
