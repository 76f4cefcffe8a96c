/* pg_config_schema: the keys of [server], [[upstream]] (and [upstream.pprof]), [[route]] and
 * [pprof] — their types, ranges, defaults' overrides and messages — plus "did you mean"
 * suggestions. See pg_config.h for the keys' meaning and pg_config_int.h for the sharing.
 *
 * Every check adds its own error and the walk goes on, so one load reports every mistake.
 * Messages read "section.key: what is wrong" and point at the value (wrong type, range,
 * format), at the key (unknown key), or at the table's header (missing required key). */
#include "pg_config_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_WORKERS 1024
#define DAY_MS (24ULL * 3600 * 1000)

static const char *const top_keys[] = {"include", "server", "upstream", "route", "pprof"};
static const char *const server_keys[] = {
    "listen",         "workers",       "max_connections", "max_header_bytes", "max_body_bytes",
    "header_timeout", "idle_timeout",  "drain_timeout",   "access_log",       "access_log_format",
    "metrics_path",   "add_forwarded", "add_via",         "metrics_allow",    "event_coalesce_us",
    "worker_sched",   "batch_writes"};
static const char *const upstream_keys[] = {
    "name",      "address",           "agent", "connect_timeout", "timeout",
    "pool_size", "pool_idle_timeout", "pprof"};
static const char *const route_keys[] = {"prefix", "host", "upstream"};
static const char *const pprof_keys[] = {"path",       "allow",          "max_seconds", "enabled",
                                         "token_file", "max_concurrent", "admin_listen"};
static const char *const upstream_pprof_keys[] = {"allow", "max_seconds", "enabled", "token_file",
                                                  "max_concurrent"};

/* ---- errors and suggestions -------------------------------------------------------------- */

void pg__config_err(loader_t *L, const char *file, pg_pos_t pos, const char *fmt, ...)
{
    pg_error_t e;
    va_list ap;
    char *p;

    snprintf(e.file, sizeof e.file, "%s", file ? file : "");
    e.pos = pos;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    /* keys and values are echoed as written: keep each error on one printable line */
    for (p = e.msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (pg_errlist_add(L->errs, &e) < 0)
        L->oom = true;
}

/* Optimal-string-alignment distance (a transposition counts 1), ignoring ASCII case. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t d[33][33];

    if (la > 32 || lb > 32)
        return SIZE_MAX;
    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j] + 1;

            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 &&
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The candidate closest to word, if close enough to be what was meant: a distance of at most
 * 1 + (longer length) / 4, so "adress" -> "address" but "x" -> nothing. */
const char *pg__config_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX, i;

    for (i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        size_t lw = strlen(word), lc = strlen(cands[i]);
        size_t limit = 1 + (lw > lc ? lw : lc) / 4;

        if (d <= limit && d < bestd) {
            best = cands[i];
            bestd = d;
        }
    }
    return best;
}

