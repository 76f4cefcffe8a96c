/* fuzz_http_request: libFuzzer target for the gateway's request path without sockets: llhttp
 * (HTTP_REQUEST, default strictness, as pg_conn.c uses it) feeding pg_head through the same
 * callbacks pg_conn.c installs, then what on_request_head() does with a complete head, by
 * its own code: the refusals and the target's reading (pg__conn_head_target: absolute-form
 * routed by its authority, RFC 9112 3.2.2, else by Host) and the routing (pg__conn_route) on
 * a config with host routes (one naming host:port), a nested prefix and a token-protected
 * pprof; the pprof gate itself (pg_policy_check: enabled, allow, token, max_seconds,
 * max_concurrent), and pg_head_request_out for both the app and the agent form, with the
 * authority as Host as pg_conn sends it.
 * Checks beyond "no crash, no leak, no UB" (ASan + UBSan):
 * - what pg__conn_head_target lets through, read again from the bytes: an absolute-form
 *   target is http(s)://authority without userinfo, and its authority is what routes; else
 *   Host does; path and query tile the rest of the target; a host route matched only its
 *   host (with its port when it names one);
 * - every head it lets through is rewritten (a failure would be a 502 for a legal request);
 * - every iovec of the rewritten head lies in the head buffer or in static text;
 * - the rewritten head, parsed again by a strict llhttp, is one complete request head with
 *   the same method and the same framing (Content-Length value or chunked): what the proxy
 *   sends on can never be read by the upstream as a different message (no smuggling); it has
 *   exactly one Host, the authority routed by (RFC 9112 3.2), or the client's;
 * - the agent form's target starts with "/debug/pprof", and a head routed to the agent
 *   really had the route's "<prefix><pprof.path>" as a path prefix (byte for byte);
 * - the gate: a request it lets through carries no seconds= that the agent (pa_query_get +
 *   pa_query_parse_int, Go's url.ParseQuery + strconv.ParseInt) would read as more than
 *   pprof.max_seconds, and none without the token; a refusal holds no agent slot, has a
 *   message and one of the gate's statuses; the pprof-disabled upstream is always 404.
 * - the held chunked head (pg_conn holds a chunked request's head until its first chunk-size
 *   line has parsed, with every byte read along with it): when the bytes after the head (one
 *   read here) release it, the head and those bytes, read by the strict reference reader
 *   (ref_http.c, as fuzz_conn uses it), are a valid request or prefix of one, and a message
 *   llhttp ended is one the reference ends at the same byte. pg_conn's own checks on what
 *   llhttp accepts are made as pg_conn makes them: the head's line ends and folds
 *   (pg__conn_head_bad, on the bytes each execute consumed), the CRLF after chunk data, and
 *   the strict chunk reader over the body bytes (pg__chunk_scan). PG_FUZZ_KNOWN (see ref_http.h):
 * known findings the reference tolerates, to fuzz on past them. Not covered here (fuzz_conn drives
 * it): pg_conn's state machine itself — reading in pieces across uv reads, pipelining, timeouts,
 * body forwarding, the response side. The first input byte chooses where the input is split between
 * two llhttp_execute calls. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>

#include <llhttp.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_conn_int.h" /* pg__conn_head_bad, pg__chunk_scan: the checks pg_conn adds to llhttp */
#include "pg_head.h"
#include "pg_http.h"
#include "pg_policy.h"
#include "pg_route.h"
#include "pa_query.h" /* the agent's reading of the query, to hold the gate to it */
#include "ref_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pg_config_t *cfg;
static pg_route_table_t *routes;
static pg_policy_limits_t *limits;
static pg_bufpool_t pool;
static bool has_port_hosts; /* as pg_worker sets it: some route's host has ":port" */

typedef struct fctx {
    pg_head_t h;
    int head_done;
    /* the body, while the head is held (as pg_conn's xchg_t) */
    bool chunk_seen, bad_chunk_end, msg_done;
    uint64_t payload;
    const char *parse_end;
} fctx_t;

static int on_begin(llhttp_t *p)
{
    fctx_t *f = p->data;

    pg_head_reset(&f->h, cfg->server.max_header_bytes);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return pg_head_first(&((fctx_t *)p->data)->h, &pool, at, len);
}

