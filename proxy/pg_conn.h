/* pg_conn: one client connection and the exchanges (request -> response) on it; the
 * connection state machine described atop pg_conn.c.
 * Owns: a connection owns its socket, timer, parser, the exchange in progress, the upstream
 *   connection it borrowed for it, and the buffers it holds; it frees itself (and tells its
 *   worker) once its handles have closed.
 * Threads: owning worker's loop thread only. Errors: negative errno (libuv's UV_E*). */
#ifndef PG_CONN_H
#define PG_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

#include <uv.h>

#include "pg_worker.h"

/* A new pg_conn_t on w for fd, a connection just accepted (non-blocking; taken over: closed
 * on failure too), from peer (peer_len bytes, as accept4 gave it). admin: accepted on the
 * pprof.admin_listen listener (see pg_conn.c: which paths each listener serves). */
int pg_conn_accept(pg_worker_t *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                   bool admin);

/* Drain: close now if no request is in progress, else close once its response is sent. */
void pg_conn_drain(pg_conn_t *c);
/* Close now, whatever is in flight (the drain deadline has passed, or shutdown). */
void pg_conn_abort(pg_conn_t *c);

/* The worker's batch of client writes (server.batch_writes; pg_conn_batch.c): created on
 * the worker's loop (a uv_check handle flushes it after each I/O phase; not counted as
 * keeping the loop alive), or an error (no AIO here: the worker writes one at a time). Flush
 * also before the loop waits; close (flushes, then frees) with the loop's other handles. */
int pg_wbatch_new(uv_loop_t *loop, pg_wbatch_t **out);
void pg_wbatch_flush(pg_wbatch_t *b);
void pg_wbatch_close(pg_wbatch_t *b); /* b may be NULL */

/* ---- internals for pg_worker.c ---- */
pg_conn_t *pg__conn_next(pg_conn_t *c); /* worker's list of connections */

#endif