static bool in_list(const char *key, const char *const *keys, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

/* Where else a misplaced key belongs, for "unknown key" hints. */
static const char *home_of(const char *key, const char *here)
{
    if (strcmp(here, "server") != 0 && in_list(key, server_keys, PG__NKEYS(server_keys)))
        return "[server]";
    if (strcmp(here, "upstream") != 0 && in_list(key, upstream_keys, PG__NKEYS(upstream_keys)))
        return "[[upstream]]";
    if (strcmp(here, "route") != 0 && in_list(key, route_keys, PG__NKEYS(route_keys)))
        return "[[route]]";
    if (strcmp(here, "pprof") != 0 && in_list(key, pprof_keys, PG__NKEYS(pprof_keys)))
        return "[pprof]";
    return NULL;
}

static void check_unknown(const sect_t *s, const char *const *keys, size_t n)
{
    size_t i, len = pg_toml_table_len(s->t);

    for (i = 0; i < len; i++) {
        const char *key, *sug, *home;
        size_t klen;
        pg_pos_t pos;

        pg_toml_table_at_len(s->t, i, &key, &klen, &pos);
        if (klen != strlen(key)) {
            pg__config_err(s->L, s->src->path, pos, "%s.%s: unknown key (it holds a NUL character)",
                           s->name, key);
            continue;
        }
        if (in_list(key, keys, n))
            continue;
        if ((sug = pg__config_closest(key, keys, n)) != NULL)
            pg__config_err(s->L, s->src->path, pos, "%s.%s: unknown key (did you mean \"%s\"?)",
                           s->name, key, sug);
        else if ((home = home_of(key, s->name)) != NULL)
            pg__config_err(s->L, s->src->path, pos, "%s.%s: unknown key here (it belongs in %s)",
                           s->name, key, home);
        else
            pg__config_err(s->L, s->src->path, pos, "%s.%s: unknown key", s->name, key);
    }
}

/* True when the table holds an unknown key that check_unknown() reports as a misspelling of
 * key: then "key: missing" would only repeat that error. */
static bool misspelled(const sect_t *s, const char *key, const char *const *keys, size_t n)
{
    size_t i, len = pg_toml_table_len(s->t);

    for (i = 0; i < len; i++) {
        const char *k, *sug;

        pg_toml_table_at(s->t, i, &k, NULL);
        if (!in_list(k, keys, n) && (sug = pg__config_closest(k, keys, n)) != NULL &&
            strcmp(sug, key) == 0)
            return true;
    }
    return false;
}

const char *pg__config_a_type(const pg_toml_value_t *v)
{
    switch (pg_toml_type(v)) {
    case PG_TOML_TABLE:
        return "a table";
    case PG_TOML_ARRAY:
        return "an array";
    case PG_TOML_STRING:
        return "a string";
    case PG_TOML_INTEGER:
        return "an integer";
    case PG_TOML_FLOAT:
        return "a float";
    case PG_TOML_BOOL:
        return "a boolean";
    default:
        return "a date/time";
    }
}

static void type_err(const sect_t *s, const char *key, const pg_toml_value_t *v, const char *expect)
{
    pg__config_err(s->L, s->src->path, pg_toml_pos(v), "%s.%s: expected %s, got %s", s->name, key,
                   expect, pg__config_a_type(v));
}

/* ---- typed getters: 1 = present and valid, 0 = absent, -1 = invalid (error added) ------- */

const char *pg__config_fmt_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms && ms % 3600000 == 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms && ms % 60000 == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    return buf;
}

static int get_typed(const sect_t *s, const char *key, pg_toml_type_t want, const char *expect,
                     const pg_toml_value_t **out)
{
    const pg_toml_value_t *v = pg_toml_table_get(s->t, key);

    if (v == NULL)
        return 0;
    if (pg_toml_type(v) != want) {
        type_err(s, key, v, expect);
        return -1;
    }
    *out = v;
    return 1;
}

static int get_str(const sect_t *s, const char *key, const char **out, pg_pos_t *pos)
{
    const pg_toml_value_t *v;
    size_t len;
    int rc = get_typed(s, key, PG_TOML_STRING, "a string", &v);

    if (rc <= 0)
        return rc;
    *out = pg_toml_string(v, &len);
    *pos = pg_toml_pos(v);
    if (strlen(*out) != len) {
        pg__config_err(s->L, s->src->path, *pos, "%s.%s: must not contain NUL characters", s->name,
                       key);
        return -1;
    }
    return 1;
}

static int get_bool(const sect_t *s, const char *key, bool *out)
{
    const pg_toml_value_t *v;
    int rc = get_typed(s, key, PG_TOML_BOOL, "a boolean (true or false)", &v);

    if (rc == 1)
        *out = pg_toml_bool(v);
    return rc;
}