/* after the head, field callbacks are the trailer section: body bytes, not the head's */
static int on_field(llhttp_t *p, const char *at, size_t len)
{
    fctx_t *f = p->data;

    return f->head_done ? 0 : pg_head_field(&f->h, &pool, at, len);
}

static int on_field_done(llhttp_t *p)
{
    fctx_t *f = p->data;

    return f->head_done ? 0 : pg_head_field_done(&f->h, &pool);
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    fctx_t *f = p->data;

    return f->head_done ? 0 : pg_head_append(&f->h, &pool, at, len);
}

static int on_value_done(llhttp_t *p)
{
    fctx_t *f = p->data;

    return f->head_done ? 0 : pg_head_value_done(&f->h, &pool);
}

/* As pg_conn's on_req_body: the two bytes after chunk data must be CRLF (llhttp 8 skips
 * them unchecked); those past the end of this read are not checked here (one read). */
static int on_body(llhttp_t *p, const char *at, size_t len)
{
    fctx_t *f = p->data;
    size_t avail = (size_t)(f->parse_end - (at + len)), i;

    f->payload += len;
    if (cfg->server.max_body_bytes && f->payload > cfg->server.max_body_bytes)
        return -1; /* 413 */

    if ((p->flags & F_CHUNKED) && p->content_length == 0) {
        for (i = 0; i < avail && i < 2; i++)
            if (at[len + i] != "\r\n"[i]) {
                f->bad_chunk_end = true;
                return -1;
            }
    }
    return 0;
}

static int on_chunk_header(llhttp_t *p)
{
    ((fctx_t *)p->data)->chunk_seen = true;
    return 0;
}

static int on_msg_done(llhttp_t *p)
{
    ((fctx_t *)p->data)->msg_done = true;
    return HPE_PAUSED;
}

static int on_headers_done(llhttp_t *p)
{
    ((fctx_t *)p->data)->head_done = 1;
    return HPE_PAUSED;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/fuzz_http_request.XXXXXX", path[128], tok[128];
    pg_errlist_t errs;
    FILE *f;

    (void)argc, (void)argv;
    ref_known_from_env();
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(tok, sizeof tok, "%s/token", dir);
    snprintf(path, sizeof path, "%s/fuzz.toml", dir);
    f = fopen(tok, "w");
    if (f == NULL)
        abort();
    fputs("s3cret\n", f);
    fclose(f);
    f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs("[server]\nlisten = \"127.0.0.1:1\"\nmax_header_bytes = \"4KiB\"\n"
          "max_body_bytes = \"1MiB\"\n"
          "[[upstream]]\nname = \"app\"\naddress = \"127.0.0.1:2\"\n"
          "agent = \"unix:/tmp/fuzz-agent.sock\"\n"
          "[[upstream]]\nname = \"api\"\naddress = \"127.0.0.1:3\"\n"
          "agent = \"unix:/tmp/fuzz-agent2.sock\"\n"
          "[upstream.pprof]\nenabled = false\n"
          "[[route]]\nprefix = \"/\"\nupstream = \"app\"\n"
          "[[route]]\nprefix = \"/api/\"\nupstream = \"api\"\n"
          "[[route]]\nprefix = \"/api\"\nhost = \"admin.example\"\nupstream = \"app\"\n"
          "[[route]]\nprefix = \"/api\"\nhost = \"port.example:8080\"\nupstream = \"app\"\n"
          "[pprof]\npath = \"/debug/pprof\"\nmax_seconds = 60\ntoken_file = \"token\"\n",
          f);
    fclose(f);
    memset(&errs, 0, sizeof errs);
    if (pg_config_load(path, &cfg, &errs) < 0) {
        fprintf(stderr, "fuzz_http_request: config did not load\n");
        abort();
    }
    if (pg_route_table_new(cfg, &routes) < 0 || pg_policy_limits_new(cfg, NULL, &limits) < 0)
        abort();
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].host && strchr(cfg->routes[i].host, ':'))
            has_port_hosts = true;
    if (!has_port_hosts)
        abort();
    unlink(tok);
    unlink(path);
    rmdir(dir);
    pg_bufpool_init(&pool);
    return 0;
}

