/* conn_harness: what fuzz_conn's files share: one run's parties (the gateway's worker, the
 * in-process upstreams, the client) and the requests the client sent, as the strict
 * reference reader reads them. libFuzzer calls in with no context, so they are file-wide
 * singletons, one per party: fc_gw (fuzz_conn.c), fc_up (conn_upstream.c), fc_cl
 * (fuzz_conn.c), fc_sent (conn_oracle_up.c).
 * Files: fuzz_conn.c set-up, the loop, the client, one run; conn_input.c the input
 * language; conn_clock.c the virtual clock; conn_upstream.c the upstreams; conn_oracle_up.c
 * oracle 1 (what upstreams received) and the trace; conn_oracle_client.c oracles 2 and 3
 * (what the client received, nothing left); conn_oracle_flow.c oracles 5-8 (the clock runs
 * out, backpressure, drain, connects that never complete) and a run's own worker.
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
#define FC_BIG_ANSWERS 2         /* big answers: the first ones of a run are big */
#define FC_BIG_BODY (640 * 1024) /* their body: more than the gateway may queue for a client */
#define FC_CLIENT_MAX (4 << 20)  /* what the client keeps of what it receives */

#define FC_BIG_MAX (1 << 20) /* the longest big body (answer or request) */
#define FC_CONNECT_MS 200    /* the upstreams' connect_timeout (fuzz_conn.c's configuration) */
#define FC_MAX_HOLES 16      /* connects that never complete, per run */

/* Byte i of the body of big answer seq: position-dependent, so that a byte lost, doubled or
 * moved is seen. */
static inline char fc_big_byte(int seq, size_t i)
{
    return (char)('a' + (i / 7 + (size_t)seq * 3) % 26);
}
/* FC_BIG_MAX bytes of fc_big_byte(seq, i) (seq < 16), made once (conn_upstream.c). */
const char *fc_big_bytes(int seq);

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
/* Start worker id on listener lfd with cref, its thread not started: its loop runs on the
 * fuzzing thread (fc_settle). */
void fc_worker_start(int id, int lfd, pg_cfgref_t *cref, pg_worker_t **w);
/* The clock moves on by ms: each timer due meanwhile fires at its time, and everyone settles
 * after it, as if the time had passed. */
void fc_advance(uint64_t ms);
/* FUZZ_CONN_TRACE is set: runs say what they did, on stderr. */
extern bool fc_trace;
/* A Unix socket listening at the harness's directory/name (an existing file is replaced). */
int fc_unix_listener(const char *name);

/* ---- the virtual clock (conn_clock.c) ---- */
/* CLOCK_MONOTONIC as the gateway sees it, in ms; it moves only by fc_clock_add. */
uint64_t fc_clock_ms(void);
void fc_clock_add(uint64_t ms);

/* ---- the client (fuzz_conn.c) ---- */
typedef struct fc_client {
    int fd;                 /* its end of the connection; -1 once it has closed it */
    char in[FC_CLIENT_MAX]; /* what it received */
    size_t in_len;
    size_t got;    /* bytes received, kept or not */
    bool paused;   /* it does not read (backpressure) */
    bool tcp;      /* loopback TCP (else a socketpair) */
    bool stuck;    /* its last send stopped behind a deaf upstream */
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
    bool deaf;        /* FC_UP_DEAF: never read, never answered */
    int owed;         /* answers held back (hold), to send in order */
    int owed_req[MAX_REQ];
    char *out;
    size_t out_len, out_off, out_pause; /* pause: write up to here, the rest later */
    size_t out_cap;
} upconn_t;

/* A connect to the upstream that never completes (FC_UP_BLACKHOLE): the gateway's socket was
 * replaced by the read end of a pipe whose write end the harness holds (conn_upstream.c). */
typedef struct fc_hole {
    int wfd;          /* the write end; -1 once the harness has closed it */
    uint64_t made_ms; /* fc_clock_ms() at the connect */
    bool retry;       /* made when the one before had just timed out: the same request again */
    bool expired;     /* connect_timeout has passed since (seen by oracle 8) */
    bool client_open; /*   and the client's connection was still open then */
} fc_hole_t;

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
    bool big;         /* the first FC_BIG_ANSWERS answers are big; small send buffers */
    int conn_mode;    /* FC_UP_* (conn_input.h): how the upstream takes connections */
    bool conn_second; /*   from its second connection on */
    int accepted;     /* connections the upstream (role 0) accepted this run */
    bool refusing;    /* its listener is closed (FC_UP_REFUSE) */
    bool woken;       /* deaf connections read again (and new ones are not deaf) */
    int connects;     /* FC_UP_BLACKHOLE: connects to the upstream this run */
    fc_hole_t holes[FC_MAX_HOLES]; /* FC_UP_BLACKHOLE: the connects that never complete */
    int nholes;
} fc_upstreams_t;
extern fc_upstreams_t fc_up;