static int get_uint(const sect_t *s, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    const pg_toml_value_t *v;
    int rc = get_typed(s, key, PG_TOML_INTEGER, "an integer", &v);
    int64_t n;

    if (rc <= 0)
        return rc;
    n = pg_toml_int(v);
    if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
        pg__config_err(s->L, s->src->path, pg_toml_pos(v),
                       "%s.%s: %lld is out of range (%llu..%llu)", s->name, key, (long long)n,
                       (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)n;
    return 1;
}

/* A string that must be one of names[]: its index, or an error that names the choices (and
 * the closest one, for a typo). what: the noun for the error ("a format"). */
static int get_choice(const sect_t *s, const char *key, const char *const *names, size_t n,
                      const char *what, size_t *out)
{
    const char *text, *sug;
    pg_pos_t pos;
    char list[160];
    size_t i, len = 0;
    int rc = get_str(s, key, &text, &pos);

    if (rc <= 0)
        return rc;
    for (i = 0; i < n; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return 1;
        }
    if ((sug = pg__config_closest(text, names, n)) != NULL) {
        pg__config_err(s->L, s->src->path, pos, "%s.%s: \"%s\" is not %s (did you mean \"%s\"?)",
                       s->name, key, text, what, sug);
        return -1;
    }
    list[0] = '\0';
    for (i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"",
                                i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
    pg__config_err(s->L, s->src->path, pos, "%s.%s: \"%s\" is not %s (use %s)", s->name, key,
                   text, what, list);
    return -1;
}

/* A byte count: an integer, or a string "32KiB", "1MiB", "1GiB" (also "KB"/"MB"/"GB" = 10^3..,
 * and "B"). */
static int parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1ULL << 10},
                 {"MiB", 1ULL << 20},
                 {"GiB", 1ULL << 30},
                 {"TiB", 1ULL << 40},
                 {"KB", 1000},
                 {"MB", 1000000},
                 {"GB", 1000000000},
                 {"TB", 1000000000000ULL}};
    uint64_t n = 0;
    const char *p = text;
    size_t i;

    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (*p == ' ')
        p++;
    for (i = 0; i < PG__NKEYS(units); i++) {
        if (strcasecmp(p, units[i].unit) == 0) {
            if (n > UINT64_MAX / units[i].mul)
                return -ERANGE;
            *out = n * units[i].mul;
            return 0;
        }
    }
    return -EINVAL;
}

static int get_size(const sect_t *s, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    const pg_toml_value_t *v = pg_toml_table_get(s->t, key);
    pg_pos_t pos;
    uint64_t n;

    if (v == NULL)
        return 0;
    pos = pg_toml_pos(v);
    if (pg_toml_type(v) == PG_TOML_INTEGER) {
        if (pg_toml_int(v) < 0) {
            pg__config_err(s->L, s->src->path, pos, "%s.%s: %lld is out of range (%llu..%llu)",
                           s->name, key, (long long)pg_toml_int(v), (unsigned long long)min,
                           (unsigned long long)max);
            return -1;
        }
        n = (uint64_t)pg_toml_int(v);
    } else if (pg_toml_type(v) == PG_TOML_STRING) {
        const char *text = pg_toml_string(v, NULL);
        int rc = parse_size(text, &n);

        if (rc == -ERANGE) {
            pg__config_err(s->L, s->src->path, pos, "%s.%s: \"%s\" is too large", s->name, key,
                           text);
            return -1;
        }
        if (rc < 0) {
            pg__config_err(
                s->L, s->src->path, pos,
                "%s.%s: \"%s\" is not a size (write bytes as an integer, or e.g. \"64KiB\", "
                "\"1MiB\", \"1GiB\")",
                s->name, key, text);
            return -1;
        }
    } else {
        type_err(s, key, v, "a size (an integer, or a string such as \"1MiB\")");
        return -1;
    }
    if (n < min || n > max) {
        pg__config_err(s->L, s->src->path, pos, "%s.%s: %llu is out of range (%llu..%llu)", s->name,
                       key, (unsigned long long)n, (unsigned long long)min,
                       (unsigned long long)max);
        return -1;
    }
    *out = n;
    return 1;
}

static int get_duration(const sect_t *s, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    const pg_toml_value_t *v = pg_toml_table_get(s->t, key);
    const char *text, *why;
    char b1[32], b2[32];
    uint64_t ms;

    if (v == NULL)
        return 0;
    if (pg_toml_type(v) != PG_TOML_STRING) {
        type_err(s, key, v, "a duration string with a unit (e.g. \"10s\", \"500ms\")");
        return -1;
    }
    text = pg_toml_string(v, NULL);
    if (pg_duration_parse(text, &ms, &why) < 0) {
        pg__config_err(s->L, s->src->path, pg_toml_pos(v), "%s.%s: \"%s\": %s", s->name, key, text,
                       why);
        return -1;
    }
    if (ms < min || ms > max) {
        pg__config_err(s->L, s->src->path, pg_toml_pos(v), "%s.%s: \"%s\" is out of range (%s..%s)",
                       s->name, key, text, pg__config_fmt_ms(min, b1, sizeof b1),
                       pg__config_fmt_ms(max, b2, sizeof b2));
        return -1;
    }
    *out = ms;
    return 1;
}

