/* pa_handlers_lock: the block and mutex endpoints (see pa_handlers_lock.h). Go's
 * runtime/pprof writeBlock/writeMutex (writeProfileInternal, printCountCycleProfile) are the
 * reference. */
#include "pa_handlers_lock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pa_delta.h"
#include "pa_handlers_threads.h"
#include "pa_lock.h"
#include "pa_pprof.h"
#include "pa_stacktab.h"
#include "pa_symbolize.h"
#include "pa_text.h"

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const pa_pprof_vt_t lock_types[] = {{"contentions", "count"}, {"delay", "nanoseconds"}};

/* Go's printCountCycleProfile: contentions/count and delay/nanoseconds, period type
 * contentions/count, period 1 */
static int encode_lock(const pa_stacktab_t *t, int64_t time_nanos, int64_t duration_nanos,
                       const char *const *comments, size_t ncomments, uint8_t **out, size_t *outlen)
{
    pa_pprof_desc_t d = {0};
    pa_symtab_t *st = NULL;
    int rc = pa_symtab_new(&st);

    if (rc == 0) {
        d.sample_types = lock_types;
        d.nsample_types = 2;
        d.period_type = lock_types[0];
        d.period = 1;
        d.time_nanos = time_nanos;
        d.duration_nanos = duration_nanos;
        d.comments = comments;
        d.ncomments = ncomments;
        rc = pa_pprof_encode(&d, t, st, 1, out, outlen);
    }
    pa_symtab_free(st);
    return rc;
}

/* deltas: arg is (void *)(intptr_t)kind */
static int lock_snapshot(void *arg, pa_stacktab_t **out)
{
    int rc = pa_stacktab_new(2, PA_LOCK_MAX_STACKS, out);

    if (rc == 0)
        (void)pa_lock_read((int)(intptr_t)arg, *out); /* same capacity as the tables */
    return rc;
}

static int lock_encode(void *arg, const pa_stacktab_t *delta, int64_t time_nanos,
                       int64_t duration_nanos, uint8_t **out, size_t *outlen)
{
    (void)arg;
    return encode_lock(delta, time_nanos, duration_nanos, NULL, 0, out, outlen);
}

static const pa_delta_ops_t block_delta = {"block", lock_snapshot, lock_encode, NULL};
static const pa_delta_ops_t mutex_delta = {"mutex", lock_snapshot, lock_encode, NULL};

static void serve_lock(pa_req_t *req, int kind)
{
    const char *name = kind == PA_LOCK_MUTEX ? "mutex" : "block";
    char lines[3][160], msg[512];
    const char *comments[3], *who;
    size_t ncomments = 0, refused;
    int64_t debug, rate;
    pa_stacktab_t *tab = NULL;
    pa_symtab_t *st = NULL;
    uint8_t *out = NULL;
    char *text = NULL;
    size_t outlen = 0;
    int rc;

    if (pa_lock_hook_status(&who) < 0) {
        snprintf(msg, sizeof(msg),
                 "%s profile unavailable: pthread_mutex_lock is bound to %s ahead of "
                 "libprofagent (a sanitizer runtime or another preloaded library "
                 "interposes it), so lock waits are not seen",
                 name, who[0] ? who : "another object");
        pa__serve_error(req, 500, msg);
        return;
    }
    if (pa__serve_delta(req, kind == PA_LOCK_MUTEX ? &mutex_delta : &block_delta,
                        (void *)(intptr_t)kind))
        return;
    debug = pa__query_debug(req);
    rate = kind == PA_LOCK_MUTEX ? pa_lock_mutex_fraction(-1) : pa_lock_block_rate();
    if (rate == 0)
        snprintf(lines[ncomments++], 160, "%s profiling is off: set %s (Go's %s)", name,
                 kind == PA_LOCK_MUTEX ? "PROFAGENT_MUTEX_FRACTION" : "PROFAGENT_BLOCK_RATE",
                 kind == PA_LOCK_MUTEX ? "SetMutexProfileFraction" : "SetBlockProfileRate");
    if (pa_stacktab_new(2, PA_LOCK_MAX_STACKS, &tab) < 0) {
        pa__serve_error(req, 500, "failed to write the profile");
        return;
    }
    refused = pa_lock_read(kind, tab);
    if (pa_lock_dropped(kind) > 0 || refused > 0)
        snprintf(lines[ncomments++], 160,
                 "%" PRIu64 " events not recorded: stack table full or stack not unwound",
                 pa_lock_dropped(kind) + refused);
    if (kind == PA_LOCK_MUTEX && pa_lock_untracked_mutexes() > 0)
        snprintf(lines[ncomments++], 160,
                 "%" PRIu64 " waits not tracked: their mutex shared a slot with another "
                 "contended one",
                 pa_lock_untracked_mutexes());
    for (size_t i = 0; i < ncomments; i++)
        comments[i] = lines[i];
    if (debug > 0) {
        rc = pa_symtab_new(&st);
        if (rc == 0)
            rc = pa_text_contention_profile(kind == PA_LOCK_MUTEX ? "mutex" : "contention", tab,
                                            kind == PA_LOCK_MUTEX ? rate : -1, st, comments,
                                            ncomments, &text, &outlen);
        pa_symtab_free(st);
    } else {
        rc = encode_lock(tab, wall_ns(), 0, comments, ncomments, &out, &outlen);
    }
    pa_stacktab_free(tab);
    if (rc < 0) {
        fprintf(stderr, "profagent: writing the %s profile failed: %s\n", name, strerror(-rc));
        pa__serve_error(req, 500, "failed to write the profile");
        return;
    }
    pa__respond_profile(req, name, debug, text ? (const void *)text : out, outlen);
    free(text);
    free(out);
}

int pa_handlers_lock_serve(pa_req_t *req, const char *name)
{
    if (strcmp(name, "block") == 0)
        serve_lock(req, PA_LOCK_BLOCK);
    else if (strcmp(name, "mutex") == 0)
        serve_lock(req, PA_LOCK_MUTEX);
    else
        return 0;
    return 1;
}
