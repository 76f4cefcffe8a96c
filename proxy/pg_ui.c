/* pg_ui: see pg_ui.h. */
#include "pg_ui.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg_http.h"
#include "pg_log.h"

/* Compiled in by proxy/CMakeLists.txt; empty when built some other way. */
#ifndef PG_UI_BUILD_DIR
#define PG_UI_BUILD_DIR ""
#endif
#ifndef PG_UI_SOURCE_PAGE
#define PG_UI_SOURCE_PAGE ""
#endif
#ifndef PG_UI_SOURCE_VIEWER
#define PG_UI_SOURCE_VIEWER ""
#endif
#ifndef PG_UI_INSTALL_DIR
#define PG_UI_INSTALL_DIR "/usr/local/share/profgate/ui"
#endif

#define INSTALL_HOWTO                                                                              \
    "run scripts/install-ui-deps.sh in the profgate source tree (then `make install`), or set "    \
    "PROFGATE_SPEEDSCOPE_DIR to speedscope's dist/release directory"
#define INSTALL_HINT "the speedscope viewer is not installed: " INSTALL_HOWTO

/* The profile kinds the page offers, as net/http/pprof names them. */
static const char *const kinds[] = {"profile",      "heap",  "allocs", "goroutine",
                                    "threadcreate", "block", "mutex"};

/* Everything the page and speedscope load comes from this origin (no CDN, no web fonts):
 * the browser enforces it. speedscope needs inline styles (its CSS-in-JS) and WebAssembly. */
#define CSP                                                                                        \
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' "                  \
    "'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' "      \
    "blob: data:; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

/* ---------------- growable text ---------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_add(sbuf_t *s, const char *d, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        char *p;

        while (cap < s->len + n + 1)
            cap *= 2;
        p = realloc(s->p, cap);
        if (p == NULL) {
            s->oom = true;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_str(sbuf_t *s, const char *str)
{
    sb_add(s, str, strlen(str));
}

__attribute__((format(printf, 2, 3))) static void sb_fmt(sbuf_t *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        s->oom = true; /* only short, fixed formats use this */
        return;
    }
    sb_add(s, tmp, (size_t)n);
}

/* A JSON string (RFC 8259 section 7): quotes, backslashes and control bytes escaped. */
static void sb_json(sbuf_t *s, const char *str, size_t n)
{
    size_t i;

    sb_add(s, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)str[i];

        if (ch == '"' || ch == '\\')
            sb_fmt(s, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            sb_fmt(s, "\\u%04x", ch);
        else
            sb_add(s, &str[i], 1);
    }
    sb_add(s, "\"", 1);
}

/* ---------------- roots ---------------- */

static bool has_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;

    if (dir[0] == '\0' || (size_t)snprintf(p, sizeof p, "%s/%s", dir, name) >= sizeof p)
        return false;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void copy_path(char *dst, const char *src)
{
    snprintf(dst, PATH_MAX, "%s", src);
}

/* Is the running executable inside the build tree these paths were compiled for? */
static bool in_build_tree(const char *exe)
{
    char build[PATH_MAX];
    size_t n;

    if (PG_UI_BUILD_DIR[0] == '\0' || realpath(PG_UI_BUILD_DIR, build) == NULL)
        return false;
    n = strlen(build);
    return strncmp(exe, build, n) == 0 && exe[n] == '/';
}