/* Is [p, p+n) inside the head buffer (whole capacity) or static text? Static text is any of
 * the fixed strings pg_head uses; we accept pointers outside the buffer only for short runs. */
static void check_iov(const pg_head_t *h, const uv_buf_t *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const char *p = b[i].base;
        if (p >= h->buf->data && p < h->buf->data + h->buf->cap) {
            if (p + b[i].len > h->buf->data + h->buf->cap)
                abort();
        } else if (b[i].len > 64) { /* method names and " HTTP/1.1\r\n" etc. */
            abort();
        }
    }
}

typedef struct reparse {
    int complete;
    int urls;
    char url[64];
    size_t url_len;
    int hosts;         /* Host fields */
    bool in_host;      /* the field being read is Host */
    char name[8];      /* the field name so far (the first 8 bytes) */
    size_t name_len;
    const char *host;  /* the first Host value, in the flat head */
    size_t host_len;
} reparse_t;

static int rp_field(llhttp_t *p, const char *at, size_t len)
{
    reparse_t *r = p->data;

    for (size_t i = 0; i < len; i++, r->name_len++)
        if (r->name_len < sizeof r->name)
            r->name[r->name_len] = (char)tolower((unsigned char)at[i]);
    return 0;
}

static int rp_field_done(llhttp_t *p)
{
    reparse_t *r = p->data;

    r->in_host = r->name_len == 4 && memcmp(r->name, "host", 4) == 0;
    r->hosts += r->in_host;
    r->name_len = 0;
    return 0;
}

static int rp_value(llhttp_t *p, const char *at, size_t len)
{
    reparse_t *r = p->data;

    if (r->in_host && r->hosts == 1) {
        if (r->host == NULL)
            r->host = at;
        r->host_len = (size_t)(at + len - r->host); /* one flat buffer: pieces are adjacent */
    }
    return 0;
}

static int rp_url(llhttp_t *p, const char *at, size_t len)
{
    reparse_t *r = p->data;
    size_t k = len < sizeof r->url - r->url_len ? len : sizeof r->url - r->url_len;

    memcpy(r->url + r->url_len, at, k);
    r->url_len += k;
    return 0;
}

static int rp_headers_done(llhttp_t *p)
{
    ((reparse_t *)p->data)->complete = 1;
    return HPE_PAUSED;
}

/* Parse the rewritten head again; its method and framing must be those of the original, and
 * it has one Host: host (host_len bytes; NULL: the client sent none, any default goes). */
static void reparse(const llhttp_t *orig, const uv_buf_t *b, unsigned n, int pprof,
                    const char *host, size_t host_len)
{
    llhttp_settings_t s;
    llhttp_t p;
    reparse_t r = {0};
    size_t total = 0, o = 0;
    char *flat;
    llhttp_errno_t e;

    for (unsigned i = 0; i < n; i++)
        total += b[i].len;
    flat = malloc(total ? total : 1);
    if (flat == NULL)
        abort();
    for (unsigned i = 0; i < n; i++) {
        memcpy(flat + o, b[i].base, b[i].len);
        o += b[i].len;
    }
    llhttp_settings_init(&s);
    s.on_url = rp_url;
    s.on_header_field = rp_field;
    s.on_header_field_complete = rp_field_done;
    s.on_header_value = rp_value;
    s.on_headers_complete = rp_headers_done;
    llhttp_init(&p, HTTP_REQUEST, &s);
    p.data = &r;
    e = llhttp_execute(&p, flat, total);
    if (e != HPE_PAUSED || !r.complete) {
        fprintf(stderr, "rewritten head does not parse: %s\n%.*s\n", llhttp_errno_name(e),
                (int)total, flat);
        abort();
    }
    /* the head ends where the parser stopped: nothing after it */
    if (llhttp_get_error_pos(&p) != flat + total)
        abort();
    if (p.method != orig->method)
        abort();
    if ((p.flags & F_CHUNKED) != (orig->flags & F_CHUNKED))
        abort();
    if ((p.flags & F_CONTENT_LENGTH) != (orig->flags & F_CONTENT_LENGTH))
        abort();
    if ((orig->flags & F_CONTENT_LENGTH) && p.content_length != orig->content_length)
        abort();
    if (pprof && (r.url_len < 12 || memcmp(r.url, "/debug/pprof", 12) != 0))
        abort();
    /* RFC 9112 3.2: one Host; the authority of an absolute-form target (3.2.2), else the
     * client's */
    if (r.hosts != 1) {
        fprintf(stderr, "rewritten head has %d Host fields\n", r.hosts);
        abort();
    }
    if (host && (r.host_len != host_len || memcmp(r.host, host, host_len) != 0)) {
        fprintf(stderr, "rewritten head's Host is not the one routed by\n");
        abort();
    }
    free(flat);
}

