/* pa_handlers: the /debug/pprof endpoints, with net/http/pprof's paths, parameters, status
 * codes, messages and headers: the index page (with each profile's record count, read from
 * the samplers' tables without building a profile), cmdline, profile (CPU), symbol; any other
 * name under /debug/pprof/ is 404 "Unknown profile".
 * Owns: the state of a running CPU profile (freed when it answers or its client leaves).
 * Threads: the server's thread. Not async-signal-safe. */
#ifndef PA_HANDLERS_H
#define PA_HANDLERS_H

#include "pa_server.h"

#define PA_CPU_DRAIN_MS 100    /* how often a running CPU profile empties the ring */
#define PA_CPU_MAX_STACKS 8192 /* distinct stacks per CPU profile; more are counted */
#define PA_MAX_SECONDS 86400   /* longest profile accepted */

typedef struct pa_handlers {
    int cpu_hz; /* public: 0 turns CPU profiling off */
} pa_handlers_t;

/* The pa_server_handler_fn; arg is a pa_handlers_t that outlives the server. */
void pa_handlers_serve(void *arg, pa_req_t *req);

#endif