void pg_ui_roots_find(pg_ui_roots_t *out)
{
    const char *env;
    char exe[PATH_MAX], *slash;
    bool build_tree = false;
    ssize_t n;

    memset(out, 0, sizeof *out);
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    if (n > 0)
        build_tree = in_build_tree(exe);

    env = getenv("PROFGATE_UI_DIR");
    if (env && env[0]) {
        copy_path(out->page, env);
    } else if (build_tree && PG_UI_SOURCE_PAGE[0]) {
        copy_path(out->page, PG_UI_SOURCE_PAGE);
    } else {
        slash = n > 0 ? strrchr(exe, '/') : NULL;
        if (slash) {
            *slash = '\0';
            if ((size_t)snprintf(out->page, sizeof out->page, "%s/../share/profgate/ui", exe) >=
                    sizeof out->page ||
                !has_file(out->page, "index.html"))
                out->page[0] = '\0';
        }
        if (out->page[0] == '\0')
            copy_path(out->page, PG_UI_INSTALL_DIR);
    }

    env = getenv("PROFGATE_SPEEDSCOPE_DIR");
    if (env && env[0]) {
        copy_path(out->viewer, env);
        return;
    }
    if ((size_t)snprintf(out->viewer, sizeof out->viewer, "%s/speedscope", out->page) >=
        sizeof out->viewer)
        out->viewer[0] = '\0';
    if (has_file(out->viewer, "index.html"))
        return;
    /* in the build tree, where scripts/install-ui-deps.sh puts it (present or not: then the
     * install hint names that directory) */
    if (build_tree && PG_UI_SOURCE_VIEWER[0])
        copy_path(out->viewer, PG_UI_SOURCE_VIEWER);
}

static pthread_once_t roots_once = PTHREAD_ONCE_INIT;
static pg_ui_roots_t roots_singleton;

static void find_roots_once(void)
{
    pg_ui_roots_find(&roots_singleton);
    pg_log_debug("ui: page from %s, speedscope from %s", roots_singleton.page,
                 roots_singleton.viewer);
}

const pg_ui_roots_t *pg_ui_roots(void)
{
    pthread_once(&roots_once, find_roots_once);
    return &roots_singleton;
}

/* ---------------- responses ---------------- */

static const char *reason(int status)
{
    switch (status) {
    case 301:
        return "Moved Permanently";
    case 405:
        return "Method Not Allowed";
    default:
        return pg_http_reason(status);
    }
}

/* The whole response in one buffer: status line, our headers (extra: more header lines,
 * each ending in CRLF, or ""), and the body unless head_only. */
static int respond(pg_bufpool_t *pool, pg_buf_t **out, int status, const char *ctype,
                   const char *extra, const char *body, size_t blen, bool head_only)
{
    char head[2048];
    pg_buf_t *b;
    int n;

    n = snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "Cache-Control: no-cache\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "Referrer-Policy: no-referrer\r\n"
                 "Content-Security-Policy: " CSP "\r\n"
                 "%s"
                 "Connection: close\r\n"
                 "\r\n",
                 status, reason(status), ctype, blen, extra);
    if (n < 0 || (size_t)n >= sizeof head)
        return -E2BIG;
    if (head_only)
        blen = 0;
    b = pg_buf_get(pool, (size_t)n + blen);
    if (b == NULL)
        return -ENOMEM;
    memcpy(b->data, head, (size_t)n);
    if (blen)
        memcpy(b->data + n, body, blen);
    b->len = (uint32_t)((size_t)n + blen);
    *out = b;
    return 0;
}

/* A short text/plain answer naming its cause, as pg_conn's own errors do. */
static int respond_text(const pg_ui_request_t *req, pg_bufpool_t *pool, pg_buf_t **out, int status,
                        const char *extra, const char *msg)
{
    char body[PATH_MAX + 512];
    int n = snprintf(body, sizeof body, "%s\n", msg);

    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    pg_log_debug("ui: %d %s", status, msg);
    return respond(pool, out, status, "text/plain; charset=utf-8", extra, body, (size_t)n,
                   strcmp(req->method, "HEAD") == 0);
}

int pg_ui_status(const pg_buf_t *resp)
{
    if (resp->len < 12 || memcmp(resp->data, "HTTP/1.1 ", 9) != 0)
        return 0;
    return (resp->data[9] - '0') * 100 + (resp->data[10] - '0') * 10 + (resp->data[11] - '0');
}

/* ---------------- files ---------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode a relative URL path into out; refuses (-EINVAL) a bad escape, NUL, control
 * bytes, '\', an empty segment ("a//b", a trailing '/'), and "." and ".." segments -- in
 * the decoded form, so "%2e%2e" and "%2F" tricks are refused too. */