/* pg_policy_check on a request routed to an agent, and what must hold of its verdict. */
static bool gate(const pg_config_upstream_t *up, const struct sockaddr *peer, const char *auth,
                 size_t alen, const char *query, size_t qlen, const char *rest, size_t rest_len)
{
    pg_policy_req_t r = {
        .up = up,
        .up_index = (size_t)(up - cfg->upstreams),
        .limits = limits,
        .peer = peer,
        .authorization = auth,
        .authorization_len = alen,
        .query = query,
        .query_len = qlen,
        .rest = rest,
        .rest_len = rest_len,
    };
    pg_policy_verdict_t v;
    char q[8192], val[64];
    int64_t secs;
    int st = pg_policy_check(&r, &v);

    if (st != v.status)
        abort();
    if (!up->pprof.enabled && st != 404)
        abort(); /* "api": profiling off, whatever the request says */
    if (st != 0) {
        if (v.agent != NULL || v.msg[0] == '\0')
            abort();
        if (st != 400 && st != 401 && st != 403 && st != 404 && st != 409)
            abort();
        return false;
    }
    if (!pg_http_bearer_ok(auth, alen, "s3cret"))
        abort(); /* through without the token */
    if (v.seconds > up->pprof.max_seconds)
        abort();
    /* the agent reads seconds= with Go's rules: it must not find more than the limit there */
    if (qlen >= sizeof q)
        abort(); /* heads are at most 4 KiB here */
    memcpy(q, query, qlen);
    q[qlen] = '\0';
    if (pa_query_get(q, "seconds", val, sizeof val) == 1 && val[0] != '\0' &&
        pa_query_parse_int(val, &secs) == 0 && secs > (int64_t)up->pprof.max_seconds)
        abort();
    if (v.agent)
        pg_policy_agent_give(v.agent); /* the exchange is over: the slot goes back */
    return true;
}

/* What pg__conn_head_target let through, read again from the bytes: an absolute-form
 * target is http(s)://authority with no userinfo, and then its authority is the host routed
 * by; otherwise the Host field is (one, in HTTP/1.1). Path and query tile the target's rest. */
static void check_target(const pg_head_t *h, const llhttp_t *p, const pg_conn_target_t *t)
{
    const char *url = h->buf->data, *hv;
    size_t urllen = h->first_len, hn;

    if (t->path_off > urllen || t->path_off + t->path_len != t->query_off ||
        t->query_off + t->query_len != urllen || t->host_len > t->host_full)
        abort();
    if (t->query_len > 0 && url[t->query_off] != '?')
        abort();
    if (t->auth_len > 0) {
        size_t scheme = t->auth_off - 3;

        if (!((scheme == 4 && strncasecmp(url, "http://", 7) == 0) ||
              (scheme == 5 && strncasecmp(url, "https://", 8) == 0)))
            abort();
        if (t->auth_off + t->auth_len != t->path_off || t->host != url + t->auth_off ||
            t->host_full != t->auth_len || t->host_len == 0 ||
            memchr(t->host, '@', t->host_full) != NULL)
            abort();
        if (t->path_len > 0 && url[t->path_off] != '/')
            abort();
        return;
    }
    if (urllen == 0 || url[0] != '/' || t->path_off != 0)
        abort();
    hv = pg_head_get(h, "host", &hn);
    if (hv != t->host || (hv && hn != t->host_full))
        abort();
    if (p->http_minor == 1 && hv == NULL)
        abort(); /* RFC 9112 3.2: a 400 */
}

/* A route with a host matched only a request whose routing host is that host (its port
 * too when the route names one), whatever case. */
