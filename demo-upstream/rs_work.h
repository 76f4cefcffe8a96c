/* rs_work: the work randomstring does on request, named so that each profile kind shows it:
 * the CPU-bound random string (cpu), live allocations (heap, allocs), lock contention (mutex,
 * block), thread spawning (threadcreate) and a blocking wait (block).
 * Owns: rs_heap_* owns the blocks it allocates until rs_heap_free_all(); everything else
 *   works on caller memory for the duration of the call.
 * Threads: rs_random_* and rs_heap_* on the loop thread only (unsynchronised state);
 *   rs_contend, rs_spawn and rs_block_wait on any thread (they block; the server runs them
 *   on libuv's threadpool). Errors: negative errno. */
#ifndef RS_WORK_H
#define RS_WORK_H

#include <stddef.h>
#include <stdint.h>

/* Bounds the HTTP layer enforces (400 outside them) and the defaults it uses. */
#define RS_STRING_DEFAULT 64
#define RS_STRING_MAX 65536
#define RS_ALLOC_MAX_KB (256 * 1024)      /* per request */
#define RS_HEAP_LIVE_MAX_KB (1024 * 1024) /* all live /alloc blocks together */
#define RS_CONTEND_THREADS_DEFAULT 4
#define RS_CONTEND_THREADS_MAX 16
#define RS_CONTEND_MS_DEFAULT 1000
#define RS_SPAWN_DEFAULT 16
#define RS_SPAWN_MAX 256
#define RS_BLOCK_MS_DEFAULT 100
#define RS_WAIT_MS_MAX 10000 /* /contend and /block */

/* Seeds the generator from getrandom(2) (falls back to time and pid). Call once. */
void rs_random_init(void);

/* Fills out[0..n) with random characters from [A-Za-z0-9] (no terminator). Deliberately
 * expensive: every character costs RS_CHAR_ROUNDS rounds of a 64-bit mixer in
 * rs_random_char(), so that under load this function is what a CPU profile shows. */
void rs_random_string(char *out, size_t n);

/* One character; never inlined so that it has its own frame in a profile. */
char rs_random_char(uint64_t *state);

/* Allocates kb KiB (1..RS_ALLOC_MAX_KB) in 64 KiB blocks, touches every page and keeps them
 * live. Refuses with -ENOSPC if the live total would pass RS_HEAP_LIVE_MAX_KB, -ENOMEM if
 * malloc fails (nothing stays allocated then). */
int rs_heap_alloc(size_t kb);

/* Frees every live block; *kb and *blocks say how much that was. */
void rs_heap_free_all(size_t *kb, size_t *blocks);

/* Live totals. */
void rs_heap_stats(size_t *kb, size_t *blocks);

/* nthreads threads take and release one mutex for ms milliseconds, doing a little work while
 * holding it; *acquisitions is the number of times it was taken. -errno if a thread could not
 * be created (those started are joined first). */
int rs_contend(int nthreads, int ms, uint64_t *acquisitions);

/* Starts n threads that each do a little work, and joins them. -errno from pthread_create
 * (those started are joined first); *started says how many ran. */
int rs_spawn(int n, int *started);

/* Waits ms milliseconds on a condition variable nobody signals (a real blocking wait, not a
 * sleep, so that the block profile sees it). */
int rs_block_wait(int ms);

#endif