static int clean_rel(const char *in, size_t len, char *out, size_t cap)
{
    size_t i, o = 0, seg = 0;

    for (i = 0; i < len; i++) {
        int ch = (unsigned char)in[i];

        if (ch == '%') {
            int hi = i + 2 < len ? hexval(in[i + 1]) : -1,
                lo = i + 2 < len ? hexval(in[i + 2]) : -1;

            if (hi < 0 || lo < 0)
                return -EINVAL;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '\\' || o + 1 >= cap)
            return -EINVAL;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    /* segments */
    for (i = 0; i <= o; i++) {
        if (i == o || out[i] == '/') {
            size_t sl = i - seg;

            if (sl == 0 || (sl == 1 && out[seg] == '.') ||
                (sl == 2 && out[seg] == '.' && out[seg + 1] == '.'))
                return -EINVAL;
            seg = i + 1;
        }
    }
    return 0;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".svg", "image/svg+xml"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".ttf", "font/ttf"},
        {".wasm", "application/wasm"},
    };
    const char *dot = strrchr(path, '.');
    size_t i;

    if (dot && strchr(dot, '/') == NULL)
        for (i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Serve root/rel (rel already cleaned; "" = index.html). A file must resolve, after every
 * symlink, to a regular file inside root: 404 otherwise. */
static int serve_file(const pg_ui_request_t *req, pg_bufpool_t *pool, pg_buf_t **out,
                      const char *root, const char *rel)
{
    char rroot[PATH_MAX], want[PATH_MAX], real[PATH_MAX], msg[PATH_MAX + 64];
    size_t rl;
    struct stat st;
    char *data = NULL;
    size_t got = 0;
    int fd = -1, r;

    if (root[0] == '\0' || realpath(root, rroot) == NULL)
        return respond_text(req, pool, out, 404, "", "no such file");
    if ((size_t)snprintf(want, sizeof want, "%s/%s", rroot, rel[0] ? rel : "index.html") >=
        sizeof want)
        return respond_text(req, pool, out, 404, "", "no such file");
    rl = strlen(rroot);
    if (realpath(want, real) == NULL || strncmp(real, rroot, rl) != 0 || real[rl] != '/')
        return respond_text(req, pool, out, 404, "", "no such file");
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = respond_text(req, pool, out, 404, "", "no such file");
        goto done;
    }
    if ((uint64_t)st.st_size > PG_UI_MAX_FILE) {
        snprintf(msg, sizeof msg, "%s is larger than %u bytes", real, PG_UI_MAX_FILE);
        r = respond_text(req, pool, out, 500, "", msg);
        goto done;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        r = -ENOMEM;
        goto done;
    }
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, data + got, (size_t)st.st_size - got);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (got != (size_t)st.st_size) {
        snprintf(msg, sizeof msg, "%s: read failed", real);
        r = respond_text(req, pool, out, 500, "", msg);
        goto done;
    }
    r = respond(pool, out, 200, content_type(real), "", data, got,
                strcmp(req->method, "HEAD") == 0);
done:
    free(data);
    if (fd >= 0)
        close(fd);
    return r;
}

/* ---------------- policy ---------------- */

static bool peer_allowed(const pg_config_pprof_t *pp, const struct sockaddr *peer)
{
    size_t i;

    for (i = 0; i < pp->nallow; i++)
        if (pg_cidr_match(&pp->allow[i], peer))
            return true;
    return false;
}

/* No token configured, or "Authorization: Bearer <token>" (pg_http: constant time). */
static bool token_ok(const pg_config_pprof_t *pp, const char *auth, size_t alen)
{
    return pp->token == NULL || pg_http_bearer_ok(auth, alen, pp->token);
}

/* ---------------- services.json ---------------- */

static const char *pprof_path(const pg_config_t *cfg, size_t *len)
{
    const char *pp = cfg->pprof.path ? cfg->pprof.path : "/debug/pprof";
    size_t n = strlen(pp);

    while (n > 1 && pp[n - 1] == '/')
        n--;
    *len = n;
    return pp;
}

/* The pprof base URL path of upstream ui reached through route r, if a request for
 * "<base>/profile" really goes to that upstream's agent; "" otherwise. */
