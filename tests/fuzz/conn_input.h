/* conn_input: fuzz_conn's input language, decoded into one run's plan.
 *
 * Input: a 3-byte header, then n (length, control) pairs, then the client's bytes.
 *   [0] mode: bits 0-2 how upstreams answer (UP_*, conn_harness.h); bit 3 each answer leaves
 *       in two writes (head, then the rest after the gateway has run); bits 4-5 how the
 *       client ends (0 stays open until all is quiet, 1 shutdown(SHUT_WR), 2 close, 3 close
 *       with RST); bit 6 then the clock runs out: an hour passes, every timer fires, and the
 *       gateway must have let go of the connection (oracle 5); bit 7 big answers: the first
 *       FC_BIG_ANSWERS answers of the run carry FC_BIG_BODY bytes, and the gateway's socket
 *       to the client has a small send buffer (backpressure, oracle 6)
 *   [1] bits 0-3 n: pieces; the last piece is whatever bytes are left after them; bits 4-5
 *       how the upstream (not the agents) takes connections: 0 as usual, 1 refused (nothing
 *       listens), 2 accepted and closed at once, 3 accepted and never read (a deaf upstream);
 *       bit 6 that begins with the run's second upstream connection (the first one works);
 *       bit 7 the client connects over loopback TCP (else a socketpair; also when no port
 *       is free)
 *   [2] raw mode: the upstreams' answer is the input's last [2] bytes; other modes with big
 *       answers: the client first sends a POST whose body is ([2] & 63) * FC_BIG_REQ_UNIT
 *       bytes (up to 1 MiB)
 *       (the run then has a worker of its own, whose max_body_bytes lets it through), so
 *       that an upstream that does not read backs up to the client (oracle 6); bit 7, in
 *       any mode but raw: the upstream's connects never complete (FC_UP_BLACKHOLE, in place
 *       of [1] bits 4-5; from the run's second connect on with [1] bit 6), as a SYN to a
 *       blackhole or to a listener whose backlog is full does (conn_upstream.c)
 *   per piece: length (0 = 256), control: bit 0 hold the upstreams' answers while this
 *       piece goes (until a piece without it, or the end); bit 1 after this piece is sent,
 *       before the gateway runs, the upstream closes its idle connections (stale pool);
 *       bit 2 the client stops reading before this piece, bit 3 it reads again (it always
 *       does at the end) and a deaf upstream starts reading; bits 4-6 after this piece, the clock
 * moves on by fc_advance_ms[] of them (every timer due meanwhile fires in order); bit 7 after this
 * piece (and the clock), the worker is asked to stop: drain (the run then has a worker of its own)
 * Owns: nothing; a decoded input points into the bytes it was decoded from.
 * Threads: any. Errors: an input too short or too long decodes to false (libFuzzer's input
 * is then skipped). */
#ifndef CONN_INPUT_H
#define CONN_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FC_MAX_PIECES 15
#define FC_BIG_REQ_UNIT 16384 /* [2]'s unit for a big request body */

/* piece control bits */
enum { FC_HOLD = 1, FC_STALE = 2, FC_PAUSE = 4, FC_RESUME = 8, FC_DRAIN = 128 };
#define FC_ADVANCE(ctl) (((ctl) >> 4) & 7)
/* how the upstream takes connections */
enum { FC_UP_OK, FC_UP_REFUSE, FC_UP_CLOSE, FC_UP_DEAF, FC_UP_BLACKHOLE };
/* ms the clock moves for each value of FC_ADVANCE, chosen around the configuration's
 * timeouts (fuzz_conn.c): header 100, idle 300, connect 200, upstream 500, pool idle 1000,
 * linger 5000, drain 2000 */
extern const unsigned fc_advance_ms[8];
/* how the client ends */
enum { FC_END_OPEN, FC_END_SHUT, FC_END_CLOSE, FC_END_RST };

typedef struct fc_input {
    int mode;                        /* the mode byte, as it came */
    int answer_kind;                 /* UP_* */
    bool split;                      /* answers in two writes */
    int end;                         /* FC_END_* */
    bool run_out;                    /* the clock runs out at the end */
    bool big;                        /* big answers, small client socket buffer */
    int up_conn;                     /* FC_UP_*: how the upstream takes connections */
    bool up_second;                  /*   from its second connection on */
    bool drain;                      /* a piece asks for a drain: the run has its own worker */
    bool tcp;                        /* the client connects over loopback TCP */
    size_t big_req;                  /* bytes of the big request body sent first (0: none) */
    size_t npieces;                  /* pieces before the last one (the rest) */
    size_t piece_len[FC_MAX_PIECES]; /* 1-256; the run cuts it to what is left */
    uint8_t piece_ctl[FC_MAX_PIECES];
    const uint8_t *cin; /* the client's bytes */
    size_t cn;
    const uint8_t *raw; /* UP_RAW's answer */
    size_t raw_len;
} fc_input_t;

/* Decode data (size bytes, at most FZ_MAX_INPUT) into in; false: not an input. */
bool fc_input_decode(const uint8_t *data, size_t size, fc_input_t *in);

#endif
