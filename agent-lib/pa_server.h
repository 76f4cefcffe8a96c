/* pa_server: a small HTTP/1.1 server on a Unix socket, run by the agent's own thread with
 * poll(). Keep-alive, one request at a time per connection (pipelined bytes wait), bounded
 * requests, every response with Content-Length. A handler answers at once, or defers: the
 * request then sleeps without blocking the thread (a CPU profile waits its N seconds that
 * way) and its callback runs at the time it asked for, when the client goes away, or when the
 * server stops.
 * Socket file: created 0600 (bound under a temporary name, chmod'ed, renamed into place, so
 * the process-wide umask never matters and no one else can connect meanwhile); its directory
 * is created 0700 when missing; a stale file (nobody answering) is replaced; a live one is
 * refused. The file is removed by pa_server_free if it is still ours. Only peers with our uid,
 * root, or an allowed uid (pa_server_access_t) are served, checked with SO_PEERCRED; allowed
 * uids or a socket group open the file's and new directories' modes (pa_server_sock.c).
 * Owns: its socket, connections and their buffers; pa_req_t's are borrowed by the handler
 *   until it responds or its deferred callback gets GONE/SHUTDOWN.
 * Threads: pa_server_run and every pa_req_* on one thread; pa_server_stop from any thread.
 * Errors: negative errno. */
#ifndef PA_SERVER_H
#define PA_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "profagent.h"

#define PA_SERVER_MAX_CONNS 64
#define PA_SERVER_MAX_URL 8192
#define PA_SERVER_MAX_HEADERS 16384 /* bytes of header names and values */
#define PA_SERVER_MAX_BODY 65536
#define PA_SERVER_IDLE_MS 60000 /* keep-alive idle, and no progress reading or writing */

typedef struct pa_server pa_server_t;
typedef struct pa_req pa_req_t;

typedef struct pa_header {
    const char *name;
    const char *value;
} pa_header_t;

typedef void (*pa_server_handler_fn)(void *arg, pa_req_t *req);

typedef enum pa_req_event {
    PA_REQ_WAKE,     /* the time given to pa_req_wake_at has come: respond, or wake again */
    PA_REQ_GONE,     /* the client closed its side: release your state, do not respond */
    PA_REQ_SHUTDOWN, /* the server is stopping: release your state, do not respond */
} pa_req_event_t;

typedef void (*pa_req_event_fn)(void *arg, pa_req_t *req, pa_req_event_t ev);

#define PA_SERVER_MAX_ALLOW PROFAGENT_MAX_ALLOW_UIDS

/* Who may connect besides our own effective uid and root (see pa_server_sock.c for the
 * modes this gives the socket file and the directories we create). All zero: only we. */
typedef struct pa_server_access {
    unsigned int allow_uid[PA_SERVER_MAX_ALLOW]; /* 0: an unused slot */
    unsigned int socket_gid;                     /* the socket file's group; 0: none */
} pa_server_access_t;

/* Create the socket at path (listening) and call handler for each request. */
int pa_server_new(const char *path, pa_server_handler_fn handler, void *arg, pa_server_t **out);
/* The same, letting acc's uids in too (acc NULL: only ours). acc is copied. */
int pa_server_new_access(const char *path, const pa_server_access_t *acc,
                         pa_server_handler_fn handler, void *arg, pa_server_t **out);
/* The same, with o's socket_path, allow_uid and socket_gid. */
int pa_server_new_for(const profagent_options_t *o, pa_server_handler_fn handler, void *arg,
                      pa_server_t **out);
/* Apply PROFAGENT_ALLOW_UID and PROFAGENT_SOCKET_GROUP to o (for profagent_options_init). An
 * entry that is neither a number nor a known name is logged and ignored. */
void pa_server_options_env(profagent_options_t *o);
/* Serve until pa_server_stop; deferred requests get PA_REQ_SHUTDOWN before it returns. */
int pa_server_run(pa_server_t *s);
/* Ask run to return. Any thread; async-signal-safe (one write(2)). */
void pa_server_stop(pa_server_t *s);
/* Close everything and remove the socket file (if it is still the one we created). */
void pa_server_free(pa_server_t *s);
/* Remove the socket file if it is still ours; the server keeps running (for exit time). */
void pa_server_unlink(pa_server_t *s);
/* fn(arg, 1) is called on run's thread right before it blocks in poll(), fn(arg, 0) right
 * after it wakes; between the two the thread holds no lock and allocates nothing (the agent
 * uses this to let a fork happen only then, see pa_agent.c). Set before pa_server_run. */
