/* randomstring: the seed's demo service in C. Serves GET /randomstring (and the exercise
 * endpoints of rs_api.h) on one libuv loop, with libprofagent linked in so that profgate can
 * profile it: --agent-socket PATH starts the agent on PATH; without it the agent's own
 * constructor starts it when PROFAGENT_SOCKET is set. SIGINT/SIGTERM stop it cleanly (exit 0). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <profagent.h>

#include "rs_server.h"
#include "rs_work.h"

#define RS_DEFAULT_LISTEN "127.0.0.1:9000"

typedef struct rs_main {
    uv_loop_t loop;
    rs_server_t server;
    uv_signal_t sigint, sigterm;
    int stop_signal;
} rs_main_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randomstring [--listen HOST:PORT] [--agent-socket PATH]\n"
            "  --listen HOST:PORT    address to serve HTTP on (default %s);\n"
            "                        HOST is an IPv4 address, [IPv6] or localhost\n"
            "  --agent-socket PATH   start the profiling agent on this Unix socket\n"
            "                        (default: $PROFAGENT_SOCKET, if set)\n"
            "  --help                this text\n"
            "endpoints: GET /randomstring?n=N, /alloc?kb=N, /free, /contend?threads=T&ms=M,\n"
            "           /spawn?n=N, /block?ms=M (GET / describes them)\n",
            RS_DEFAULT_LISTEN);
}

/* "HOST:PORT", "[V6]:PORT" or "localhost:PORT" -> sockaddr; NULL, or why not. */
static const char *parse_listen(const char *text, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t hlen;
    char *end;

    if (colon == NULL) {
        return "expected HOST:PORT";
    }
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        h = text + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        return "missing or too long host";
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
        return "port must be a number in 1..65535";
    }
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
        return NULL;
    }
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) {
        return NULL;
    }
    return "host must be a numeric IPv4 address, [IPv6 address] or localhost";
}

static void on_signal(uv_signal_t *h, int signum)
{
    rs_main_t *m = h->data;
    if (m->stop_signal != 0) {
        return;
    }
    m->stop_signal = signum;
    fprintf(stderr, "randomstring: %s received, stopping\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    rs_server_close(&m->server);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
}

static int start_agent(const char *path)
{
    profagent_options_t opts;
    profagent_options_init(&opts);
    opts.socket_path = path;
    int rc = profagent_start(&opts);
    if (rc == -EALREADY) {
        /* The agent's constructor started it from PROFAGENT_SOCKET, on another path. */
        fprintf(stderr,
                "randomstring: cannot start the profiling agent on %s: it already runs on %s "
                "(PROFAGENT_SOCKET); unset that or give the same path\n",
                path, profagent_socket_path() ? profagent_socket_path() : "another socket");
    } else if (rc != 0) {
        fprintf(stderr, "randomstring: cannot start the profiling agent on %s: %s\n", path,
                strerror(-rc));
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"agent-socket", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = RS_DEFAULT_LISTEN, *agent = NULL, *why;
    struct sockaddr_storage ss;
    static rs_main_t m;
    int c, rc;

    while ((c = getopt_long(argc, argv, "l:a:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen = optarg;
            break;
        case 'a':
            agent = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "randomstring: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if ((why = parse_listen(listen, &ss)) != NULL) {
        fprintf(stderr, "randomstring: --listen %s: %s\n", listen, why);
        return 2;
    }
    if (agent != NULL && start_agent(agent) != 0) {
        return 1;
    }
    /* A client that goes away mid-answer must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    rs_random_init();

    rc = uv_loop_init(&m.loop);
    if (rc != 0) {
        fprintf(stderr, "randomstring: uv_loop_init: %s\n", uv_strerror(rc));
        return 1;
    }
    rc = rs_server_init(&m.server, &m.loop, (const struct sockaddr *)&ss);
    if (rc != 0) {
        fprintf(stderr, "randomstring: cannot listen on %s: %s\n", listen, uv_strerror(rc));
        uv_run(&m.loop, UV_RUN_DEFAULT);
        uv_loop_close(&m.loop);
        profagent_stop();
        return 1;
    }
    uv_signal_init(&m.loop, &m.sigint);
    uv_signal_init(&m.loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);

    const char *agent_path = profagent_socket_path();
    fprintf(stderr, "randomstring: listening on http://%s (pid %d, agent %s)\n", listen,
            (int)getpid(), agent_path ? agent_path : "off: no --agent-socket or PROFAGENT_SOCKET");

    uv_run(&m.loop, UV_RUN_DEFAULT);

    size_t kb, blocks;
    rs_heap_free_all(&kb, &blocks);
    rc = uv_loop_close(&m.loop);
    if (rc != 0) {
        fprintf(stderr, "randomstring: uv_loop_close: %s\n", uv_strerror(rc));
    }
    profagent_stop();
    fprintf(stderr, "randomstring: stopped\n");
    return 0;
}
