/* Unit tests for pa_sig_unwind.h: the CPU handler's cached walk (pa_sig_unwind_trace, through
 * unw_backtrace) must give the same stacks as the unw_step walk from the ucontext
 * (pa_sig_unwind_steps), which it replaces. Both run inside the same SIGPROF handler on the
 * same signal, so they see the same frozen stack; every signal's two stacks are compared.
 * Workload threads, each with its own CPU-time timer (1 kHz), make the interrupted frame:
 *   libc     a leaf in libc (memset and memcpy of 1 MiB: libc's hand-written string code);
 *   nofp     a leaf in assembly without frame pointers (below): rbp holds data, not a frame,
 *            in the leaf and in its caller, so only the CFI finds the callers;
 *   qsort    our comparator called from inside libc's qsort (libc frames, compiled without
 *            frame pointers, between the leaf and our code);
 *   syscall  a thread inside read(2) of /dev/zero (the pc right after the syscall
 *            instruction: the kernel delivers the signal on the way back from it).
 * Each kind must be seen a number of times, and the cached walk must have found the
 * interrupted frame on almost every signal (else the test would compare nothing).
 * And the agent's own handler, on a host thread that calls libunwind's unw_backtrace in a loop:
 * the signals that land inside libunwind (which the handler walks with unw_step, as the host
 * may be mid-way through the thread's address cache; the test sees the stacks, not which walk
 * made them) are walked whole, up to the host's function, and the host survives.
 * Under TSan the handler keeps the unw_step walk (pa_cpu_sig.c): only the probe's verdict is
 * checked there. */
#define UNW_LOCAL_ONLY /* as the agent is built: the local unwinder only */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pa_cpu.h"
#include "pa_sig_unwind.h"
#include "pa_stacktab.h"

#define MAX_RECORDS 2048
#define WANT_PER_KIND 40 /* signals compared per workload kind */
#define DEADLINE_S 20    /* wall-clock bound of the workloads, on a loaded machine */
#define TIMER_NS 1000000 /* 1 kHz of each thread's CPU time */

enum kind { KIND_LIBC, KIND_NOFP, KIND_QSORT, KIND_SYSCALL, KIND_N };
static const char *const kind_names[KIND_N] = {"libc", "nofp", "qsort", "syscall"};

typedef struct record {
    int kind;
    uint32_t na, nb; /* cached walk (0: interrupted frame not found), unw_step walk */
    uintptr_t pc;    /* the ucontext's */
    uintptr_t a[PA_RING_MAX_FRAMES], b[PA_RING_MAX_FRAMES];
} record_t;

static record_t records_singleton[MAX_RECORDS];
static _Atomic unsigned nrecords;
static _Atomic unsigned long dropped_loader; /* signals while a loader call ran: not walked */
static __thread int thread_kind = -1;
static _Atomic int stop_workers;
static _Atomic unsigned long sink;

/* ---- the workloads ---- */

/* nofp_outer(n): calls nofp_leaf n times; both keep data in rbp (saved and restored, with CFI,
 * as code compiled with -fomit-frame-pointer may) and move rsp inside their bodies. */
long nofp_outer(long n);
long nofp_leaf(long x);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl nofp_outer\n"
        ".hidden nofp_outer\n"
        ".type nofp_outer,@function\n"
        "nofp_outer:\n"
        ".cfi_startproc\n"
        "  push %rbp\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  .cfi_rel_offset %rbp, 0\n"
        "  push %rbx\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  .cfi_rel_offset %rbx, 0\n"
        "  sub $8, %rsp\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  mov %rdi, %rbx\n"
        "  mov $0x5a5a5a5a, %ebp\n"
        "1:\n"
        "  mov %rbx, %rdi\n"
        "  call nofp_leaf\n"
        "  add %rax, %rbp\n"
        "  dec %rbx\n"
        "  jnz 1b\n"
        "  mov %rbp, %rax\n"
        "  add $8, %rsp\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  pop %rbx\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  .cfi_restore %rbx\n"
        "  pop %rbp\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  .cfi_restore %rbp\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size nofp_outer, .-nofp_outer\n"
        ".p2align 4\n"
        ".globl nofp_leaf\n"
        ".hidden nofp_leaf\n"
        ".type nofp_leaf,@function\n"
        "nofp_leaf:\n"
        ".cfi_startproc\n"
        "  push %rbp\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  .cfi_rel_offset %rbp, 0\n"
        "  mov %rdi, %rbp\n"
        "  mov $20000, %ecx\n"
        "  xor %eax, %eax\n"
        "2:\n"
        "  add %rbp, %rax\n"
        "  imul $3, %rax, %rax\n"
        "  push %rax\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  pop %rdx\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  dec %ecx\n"
        "  jnz 2b\n"
        "  pop %rbp\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  .cfi_restore %rbp\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size nofp_leaf, .-nofp_leaf\n");

