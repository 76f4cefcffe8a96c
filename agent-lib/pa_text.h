/* pa_text: the debug=1 (and goroutine debug=2) text forms of profiles, as Go's runtime/pprof
 * writes them, with native frames in place of Go's.
 *
 * Count profiles (goroutine, threadcreate; Go's printCountProfile):
 *     goroutine profile: total 7
 *     5 @ 0x55d0c0a011d9 0x55d0c0a01224 0x7f3a1c6a3fd3
 *     #	0x55d0c0a011d9	park_here+0x19		/usr/bin/prog
 *     #	0x55d0c0a01223	park_thread+0x43	/usr/bin/prog
 *     #	0x7f3a1c6a3fd2	start_thread+0x2f1	/usr/lib/x86_64-linux-gnu/libc.so.6
 *
 *     2 @ ...
 * Records are sorted by count, largest first, then by their "@ ..." key (as Go sorts them).
 * The "@" line has the raw stack (leaf first; return addresses for all frames but the leaf);
 * each "#" line has the frame's address (return address - 1 for callers, as Go's
 * runtime.CallersFrames reports it), function+offset from the function's start, and where Go
 * has file:line the object file (main program or shared library) the frame is in, since native
 * frames carry no line table here. A frame no symbol covers is "libname+0xoff" (file offset),
 * as pa_pprof names it; an address in no mapping is "#\t0x..." alone, as Go prints an
 * unknown frame. Columns are aligned exactly as Go's text/tabwriter (minwidth 1, tabwidth 8,
 * padding 1, padchar '\t') aligns them, so the bytes match Go's for the same cells.
 *
 * Owns: a pa_textbuf_t owns its bytes (free() them, or take them with pa_textbuf_take).
 * Threads: one thread at a time. Not async-signal-safe (allocates).
 * Errors: negative errno (-ENOMEM); a buffer that failed once stays failed, so callers append
 *   freely and check once at the end. */
#ifndef PA_TEXT_H
#define PA_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "pa_stacktab.h"
#include "pa_symbolize.h"

typedef struct pa_textbuf {
    char *data; /* read-only: NUL-terminated while err == 0 */
    size_t len; /* read-only */
    size_t cap; /* private */
    int err;    /* read-only: 0 or the first error */
} pa_textbuf_t;

void pa_textbuf_init(pa_textbuf_t *b);
void pa_textbuf_destroy(pa_textbuf_t *b);
void pa_textbuf_append(pa_textbuf_t *b, const char *s, size_t len);
void pa_textbuf_printf(pa_textbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the bytes over (*out malloc'd, NUL-terminated) and reset b; or the buffer's error. */
int pa_textbuf_take(pa_textbuf_t *b, char **out, size_t *outlen);

/* Append "@ 0x.. 0x.." (no newline): the key of a stack in Go's text forms. */
void pa_text_stack_key(pa_textbuf_t *b, const uintptr_t *pcs, size_t npcs);

/* Append the "#" lines of one stack and the empty line after them (Go's printStackRecord). */
void pa_text_stack_record(pa_textbuf_t *b, pa_symtab_t *sym, const uintptr_t *pcs, size_t npcs);

/* Append one stack in the goroutine debug=2 form (Go's traceback, adapted):
 *     park_here(...)
 *     	/usr/bin/prog +0x19
 * one pair of lines per frame, leaf first: "function(...)" then a tab, the object file, and
 * the offset from the function's start (Go: "\tfile:line +0xoff"). Unknown function:
 * "libname+0xoff(...)" or "0x...(...)"; pseudo-frames by their name, e.g. "[unknown](...)". */
void pa_text_traceback(pa_textbuf_t *b, pa_symtab_t *sym, const uintptr_t *pcs, size_t npcs);

/* The whole debug=1 text of a count profile named name from t, counting values[value_index]
 * of each stack; comments, if any, follow as "# comment" lines at the end (Go has none; here
 * they carry drops and threads that did not answer). */
int pa_text_count_profile(const char *name, const pa_stacktab_t *t, size_t value_index,
                          pa_symtab_t *sym, const char *const *comments, size_t ncomments,
                          char **out, size_t *outlen);

/* The debug=1 text of a contention profile (Go's block and mutex, values {count, delay ns}):
 *     --- contention:                  (name: "contention" for block, "mutex" for mutex)
 *     cycles/second=1000000000         (delays are nanoseconds here: one "cycle" per ns)
 *     sampling period=5                (only when sampling_period >= 0: mutex)
 *     81000000 9 @ 0x... 0x...         (delay, count, stack)
 *     #	0x...	pthread_mutex_lock+0x6b	/usr/lib/libprofagent.so
 *     ...
 * records by delay, largest first (then by stack); comments as "# " lines at the end. */
int pa_text_contention_profile(const char *name, const pa_stacktab_t *t, int64_t sampling_period,
                               pa_symtab_t *sym, const char *const *comments, size_t ncomments,
                               char **out, size_t *outlen);

/* --- internals for tests --- */
/* Go's text/tabwriter with (minwidth 1, tabwidth 8, padding 1, padchar '\t', flags 0) over
 * text made of whole lines, each ending in '\n'. Appends the aligned text to b. */
void pa__text_tabwrite(pa_textbuf_t *b, const char *text, size_t len);

#endif
