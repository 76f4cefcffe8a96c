/* pg_main: the profgate command line. Loads the configuration, binds one SO_REUSEPORT
 * listener per worker (so a busy port is reported before anything runs), starts the
 * workers, and then waits for signals on the main thread: SIGINT/SIGTERM drain and exit 0,
 * SIGHUP reloads the configuration (a bad file is reported and the old one stays).
 * Exit status: 0 done, 1 start-up failure (one line on stderr), 2 configuration errors. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "pg_access.h"
#include "pg_config.h"
#include "pg_error.h"
#include "pg_log.h"
#include "pg_worker.h"

#ifndef PG_VERSION
#define PG_VERSION "0.1.0"
#endif
#define PG_MAX_WORKERS 256

static void usage(FILE *out)
{
    fprintf(out,
            "usage: profgate --config FILE        run the gateway\n"
            "       profgate --check --config FILE  validate FILE, print the resolved config\n"
            "       profgate --help | --version\n"
            "signals: SIGINT/SIGTERM drain and exit, SIGHUP reloads FILE\n");
}

static int load(const char *path, pg_config_t **cfg)
{
    pg_errlist_t errs;
    size_t i;
    int r;

    pg_errlist_init(&errs);
    r = pg_config_load(path, cfg, &errs);
    if (r < 0) {
        for (i = 0; i < errs.n; i++)
            pg_error_print(&errs.items[i], stderr);
        if (errs.n == 0)
            fprintf(stderr, "profgate: %s: %s\n", path, strerror(-r));
    }
    pg_errlist_destroy(&errs);
    return r;
}

/* A reference for workers, with the access log opened; prev (NULL at start) is the one it
 * replaces. On failure cfg is freed and a line says why. */
static pg_cfgref_t *make_ref(pg_config_t *cfg, const pg_cfgref_t *prev)
{
    pg_cfgref_t *ref;
    int fd, r;

    r = pg_access_open(cfg->server.access_log, &fd);
    if (r < 0) {
        fprintf(stderr, "profgate: cannot open access_log %s: %s\n", cfg->server.access_log,
                strerror(-r));
        pg_config_free(cfg);
        return NULL;
    }
    ref = pg_cfgref_new(cfg, prev);
    if (ref == NULL) {
        fprintf(stderr, "profgate: out of memory\n");
        pg_access_close(fd);
        pg_config_free(cfg);
        return NULL;
    }
    ref->access_fd = fd;
    return ref;
}

static void close_all(const int *fds, const int *afds, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        close(fds[i]);
        if (afds[i] >= 0)
            close(afds[i]);
    }
}

static int run(const char *path, pg_config_t *cfg)
{
    pg_worker_t *workers[PG_MAX_WORKERS];
    int fds[PG_MAX_WORKERS], afds[PG_MAX_WORKERS];
    int n = cfg->server.workers, i, r, sig;
    pg_cfgref_t *cref;
    pg_conn_limit_t limit; /* outlives the workers: joined before return */
    sigset_t set;

    if (n < 1)
        n = 1;
    if (n > PG_MAX_WORKERS)
        n = PG_MAX_WORKERS;
    for (i = 0; i < n; i++) {
        const pg_addr_t *a = &cfg->server.listen;

        afds[i] = -1;
        r = pg_worker_listen_socket(a, &fds[i]);
        if (r == 0 && cfg->pprof.has_admin_listen) {
            a = &cfg->pprof.admin_listen;
            r = pg_worker_listen_socket(a, &afds[i]);
            if (r < 0)
                close(fds[i]);
        }
        if (r < 0) {
            fprintf(stderr, "profgate: cannot listen on %s%s: %s\n", a->text,
                    a == &cfg->server.listen ? "" : " (pprof.admin_listen)", strerror(-r));
            close_all(fds, afds, i);
            pg_config_free(cfg);
            return 1;
        }
    }
    cref = make_ref(cfg, NULL);
    if (cref == NULL) {
        close_all(fds, afds, n);
        return 1;
    }
    cfg = cref->cfg;
    /* Workers inherit this mask: signals are taken only here, with sigwait. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* server.max_connections is for the process, one counter all workers share */
    pg_conn_limit_init(&limit, cfg->server.max_connections ? cfg->server.max_connections : 10000);
    for (i = 0; i < n; i++) {
        r = pg_worker_start(i + 1, fds[i], afds[i], cref, &limit, &workers[i]);
        if (r < 0) {
            fprintf(stderr, "profgate: cannot start worker %d: %s\n", i + 1, uv_strerror(r));
            for (int j = i; j < n; j++) {
                close(fds[j]);
                if (afds[j] >= 0)
                    close(afds[j]);
            }
            n = i;
            for (i = 0; i < n; i++)
                pg_worker_stop(workers[i], 0);
            for (i = 0; i < n; i++)
                pg_worker_join(workers[i]);
            pg_cfgref_put(cref);
            return 1;
        }
    }
    if (cfg->pprof.has_admin_listen)
        pg_log_info("listening on %s with %d worker(s); pprof paths and metrics on %s",
                    cfg->server.listen.text, n, cfg->pprof.admin_listen.text);
    else
        pg_log_info("listening on %s with %d worker(s)", cfg->server.listen.text, n);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            pg_config_t *ncfg;
            pg_cfgref_t *nref;

            pg_log_info("SIGHUP: reloading %s", path);
            if (load(path, &ncfg) < 0) {
                pg_log_error("reload failed; keeping the running configuration");
                continue;
            }
            if (strcmp(ncfg->server.listen.text, cref->cfg->server.listen.text) != 0 ||
                ncfg->server.workers != cref->cfg->server.workers ||
                ncfg->server.max_connections != cref->cfg->server.max_connections)
                pg_log_warn("server.listen, server.workers and server.max_connections change "
                            "only on restart");
            if (ncfg->pprof.has_admin_listen != cref->cfg->pprof.has_admin_listen ||
                strcmp(ncfg->pprof.admin_listen.text, cref->cfg->pprof.admin_listen.text) != 0)
                pg_log_warn("pprof.admin_listen changes only on restart (until then: set, the "
                            "public listener refuses pprof paths; unset, both serve them)");
            nref = make_ref(ncfg, cref); /* reopens the access log: rotation is mv + SIGHUP */
            if (nref == NULL) {
                pg_log_error("reload failed; keeping the running configuration");
                continue;
            }
            for (i = 0; i < n; i++)
                pg_worker_reload(workers[i], nref);
            pg_cfgref_put(cref);
            cref = nref;
            continue;
        }
        pg_log_info("%s: draining (up to %llu ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    (unsigned long long)cref->cfg->server.drain_timeout_ms);
        break;
    }
    for (i = 0; i < n; i++)
        pg_worker_stop(workers[i], cref->cfg->server.drain_timeout_ms);
    for (i = 0; i < n; i++)
        pg_worker_join(workers[i]);
    pg_cfgref_put(cref);
    pg_log_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool check = false;
    pg_config_t *cfg;
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("profgate %s\n", PG_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        } else {
            fprintf(stderr, "profgate: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "profgate: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (load(path, &cfg) < 0)
        return 2;
    if (check) {
        pg_config_describe(cfg, stdout);
        pg_config_free(cfg);
        return 0;
    }
    return run(path, cfg);
}
