/* conn_harness: what fuzz_conn's files share: one run's parties (the gateway's worker, the
 * in-process upstreams, the client) and the requests the client sent, as the strict
 * reference reader reads them. libFuzzer calls in with no context, so they are file-wide
 * singletons, one per party: fc_gw (fuzz_conn.c), fc_up (conn_upstream.c), fc_cl
 * (fuzz_conn.c), fc_sent (conn_oracle_up.c).
 * Files: fuzz_conn.c set-up, the loop, the client, one run; conn_input.c the input language;
 * conn_upstream.c the upstreams; conn_oracle_up.c oracle 1 (what upstreams received) and the
 * trace; conn_oracle_client.c oracles 2 and 3 (what the client received, nothing left).
 * Owns: fc_up owns each upstream connection's descriptor and byte buffers until the run's
 *   teardown; nothing here owns the worker's objects (fc_gw borrows them for checks).
 * Threads: the fuzzing thread only (it also runs the worker's loop). Errors: none returned: a
 * broken harness calls fc_fail, a broken gateway fc_finding (both abort). */
#ifndef CONN_HARNESS_H
#define CONN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_worker.h"
#include "ref_http.h"

#define MAX_UPC 1024 /* upstream connections per run (one per request when they close) */
#define MAX_REQ 512  /* requests tracked per upstream connection, and of the client */
#define FZ_MAX_INPUT 8192

/* how upstreams (and agents) answer each complete request */
enum {
    UP_CL,      /* Content-Length, keep-alive */
    UP_CHUNKED, /* chunked, keep-alive */
    UP_CLOSE,   /* Content-Length and Connection: close, then close */
    UP_EOF,     /* no length: the body ends at close */
    UP_SECOND,  /* the first request on a connection answered (keep-alive); at the second,
                   close without answering */
    UP_EARLY,   /* answered once the head is in, before the body */
    UP_100,     /* 100 Continue, then Content-Length */
    UP_RAW,     /* the input's bytes, whatever they are */
};

/* ---- the gateway under test (fuzz_conn.c) ---- */
typedef struct fc_gateway {
    pg_worker_t *w; /* its loop runs on the fuzzing thread */
    pg_cfgref_t *cref;
    pg_conn_limit_t limit; /* server.max_connections, as the worker's accept counts it */
    int base_handles;      /* handles of an idle worker */
} fc_gateway_t;
extern fc_gateway_t fc_gw;

/* Handles on the worker's loop. */
int fc_handles(void);
/* Run the gateway, the upstreams and the client until none of them has anything to do;
 * fails the run when that never happens (a busy loop). */
void fc_settle(void);
/* The harness itself broke (not the gateway): say what and abort. */
void fc_fail(const char *what) __attribute__((noreturn));

/* ---- the client (fuzz_conn.c) ---- */
typedef struct fc_client {
    int fd;           /* its end of the socketpair; -1 once it has closed it */
    char in[1 << 16]; /* what it received */
    size_t in_len;
    bool eof;      /* the gateway closed (or reset) the connection */
    bool overflow; /* more than in[] holds came: the answers are not checked */
} fc_client_t;
extern fc_client_t fc_cl;

bool fc_client_service(void);
/* Returns the bytes that went (fewer when the gateway has closed). */
size_t fc_client_send(const uint8_t *p, size_t n);

/* ---- the upstreams and agents (conn_upstream.c) ---- */
typedef struct upconn {
    int fd;   /* -1: closed (by us or after the gateway's EOF) */
    int role; /* 0 upstream, 1 agent of "app", 2 agent of "svc" */
    char *in;
    size_t in_len, in_cap;
    size_t parsed;    /* bytes of the complete requests read so far */
    int nreq;         /* complete requests */
    int nstart;       /* requests begun (complete or not) */
    int seq[MAX_REQ]; /* arrival order of each begun request (global) */
    bool answered[MAX_REQ];
    bool early_done;  /* UP_EARLY: the request in progress was answered */
    bool eof;         /* the gateway closed it */
    bool by_us;       /* we closed it */
    bool close_after; /* close once out is written */
    int owed;         /* answers held back (hold), to send in order */
    int owed_req[MAX_REQ];
    char *out;
    size_t out_len, out_off, out_pause; /* pause: write up to here, the rest later */
} upconn_t;

typedef struct fc_upstreams {
    int listen_fd[3]; /* upstream, agent 1, agent 2: set up once */
    /* this run */
    upconn_t c[MAX_UPC];
    int n;
    int seq_next;
    int answer_kind;    /* UP_* */
    bool split;         /* each answer leaves in two writes */
    bool hold;          /* answers wait while set */
    const uint8_t *raw; /* UP_RAW's answer */
    size_t raw_len;
} fc_upstreams_t;
extern fc_upstreams_t fc_up;

void fc_up_close(upconn_t *u, bool by_us);
/* Accept, read, answer, write: true when anything happened. */
bool fc_up_service(void);
bool fc_is_head(const char *p, const ref_msg_t *m);

/* ---- oracles (conn_oracle_up.c, conn_oracle_client.c) ---- */
typedef struct creq { /* a request as the client sent it (the reference's reading) */
    size_t off;
    ref_msg_t m;
} creq_t;

typedef struct fc_sent {
    creq_t r[MAX_REQ + 1];
    int n; /* complete ones; r[n] is the tail when tail_len > 0 */
    size_t tail_len;
} fc_sent_t;
extern fc_sent_t fc_sent;

/* The gateway did something wrong: say what and abort. */
void fc_finding(const char *what, const char *detail) __attribute__((noreturn));
/* The client's bytes [p, p+n) into fc_sent. */
void fc_parse_sent(const uint8_t *p, size_t n);
/* Oracle 1; returns how many answers the upstreams sent. */
int fc_check_upstreams(const uint8_t *cin, size_t cn);
/* Oracle 2. answered: answers the upstreams sent; strict: the upstreams were well-behaved;
 * open: the client stayed; early: answers may have gone before the request was whole. */
void fc_check_client(const uint8_t *cin, int answered, bool strict, bool open, bool early);
/* Oracle 3, after teardown. */
void fc_check_clean(void);
/* What the run sent and every party got, on stderr. */
void fc_trace_run(const uint8_t *cin, size_t sent, int mode);

#endif
