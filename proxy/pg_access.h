/* pg_access: the access log: one line per exchange, in the combined/common format of
 * nginx and Apache (with the request time added) or as JSON, to a file opened O_APPEND or to
 * stderr.
 *
 * Batching: a worker thread attaches a batch (pg_access_batch_attach) and its lines are
 * gathered there and written together: before its loop waits for events (a uv_prepare
 * handle calls pg_access_batch_flush), when the next line might not fit, before a line for
 * another descriptor (a reload opened a new file), and before the descriptor can be closed.
 * So a busy worker makes one write(2) per loop iteration instead of one per request, and a
 * line waits at most one loop iteration, never while the loop sleeps. Every write holds
 * whole lines: on a regular file (O_APPEND, or stderr redirected to one) a write is one
 * append no other worker's write can enter; on a pipe, socket or terminal each write holds at
 * most PIPE_BUF bytes, cut at a line end, which POSIX makes atomic on pipes. A thread with no
 * batch attached writes each line at once, in one write.
 *
 * Memory: PG_ACCESS_BATCH_BYTES per batch, fixed. A full batch is written at once (the
 * worker waits for that write as it did for each line before). A write that fails (disk
 * full, I/O error, a non-blocking pipe that is full) drops the lines it held: they are
 * counted (pg_access_dropped, metrics profgate_access_log_dropped_total), never retried,
 * never kept.
 *
 * Owns: an access log fd is opened by pg_access_open and closed by pg_access_close; an
 *   entry's pointers are borrowed for the call; a batch is caller memory, borrowed by the
 *   thread it is attached to until it is detached.
 * Threads: pg_access_write from any thread, each with its own batch or none (a per-thread
 *   timestamp cache and batch pointer); a batch is used by one thread only.
 * Errors: negative errno; a line that cannot be written is dropped and counted. */
#ifndef PG_ACCESS_H
#define PG_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest line, its '\n' included (longer ones are cut); at most PIPE_BUF, so that one
 * line always fits in one atomic pipe write. */
#define PG_ACCESS_LINE_MAX 4096
/* A batch's buffer: a busy loop iteration's lines (~100-300 bytes each) in one write. */
#define PG_ACCESS_BATCH_BYTES 65536

typedef struct pg_access_entry {
    const struct sockaddr *peer;
    const char *peer_text;  /* peer's address as text when the caller has it (a connection
                               makes it once for X-Forwarded-For), or NULL: from peer */
    size_t peer_text_len;
    const char *method;
    const char *target;     /* the request target as received */
    size_t target_len;
    int http_major, http_minor;
    int status;             /* 0: none sent (logged as "-" / null) */
    uint64_t bytes_out;     /* bytes sent to the client, head included */
    const char *referer, *ua; /* may be NULL */
    size_t referer_len, ua_len;
    const char *upstream;   /* may be NULL (answered by profgate) */
    uint64_t duration_us;   /* head received -> exchange done */
    const char *cause;      /* why profgate answered or cut, or NULL */
} pg_access_entry_t;

/* Lines waiting to be written, all for one descriptor. Fields are private. */
typedef struct pg_access_batch {
    int fd;       /* the descriptor of the lines held, or of the last ones; -1: none */
    size_t chunk; /* most bytes per write to fd: PIPE_BUF, or all for a regular file */
    size_t n;     /* bytes held */
    char buf[PG_ACCESS_BATCH_BYTES];
} pg_access_batch_t;

/* spec: "stderr" or a path (created 0644, appended). *fd is -1 when spec is NULL or "off". */
int pg_access_open(const char *spec, int *fd);
/* Closes fd (not stdin/stdout/stderr). A batch that held lines for fd must have been
 * flushed and forgotten (pg_access_batch_forget) first. */
void pg_access_close(int fd);
/* format: PG_LOG_COMBINED, PG_LOG_COMMON or PG_LOG_JSON (pg_config.h). fd -1: nothing.
 * Into the calling thread's batch when it has one, else written at once. */
void pg_access_write(int fd, int format, const pg_access_entry_t *e);
/* Lines dropped because write(2) failed, all threads. */
uint64_t pg_access_dropped(void);

void pg_access_batch_init(pg_access_batch_t *b);
/* b (NULL: none) becomes the calling thread's batch; b's lines are not flushed by this. */
void pg_access_batch_attach(pg_access_batch_t *b);
/* Writes the lines held, in as few writes as the descriptor allows; 0, or the negative
 * errno of a failed write (its lines and the rest are dropped and counted). */
int pg_access_batch_flush(pg_access_batch_t *b);
/* Flushes, then forgets b's descriptor, which may be closed (and its number reused) after
 * this: call it before dropping what keeps the descriptor open. */
int pg_access_batch_forget(pg_access_batch_t *b);

#endif
