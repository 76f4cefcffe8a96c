/* pg_buf: reference-counted I/O buffers, so that bytes read from one socket can be written
 * to the other without a copy: each pending uv_write holds a reference to the buffer its
 * slice lives in, and the buffer goes back to its worker's free list when the last
 * reference is dropped. The pool also recycles one kind of fixed-size object for its owner
 * (pg_bufpool_obj_get).
 * Owns: a pg_bufpool_t owns the free buffers and objects on its lists; a pg_buf_t is owned
 *   by whoever holds references (pg_buf_ref/pg_buf_unref), an object by whoever got it
 *   until it is put back; the pool must outlive every buffer it gave.
 * Threads: a pool and its buffers belong to one worker's loop thread.
 * Errors: pg_buf_get returns NULL when memory is exhausted.
 * Memory: a pooled buffer keeps every page a read ever touched, so a pool that serves small
 *   reads and, now and then, a large one (a profile) grows its resident set slowly towards
 *   all its buffers' full size (issue 6's soak: ~40 KiB a minute). Every
 *   PG_BUF_SCAVENGE_EVERY returns, but not twice within PG_BUF_SCAVENGE_MIN_MS, the pool
 *   gives back to the kernel (MADV_DONTNEED) the pages past the first of each free buffer
 *   used since the last time; a later read faults them in again. (Under load 4096 returns
 *   take ~25 ms, and a scavenge is one madvise per buffer in use, 0.6-2.7 us each: the time
 *   bound keeps that under 0.01 calls per request.) */
#ifndef PG_BUF_H
#define PG_BUF_H

#include <stddef.h>
#include <stdint.h>

#define PG_BUF_SIZE 65536     /* standard buffer: one read, or one head */
#define PG_BUF_POOL_MAX 256   /* free standard buffers kept per worker (16 MiB at most) */
#define PG_BUF_SCAVENGE_EVERY 4096 /* returns to the pool between two scavenges */
#define PG_BUF_SCAVENGE_MIN_MS 1000 /* and at least this long between two of them */
#define PG_BUF_OBJ_MAX 32     /* free objects kept per pool (pg_bufpool_obj_put) */

typedef struct pg_bufpool pg_bufpool_t;

typedef struct pg_buf {
    uint32_t refs;      /* private */
    uint32_t cap;       /* read-only: bytes in data */
    uint32_t len;       /* public: bytes used, for the holder's bookkeeping */
    uint32_t used;      /* private: handed out since the pool last scavenged */
    pg_bufpool_t *pool; /* private */
    struct pg_buf *next; /* private: free list link */
    char data[];
} pg_buf_t;

struct pg_bufpool {
    pg_buf_t *free; /* private */
    size_t nfree;   /* read-only */
    size_t nlive;   /* read-only: buffers handed out and not yet returned */
    size_t nreturned; /* private: returns since the last scavenge */
    size_t nscavenged; /* read-only: free buffers whose pages were given back */
    uint64_t last_ms;  /* private: CLOCK_MONOTONIC_COARSE of the last automatic scavenge */
    void *objs;        /* private: free objects (pg_bufpool_obj_get), linked through their
                          first word */
    size_t nobjs;      /* read-only */
    size_t obj_size;   /* private: the size they were allocated with */
};

void pg_bufpool_init(pg_bufpool_t *p);
/* Frees the free lists; buffers still referenced are a bug (asserts nlive == 0). */
void pg_bufpool_destroy(pg_bufpool_t *p);

/* Objects of one size recycled by the pool's owner: the worker's per-request exchange, which
 * would otherwise be a malloc and a free per request (~340 instructions). get: a free one
 * (contents undefined) or a new one, NULL on ENOMEM; every get must ask for the same size.
 * put: back on the list (PG_BUF_OBJ_MAX at most, the rest freed); NULL is ignored. */
void *pg_bufpool_obj_get(pg_bufpool_t *p, size_t size);
void pg_bufpool_obj_put(pg_bufpool_t *p, void *obj);

/* A buffer of at least cap bytes with one reference, len 0; NULL on ENOMEM. */
pg_buf_t *pg_buf_get(pg_bufpool_t *p, size_t cap);
static inline pg_buf_t *pg_buf_ref(pg_buf_t *b)
{
    b->refs++;
    return b;
}
void pg_buf_unref(pg_buf_t *b);
/* Gives back to the kernel the pages past the first of every free buffer used since the
 * last call (pg_buf_unref calls it every PG_BUF_SCAVENGE_EVERY returns, at most once per
 * PG_BUF_SCAVENGE_MIN_MS; a direct call always scavenges); their contents are lost, which
 * is fine: a free buffer holds nothing. */
void pg_bufpool_scavenge(pg_bufpool_t *p);

#endif
