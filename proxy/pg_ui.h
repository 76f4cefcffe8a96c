/* pg_ui: the profile viewer the gateway serves under "<route prefix><pprof.path>/ui/": the
 * page (index.html, app.js, style.css), the speedscope release bundle under ui/speedscope/,
 * and ui/services.json, the routes whose upstream has an agent, with their profile URLs.
 * Every answer is a whole response (head and body) in one buffer, "Connection: close".
 *
 * Policy (that of the matched route's upstream, as for the profile paths): pprof.enabled
 * (else 404) and pprof.allow (else 403) for every ui/ path; pprof.token (else 401 with
 * WWW-Authenticate) for services.json only -- a browser cannot send a bearer token when it
 * navigates to a page, so the static files (no secrets in them) are served without it, and
 * the page sends the token (Authorization: Bearer) on every fetch it makes.
 * Files: only regular files that exist under a root after realpath(), reached by a path whose
 * percent-decoded segments hold no "." or "..", no '\', NUL or control byte.
 *
 * Where the files are found (pg_ui_roots(), once per process):
 *   page:   $PROFGATE_UI_DIR; else, for a binary inside the build tree it was built in,
 *           <source>/proxy/ui; else <dir of the executable>/../share/profgate/ui when it has
 *           index.html; else the compiled-in <datadir>/profgate/ui (`make install`).
 *   viewer: $PROFGATE_SPEEDSCOPE_DIR; else <page>/speedscope when it has index.html; else,
 *           in the build tree, <source>/third_party/speedscope/node_modules/speedscope/
 *           dist/release (scripts/install-ui-deps.sh); else <page>/speedscope. Whether the
 *           bundle is there is checked on every request (installing it needs no restart);
 *           while it is missing the page and ui/speedscope/ say how to install it.
 *
 * Owns: a response buffer belongs to the caller (one reference). Nothing else is kept but
 *   the roots, found once and never changed.
 * Threads: any; files are read synchronously on the caller's thread (small, local files).
 * Errors: negative errno; what the client caused becomes a 4xx response, not an error. */
#ifndef PG_UI_H
#define PG_UI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "pg_buf.h"
#include "pg_config.h"
#include "pg_route.h"

#define PG_UI_MAX_FILE (16u << 20) /* larger files under a root are refused (500) */

typedef struct pg_ui_roots {
    char page[PATH_MAX];   /* public: directory of index.html, app.js, style.css */
    char viewer[PATH_MAX]; /* public: directory of speedscope's index.html */
} pg_ui_roots_t;

typedef struct pg_ui_request {
    const pg_config_t *cfg;         /* the request's configuration */
    const pg_route_table_t *routes; /* its route table (to check the listed profile URLs) */
    const pg_config_upstream_t *up; /* upstream of the matched route: whose policy applies */
    const struct sockaddr *peer;    /* the client */
    const char *method;             /* "GET", "HEAD", ... */
    const char *rest;               /* what follows pprof.path: "/ui" or "/ui/..." (no query) */
    size_t rest_len;
    const char *authorization; /* Authorization header value, or NULL */
    size_t authorization_len;
    const pg_ui_roots_t *roots; /* NULL: pg_ui_roots() */
} pg_ui_request_t;

/* Is rest (what follows pprof.path in a request path) a viewer path: "/ui" or "/ui/..."? */
bool pg_ui_path(const char *rest, size_t len);

/* The roots described above, found at the first call. Never NULL. */
const pg_ui_roots_t *pg_ui_roots(void);
/* The same search, into *out (for tests and `--check`-style reporting). */
void pg_ui_roots_find(pg_ui_roots_t *out);

/* Answer req: *out gets a buffer (one reference) holding the whole response, out->len bytes.
 * Returns 0, or -ENOMEM (nothing to send: the caller answers 500 or closes). */
int pg_ui_respond(const pg_ui_request_t *req, pg_bufpool_t *pool, pg_buf_t **out);

/* The status line's code of a response made by pg_ui_respond (for logs and tests). */
int pg_ui_status(const pg_buf_t *resp);

#endif