/* path joined to the directory of the file it was written in, unless absolute. */
static char *resolve_path(const src_t *src, const char *path)
{
    char *out;

    if (path[0] == '/' || src->dir[0] == '\0')
        return strdup(path);
    if (asprintf(&out, "%s/%s", src->dir, path) < 0)
        return NULL;
    return out;
}

static int get_addr(const sect_t *s, const char *key, bool unix_only, pg_addr_t *out)
{
    const char *text, *why;
    pg_pos_t pos;
    pg_addr_t a;
    int rc = get_str(s, key, &text, &pos);

    if (rc <= 0)
        return rc;
    if (pg_addr_parse(text, &a, &why) < 0) {
        pg__config_err(s->L, s->src->path, pos, "%s.%s: \"%s\": %s", s->name, key, text, why);
        return -1;
    }
    if (unix_only && a.kind != PG_ADDR_UNIX) {
        pg__config_err(s->L, s->src->path, pos,
                       "%s.%s: \"%s\": must be a unix: socket address (the agent listens on a Unix "
                       "socket), e.g. \"unix:/tmp/profgate/app.sock\"",
                       s->name, key, text);
        return -1;
    }
    if (a.kind == PG_ADDR_UNIX && text[5] != '/' && s->src->dir[0]) {
        struct sockaddr_un *un = (struct sockaddr_un *)&a.sa;
        char *full = resolve_path(s->src, text + 5);
        size_t len;

        if (full == NULL) {
            s->L->oom = true;
            return -1;
        }
        len = strlen(full);
        if (len >= sizeof un->sun_path) {
            pg__config_err(s->L, s->src->path, pos,
                           "%s.%s: \"%s\": resolved against the config's directory the path is %zu "
                           "bytes, more than a unix socket allows (107)",
                           s->name, key, text, len);
            free(full);
            return -1;
        }
        memcpy(un->sun_path, full, len + 1);
        a.salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        free(full);
    }
    *out = a;
    return 1;
}

/* A URL path prefix as used for routes, pprof and metrics: starts with '/', printable, no
 * query, fragment or spaces. */
static const char *path_problem(const char *p)
{
    if (p[0] != '/')
        return "must start with \"/\"";
    for (; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "must not contain spaces or control characters";
        if (*p == '?' || *p == '#')
            return "must not contain '?' or '#' (a path prefix, not a URL)";
    }
    return NULL;
}

/* ---- sections ------------------------------------------------------------------------------- */

static int cpu_count(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > MAX_WORKERS ? MAX_WORKERS : n) : 1;
}

static void parse_workers(const sect_t *s, pg_config_server_t *srv)
{
    const pg_toml_value_t *v = pg_toml_table_get(s->t, "workers");
    uint64_t n;

    if (v == NULL)
        return;
    if (pg_toml_type(v) == PG_TOML_STRING) {
        const char *text = pg_toml_string(v, NULL);

        if (strcmp(text, "auto") == 0) {
            int cores = cpu_count();

            srv->workers = cores > MAX_WORKERS ? MAX_WORKERS : cores;
        } else {
            pg__config_err(s->L, s->src->path, pg_toml_pos(v),
                           "%s.workers: \"%s\": expected a number of workers or \"auto\"%s",
                           s->name, text,
                           pg__config_closest(text, (const char *const[]){"auto"}, 1)
                               ? " (did you mean \"auto\"?)"
                               : "");
        }
        return;
    }
    if (pg_toml_type(v) != PG_TOML_INTEGER) {
        type_err(s, "workers", v, "an integer or \"auto\"");
        return;
    }
    if (get_uint(s, "workers", 1, MAX_WORKERS, &n) == 1)
        srv->workers = (int)n;
}

