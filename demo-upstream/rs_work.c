/* rs_work: what each randomstring endpoint spends its time on. The functions a profile is
 * expected to show are external, never inlined and never cloned, so that their names survive
 * into the symbol table exactly as written here (tests grep for them). */
#include "rs_work.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#if defined(__clang__)
#define RS_NOINLINE __attribute__((noinline))
#else
#define RS_NOINLINE __attribute__((noinline, noclone))
#endif

/* Mixer rounds per character: 0.5-1 us of dependent multiplies, so a 64-character string costs
 * a few tens of microseconds, well above the cost of parsing and answering the request. */
#define RS_CHAR_ROUNDS 256
#define RS_HEAP_BLOCK (64 * 1024)

static const char rs_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Loop-thread state: the generator and the live /alloc blocks. */
static uint64_t random_singleton;

typedef struct rs_block {
    struct rs_block *next;
    size_t kb;
} rs_block_t;

static struct {
    rs_block_t *head;
    size_t kb;
    size_t blocks;
} heap_singleton;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Always inlined, also at -O0 (Debug, sanitizer builds): the time must be spent in the named
 * function that calls these, or a profile credits "mix" instead of rs_random_char. */
#define RS_INLINE inline __attribute__((always_inline))

/* splitmix64's finaliser: cheap, but each round depends on the previous one. */
static RS_INLINE uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

/* Spins for about rounds * 5 ns; the result is only there so the work cannot be dropped. */
static RS_INLINE uint64_t burn(uint64_t x, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        x = mix(x + (uint64_t)i);
    }
    return x;
}

void rs_random_init(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        seed = now_ns() ^ ((uint64_t)getpid() << 32);
    }
    random_singleton = seed;
}

RS_NOINLINE char rs_random_char(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15u;
    uint64_t x = burn(*state, RS_CHAR_ROUNDS);
    /* Multiply-shift maps x onto [0, 62) without a division. */
    return rs_alphabet[(size_t)(((unsigned __int128)x * (sizeof(rs_alphabet) - 1)) >> 64)];
}

RS_NOINLINE void rs_random_string(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = rs_random_char(&random_singleton);
    }
}

RS_NOINLINE int rs_heap_alloc(size_t kb)
{
    if (kb == 0 || kb > RS_ALLOC_MAX_KB) {
        return -EINVAL;
    }
    if (heap_singleton.kb + kb > RS_HEAP_LIVE_MAX_KB) {
        return -ENOSPC;
    }
    rs_block_t *head = NULL;
    size_t blocks = 0;
    for (size_t left = kb; left > 0;) {
        size_t bkb = left < RS_HEAP_BLOCK / 1024 ? left : RS_HEAP_BLOCK / 1024;
        rs_block_t *b = malloc(bkb * 1024);
        if (b == NULL) {
            goto fail;
        }
        /* Touch every page: the allocation is resident, not just reserved. */
        memset(b, 0xa5, bkb * 1024);
        b->kb = bkb;
        b->next = head;
        head = b;
        blocks++;
        left -= bkb;
    }
    rs_block_t *tail = head;
    while (tail->next != NULL) {
        tail = tail->next;
    }
    tail->next = heap_singleton.head;
    heap_singleton.head = head;
    heap_singleton.kb += kb;
    heap_singleton.blocks += blocks;
    return 0;

fail:
    while (head != NULL) {
        rs_block_t *next = head->next;
        free(head);
        head = next;
    }
    return -ENOMEM;
}

void rs_heap_free_all(size_t *kb, size_t *blocks)
{
    *kb = heap_singleton.kb;
    *blocks = heap_singleton.blocks;
    for (rs_block_t *b = heap_singleton.head; b != NULL;) {
        rs_block_t *next = b->next;
        free(b);
        b = next;
    }
    memset(&heap_singleton, 0, sizeof(heap_singleton));
}

void rs_heap_stats(size_t *kb, size_t *blocks)
{
    *kb = heap_singleton.kb;
    *blocks = heap_singleton.blocks;
}

typedef struct rs_contention {
    pthread_mutex_t mu;
    uint64_t until_ns;
    uint64_t acquisitions; /* under mu */
    uint64_t state;        /* under mu */
} rs_contention_t;

/* The critical section: a couple of microseconds of work under the lock, so that the others
 * queue behind it (the mutex profile attributes their wait to this holder). */
RS_NOINLINE void rs_contend_critical(rs_contention_t *c);
RS_NOINLINE void rs_contend_critical(rs_contention_t *c)
{
    c->state = burn(c->state, 400);
    c->acquisitions++;
}

RS_NOINLINE void *rs_contend_worker(void *arg);
RS_NOINLINE void *rs_contend_worker(void *arg)
{
    rs_contention_t *c = arg;
    uint64_t local = (uint64_t)(uintptr_t)&local;
    while (now_ns() < c->until_ns) {
        pthread_mutex_lock(&c->mu);
        rs_contend_critical(c);
        pthread_mutex_unlock(&c->mu);
        local = burn(local, 40);
    }
    return (void *)(uintptr_t)(local & 1);
}

RS_NOINLINE int rs_contend(int nthreads, int ms, uint64_t *acquisitions)
{
    pthread_t tids[RS_CONTEND_THREADS_MAX];
    rs_contention_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .state = 1};
    int started = 0, rc = 0;

    if (nthreads < 1 || nthreads > RS_CONTEND_THREADS_MAX || ms < 1 || ms > RS_WAIT_MS_MAX) {
        return -EINVAL;
    }
    c.until_ns = now_ns() + (uint64_t)ms * 1000000u;
    for (; started < nthreads; started++) {
        rc = pthread_create(&tids[started], NULL, rs_contend_worker, &c);
        if (rc != 0) {
            c.until_ns = 0; /* the ones already running stop at their next check */
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    pthread_mutex_destroy(&c.mu);
    *acquisitions = c.acquisitions;
    return -rc;
}

RS_NOINLINE void *rs_spawn_child(void *arg);
RS_NOINLINE void *rs_spawn_child(void *arg)
{
    uint64_t *slot = arg;
    *slot = burn(*slot, 2000);
    return NULL;
}

/* Separate frame for pthread_create's caller: what the threadcreate profile records. */
RS_NOINLINE int rs_spawn(int n, int *started)
{
    pthread_t tids[RS_SPAWN_MAX];
    uint64_t slots[RS_SPAWN_MAX];
    int rc = 0, i;

    *started = 0;
    if (n < 1 || n > RS_SPAWN_MAX) {
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        slots[i] = (uint64_t)i + 1;
        rc = pthread_create(&tids[i], NULL, rs_spawn_child, &slots[i]);
        if (rc != 0) {
            break;
        }
    }
    for (int j = 0; j < i; j++) {
        pthread_join(tids[j], NULL);
    }
    *started = i;
    return -rc;
}

RS_NOINLINE int rs_block_wait(int ms)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_condattr_t attr;
    pthread_cond_t cond;
    struct timespec deadline;
    int rc;

    if (ms < 1 || ms > RS_WAIT_MS_MAX) {
        return -EINVAL;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        return -rc;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    /* Nobody signals: the only way out is the deadline (spurious wake-ups loop). */
    do {
        rc = pthread_cond_timedwait(&cond, &mu, &deadline);
    } while (rc == 0 || rc == EINTR);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cond);
    pthread_mutex_destroy(&mu);
    return rc == ETIMEDOUT ? 0 : -rc;
}
