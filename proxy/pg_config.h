/* pg_config: profgate's configuration schema on top of pg_toml: loads a TOML file (and the
 * files it includes), checks every key's type and range, resolves names, and yields a plain
 * struct the proxy reads.
 * Owns: pg_config_load() returns a pg_config_t that owns all its strings and arrays; free it
 *   with pg_config_free(). The proxy treats a loaded config as immutable (a reload loads a new
 *   one and swaps).
 * Threads: load on any thread; a loaded config may be read from any number of threads.
 * Errors: negative errno; config mistakes are -EINVAL with every error found appended to
 *   the caller's pg_errlist_t, each "FILE:LINE:COL: key: message". */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "pg_error.h"

enum { PG_ADDR_TCP = 1, PG_ADDR_UNIX = 2 };
enum { PG_LOG_COMBINED = 1, PG_LOG_COMMON = 2, PG_LOG_JSON = 3 };
enum { PG_SCHED_NORMAL = 1, PG_SCHED_BATCH = 2 };

/* A socket address as users write it: "HOST:PORT" with HOST a numeric IPv4 address,
 * "[IPv6]:PORT", "localhost:PORT" (-> 127.0.0.1), or "unix:/absolute/or/relative/path".
 * In a config file a relative unix: path is relative to the directory of the file it is
 * written in (sa holds the resolved path, text the path as written). */
typedef struct pg_addr {
    int kind;                   /* PG_ADDR_TCP or PG_ADDR_UNIX */
    struct sockaddr_storage sa; /* ready for connect()/bind() */
    socklen_t salen;
    char text[128];             /* as written (truncated if longer), for messages and logs */
} pg_addr_t;

/* An IPv4 or IPv6 network: "127.0.0.0/8", "::1/128"; a bare address means /32 or /128. */
typedef struct pg_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
} pg_cidr_t;

typedef struct pg_config_server {
    pg_addr_t listen;               /* "listen", default 127.0.0.1:8080 */
    int workers;                    /* "workers": integer >= 1, or "auto" -> number of cores */
    uint32_t max_connections;       /* "max_connections", default 10000 */
    uint32_t max_header_bytes;      /* "max_header_bytes", default 32768 */
    uint64_t max_body_bytes;        /* "max_body_bytes", default 1 GiB; 0 = unlimited */
    /* Durations are written as strings with a unit: "500ms", "10s", "2m", "1h". */
    uint64_t header_timeout_ms;     /* "header_timeout", default 10s */
    uint64_t idle_timeout_ms;       /* "idle_timeout" (client keep-alive), default 60s */
    /* Added for issue 5 (all optional): */
    uint64_t drain_timeout_ms;      /* "drain_timeout": SIGTERM/SIGINT drain deadline, default 10s */
    char *access_log;               /* "access_log": NULL = off (default; also "off"), "stderr",
                                       or a file path (relative: to the config file's dir) */
    int access_log_format;          /* "access_log_format": "combined" (default) | "common" |
                                       "json" -> PG_LOG_* */
    char *metrics_path;             /* "metrics_path": NULL = off (default), else e.g. "/metrics" */
    bool has_metrics_allow;         /* "metrics_allow": who may read metrics_path (CIDR list); */
    pg_cidr_t *metrics_allow;       /*   unset: the global pprof.allow */
    size_t nmetrics_allow;
    bool add_forwarded;             /* "add_forwarded": X-Forwarded-For/-Proto/-Host, default true */
    bool add_via;                   /* "add_via": Via header, default true */
    /* Added in session 4 (optional): */
    uint32_t event_coalesce_us;     /* "event_coalesce_us": 0..1000 (0: off), default 100; only
                                       while upstream responses take PG_COALESCE_RATIO times
                                       that; see configs/example.toml and pg_worker.c */
    /* Added in session 5 (optional): */
    int worker_sched;               /* "worker_sched": "normal" | "batch" -> PG_SCHED_*, the
                                       workers' Linux scheduling policy; see pg_worker.c */
    /* Added in session 7 (optional): */
    bool batch_writes;              /* "batch_writes": a loop iteration's client writes in one
                                       io_submit, default true; see pg_conn_batch.c */
} pg_config_server_t;

