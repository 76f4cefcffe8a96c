/* conn_input: fuzz_conn's input language, decoded into one run's plan.
 *
 * Input: a 3-byte header, then n (length, control) pairs, then the client's bytes.
 *   [0] mode: bits 0-2 how upstreams answer (UP_*, conn_harness.h); bit 3 each answer leaves
 *       in two writes (head, then the rest after the gateway has run); bits 4-5 how the
 *       client ends (0 stays open until all is quiet, 1 shutdown(SHUT_WR), 2 close, 3 close
 *       with RST)
 *   [1] n: pieces (low nibble); the last piece is whatever bytes are left after them
 *   [2] raw mode: the upstreams' answer is the input's last [2] bytes
 *   per piece: length (0 = 256), control: bit 0 hold the upstreams' answers while this
 *       piece goes (until a piece without it, or the end); bit 1 after this piece is sent,
 *       before the gateway runs, the upstream closes its idle connections (stale pool)
 * Owns: nothing; a decoded input points into the bytes it was decoded from.
 * Threads: any. Errors: an input too short or too long decodes to false (libFuzzer's input
 * is then skipped). */
#ifndef CONN_INPUT_H
#define CONN_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FC_MAX_PIECES 15

/* piece control bits */
enum { FC_HOLD = 1, FC_STALE = 2 };
/* how the client ends */
enum { FC_END_OPEN, FC_END_SHUT, FC_END_CLOSE, FC_END_RST };

typedef struct fc_input {
    int mode;                        /* the mode byte, as it came */
    int answer_kind;                 /* UP_* (UP_RAW taken as UP_CL under PG_FUZZ_KNOWN=raw) */
    bool split;                      /* answers in two writes */
    int end;                         /* FC_END_* */
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
