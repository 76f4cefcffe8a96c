/* pa_ring: control side of the sample ring (allocation and draining); see pa_ring.h for the
 * design. */
#include "pa_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pa_ring_new(size_t nslots, pa_ring_t **out)
{
    size_t n = 2;
    pa_ring_t *r;

    *out = NULL;
    if (nslots > ((size_t)1 << 24))
        return -EINVAL;
    while (n < nslots)
        n <<= 1;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    /* calloc touches nothing; the memset below faults every page in now, not in a handler */
    r->slots = malloc(n * sizeof(*r->slots));
    if (r->slots == NULL) {
        free(r);
        return -ENOMEM;
    }
    memset(r->slots, 0, n * sizeof(*r->slots));
    for (size_t i = 0; i < n; i++)
        atomic_init(&r->slots[i].seq, i);
    atomic_init(&r->head, 0);
    atomic_init(&r->dropped, 0);
    r->tail = 0;
    r->mask = n - 1;
    *out = r;
    return 0;
}

void pa_ring_free(pa_ring_t *r)
{
    if (r == NULL)
        return;
    free(r->slots);
    free(r);
}

size_t pa_ring_drain(pa_ring_t *r, pa_ring_drain_fn fn, void *arg)
{
    size_t n = 0;

    for (;;) {
        pa_ring_slot_t *s = &r->slots[r->tail & r->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq != r->tail + 1)
            break; /* empty, or its producer has not committed yet */
        fn(arg, s);
        atomic_store_explicit(&s->seq, r->tail + r->mask + 1, memory_order_release);
        r->tail++;
        n++;
    }
    return n;
}