static void check_route(const pg_conn_target_t *t, const pg_route_match_t *m)
{
    const char *rh = m->route->host;
    size_t rl, hl;

    if (rh == NULL)
        return;
    rl = strlen(rh);
    hl = strchr(rh, ':') ? t->host_full : t->host_len;
    if (t->host == NULL || hl != rl || strncasecmp(t->host, rh, rl) != 0) {
        fprintf(stderr, "routed to host route \"%s\" by \"%.*s\"\n", rh,
                t->host ? (int)t->host_full : 0, t->host ? t->host : "");
        abort();
    }
}

/* Returns whether pg_conn would forward the request (routed, through the gate, head
 * rewritten). What it refuses from the head, and how it routes, is pg_conn.c's own code
 * (pg__conn_head_target, pg__conn_route): the absolute-form authority in place of Host, a
 * route naming host:port matched on the whole value. */
static bool route_and_rewrite(fctx_t *f, const llhttp_t *p)
{
    pg_head_t *h = &f->h;
    const char *url = h->buf->data, *path, *auth, *why;
    size_t pathlen, alen;
    uint32_t query_off, query_len;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    pg_conn_target_t t;
    pg_route_match_t m;
    uv_buf_t bufs[PG_HEAD_MAX_IOV];
    unsigned n;
    int status;

    why = pg__conn_head_target(p, h, &status, &t);
    if (why != NULL) {
        if ((status != 400 && status != 501) || why[0] == '\0')
            abort();
        return false;
    }
    check_target(h, p, &t);
    path = url + t.path_off;
    pathlen = t.path_len;
    query_off = (uint32_t)t.query_off;
    query_len = (uint32_t)t.query_len;
    if (pg__conn_route(routes, has_port_hosts, url, &t, &m) < 0)
        return false; /* 404 */
    check_route(&t, &m);
    if (m.pprof) {
        const char *prefix = m.route->prefix;
        size_t plen = strlen(prefix);

        while (plen > 0 && prefix[plen - 1] == '/')
            plen--;
        /* routed to the agent: the raw path really is <prefix>/debug/pprof[/...] */
        if (pathlen < plen + 12 || memcmp(path, prefix, plen) != 0 ||
            memcmp(path + plen, "/debug/pprof", 12) != 0 ||
            (pathlen > plen + 12 && path[plen + 12] != '/'))
            abort();
        if (m.pprof_rest != path + plen + 12)
            abort();
        if (!m.upstream->pprof.enabled && strcmp(m.upstream->name, "api") != 0)
            abort(); /* config says only "api" has pprof off */
        auth = pg_head_get(h, "authorization", &alen);
        if (!gate(m.upstream, (const struct sockaddr *)&sin, auth, alen,
                  query_len ? h->buf->data + query_off + 1 : "", query_len ? query_len - 1 : 0,
                  m.pprof_rest, m.pprof_rest_len))
            return false;
    }
    {
        pg_head_req_out_t o = {
            .method = llhttp_method_name((llhttp_method_t)p->method),
            .path_off = (uint32_t)t.path_off,
            .pprof = m.pprof,
            .pprof_rest = m.pprof_rest,
            .pprof_rest_len = (uint32_t)m.pprof_rest_len,
            .query_off = query_off,
            .query_len = query_len,
            .add_forwarded = true,
            .add_via = true,
            .drop_authorization = m.pprof,
            .client = (const struct sockaddr *)&sin,
            .default_host = m.pprof ? "localhost" : m.upstream->address.text,
        };
        /* as pg_conn (write_request_head): an absolute-form target's authority is the Host
         * sent */
        if (t.auth_len > 0) {
            o.host = url + t.auth_off;
            o.host_len = (uint32_t)t.auth_len;
        }
        /* every head pg_conn lets through can be written: a failure here is a 502 for a
         * legal request (a Host near the limit overflowed a fixed reserve once) */
        if (pg_head_request_out(h, &o, bufs, &n) != 0)
            abort();
        if (n > PG_HEAD_MAX_IOV)
            abort();
        check_iov(h, bufs, n);
        reparse(p, bufs, n, m.pprof, t.auth_len ? url + t.auth_off : t.host,
                t.auth_len ? t.auth_len : t.host_full);
        return true;
    }
}