/* server.event_coalesce_us is used only while the upstreams' responses take this many times
 * the budget or longer (pg_worker.c): a step of added latency stays a few % of theirs */
#define PG_COALESCE_RATIO 25

typedef struct pg_config_pprof {
    char *path;                     /* "path", default "/debug/pprof" */
    pg_cidr_t *allow;               /* "allow", default loopback only */
    size_t nallow;
    uint32_t max_seconds;           /* "max_seconds", default 60, range 1..3600 */
    /* Added for issue 6 (all optional): */
    bool enabled;                   /* "enabled", default true; false -> pprof paths answer 404 */
    char *token_file;               /* "token_file" (resolved against the config file's dir) */
    char *token;                    /* its contents, read at load, trailing newline stripped;
                                       NULL = no token required */
    uint32_t max_concurrent;        /* "max_concurrent" profile requests per agent, default 8 */
    bool has_admin_listen;          /* "admin_listen" (global [pprof] only): serve pprof paths */
    pg_addr_t admin_listen;         /*   only on this address, never on server.listen */
} pg_config_pprof_t;

typedef struct pg_config_upstream {
    char *name;                     /* "name", required, unique, [A-Za-z0-9_.-]+ */
    pg_addr_t address;              /* "address", required */
    bool has_agent;
    pg_addr_t agent;                /* "agent", optional, must be unix: */
    uint64_t connect_timeout_ms;    /* "connect_timeout", default 5s */
    uint64_t timeout_ms;            /* "timeout" (first byte and idle), default 60s */
    uint32_t pool_size;             /* "pool_size": idle keep-alive connections kept, default 64 */
    uint64_t pool_idle_timeout_ms;  /* "pool_idle_timeout", default 30s */
    pg_config_pprof_t pprof;        /* [upstream.pprof]: the global [pprof] with this upstream's
                                       overrides (allow, token_file, max_seconds, enabled,
                                       max_concurrent); path and admin_listen are global */
    pg_pos_t pos;                   /* where the [[upstream]] starts */
    const char *file;               /* file it came from (owned by the config) */
} pg_config_upstream_t;

typedef struct pg_config_route {
    char *prefix;                   /* "prefix", required, starts with "/" */
    char *host;                     /* "host", optional; NULL = any host; stored lower-case
                                       (host names compare case-insensitively), may hold :port */
    size_t upstream;                /* "upstream" (a name), resolved: index into upstreams */
    pg_pos_t pos;
    const char *file;
} pg_config_route_t;

typedef struct pg_config {
    char *path;                     /* the top file as given */
    pg_config_server_t server;
    pg_config_upstream_t *upstreams;
    size_t nupstreams;
    pg_config_route_t *routes;      /* in file order; matching is the router's business */
    size_t nroutes;
    pg_config_pprof_t pprof;
    char **files;                   /* every file loaded: [0] the top file, then the included
                                       ones in load order (read-only) */
    size_t nfiles;
} pg_config_t;

/* Load path (and its "include" files). On -EINVAL, errs holds every error found. */
int pg_config_load(const char *path, pg_config_t **out, pg_errlist_t *errs);
void pg_config_free(pg_config_t *cfg);

/* The resolved configuration in words, for `profgate --check`: listen address, workers,
 * each route -> upstream (address, agent), the pprof policy. */
void pg_config_describe(const pg_config_t *cfg, FILE *out);

/* Parsers shared with the rest of the proxy; return 0 or -EINVAL with *why set to a static
 * string that says what is wrong. */
int pg_addr_parse(const char *text, pg_addr_t *out, const char **why);
int pg_cidr_parse(const char *text, pg_cidr_t *out, const char **why);
bool pg_cidr_match(const pg_cidr_t *c, const struct sockaddr *sa);
int pg_duration_parse(const char *text, uint64_t *ms, const char **why);

#endif
