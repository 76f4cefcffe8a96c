/* agent_burn: a host for the agent's integration tests. It links libprofagent and relies on
 * its constructor (PROFAGENT_SOCKET) or, with --socket PATH, on profagent_start. N threads
 * (default 2) spin in burn_cpu_hot() for --seconds S (default 60) unless killed first.
 * With --foreign-sigprof 1 it installs a SIGPROF handler of its own first (the agent must
 * leave it alone and say so). SIGTERM/SIGINT end it cleanly (profagent_stop, exit 0), so that
 * sanitizers' leak checks run.
 *   agent_burn [--socket PATH] [--threads N] [--seconds S] [--foreign-sigprof 1] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "profagent.h"

static atomic_int stop_flag;
static atomic_ulong sink; /* keeps the result alive; one add per thread */

__attribute__((noinline)) unsigned long burn_cpu_hot(unsigned long n);
__attribute__((noinline)) unsigned long burn_cpu_hot(unsigned long n)
{
    unsigned long x = n;
    for (unsigned long i = 0; i < 2000000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

static void on_term(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void foreign_sigprof(int sig)
{
    (void)sig;
}

static void *worker(void *arg)
{
    unsigned long x = 0;
    (void)arg;
    while (!atomic_load(&stop_flag))
        x += burn_cpu_hot(x);
    atomic_fetch_add(&sink, x);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    int nthreads = 2, seconds = 60;
    pthread_t th[64];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            nthreads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--foreign-sigprof") == 0 && atoi(argv[i + 1]) != 0)
            signal(SIGPROF, foreign_sigprof);
    }
    if (nthreads < 0 || nthreads > 64)
        nthreads = 2;
    if (sock != NULL) {
        profagent_options_t o;
        int rc;
        profagent_options_init(&o);
        o.socket_path = sock;
        rc = profagent_start(&o);
        if (rc < 0) {
            fprintf(stderr, "agent_burn: profagent_start: %s\n", strerror(-rc));
            return 1;
        }
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int s = 0; s < seconds * 10 && !atomic_load(&stop_flag); s++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    profagent_stop();
    return 0;
}
