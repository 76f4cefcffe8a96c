/* profagent: the public API of libprofagent, profgate's in-process profiling agent.
 * The agent serves net/http/pprof's paths (/debug/pprof/...) over HTTP/1.1 on a Unix socket,
 * from a thread of its own, so that `curl --unix-socket` or the profgate gateway can fetch
 * profiles from a running C service.
 * Owns: its thread, its socket file (created 0600 unless other users are let in, removed at
 *   stop) and every buffer it uses.
 * Threads: profagent_start/profagent_stop from any thread, but not concurrently with each other.
 * Errors: negative errno. The agent never aborts its host: a failure is logged as one line
 *   "profagent: ..." on stderr and the service keeps running without it.
 *
 * Linking it is enough to get an agent when the environment asks for one: a constructor calls
 * profagent_start(NULL) when PROFAGENT_SOCKET is set. (A program that calls nothing of the
 * library must link it with -Wl,--no-as-needed, which Debian's toolchain does not do by
 * default: else the linker drops it.) Environment (read by profagent_start when opts is NULL,
 * and by profagent_options_init):
 *   PROFAGENT_SOCKET   path of the Unix socket (its directory is created 0700 if missing)
 *   PROFAGENT_ALLOW_UID who else may connect: uids or user names, comma-separated, at most
 *                      PROFAGENT_MAX_ALLOW_UIDS (e.g. the gateway's user: "profgate" or "998");
 *                      see allow_uid below. Names are looked up in the system's user database;
 *                      use numbers where that must not happen at load time (LD_PRELOAD).
 *   PROFAGENT_SOCKET_GROUP the socket file's group (a gid or a group name; see socket_gid)
 *   PROFAGENT_CPU_HZ   CPU sampling rate in Hz, 1..1000 (default 100); 0 turns CPU profiling off
 *   PROFAGENT_MEM_RATE heap sampling: mean bytes allocated between samples, as Go's
 *                      runtime.MemProfileRate (default 524288); 1 samples every allocation, 0
 *                      turns heap profiling off. Read once, when the library is loaded (the
 *                      malloc hooks run before profagent_start), not by profagent_start.
 *   PROFAGENT_BLOCK_RATE, PROFAGENT_MUTEX_FRACTION  see profagent_set_block_rate below
 *   PROFAGENT_THREADS_SIGNAL  the real-time signal that collects every thread's stack for
 *                      /debug/pprof/goroutine (default SIGRTMAX-3)
 *   PROFAGENT_UNWIND_CACHES  how many threads at once may unwind with libunwind's fast trace
 *                      (0..65536, default 64). Each such thread gets libunwind's 256 KiB
 *                      frame cache, kept until it exits (default: at most 16 MiB); the others'
 *                      CPU, heap and lock samples take the plain unw_step walk: same stacks,
 *                      ~0.5 us more per frame. Read once, when the library is loaded.
 *
 * Signals in the host: a CPU profile sends SIGPROF to each busy thread (cpu_hz per CPU
 * second) and a goroutine profile sends PROFAGENT_THREADS_SIGNAL once to every thread. The
 * handlers are installed with SA_RESTART, so read, write, accept and the like resume; calls
 * the kernel never restarts after a handler (poll, select, epoll_wait, nanosleep, sleep,
 * sigtimedwait...) return early with EINTR, as with any signal-based profiler (and as in a Go
 * program, whose runtime signals its threads too). libuv and most event loops retry them; a
 * program that treats EINTR from them as an error should retry too.
 *
 * Fork: a child starts without an agent (the parent's socket is left to the parent; the child
 * may call profagent_start with a path of its own). So that no child inherits a lock the agent
 * thread held at the fork (an allocator without fork handlers, as GCC 12's ASan has, would
 * then hang the child's next allocation), a fork() in the host waits until the agent thread
 * holds none: parked between requests, or at one of the fork points between the steps of
 * building a profile (so a fork waits for one step, not for a whole profile). The wait is
 * bounded at 10 s; past that the fork goes ahead and one line is logged.
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
#define PROFAGENT_MAX_ALLOW_UIDS 4

/* Who may talk to the agent. Every connection's peer is checked with SO_PEERCRED (the uid the
 * kernel recorded at connect, which the peer cannot forge): processes of the agent's own
 * effective uid, root, and the allow_uid's are served; any other is closed before a byte is
 * read, and logged ("profagent: refused a connection to PATH from uid N (pid P) ...", at most
 * one line per 10 s, with the count of those in between).
 * File modes follow, so that an allowed user can reach the socket at all:
 *     allow_uid   socket_gid   socket file        a directory the agent creates
 *     none        0            0600               0700
 *     some        0            0666               0711 (others may pass, not list or write)
 *     any         G            0660, group G      0710, group G
 * With allowed uids but no group the socket file is open to all, and SO_PEERCRED alone is
 * the gate: a gateway running as another user needs only its uid named. A group both users
 * belong to keeps strangers from connecting at all; the agent's user must be in it to give
 * the file to it (else profagent_start fails, -EPERM, and logs why). Directories that already
 * exist are never changed; the agent logs a warning when one on the socket's path is writable
 * by group or others without the sticky bit, or owned by another user (either could replace
 * the socket), and when an allowed uid cannot search one. */
typedef struct profagent_options {
    /* public: */
    const char *socket_path; /* required; copied by profagent_start */
    int cpu_hz;              /* SIGPROF rate for /debug/pprof/profile; 0 disables it */
    unsigned int allow_uid[PROFAGENT_MAX_ALLOW_UIDS]; /* more uids served; 0: unused slot */
    unsigned int socket_gid; /* the socket file's group; 0: none (the root group cannot be had) */
    int reserved[1];         /* zero; room for a later knob without breaking the ABI */
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
