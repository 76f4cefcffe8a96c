/* pg_buf: see pg_buf.h. */
#include "pg_buf.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

void pg_bufpool_init(pg_bufpool_t *p)
{
    p->free = NULL;
    p->nfree = 0;
    p->nlive = 0;
    p->nreturned = 0;
    p->nscavenged = 0;
    p->last_ms = 0;
    p->objs = NULL;
    p->nobjs = 0;
    p->obj_size = 0;
}

void pg_bufpool_destroy(pg_bufpool_t *p)
{
    pg_buf_t *b;

    assert(p->nlive == 0);
    while ((b = p->free) != NULL) {
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
    while (p->objs != NULL) {
        void *o = p->objs;

        p->objs = *(void **)o;
        free(o);
    }
    p->nobjs = 0;
}

void *pg_bufpool_obj_get(pg_bufpool_t *p, size_t size)
{
    void *o = p->objs;

    assert(p->obj_size == 0 || p->obj_size == size);
    if (o == NULL) {
        p->obj_size = size;
        return malloc(size < sizeof(void *) ? sizeof(void *) : size);
    }
    p->objs = *(void **)o;
    p->nobjs--;
    return o;
}

void pg_bufpool_obj_put(pg_bufpool_t *p, void *obj)
{
    if (obj == NULL)
        return;
#ifdef __SANITIZE_ADDRESS__
    /* ASan sees a use after free only of memory that was freed: not recycled there */
    free(obj);
    return;
#endif
    if (p->nobjs >= PG_BUF_OBJ_MAX) {
        free(obj);
        return;
    }
    *(void **)obj = p->objs;
    p->objs = obj;
    p->nobjs++;
}

pg_buf_t *pg_buf_get(pg_bufpool_t *p, size_t cap)
{
    pg_buf_t *b;

    if (cap <= PG_BUF_SIZE && p->free != NULL) {
        b = p->free;
        p->free = b->next;
        p->nfree--;
    } else {
        if (cap < PG_BUF_SIZE)
            cap = PG_BUF_SIZE;
        if (cap > UINT32_MAX)
            return NULL;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->cap = (uint32_t)cap;
        b->pool = p;
    }
    b->refs = 1;
    b->len = 0;
    b->used = 1;
    b->next = NULL;
    p->nlive++;
    return b;
}

static uint64_t coarse_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &t); /* vDSO, no system call */
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* every PG_BUF_SCAVENGE_EVERY returns: scavenge, unless the last one was too recent */
static void scavenge_if_due(pg_bufpool_t *p)
{
    uint64_t now = coarse_ms();

    if (p->last_ms != 0 && now - p->last_ms < PG_BUF_SCAVENGE_MIN_MS) {
        p->nreturned = 0;
        return;
    }
    p->last_ms = now ? now : 1;
    pg_bufpool_scavenge(p);
}

void pg_buf_unref(pg_buf_t *b)
{
    pg_bufpool_t *p = b->pool;

    assert(b->refs > 0);
    if (--b->refs > 0)
        return;
    p->nlive--;
    if (b->cap == PG_BUF_SIZE && p->nfree < PG_BUF_POOL_MAX) {
        b->next = p->free;
        p->free = b;
        p->nfree++;
        if (++p->nreturned >= PG_BUF_SCAVENGE_EVERY)
            scavenge_if_due(p);
        return;
    }
    free(b);
}

void pg_bufpool_scavenge(pg_bufpool_t *p)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo, hi;
    pg_buf_t *b;

    p->nreturned = 0;
    for (b = p->free; b != NULL; b = b->next) {
        if (!b->used)
            continue;
        b->used = 0;
        /* whole pages inside data only, past the first (small reads touch just that one) */
        lo = ((uintptr_t)b->data + page - 1) / page * page + page;
        hi = ((uintptr_t)b->data + b->cap) / page * page;
        if (lo < hi && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0)
            p->nscavenged++;
    }
}