static __attribute__((noipa)) int cmp_long(const void *x, const void *y)
{
    unsigned long a = (unsigned long)*(const long *)x, b = (unsigned long)*(const long *)y;
    /* some work per call, so that signals land here rather than in qsort's own code */
    for (unsigned i = 0; i < 50; i++)
        a = (a * 31 + i) ^ (a >> 7), b = (b * 31 + i) ^ (b >> 7);
    return (a > b) - (a < b);
}

static __attribute__((noipa)) void work_libc(void)
{
    static char src[1 << 20], dst[1 << 20];
    memset(src, (int)(sink & 0xff), sizeof(src));
    memcpy(dst, src, sizeof(dst));
    sink += (unsigned char)dst[sink % sizeof(dst)];
}

static __attribute__((noipa)) void work_nofp(void)
{
    sink += (unsigned long)nofp_outer(50);
}

static __attribute__((noipa)) void work_qsort(void)
{
    long v[4096];
    unsigned long x = sink | 1;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        v[i] = (long)(x = x * 6364136223846793005UL + 1442695040888963407UL);
    qsort(v, sizeof(v) / sizeof(v[0]), sizeof(v[0]), cmp_long);
    sink += (unsigned long)v[0];
}

static __attribute__((noipa)) void work_syscall(int fd)
{
    static char buf[1 << 18];
    if (read(fd, buf, sizeof(buf)) > 0)
        sink += (unsigned char)buf[0];
}

/* ---- the handler: both walks on the same signal ---- */

static void on_prof(int sig, siginfo_t *si, void *ucv)
{
    uintptr_t restorer = (uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0));
    int saved_errno = errno;
    unsigned i;
    record_t *r;

    (void)sig;
    (void)si;
    if (thread_kind < 0 || (i = atomic_fetch_add(&nrecords, 1)) >= MAX_RECORDS)
        goto out;
    r = &records_singleton[i];
    r->kind = thread_kind;
    r->pc = pa_sig_interrupted_pc(ucv);
    if (!pa_loader_unwind_begin()) {
        r->kind = -1;
        atomic_fetch_add(&dropped_loader, 1);
        goto out;
    }
    r->na = pa_sig_unwind_trace(r->a, PA_RING_MAX_FRAMES, ucv, restorer);
    r->nb = pa_sig_unwind_steps(r->b, PA_RING_MAX_FRAMES, ucv, 0);
    pa_loader_unwind_end();
out:
    errno = saved_errno;
}

static __attribute__((noipa)) void *worker(void *arg)
{
    int kind = (int)(intptr_t)arg, fd = -1;
    struct sigevent sev;
    struct itimerspec its = {{0, TIMER_NS}, {0, TIMER_NS}};
    timer_t timer;
    sigset_t prof;

    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &timer) < 0)
        return (void *)(intptr_t)errno;
    if (kind == KIND_SYSCALL && (fd = open("/dev/zero", O_RDONLY | O_CLOEXEC)) < 0)
        return (void *)(intptr_t)errno;
    thread_kind = kind;
    timer_settime(timer, 0, &its, NULL);
    while (!atomic_load(&stop_workers)) {
        switch (kind) {
        case KIND_LIBC:
            work_libc();
            break;
        case KIND_NOFP:
            work_nofp();
            break;
        case KIND_QSORT:
            work_qsort();
            break;
        default:
            work_syscall(fd);
            break;
        }
    }
    /* no signal after this thread's records stop being written */
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &prof, NULL);
    timer_delete(timer);
    thread_kind = -1;
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* ---- checks ---- */

static int in_libc(uintptr_t pc)
{
    Dl_info d;
    return dladdr((void *)pc, &d) != 0 && d.dli_fname != NULL && strstr(d.dli_fname, "libc.so");
}