typedef void (*pa_server_idle_fn)(void *arg, int idle);
void pa_server_set_idle_hook(pa_server_t *s, pa_server_idle_fn fn, void *arg);

/* The request; strings stay valid until the response is queued. path is percent-decoded;
 * query is raw (without '?', "" if none); body is not NUL-terminated. */
const char *pa_req_method(const pa_req_t *r);
const char *pa_req_path(const pa_req_t *r);
const char *pa_req_query(const pa_req_t *r);
const char *pa_req_body(const pa_req_t *r, size_t *len);

/* Queue the response (head built here with Content-Length; body copied). The request is
 * finished afterwards: do not touch r again. HEAD requests get the head only. */
int pa_req_respond(pa_req_t *r, int status, const pa_header_t *headers, size_t nheaders,
                   const void *body, size_t len);

/* Keep the request open after the handler returns; fn gets the events above. */
void pa_req_defer(pa_req_t *r, pa_req_event_fn fn, void *arg);
/* Ask for a PA_REQ_WAKE at monotonic time at_ns (pa_server_now_ns). */
void pa_req_wake_at(pa_req_t *r, int64_t at_ns);

int64_t pa_server_now_ns(void); /* CLOCK_MONOTONIC */

/* --- internals for tests --- */
/* Percent-decode src[0..len) into dst (NUL-terminated, at most dstsize bytes with the NUL);
 * '+' is kept unless plus_is_space. -EINVAL on a bad escape, -ENAMETOOLONG if it does not fit. */
int pa__url_unescape(const char *src, size_t len, char *dst, size_t dstsize, int plus_is_space);
/* Feed data[0..len), as two reads split at split, to a connection on fd (consumed: closed
 * before return), dispatching its requests to handler as pa_server_run does; responses are
 * sent on fd (the caller drains its peer). No deferral: a handler must respond at once. For
 * tests/fuzz/fuzz_agent_http.c. */
int pa__server_feed(int fd, const char *data, size_t len, size_t split,
                    pa_server_handler_fn handler, void *arg);

/* --- internals for sibling files: pa_server_sock.c, the socket file and the peer gate --- */
typedef struct pa__server_sock {
    int fd;                    /* listening socket, -1 before listen */
    dev_t dev;                 /* of the socket file we created, to remove it only while */
    ino_t ino;                 /*   it is ours */
    pa_server_access_t access; /* who may connect */
    const char *path;          /* borrowed from the server, for log lines */
    uint64_t refused;          /* peers turned away */
    uint64_t refused_quiet;    /* refusals not logged since the last line */
    int64_t refused_logged_ns; /* when that line was written; 0: never */
} pa__server_sock_t;

/* Create the socket file at path (see "Socket file" above) and listen; fills *k. acc NULL:
 * k->access as it is (zeroed by the caller). path must outlive k. */
int pa__server_sock_listen(pa__server_sock_t *k, const char *path, const pa_server_access_t *acc);
/* 0 if the peer connected on fd may be served (SO_PEERCRED), else negative errno (a refusal
 * is counted and logged, at most one line per 10 s). */
int pa__server_sock_admit(pa__server_sock_t *k, int fd);
/* Remove the file at path if it is still the one k created. */
void pa__server_sock_unlink(const pa__server_sock_t *k, const char *path);

/* For tests: the rules, apart from the system calls. */
int pa__server_uid_allowed(const pa_server_access_t *a, unsigned int peer, unsigned int self);
mode_t pa__server_socket_mode(const pa_server_access_t *a);
mode_t pa__server_dir_mode(const pa_server_access_t *a);
/* "1001, www-data": uids or user names, comma-separated, into uids[0..max) (the rest 0; root
 * and bad entries, logged, are skipped); returns how many. */
int pa__server_parse_uids(const char *list, unsigned int *uids, size_t max);
/* A gid or group name (not 0 / root); logged when refused. */
int pa__server_parse_gid(const char *s, unsigned int *gid);

#endif