/* The held chunked head: [in, in+size) is the request from its first byte, head_end where
 * its head ended; the rest came in the same read. pg_conn answers 400 (nothing upstream) on
 * an error there, keeps holding without a whole chunk-size line, and otherwise sends the
 * head and the bytes parsed so far: those must be what the strict reader accepts. */
static void held_head(fctx_t *f, llhttp_t *p, const char *in, size_t size, const char *head_end)
{
    static ref_msg_t m;
    const char *end = in + size, *upto;
    pg_chunk_t k;
    llhttp_errno_t e;

    llhttp_resume(p);
    f->parse_end = end;
    e = llhttp_execute(p, head_end, (size_t)(end - head_end));
    if (e != HPE_OK && e != HPE_PAUSED)
        return; /* 400: nothing went upstream */
    if (e == HPE_PAUSED && !f->msg_done)
        abort(); /* only the message's end pauses here */
    if (!f->msg_done && !f->chunk_seen)
        return; /* still held */
    upto = e == HPE_PAUSED ? llhttp_get_error_pos(p) : end;
    pg__chunk_init(&k);
    if (pg__chunk_scan(&k, head_end, (size_t)(upto - head_end)) != NULL)
        return; /* pg_conn_body: 400 before a byte goes on */
    if (cfg->server.max_body_bytes && k.left > cfg->server.max_body_bytes - f->payload)
        return; /* pg_conn_body: a chunk size past the limit, 400 likewise */
    ref_parse_request(in, (size_t)(upto - in), &m);
    if (m.state == REF_BAD) {
        fprintf(stderr,
                "held chunked head released with bytes a strict reader refuses (%s at "
                "%zu)\n",
                m.why, m.end);
        abort();
    }
    if (f->msg_done != (m.state == REF_DONE) || (f->msg_done && m.end != (size_t)(upto - in))) {
        fprintf(stderr, "llhttp and the strict reader end the chunked message differently\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llhttp_settings_t s;
    llhttp_t p;
    fctx_t f;
    size_t split;
    llhttp_errno_t e;
    const char *in, *q;
    static pg_conn_t hc; /* only the carry of pg__conn_head_bad (head_cr, head_lf) */
    bool bad = false;

    if (size < 1)
        return 0;
    split = data[0];
    in = (const char *)data + 1;
    size--;
    if (split > size)
        split = size;
    memset(&f, 0, offsetof(fctx_t, h) + offsetof(pg_head_t, f));
    f.head_done = 0;
    f.chunk_seen = f.bad_chunk_end = f.msg_done = false;
    f.payload = 0;
    llhttp_settings_init(&s);
    s.on_message_begin = on_begin;
    s.on_url = on_url;
    s.on_header_field = on_field;
    s.on_header_field_complete = on_field_done;
    s.on_header_value = on_value;
    s.on_header_value_complete = on_value_done;
    s.on_headers_complete = on_headers_done;
    s.on_body = on_body;
    s.on_chunk_header = on_chunk_header;
    s.on_message_complete = on_msg_done;
    llhttp_init(&p, HTTP_REQUEST, &s);
    p.data = &f;
    f.parse_end = in + split;
    hc.head_cr = hc.head_lf = false;
    e = llhttp_execute(&p, in, split);
    q = e == HPE_OK ? in + split : llhttp_get_error_pos(&p);
    if (e == HPE_OK || e == HPE_PAUSED)
        bad = pg__conn_head_bad(&hc, in, (size_t)(q - in)) != NULL;
    if (e == HPE_OK && !f.head_done && !bad) {
        f.parse_end = in + size;
        e = llhttp_execute(&p, in + split, size - split);
        q = e == HPE_OK ? in + size : llhttp_get_error_pos(&p);
        if (e == HPE_OK || e == HPE_PAUSED)
            bad = pg__conn_head_bad(&hc, in + split, (size_t)(q - in - split)) != NULL;
    }
    if (!bad && e == HPE_PAUSED && f.head_done && !f.h.overflow && !f.h.too_many && f.h.buf &&
        !p.upgrade && route_and_rewrite(&f, &p) && (p.flags & F_CHUNKED))
        held_head(&f, &p, in, size, llhttp_get_error_pos(&p));
    pg_head_release(&f.h);
    return 0;
}
