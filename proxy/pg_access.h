/* pg_access: the access log: one line per exchange, in the combined/common format of
 * nginx and Apache (with the request time added) or as JSON, appended with one write(2)
 * per line to a file opened O_APPEND (so workers' lines never interleave) or to stderr.
 * Owns: an access log fd is opened by pg_access_open and closed by pg_access_close; an
 *   entry's pointers are borrowed for the call.
 * Threads: any; pg_access_write keeps a per-thread timestamp cache.
 * Errors: negative errno; a line that cannot be written is dropped and counted. */
#ifndef PG_ACCESS_H
#define PG_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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

/* spec: "stderr" or a path (created 0644, appended). *fd is -1 when spec is NULL or "off". */
int pg_access_open(const char *spec, int *fd);
void pg_access_close(int fd);
/* format: PG_LOG_COMBINED, PG_LOG_COMMON or PG_LOG_JSON (pg_config.h). */
void pg_access_write(int fd, int format, const pg_access_entry_t *e);
/* Lines dropped because write(2) failed or was short. */
uint64_t pg_access_dropped(void);

#endif
