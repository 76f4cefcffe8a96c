/* pg_log: profgate's diagnostic log (one line per event, to stderr), distinct from the
 * access log. Lines read "2026-01-02T03:04:05Z profgate[w1] error: message".
 * Owns: nothing; messages are formatted on the caller's stack.
 * Threads: any (each line is one fputs on a locked stdio stream). Not async-signal-safe.
 * Errors: none reported; a line that cannot be written is lost. */
#ifndef PG_LOG_H
#define PG_LOG_H

enum { PG_LOG_ERROR = 0, PG_LOG_WARN = 1, PG_LOG_INFO = 2, PG_LOG_DEBUG = 3 };

/* Lines above level are dropped. Default PG_LOG_INFO; PG_LOG_LEVEL=debug|info|warn|error in
 * the environment overrides it at the first call. */
void pg_log_set_level(int level);
/* Tag of the calling thread ("main", "w1", ...), copied; at most 15 bytes kept. */
void pg_log_set_thread(const char *tag);
void pg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pg_log_error(...) pg_log(PG_LOG_ERROR, __VA_ARGS__)
#define pg_log_warn(...) pg_log(PG_LOG_WARN, __VA_ARGS__)
#define pg_log_info(...) pg_log(PG_LOG_INFO, __VA_ARGS__)
#define pg_log_debug(...) pg_log(PG_LOG_DEBUG, __VA_ARGS__)

#endif