static int read_token(const sect_t *s, const char *path, pg_pos_t pos, char **out)
{
    char buf[4097];
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        pg__config_err(s->L, s->src->path, pos, "%s.token_file: cannot open \"%s\": %s", s->name,
                       path, strerror(errno));
        return -1;
    }
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            pg__config_err(s->L, s->src->path, pos, "%s.token_file: cannot read \"%s\": %s",
                           s->name, path, strerror(errno));
            close(fd);
            return -1;
        }
        len += (size_t)n;
    }
    close(fd);
    if (len == sizeof buf - 1) {
        pg__config_err(s->L, s->src->path, pos, "%s.token_file: \"%s\" is larger than 4 KiB",
                       s->name, path);
        return -1;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        pg__config_err(s->L, s->src->path, pos, "%s.token_file: \"%s\" %s", s->name, path,
                       len ? "contains a NUL byte" : "is empty");
        return -1;
    }
    if ((*out = strdup(buf)) == NULL) {
        s->L->oom = true;
        return -1;
    }
    return 1;
}

/* A list of networks under key (pprof "allow", server "metrics_allow"): replaces *list and
 * *nlist when present and valid; returns whether it was. */
static bool parse_cidrs(const sect_t *s, const char *key, pg_cidr_t **list, size_t *nlist)
{
    const pg_toml_value_t *v;
    pg_cidr_t *allow;
    size_t n, i;
    bool ok = true;

    if (get_typed(s, key, PG_TOML_ARRAY, "an array of networks (e.g. [\"127.0.0.0/8\"])", &v) <= 0)
        return false;
    n = pg_toml_array_len(v);
    allow = calloc(n ? n : 1, sizeof *allow);
    if (allow == NULL) {
        s->L->oom = true;
        return false;
    }
    for (i = 0; i < n; i++) {
        const pg_toml_value_t *e = pg_toml_array_at(v, i);
        const char *text, *why;

        if (pg_toml_type(e) != PG_TOML_STRING) {
            pg__config_err(s->L, s->src->path, pg_toml_pos(e),
                           "%s.%s: expected a network string (e.g. \"10.0.0.0/8\"), got %s",
                           s->name, key, pg__config_a_type(e));
            ok = false;
            continue;
        }
        text = pg_toml_string(e, NULL);
        if (pg_cidr_parse(text, &allow[i], &why) < 0) {
            pg__config_err(s->L, s->src->path, pg_toml_pos(e), "%s.%s: \"%s\": %s", s->name,
                           key, text, why);
            ok = false;
        }
    }
    if (!ok) {
        free(allow);
        return false;
    }
    free(*list);
    *list = allow;
    *nlist = n;
    return true;
}

static void parse_allow(const sect_t *s, pg_config_pprof_t *pp)
{
    parse_cidrs(s, "allow", &pp->allow, &pp->nallow);
}

/* [pprof], or [upstream.pprof] (global == false: path and admin_listen are global only). */
void pg__config_parse_pprof(const sect_t *s, pg_config_pprof_t *pp, bool global)
{
    const char *text, *why;
    pg_pos_t pos;
    uint64_t n;

    if (global)
        check_unknown(s, pprof_keys, PG__NKEYS(pprof_keys));
    else
        check_unknown(s, upstream_pprof_keys, PG__NKEYS(upstream_pprof_keys));
    if (global && get_str(s, "path", &text, &pos) == 1) {
        size_t len = strlen(text);

        if ((why = path_problem(text)) != NULL)
            pg__config_err(s->L, s->src->path, pos, "%s.path: \"%s\" %s", s->name, text, why);
        else if (len < 2 || text[len - 1] == '/')
            pg__config_err(s->L, s->src->path, pos,
                           "%s.path: \"%s\": must name a path without a trailing \"/\" (e.g. "
                           "\"/debug/pprof\")",
                           s->name, text);
        else {
            char *dup = strdup(text);

            if (dup == NULL)
                s->L->oom = true;
            else {
                free(pp->path);
                pp->path = dup;
            }
        }
    }
    parse_allow(s, pp);
    if (get_uint(s, "max_seconds", 1, 3600, &n) == 1)
        pp->max_seconds = (uint32_t)n;
    get_bool(s, "enabled", &pp->enabled);
    if (get_uint(s, "max_concurrent", 1, 64, &n) == 1)
        pp->max_concurrent = (uint32_t)n;
    if (get_str(s, "token_file", &text, &pos) == 1) {
        char *full = resolve_path(s->src, text), *token = NULL;

        if (full == NULL) {
            s->L->oom = true;
        } else if (read_token(s, full, pos, &token) == 1) {
            free(pp->token_file);
            free(pp->token);
            pp->token_file = full;
            pp->token = token;
            full = NULL;
        }
        free(full);
    }
    if (global && get_addr(s, "admin_listen", false, &pp->admin_listen) == 1)
        pp->has_admin_listen = true;
}

