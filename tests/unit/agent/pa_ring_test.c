/* Unit tests for pa_ring: sizing, order, full ring drops, uncommitted slots, and many threads
 * reserving at once while the consumer drains. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pa_ring.h"

typedef struct seen {
    size_t n;
    uint32_t tags[64];
    int64_t v0[64];
} seen_t;

static void record(void *arg, const pa_ring_slot_t *s)
{
    seen_t *seen = arg;
    if (seen->n < 64) {
        seen->tags[seen->n] = s->tag;
        seen->v0[seen->n] = s->values[0];
    }
    seen->n++;
}

static void put(pa_ring_t *r, uint32_t tag)
{
    pa_ring_slot_t *s = pa_ring_reserve(r);
    assert_non_null(s);
    s->tag = tag;
    s->values[0] = tag * 10;
    s->npcs = 1;
    s->pcs[0] = tag;
    pa_ring_commit(s);
}

static void test_ring_rounds_slots_up_to_a_power_of_two(void **state)
{
    pa_ring_t *r;
    (void)state;
    assert_int_equal(pa_ring_new(5, &r), 0);
    assert_int_equal(r->mask, 7);
    pa_ring_free(r);
    assert_int_equal(pa_ring_new(0, &r), 0);
    assert_int_equal(r->mask, 1);
    pa_ring_free(r);
    assert_int_equal(pa_ring_new((size_t)1 << 30, &r), -EINVAL);
    assert_null(r);
}

static void test_ring_drains_in_reservation_order(void **state)
{
    pa_ring_t *r;
    seen_t seen = {0};
    (void)state;
    assert_int_equal(pa_ring_new(8, &r), 0);
    for (uint32_t i = 1; i <= 5; i++)
        put(r, i);
    assert_int_equal(pa_ring_drain(r, record, &seen), 5);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(seen.tags[i], i + 1);
        assert_int_equal(seen.v0[i], (i + 1) * 10);
    }
    assert_int_equal(pa_ring_drain(r, record, &seen), 0);
    pa_ring_free(r);
}

static void test_ring_full_counts_drops_and_recovers_after_drain(void **state)
{
    pa_ring_t *r;
    seen_t seen = {0};
    (void)state;
    assert_int_equal(pa_ring_new(4, &r), 0);
    for (uint32_t i = 1; i <= 4; i++)
        put(r, i);
    assert_null(pa_ring_reserve(r));
    assert_null(pa_ring_reserve(r));
    assert_int_equal(pa_ring_dropped(r), 2);
    assert_int_equal(pa_ring_drain(r, record, &seen), 4);
    /* wraps around: the slots are reusable */
    for (uint32_t i = 5; i <= 8; i++)
        put(r, i);
    assert_int_equal(pa_ring_drain(r, record, &seen), 4);
    assert_int_equal(seen.tags[7], 8);
    assert_int_equal(pa_ring_dropped(r), 2);
    pa_ring_free(r);
}

static void test_ring_consumer_stops_at_an_uncommitted_slot(void **state)
{
    pa_ring_t *r;
    seen_t seen = {0};
    pa_ring_slot_t *held;
    (void)state;
    assert_int_equal(pa_ring_new(8, &r), 0);
    put(r, 1);
    held = pa_ring_reserve(r);
    assert_non_null(held);
    held->tag = 2;
    put(r, 3);
    assert_int_equal(pa_ring_drain(r, record, &seen), 1);
    pa_ring_commit(held);
    assert_int_equal(pa_ring_drain(r, record, &seen), 2);
    assert_int_equal(seen.tags[1], 2);
    assert_int_equal(seen.tags[2], 3);
    pa_ring_free(r);
}

#define NPRODUCERS 4
#define PER_PRODUCER 200000

typedef struct producer {
    pa_ring_t *r;
    uint32_t id;
    uint64_t committed;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        pa_ring_slot_t *s = pa_ring_reserve(p->r);
        if (s == NULL)
            continue;
        s->tag = p->id;
        s->values[0] = i;
        s->npcs = 0;
        pa_ring_commit(s);
        p->committed++;
    }
    return NULL;
}

typedef struct tally {
    uint64_t count[NPRODUCERS];
    int64_t last[NPRODUCERS];
    int out_of_order;
} tally_t;

static void count(void *arg, const pa_ring_slot_t *s)
{
    tally_t *t = arg;
    if (s->tag >= NPRODUCERS) {
        t->out_of_order++;
        return;
    }
    /* each producer's own entries come out in the order it made them */
    if (s->values[0] <= t->last[s->tag])
        t->out_of_order++;
    t->last[s->tag] = s->values[0];
    t->count[s->tag]++;
}

static void test_ring_concurrent_producers_lose_nothing_uncounted(void **state)
{
    pa_ring_t *r;
    producer_t p[NPRODUCERS];
    pthread_t th[NPRODUCERS];
    tally_t t;
    uint64_t consumed = 0, committed = 0;
    (void)state;

    memset(&t, 0, sizeof(t));
    for (int i = 0; i < NPRODUCERS; i++)
        t.last[i] = -1;
    assert_int_equal(pa_ring_new(256, &r), 0);
    for (uint32_t i = 0; i < NPRODUCERS; i++) {
        p[i] = (producer_t){.r = r, .id = i};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    for (int spins = 0; spins < 2000000; spins++) {
        consumed += pa_ring_drain(r, count, &t);
        if (consumed + pa_ring_dropped(r) == (uint64_t)NPRODUCERS * PER_PRODUCER)
            break;
    }
    for (int i = 0; i < NPRODUCERS; i++)
        pthread_join(th[i], NULL);
    consumed += pa_ring_drain(r, count, &t);
    for (int i = 0; i < NPRODUCERS; i++) {
        committed += p[i].committed;
        assert_int_equal(t.count[i], p[i].committed);
    }
    assert_int_equal(t.out_of_order, 0);
    assert_int_equal(consumed, committed);
    assert_int_equal(consumed + pa_ring_dropped(r), (uint64_t)NPRODUCERS * PER_PRODUCER);
    pa_ring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_rounds_slots_up_to_a_power_of_two),
        cmocka_unit_test(test_ring_drains_in_reservation_order),
        cmocka_unit_test(test_ring_full_counts_drops_and_recovers_after_drain),
        cmocka_unit_test(test_ring_consumer_stops_at_an_uncommitted_slot),
        cmocka_unit_test(test_ring_concurrent_producers_lose_nothing_uncounted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
