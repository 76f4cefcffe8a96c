/* agent_dlopen_stress: the workload of integration.agent_dlopen_stress. One thread dlopens
 * and dlcloses a library nothing else loads (libresolv.so.2) in a loop, so the loader lock is
 * almost always held; --threads N others malloc/free and burn CPU in stress_alloc_burn(). The
 * agent comes from PROFAGENT_SOCKET. Every 200 ms it prints "loops=L work=W" (both must keep
 * growing while profiles are taken: a hang freezes them). Ends after --seconds S or SIGTERM.
 *   agent_dlopen_stress [--threads N] [--seconds S] [--lib NAME] */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "profagent.h"

static atomic_int stop_flag;
static atomic_ulong loops, work;
static const char *lib = "libresolv.so.2";

static void on_term(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void *loader_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
            exit(2);
        }
        (void)dlsym(h, "res_query");
        dlclose(h);
        atomic_fetch_add(&loops, 1);
    }
    return NULL;
}

__attribute__((noinline)) unsigned long stress_alloc_burn(unsigned long seed);
__attribute__((noinline)) unsigned long stress_alloc_burn(unsigned long seed)
{
    void *ptrs[64];
    unsigned long x = seed;

    for (int i = 0; i < 64; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        ptrs[i] = malloc(16 + (x >> 52));
        if (ptrs[i] != NULL)
            memset(ptrs[i], (int)i, 16);
    }
    for (int i = 0; i < 20000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    for (int i = 0; i < 64; i++)
        free(ptrs[i]);
    return x;
}

static void *worker(void *arg)
{
    unsigned long x = (unsigned long)(uintptr_t)arg;
    while (!atomic_load(&stop_flag)) {
        x = stress_alloc_burn(x);
        atomic_fetch_add(&work, 1);
    }
    return (void *)(uintptr_t)(x & 1);
}

int main(int argc, char **argv)
{
    int nthreads = 3, seconds = 60;
    pthread_t lt, th[32];
    struct sigaction sa;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            nthreads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--lib") == 0)
            lib = argv[i + 1];
    }
    if (nthreads < 1 || nthreads > 32)
        nthreads = 3;
    if (dlopen(lib, RTLD_NOW | RTLD_NOLOAD) != NULL)
        fprintf(stderr, "warning: %s is already loaded; dlopen only bumps a count\n", lib);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_create(&lt, NULL, loader_thread, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int s = 0; s < seconds * 5 && !atomic_load(&stop_flag); s++) {
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
        printf("loops=%lu work=%lu\n", atomic_load(&loops), atomic_load(&work));
    }
    atomic_store(&stop_flag, 1);
    pthread_join(lt, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    profagent_stop();
    printf("done loops=%lu work=%lu\n", atomic_load(&loops), atomic_load(&work));
    return 0;
}