void pg__config_parse_server(const sect_t *s, pg_config_server_t *srv)
{
    static const char *const formats[] = {"combined", "common", "json"};
    static const char *const scheds[] = {"normal", "batch"};
    const char *text, *why;
    pg_pos_t pos;
    uint64_t n;
    size_t i;

    check_unknown(s, server_keys, PG__NKEYS(server_keys));
    get_addr(s, "listen", false, &srv->listen);
    parse_workers(s, srv);
    if (get_uint(s, "max_connections", 1, 1000000, &n) == 1)
        srv->max_connections = (uint32_t)n;
    if (get_size(s, "max_header_bytes", 1024, 1 << 20, &n) == 1)
        srv->max_header_bytes = (uint32_t)n;
    get_size(s, "max_body_bytes", 0, 1ULL << 50, &srv->max_body_bytes);
    get_duration(s, "header_timeout", 1, DAY_MS, &srv->header_timeout_ms);
    get_duration(s, "idle_timeout", 1, DAY_MS, &srv->idle_timeout_ms);
    get_duration(s, "drain_timeout", 0, 3600 * 1000, &srv->drain_timeout_ms);
    if (get_str(s, "access_log", &text, &pos) == 1) {
        if (text[0] == '\0') {
            pg__config_err(s->L, s->src->path, pos,
                           "%s.access_log: empty (write \"off\", \"stderr\" or a file path)",
                           s->name);
        } else if (strcmp(text, "off") != 0) {
            char *p = strcmp(text, "stderr") == 0 ? strdup(text) : resolve_path(s->src, text);

            if (p == NULL)
                s->L->oom = true;
            free(srv->access_log);
            srv->access_log = p;
        }
    }
    if (get_choice(s, "access_log_format", formats, PG__NKEYS(formats), "a format", &i) == 1)
        srv->access_log_format = PG_LOG_COMBINED + (int)i;
    if (get_str(s, "metrics_path", &text, &pos) == 1 && strcmp(text, "off") != 0) {
        if ((why = path_problem(text)) != NULL) {
            pg__config_err(s->L, s->src->path, pos, "%s.metrics_path: \"%s\" %s", s->name, text,
                           why);
        } else {
            char *p = strdup(text);

            if (p == NULL)
                s->L->oom = true;
            free(srv->metrics_path);
            srv->metrics_path = p;
        }
    }
    get_bool(s, "add_forwarded", &srv->add_forwarded);
    get_bool(s, "add_via", &srv->add_via);
    get_bool(s, "batch_writes", &srv->batch_writes);
    if (get_uint(s, "event_coalesce_us", 0, 1000, &n) == 1)
        srv->event_coalesce_us = (uint32_t)n;
    if (get_choice(s, "worker_sched", scheds, PG__NKEYS(scheds), "a scheduling policy", &i) == 1)
        srv->worker_sched = PG_SCHED_NORMAL + (int)i;
    if (parse_cidrs(s, "metrics_allow", &srv->metrics_allow, &srv->nmetrics_allow))
        srv->has_metrics_allow = true;
}

void pg__config_pprof_destroy(pg_config_pprof_t *pp)
{
    free(pp->path);
    free(pp->allow);
    free(pp->token_file);
    free(pp->token);
    memset(pp, 0, sizeof *pp);
}

