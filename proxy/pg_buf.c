/* pg_buf: see pg_buf.h. */
#include "pg_buf.h"

#include <assert.h>
#include <stdlib.h>

void pg_bufpool_init(pg_bufpool_t *p)
{
    p->free = NULL;
    p->nfree = 0;
    p->nlive = 0;
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
    b->next = NULL;
    p->nlive++;
    return b;
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
        return;
    }
    free(b);
}