/* pc inside the function f, by the bounds of its unwind information (dladdr sees only
 * exported symbols) */
static int in_function(uintptr_t pc, void *f)
{
    unw_proc_info_t pi;
    return unw_get_proc_info_by_ip(unw_local_addr_space, (unw_word_t)pc, &pi, NULL) == 0 &&
           pi.start_ip == (unw_word_t)(uintptr_t)f;
}

/* a caller's entry is a return address: look inside the call instruction */
static int stack_has(const uintptr_t *pcs, uint32_t n, void *f)
{
    for (uint32_t i = 0; i < n; i++)
        if (in_function(pcs[i] - (i > 0), f))
            return 1;
    return 0;
}

/* the kind's leaf was where the signal landed (not in the loop around it) */
static int leaf_is_kind(const record_t *r)
{
    switch (r->kind) {
    case KIND_LIBC:
        return in_libc(r->pc);
    case KIND_NOFP:
        return in_function(r->pc, (void *)nofp_leaf);
    case KIND_QSORT:
        return in_function(r->pc, (void *)cmp_long) && r->nb > 2 && in_libc(r->b[1] - 1);
    default:
        return in_libc(r->pc) && ((const unsigned char *)r->pc)[-2] == 0x0f &&
               ((const unsigned char *)r->pc)[-1] == 0x05; /* syscall */
    }
}

static void *const workload_fn[KIND_N] = {(void *)work_libc, (void *)work_nofp, (void *)work_qsort,
                                          (void *)work_syscall};

static unsigned seen_enough(unsigned *per_kind)
{
    unsigned n = atomic_load(&nrecords), ok = 1;

    memset(per_kind, 0, KIND_N * sizeof(*per_kind));
    if (n > MAX_RECORDS)
        n = MAX_RECORDS;
    for (unsigned i = 0; i < n; i++) {
        const record_t *r = &records_singleton[i];
        if (r->kind >= 0 && r->nb > 0 && leaf_is_kind(r))
            per_kind[r->kind]++;
    }
    for (int k = 0; k < KIND_N; k++)
        ok &= per_kind[k] >= WANT_PER_KIND;
    return ok || n >= MAX_RECORDS;
}

static void test_trace_probe_decides_for_this_build(void **state)
{
    (void)state;
    assert_int_equal(pa_cpu_init(), 0);
#if defined(__SANITIZE_THREAD__)
    assert_int_equal(atomic_load(&pa__cpu_trace_ok), 0);
#else
    /* libunwind is a start-up dependency here and its key is small: the cached walk is on */
    assert_int_equal(atomic_load(&pa__cpu_trace_ok), 1);
#endif
}