static bool route_base(const pg_ui_request_t *req, const pg_config_route_t *r, size_t ui,
                       char *base, size_t cap)
{
    const pg_config_t *cfg = req->cfg;
    size_t plen = strlen(r->prefix), pplen;
    const char *pp = pprof_path(cfg, &pplen);
    char probe[PATH_MAX];
    pg_route_match_t m;
    int n;

    while (plen > 0 && r->prefix[plen - 1] == '/')
        plen--;
    n = snprintf(base, cap, "%.*s%.*s", (int)plen, r->prefix, (int)pplen, pp);
    if (n < 0 || (size_t)n >= cap)
        return false;
    n = snprintf(probe, sizeof probe, "%s/profile", base);
    if (n < 0 || (size_t)n >= sizeof probe)
        return false;
    if (pg_route_match(req->routes, r->host, r->host ? strlen(r->host) : 0, probe, (size_t)n, &m) <
        0)
        return false;
    return m.pprof && m.upstream == &cfg->upstreams[ui];
}

static void service_json(const pg_ui_request_t *req, sbuf_t *s, size_t ui, bool *first)
{
    const pg_config_t *cfg = req->cfg;
    const pg_config_upstream_t *u = &cfg->upstreams[ui];
    char base[PATH_MAX] = "", b[PATH_MAX];
    const char *host = NULL;
    bool have = false, rfirst = true;
    size_t i;

    if (!u->has_agent || !u->pprof.enabled || !peer_allowed(&u->pprof, req->peer))
        return;
    /* the first route that reaches the agent; one without a host if there is one */
    for (i = 0; i < cfg->nroutes; i++) {
        const pg_config_route_t *r = &cfg->routes[i];

        if (r->upstream != ui || !route_base(req, r, ui, b, sizeof b))
            continue;
        if (!have || (host != NULL && r->host == NULL)) {
            memcpy(base, b, sizeof base);
            host = r->host;
            have = true;
        }
    }
    if (!have)
        return;
    sb_str(s, *first ? "\n  {" : ",\n  {");
    *first = false;
    sb_str(s, "\"name\": ");
    sb_json(s, u->name, strlen(u->name));
    sb_str(s, ", \"routes\": [");
    for (i = 0; i < cfg->nroutes; i++) {
        if (cfg->routes[i].upstream != ui)
            continue;
        sb_str(s, rfirst ? "" : ", ");
        rfirst = false;
        sb_json(s, cfg->routes[i].prefix, strlen(cfg->routes[i].prefix));
    }
    sb_str(s, "], \"host\": ");
    if (host)
        sb_json(s, host, strlen(host));
    else
        sb_str(s, "null");
    sb_str(s, ", \"base\": ");
    sb_json(s, base, strlen(base));
    sb_fmt(s, ", \"max_seconds\": %u, \"token_required\": %s,\n   \"profiles\": {",
           u->pprof.max_seconds, u->pprof.token ? "true" : "false");
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        sb_fmt(s, "%s\"%s\": ", i ? ", " : "", kinds[i]);
        int k = snprintf(b, sizeof b, "%s/%s", base, kinds[i]);

        sb_json(s, b, k > 0 && (size_t)k < sizeof b ? (size_t)k : 0);
    }
    sb_str(s, "}}");
}

static int serve_services(const pg_ui_request_t *req, pg_bufpool_t *pool, pg_buf_t **out)
{
    const pg_config_t *cfg = req->cfg;
    const pg_ui_roots_t *roots = req->roots ? req->roots : pg_ui_roots();
    bool installed = has_file(roots->viewer, "index.html"), first = true;
    sbuf_t s = {0};
    size_t i, pplen;
    const char *pp = pprof_path(cfg, &pplen);
    int r;

    sb_str(&s, "{\"pprof_path\": ");
    sb_json(&s, pp, pplen);
    sb_str(&s, ",\n \"viewer\": {\"installed\": ");
    sb_str(&s, installed ? "true" : "false");
    sb_str(&s, ", \"url\": \"speedscope/index.html\", \"dir\": ");
    sb_json(&s, roots->viewer, strlen(roots->viewer));
    sb_str(&s, ", \"hint\": ");
    sb_json(&s, INSTALL_HOWTO, strlen(INSTALL_HOWTO));
    sb_str(&s, "},\n \"kinds\": [");
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        sb_fmt(&s, "%s\"%s\"", i ? ", " : "", kinds[i]);
    sb_str(&s, "],\n \"services\": [");
    for (i = 0; i < cfg->nupstreams; i++)
        service_json(req, &s, i, &first);
    sb_str(&s, "\n]}\n");
    if (s.oom) {
        free(s.p);
        return -ENOMEM;
    }
    r = respond(pool, out, 200, "application/json", "", s.p, s.len,
                strcmp(req->method, "HEAD") == 0);
    free(s.p);
    return r;
}