/* Deep copy (an upstream starts from the global policy). */
static int pprof_copy(pg_config_pprof_t *dst, const pg_config_pprof_t *src)
{
    *dst = *src;
    dst->path = NULL;
    dst->allow = NULL;
    dst->token_file = NULL;
    dst->token = NULL;
    if ((src->path && (dst->path = strdup(src->path)) == NULL) ||
        (src->token_file && (dst->token_file = strdup(src->token_file)) == NULL) ||
        (src->token && (dst->token = strdup(src->token)) == NULL) ||
        (dst->allow = malloc((src->nallow ? src->nallow : 1) * sizeof *dst->allow)) == NULL) {
        pg__config_pprof_destroy(dst);
        return -ENOMEM;
    }
    if (src->nallow)
        memcpy(dst->allow, src->allow, src->nallow * sizeof *dst->allow);
    return 0;
}

int pg__config_grow(void **arr, size_t *cap, size_t need, size_t size)
{
    void *p;
    size_t n;

    if (need <= *cap)
        return 0;
    n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    if ((p = realloc(*arr, n * size)) == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static bool valid_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return false;
    return true;
}

void pg__config_parse_upstream(loader_t *L, const src_t *src, const pg_toml_value_t *t)
{
    pg_config_t *cfg = L->cfg;
    sect_t s = {L, src, "upstream", t};
    pg_config_upstream_t *u;
    const pg_toml_value_t *pv;
    const char *text;
    pg_pos_t pos;
    uint64_t n;
    size_t cap = L->capup;

    if (pg__config_grow((void **)&cfg->upstreams, &cap, cfg->nupstreams + 1,
                        sizeof *cfg->upstreams) < 0 ||
        pg__config_grow((void **)&L->upx, &L->capup, cfg->nupstreams + 1, sizeof *L->upx) < 0) {
        L->oom = true;
        return;
    }
    u = &cfg->upstreams[cfg->nupstreams];
    memset(u, 0, sizeof *u);
    u->connect_timeout_ms = 5000;
    u->timeout_ms = 60000;
    u->pool_size = 64;
    u->pool_idle_timeout_ms = 30000;
    u->pos = pg_toml_pos(t);
    u->file = src->path;
    if (pprof_copy(&u->pprof, &cfg->pprof) < 0) {
        L->oom = true;
        return;
    }
    L->upx[cfg->nupstreams] = (entry_extra_t){src, t};
    cfg->nupstreams++;

    check_unknown(&s, upstream_keys, PG__NKEYS(upstream_keys));
    switch (get_str(&s, "name", &text, &pos)) {
    case -1:
        L->names_incomplete = true;
        break;
    case 0:
        L->names_incomplete = true;
        if (!misspelled(&s, "name", upstream_keys, PG__NKEYS(upstream_keys)))
            pg__config_err(L, src->path, u->pos,
                           "upstream.name: missing (every [[upstream]] needs a name)");
        break;
    case 1:
        if (!valid_name(text)) {
            L->names_incomplete = true;
            pg__config_err(L, src->path, pos,
                           "upstream.name: \"%s\": use only letters, digits, '_', '.' and '-'",
                           text);
        } else if ((u->name = strdup(text)) == NULL)
            L->oom = true;
        break;
    }
    if (get_addr(&s, "address", false, &u->address) == 0 &&
        !misspelled(&s, "address", upstream_keys, PG__NKEYS(upstream_keys)))
        pg__config_err(L, src->path, u->pos,
                       "upstream.address: missing (every [[upstream]] needs an address, e.g. "
                       "\"127.0.0.1:9000\")");
    if (get_addr(&s, "agent", true, &u->agent) == 1)
        u->has_agent = true;
    get_duration(&s, "connect_timeout", 1, DAY_MS, &u->connect_timeout_ms);
    get_duration(&s, "timeout", 1, DAY_MS, &u->timeout_ms);
    if (get_uint(&s, "pool_size", 0, 65535, &n) == 1)
        u->pool_size = (uint32_t)n;
    get_duration(&s, "pool_idle_timeout", 1, DAY_MS, &u->pool_idle_timeout_ms);
    if (get_typed(&s, "pprof", PG_TOML_TABLE, "a table ([upstream.pprof])", &pv) == 1) {
        sect_t ps = {L, src, "upstream.pprof", pv};

        pg__config_parse_pprof(&ps, &u->pprof, false);
    }
}

void pg__config_parse_route(loader_t *L, const src_t *src, const pg_toml_value_t *t)
{
    pg_config_t *cfg = L->cfg;
    sect_t s = {L, src, "route", t};
    pg_config_route_t *r;
    const char *text, *why;
    pg_pos_t pos;
    size_t cap = L->caprt;

    if (pg__config_grow((void **)&cfg->routes, &cap, cfg->nroutes + 1, sizeof *cfg->routes) < 0 ||
        pg__config_grow((void **)&L->rtx, &L->caprt, cfg->nroutes + 1, sizeof *L->rtx) < 0) {
        L->oom = true;
        return;
    }
    r = &cfg->routes[cfg->nroutes];
    memset(r, 0, sizeof *r);
    r->upstream = SIZE_MAX;
    r->pos = pg_toml_pos(t);
    r->file = src->path;
    L->rtx[cfg->nroutes] = (entry_extra_t){src, t};
    cfg->nroutes++;

    check_unknown(&s, route_keys, PG__NKEYS(route_keys));
    switch (get_str(&s, "prefix", &text, &pos)) {
    case 0:
        if (misspelled(&s, "prefix", route_keys, PG__NKEYS(route_keys)))
            break;
        pg__config_err(L, src->path, r->pos,
                       "route.prefix: missing (every [[route]] needs a prefix, e.g. \"/\")");
        break;
    case 1:
        if ((why = path_problem(text)) != NULL)
            pg__config_err(L, src->path, pos, "route.prefix: \"%s\" %s", text, why);
        else if ((r->prefix = strdup(text)) == NULL)
            L->oom = true;
        break;
    }
    if (get_str(&s, "host", &text, &pos) == 1) {
        const char *p;

        for (p = text; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("-._:[]*", *p))
                break;
        if (text[0] == '\0' || *p)
            pg__config_err(
                L, src->path, pos,
                "route.host: \"%s\": expected a host name as in the Host header (letters, "
                "digits, '-', '.', optional :port)",
                text);
        else if ((r->host = strdup(text)) == NULL)
            L->oom = true;
        else
            for (char *q = r->host; *q; q++)
                *q = (char)tolower((unsigned char)*q);
    }
    if (get_str(&s, "upstream", &text, &pos) == 0 &&
        !misspelled(&s, "upstream", route_keys, PG__NKEYS(route_keys)))
        pg__config_err(L, src->path, r->pos,
                       "route.upstream: missing (every [[route]] names the upstream it goes to)");
}

/* Top-level keys of one file; included files may hold only [[upstream]] and [[route]]. */
void pg__config_check_top_keys(loader_t *L, const src_t *src, bool top)
{
    size_t i, n = pg_toml_table_len(src->root);

    for (i = 0; i < n; i++) {
        const char *key, *sug, *home;
        size_t klen;
        pg_pos_t pos;

        pg_toml_table_at_len(src->root, i, &key, &klen, &pos);
        if (klen != strlen(key)) {
            pg__config_err(L, src->path, pos, "%s: unknown key (it holds a NUL character)", key);
            continue;
        }
        if (in_list(key, top_keys, PG__NKEYS(top_keys))) {
            if (!top && strcmp(key, "upstream") != 0 && strcmp(key, "route") != 0)
                pg__config_err(L, src->path, pos,
                               "%s: not allowed in an included file (an included file holds only "
                               "[[upstream]] and [[route]]; includes do not nest)",
                               key);
            continue;
        }
        if ((sug = pg__config_closest(key, top_keys, PG__NKEYS(top_keys))) != NULL)
            pg__config_err(L, src->path, pos, "%s: unknown key (did you mean \"%s\"?)", key, sug);
        else if ((home = home_of(key, "")) != NULL)
            pg__config_err(L, src->path, pos, "%s: unknown top-level key (it belongs in %s)", key,
                           home);
        else
            pg__config_err(L, src->path, pos, "%s: unknown key", key);
    }
}