static void test_cached_walk_matches_step_walk_on_the_same_signals(void **state)
{
    pthread_t th[KIND_N];
    struct sigaction sa, old;
    struct timespec t0, t;
    unsigned per_kind[KIND_N], n, found = 0, compared = 0, kinds_ok[KIND_N] = {0};
    unsigned reach[KIND_N] = {0};

    (void)state;
#if defined(__SANITIZE_THREAD__)
    skip(); /* the handler keeps the unw_step walk under TSan (pa_cpu_sig.c) */
#endif
    assert_int_equal(pa_cpu_init(), 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPROF, &sa, &old), 0);
    for (int k = 0; k < KIND_N; k++)
        assert_int_equal(pthread_create(&th[k], NULL, worker, (void *)(intptr_t)k), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct timespec nap = {0, 100 * 1000000};
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!seen_enough(per_kind) && t.tv_sec - t0.tv_sec < DEADLINE_S);
    atomic_store(&stop_workers, 1);
    for (int k = 0; k < KIND_N; k++) {
        void *rc;
        assert_int_equal(pthread_join(th[k], &rc), 0);
        assert_null(rc);
    }
    sigaction(SIGPROF, &old, NULL);

    n = atomic_load(&nrecords);
    if (n > MAX_RECORDS)
        n = MAX_RECORDS;
    for (unsigned i = 0; i < n; i++) {
        const record_t *r = &records_singleton[i];
        if (r->kind < 0)
            continue;
        compared++;
        if (r->na == 0)
            continue; /* not found: the handler falls back to the unw_step walk */
        found++;
        if (r->na != r->nb || memcmp(r->a, r->b, r->na * sizeof(r->a[0])) != 0) {
            fprintf(stderr, "signal %u (%s, pc %#lx): cached walk %u frames, unw_step walk %u\n", i,
                    kind_names[r->kind], (unsigned long)r->pc, r->na, r->nb);
            for (uint32_t j = 0; j < r->na || j < r->nb; j++)
                fprintf(stderr, "  %2u %#18lx %#18lx\n", j,
                        j < r->na ? (unsigned long)r->a[j] : 0UL,
                        j < r->nb ? (unsigned long)r->b[j] : 0UL);
            fail_msg("the walks differ");
        }
        assert_int_equal(r->a[0], r->pc); /* the interrupted frame, exactly */
        if (leaf_is_kind(r)) {
            kinds_ok[r->kind]++;
            /* both walks go through the workload function up to the thread's start */
            reach[r->kind] += stack_has(r->a, r->na, workload_fn[r->kind]) &&
                              stack_has(r->a, r->na, (void *)worker);
        }
    }
    fprintf(stderr,
            "# %u signals, %u compared (%lu in a loader call), cached walk found the "
            "interrupted frame on %u; kinds: libc %u, nofp %u, qsort %u, syscall %u\n",
            n, compared, atomic_load(&dropped_loader), found, kinds_ok[KIND_LIBC],
            kinds_ok[KIND_NOFP], kinds_ok[KIND_QSORT], kinds_ok[KIND_SYSCALL]);
    assert_true(compared >= KIND_N * WANT_PER_KIND);
    /* the trace gives up only on frames it cannot follow; none here */
    assert_true(found * 100 >= compared * 95);
    for (int k = 0; k < KIND_N; k++) {
        if (kinds_ok[k] < WANT_PER_KIND)
            fail_msg("only %u signals of kind %s compared", kinds_ok[k], kind_names[k]);
        assert_int_equal(reach[k], kinds_ok[k]);
    }
}

/* ---- a host inside libunwind: the agent's handler walks with unw_step there ---- */

static __attribute__((noipa)) int host_backtraces(long ms)
{
    struct timespec t0, t;
    void *buf[32];
    int n = 0;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100; i++)
            n += unw_backtrace(buf, 32);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    return n;
}

typedef struct host_tally {
    int64_t samples, in_unwind, through_host;
} host_tally_t;

static int add_host(void *arg, const uintptr_t *pcs, size_t npcs, const int64_t *v)
{
    host_tally_t *h = arg;
    uintptr_t lo = atomic_load(&pa__cpu_unw_text_lo), hi = atomic_load(&pa__cpu_unw_text_hi);

    if (npcs == 1 && pcs[0] == PA_PC_LOST)
        return 0;
    h->samples += v[0];
    if (pcs[0] >= lo && pcs[0] < hi) {
        h->in_unwind += v[0];
        h->through_host += stack_has(pcs, (uint32_t)npcs, (void *)host_backtraces) ? v[0] : 0;
    }
    return 0;
}

static void test_host_inside_libunwind_is_walked_with_unw_step(void **state)
{
    pa_stacktab_t *t;
    host_tally_t h = {0};
    (void)state;

#if defined(__SANITIZE_THREAD__)
    skip(); /* no cached walk under TSan, so nothing to keep it from */
#endif
    assert_int_equal(pa_cpu_init(), 0);
    /* the probe found libunwind's code */
    assert_in_range((uintptr_t)&unw_backtrace, atomic_load(&pa__cpu_unw_text_lo),
                    atomic_load(&pa__cpu_unw_text_hi) - 1);
    assert_int_equal(pa_stacktab_new(2, 4096, &t), 0);
    assert_int_equal(pa_cpu_start(1000), 0);
    host_backtraces(400);
    pa_cpu_stop(t, NULL);
    pa_stacktab_foreach(t, add_host, &h);
    fprintf(stderr, "# %ld samples, %ld inside libunwind, %ld of those through host_backtraces\n",
            (long)h.samples, (long)h.in_unwind, (long)h.through_host);
    assert_true(h.in_unwind >= 5);
    /* walked from the ucontext, whole: every one reaches the host's function */
    assert_int_equal(h.through_host, h.in_unwind);
    pa_stacktab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_probe_decides_for_this_build),
        cmocka_unit_test(test_cached_walk_matches_step_walk_on_the_same_signals),
        cmocka_unit_test(test_host_inside_libunwind_is_walked_with_unw_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
