/* profagent: the public API of libprofagent, profgate's in-process profiling agent.
 * The agent serves net/http/pprof's paths (/debug/pprof/...) over HTTP/1.1 on a Unix socket,
 * from a thread of its own, so that `curl --unix-socket` or the profgate gateway can fetch
 * profiles from a running C service.
 * Owns: its thread, its socket file (created 0600, removed at stop) and every buffer it uses.
 * Threads: profagent_start/profagent_stop from any thread, but not concurrently with each other.
 * Errors: negative errno. The agent never aborts its host: a failure is logged as one line
 *   "profagent: ..." on stderr and the service keeps running without it.
 *
 * Linking it is enough to get an agent when the environment asks for one: a constructor calls
 * profagent_start(NULL) when PROFAGENT_SOCKET is set. Environment (read by profagent_start
 * when opts is NULL, and by profagent_options_init):
 *   PROFAGENT_SOCKET   path of the Unix socket (its directory is created 0700 if missing)
 *   PROFAGENT_CPU_HZ   CPU sampling rate in Hz, 1..1000 (default 100); 0 turns CPU profiling off
 *   PROFAGENT_MEM_RATE heap sampling: mean bytes allocated between samples, as Go's
 *                      runtime.MemProfileRate (default 524288); 1 samples every allocation, 0
 *                      turns heap profiling off. Read once, when the library is loaded (the
 *                      malloc hooks run before profagent_start), not by profagent_start.
 */
#ifndef PROFAGENT_H
#define PROFAGENT_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PROFAGENT_BUILDING)
#define PROFAGENT_API __attribute__((visibility("default")))
#else
#define PROFAGENT_API
#endif

#define PROFAGENT_DEFAULT_CPU_HZ 100

typedef struct profagent_options {
    /* public: */
    const char *socket_path; /* required; copied by profagent_start */
    int cpu_hz;              /* SIGPROF rate for /debug/pprof/profile; 0 disables it */
    int reserved[6];         /* zero; room for later knobs without breaking the ABI */
} profagent_options_t;

/* Fill *opts with the defaults, then apply the PROFAGENT_* environment variables (an invalid
 * value is logged and ignored). socket_path is NULL when PROFAGENT_SOCKET is unset. */
PROFAGENT_API void profagent_options_init(profagent_options_t *opts);

/* Start the agent: create the socket and the agent thread. opts NULL means "from the
 * environment" (as profagent_options_init). Returns 0 if the agent is already running on the
 * same socket path, -EALREADY if it runs on another one, -EINVAL without a socket path,
 * -EADDRINUSE if a live process answers on that path, other negative errno on failure. */
PROFAGENT_API int profagent_start(const profagent_options_t *opts);

/* Stop the agent: a running profile ends (its client's connection is closed), the thread is
 * joined and the socket file removed. Returns 0, also when the agent was not running. */
PROFAGENT_API int profagent_stop(void);

/* The socket path the agent listens on, or NULL when it is not running. Valid until stop. */
PROFAGENT_API const char *profagent_socket_path(void);

/* Contention profiling, off by default, with the meanings of Go's runtime functions:
 * profagent_set_block_rate is SetBlockProfileRate: on average one blocking event per rate_ns
 * nanoseconds spent blocked is recorded in /debug/pprof/block (1: every event; <= 0: off).
 * profagent_set_mutex_fraction is SetMutexProfileFraction: on average 1/rate of contention
 * events go to /debug/pprof/mutex (0: off); it returns the previous rate, and a negative rate
 * only reads it. Both work whether or not the agent runs (also settable by the environment:
 * PROFAGENT_BLOCK_RATE, PROFAGENT_MUTEX_FRACTION). Any thread. */
PROFAGENT_API void profagent_set_block_rate(long long rate_ns);
PROFAGENT_API int profagent_set_mutex_fraction(int rate);

#ifdef __cplusplus
}
#endif

#endif