void fc_up_close(upconn_t *u, bool by_us);
/* Set the run's connection behaviour going (fc_up.conn_mode, conn_second set). */
void fc_up_begin(void);
/* The upstream listens again, as before the run. */
void fc_up_end(void);
/* Accept, read, answer, write: true when anything happened. */
bool fc_up_service(void);
bool fc_is_head(const char *p, const ref_msg_t *m);
/* An upstream leaves a request hanging until a timer answers it: a deaf upstream connection
 * (FC_UP_DEAF) took one this run, or the gateway still waits on a connect that never
 * completes (FC_UP_BLACKHOLE; meanwhile it reads the client only until it holds bytes). */
bool fc_up_stalled(void);
/* The gateway still holds hole h (its end is open). */
bool fc_up_hole_open(const fc_hole_t *h);
/* After the run: the harness's ends of the holes closed (the gateway has let go of its own:
 * oracle 8), none left. */
void fc_up_holes_close(void);
/* Deaf upstream connections start reading (and answering). */
void fc_up_wake(void);

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
/* The request's method is idempotent (RFC 9110 9.2.2). */
bool fc_idempotent(const char *p, const ref_msg_t *m);
/* Oracle 1; returns how many answers the upstreams sent. */
int fc_check_upstreams(const uint8_t *cin, size_t cn);
/* Oracle 2. answered: answers the upstreams sent; strict: the upstreams were well-behaved;
 * open: the client stayed; early: answers may have gone before the request was whole. */
void fc_check_client(const uint8_t *cin, int answered, bool strict, bool open, bool early);
/* What oracle 2 read last: final responses, and those the gateway made itself (no X-Seq),
 * with the status of the last final one. */
typedef struct fc_finals {
    int finals, own, last_status;
    int connect_502; /* the gateway's 502s that say a connect timed out */
    int eof_bodies;  /* final responses whose body ended at the close (close-delimited: to an
                        HTTP/1.0 client only, which cannot tell a cut from the end) */
    bool cut;        /* the bytes end in a response whose head came and whose body was cut
                        at the close (a chunked one without its last chunk) */
    size_t end; /* bytes of whole responses */
} fc_finals_t;
extern fc_finals_t fc_finals;
/* Whether the run's clock moved before the checks (timers may have cut answers). */
extern bool fc_timed;
/* Oracle 3, after teardown. */
void fc_check_clean(void);
/* ---- oracles 5-8 and the run's own worker (conn_oracle_flow.c) ---- */
/* A run begins: no drain yet. */
void fc_flow_begin(void);
/* Oracle 6, after each piece; gw_fd: the gateway's end of the client's connection. */
void fc_check_backpressure(int gw_fd);
/* fc_advance, and oracle 6's part on time: a client that holds an answer back is not cut
 * as an upstream stall. */
void fc_advance_watched(uint64_t ms);
/* Oracle 5: an hour passes (after oracles 1-2 of the run, same arguments). */
void fc_run_out(const uint8_t *cin, int answered, bool strict, bool early);
/* The run has a worker of its own (fc_gw.w) with cref, until fc_own_worker_end. */
extern bool fc_own_worker;
void fc_own_worker_start(pg_cfgref_t *cref);
/* Oracle 7: the drain is asked for (cin, sent: the client's bytes so far); checked after
 * the run (nothing when no drain was asked for); the own worker's end, after teardown. */
void fc_drain(const uint8_t *cin, size_t sent);
void fc_check_drain(bool strict);
void fc_own_worker_end(void);
/* Oracle 8: a connect that never completes is let go of, and its request answered with one
 * 502, once connect_timeout has passed. After the clock has moved (end: after the run, when
 * every hole must be let go of). */
void fc_check_holes(bool end);
/* Oracle 9 (conn_oracle_flow.c): whether a reset now would be read at once (the gateway holds
 * none of the client's bytes unparsed, nor is closing it); after a reset so read, settled:
 * no connect left waiting. */
bool fc_gw_reads_client(void);
void fc_check_reset_seen(void);
/* What the run sent and every party got, on stderr. */
void fc_trace_run(const uint8_t *cin, size_t sent, int mode);

#endif