/* ---------------- dispatch ---------------- */

bool pg_ui_path(const char *rest, size_t len)
{
    return len >= 3 && memcmp(rest, "/ui", 3) == 0 && (len == 3 || rest[3] == '/');
}

static bool is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

int pg_ui_respond(const pg_ui_request_t *req, pg_bufpool_t *pool, pg_buf_t **out)
{
    const pg_config_pprof_t *pp = &req->up->pprof;
    const pg_ui_roots_t *roots = req->roots ? req->roots : pg_ui_roots();
    const char *p = req->rest + 3; /* after "/ui" */
    size_t n = req->rest_len - 3;
    char rel[PATH_MAX], msg[PATH_MAX + 512], addr[64];

    *out = NULL;
    if (!pg_ui_path(req->rest, req->rest_len))
        return respond_text(req, pool, out, 404, "", "not a viewer path");
    if (!pp->enabled) {
        snprintf(msg, sizeof msg, "profiling is disabled for upstream \"%s\" (pprof.enabled)",
                 req->up->name);
        return respond_text(req, pool, out, 404, "", msg);
    }
    if (!peer_allowed(pp, req->peer)) {
        pg_http_addr_text(req->peer, addr, sizeof addr);
        snprintf(msg, sizeof msg, "pprof access denied: client %s is not in pprof.allow", addr);
        return respond_text(req, pool, out, 403, "", msg);
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        snprintf(msg, sizeof msg, "method %.32s not allowed on the viewer (GET or HEAD)",
                 req->method);
        return respond_text(req, pool, out, 405, "Allow: GET, HEAD\r\n", msg);
    }
    /* ".../ui" and ".../ui/speedscope": relative redirects keep the route prefix as it is */
    if (n == 0)
        return respond_text(req, pool, out, 301, "Location: ui/\r\n", "moved to ui/");
    if (is(p, n, "/speedscope"))
        return respond_text(req, pool, out, 301, "Location: speedscope/\r\n",
                            "moved to speedscope/");
    if (is(p, n, "/services.json")) {
        if (!token_ok(pp, req->authorization, req->authorization_len))
            return respond_text(req, pool, out, 401,
                                "WWW-Authenticate: Bearer realm=\"profgate pprof\"\r\n",
                                "pprof token required: send Authorization: Bearer <token> "
                                "(the contents of pprof.token_file)");
        return serve_services(req, pool, out);
    }
    if (n >= 12 && memcmp(p, "/speedscope/", 12) == 0) {
        if (clean_rel(p + 12, n - 12, rel, sizeof rel) < 0 && n > 12)
            return respond_text(req, pool, out, 404, "", "no such file");
        if (n == 12)
            rel[0] = '\0';
        if (!has_file(roots->viewer, "index.html")) {
            snprintf(msg, sizeof msg, "%s (looked in %s)", INSTALL_HINT, roots->viewer);
            return respond_text(req, pool, out, 404, "", msg);
        }
        return serve_file(req, pool, out, roots->viewer, rel);
    }
    /* n >= 1 and p[0] == '/' here */
    if (n == 1)
        rel[0] = '\0';
    else if (clean_rel(p + 1, n - 1, rel, sizeof rel) < 0)
        return respond_text(req, pool, out, 404, "", "no such file");
    return serve_file(req, pool, out, roots->page, rel);
}
