/* pa_ring: a bounded ring of raw stacks, filled from signal handlers and interposers on any
 * thread, drained by the agent thread.
 *
 * Design (Vyukov's bounded MPMC queue, used here with a single consumer): every slot carries a
 * sequence number. A producer reads head, and if the slot at head has seq == head it claims it
 * by CAS on head, fills it, then publishes it by setting seq = head + 1. The consumer takes the
 * slot at tail when seq == tail + 1 and gives it back with seq = tail + nslots. A producer that
 * finds seq < head knows the ring is full: it counts a drop and returns. No producer ever waits
 * for another, nothing allocates, and the only loop is the CAS retry under contention, so
 * reserve/commit are lock-free and async-signal-safe. A producer interrupted between reserve
 * and commit only holds up the consumer (which stops at that slot until the next drain).
 * Memory is fixed at pa_ring_new: nslots * sizeof(pa_ring_slot_t).
 *
 * Owns: its slots. A slot returned by pa_ring_reserve belongs to the caller until
 *   pa_ring_commit; the pointer passed to the drain callback is valid during the call only.
 * Threads: reserve/commit from any thread or signal handler (async-signal-safe);
 *   drain/dropped from one consumer thread at a time; new/free when no producer can run.
 * Errors: negative errno. */
#ifndef PA_RING_H
#define PA_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pa_stacktab.h"

#define PA_RING_MAX_FRAMES PA_MAX_FRAMES
#define PA_RING_MAX_VALUES 2

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 || sizeof(size_t) != sizeof(long),
               "ring positions must be lock-free atomics to be used from a signal handler");

typedef struct pa_ring_slot {
    _Atomic size_t seq;                 /* private */
    uint32_t npcs;                      /* public: filled by the producer */
    uint32_t tag;                       /* public: sampler-defined (e.g. event kind) */
    int64_t values[PA_RING_MAX_VALUES]; /* public: sampler-defined (e.g. bytes) */
    uintptr_t pcs[PA_RING_MAX_FRAMES];  /* public: leaf first, see pa_stacktab.h */
} pa_ring_slot_t;

typedef struct pa_ring {
    _Atomic size_t head; /* private: next position to reserve */
    char pad0[64 - sizeof(size_t)];
    _Atomic uint64_t dropped; /* private: reservations refused because the ring was full */
    char pad1[64 - sizeof(uint64_t)];
    size_t tail;           /* private: consumer only */
    size_t mask;           /* read-only: nslots - 1 */
    pa_ring_slot_t *slots; /* private */
} pa_ring_t;

/* nslots is rounded up to a power of two, at least 2. */
int pa_ring_new(size_t nslots, pa_ring_t **out);
void pa_ring_free(pa_ring_t *r);

/* Consumer: call fn for each published slot in order, up to the first one still being
 * written; returns the number of slots consumed. Not async-signal-safe. */
typedef void (*pa_ring_drain_fn)(void *arg, const pa_ring_slot_t *slot);
size_t pa_ring_drain(pa_ring_t *r, pa_ring_drain_fn fn, void *arg);

/* Reservations refused so far because the ring was full. Async-signal-safe. */
static inline uint64_t pa_ring_dropped(pa_ring_t *r)
{
    return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}

/* Producer: count an event that was not recorded (e.g. a signal inside another sampler).
 * Async-signal-safe. */
static inline void pa_ring_count_drop(pa_ring_t *r)
{
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
}

/* Producer: claim the next slot, or NULL (drop counted) when the ring is full.
 * Async-signal-safe, lock-free. */
static inline pa_ring_slot_t *pa_ring_reserve(pa_ring_t *r)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        pa_ring_slot_t *s = &r->slots[pos & r->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        ptrdiff_t dif = (ptrdiff_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                return s;
            /* pos was reloaded by the failed CAS */
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
            return NULL;
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

/* Producer: publish a slot obtained from pa_ring_reserve. Async-signal-safe. */
static inline void pa_ring_commit(pa_ring_slot_t *s)
{
    size_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
}

#endif
