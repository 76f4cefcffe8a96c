/* conn_oracle_client: fuzz_conn's oracles 2 and 3.
 * 2. Answers: what the client got reads as whole responses (a cut only at a close), also
 *    when an upstream's answer is any bytes (UP_RAW: bad framing must not reach the client,
 *    the gateway answers 502 or cuts the response; PG_FUZZ_KNOWN=resp tolerates it). With
 *    well-behaved upstreams and a client that stays open: if the gateway did not close, one
 *    final response per complete request; in any case every answer an upstream sent reaches
 *    the client, whole and in order (each carries X-Seq, the upstream's count).
 *    Never more final responses than requests. Big answers (conn_input.h) arrive with every
 *    byte of their body in place. A 502 of the gateway that says it tried twice answers an
 *    idempotent request (RFC 9110 9.2.2: a POST is never retried), and when every connect is
 *    refused, every idempotent request is tried twice. Once the run's clock has moved,
 *    timers may have cut an answer at a close. No body delimited by the close reaches an
 *    HTTP/1.1 client: the gateway sends an upstream's close-delimited body chunked, so that
 *    a cut (upstream timeout, reset) does not look whole. (And oracle 8's count of the 502s
 *    that say a connect timed out.)
 * 3. No leak, nothing left behind: after the client and the upstreams have gone, the worker
 *    has no connection, the process's connection count is 0, the generation holds only the
 *    worker's reference, pools are empty, every pg_buf is back, no agent slot is taken, the
 *    loop has only the worker's own handles and no request.
 * Owns: nothing. Threads: the fuzzing thread. Errors: a finding aborts. */
#include "conn_harness.h"

#include <stdatomic.h>
#include <string.h>

#include "pg_policy.h"
#include "pg_upstream.h"
#include "conn_input.h"

fc_finals_t fc_finals;
bool fc_timed;

static int seq_value(const char *p, const ref_field_t *f)
{
    int v = 0;
    size_t i;

    for (i = 0; i < f->value_len && i < 6; i++)
        v = v * 10 + (p[f->value_off + i] - '0');
    return v;
}

/* A big answer's body, every byte in place; a body that ends at the close (an HTTP/1.0
 * client's) may have been cut there once the clock moved (a timer's abort looks the same). */
static void check_big(const char *p, const ref_msg_t *m, int seq)
{
    static char b[FC_BIG_BODY + 1];
    size_t n = ref_payload(p, m, b, sizeof b);
    bool cut_ok = fc_timed && m->body == REF_BODY_EOF;

    if (n > FC_BIG_BODY || (n < FC_BIG_BODY && !cut_ok))
        fc_finding("a big answer's body reached the client with another length", NULL);
    if (memcmp(b, fc_big_bytes(seq), n) != 0)
        fc_finding("a big answer's body reached the client with bytes out of place", NULL);
}

/* The gateway's own answer (p, m): its message, as a string (cut to 599 bytes) in b. */
static const char *message(const char *p, const ref_msg_t *m, char (*b)[600])
{
    size_t n = ref_payload(p, m, *b, sizeof *b - 1);

    (*b)[n < sizeof *b - 1 ? n : sizeof *b - 1] = 0;
    return *b;
}

/* The gateway's 502 (p, m) answers request k: what its message says about retries. */
static void check_retry(const uint8_t *cin, const char *p, const ref_msg_t *m, int k)
{
    char b[600];
    bool twice, idem;

    if (k >= fc_sent.n + (fc_sent.tail_len > 0) || fc_sent.r[k].m.method_len == 0)
        return;
    message(p, m, &b);
    twice = strstr(b, "(tried twice)") != NULL;
    idem = fc_idempotent((const char *)cin + fc_sent.r[k].off, &fc_sent.r[k].m);
    if (twice && !idem)
        fc_finding("a request that is not idempotent was sent twice (a refused connect retried)",
                   b);
    if (!twice && idem && fc_up.conn_mode == FC_UP_REFUSE && !fc_up.conn_second &&
        strstr(b, "connection refused") && strncmp(b, "agent", 5) != 0)
        fc_finding("an idempotent request was not tried again after a refused connect", b);
}

/* Oracle 8's part on answers: a connect that never completed and timed out (the last of its
 * request's: one that was tried again has none) has one 502 that says so when the client was
 * still there, and a 502 says so for no other. */
static void check_connect_502(void)
{
    int i, most = 0, least = 0;

    for (i = 0; i < fc_up.nholes; i++) {
        const fc_hole_t *h = &fc_up.holes[i];

        if (!h->expired || (i + 1 < fc_up.nholes && fc_up.holes[i + 1].retry))
            continue;
        most++;
        least += h->client_open;
    }
    if (fc_finals.connect_502 > most)
        fc_finding("a 502 says a connect timed out, and no connect was left that long", NULL);
    if (fc_finals.connect_502 < least)
        fc_finding("a request whose connect never completed got no 502 after connect_timeout",
                   NULL);
}

void fc_check_client(const uint8_t *cin, int answered, bool strict, bool open, bool early)
{
    static ref_msg_t m;
    size_t off = 0;
    int finals = 0, k = 0, last_seq = -1, ups = 0;

    memset(&fc_finals, 0, sizeof fc_finals);
    if (fc_cl.overflow)
        return;
    while (off < fc_cl.in_len) {
        const char *p = fc_cl.in + off;
        /* the request this answers: a complete one, or the tail whose request line parsed */
        bool head_req = k < fc_sent.n + (fc_sent.tail_len > 0) && fc_sent.r[k].m.method_len > 0 &&
                        fc_is_head((const char *)cin + fc_sent.r[k].off, &fc_sent.r[k].m);
        const ref_field_t *s;

        ref_parse_response(p, fc_cl.in_len - off, head_req, fc_cl.eof, &m);
        if (head_req && m.state == REF_DONE && ref_find(p, &m, "x-seq") == NULL) {
            /* The gateway's own answer to a HEAD: no body once it has read the whole head
             * (404, 413, metrics...); a head it refused before its end (400, 408, 431) may
             * have been answered as any request. */
            static ref_msg_t g;

            ref_parse_response(p, fc_cl.in_len - off, false, fc_cl.eof, &g);
            if (g.state == REF_DONE && g.end > m.end) {
                if (!(ref_known & REF_KNOWN_HEAD) && k < fc_sent.n && m.status != 400 &&
                    m.status != 408 && m.status != 431)
                    fc_finding("the gateway's own answer to a HEAD request has a body", NULL);
                m = g;
            }
        }
        if (m.state == REF_BAD) {
            if (strict || !(ref_known & REF_KNOWN_RESP))
                fc_finding(strict ? "the client got bytes a strict reader refuses as a response"
                                  : "an upstream's bad response framing reached the client",
                           m.why);
            return;
        }
        if (m.state == REF_MORE) {
            fc_finals.cut = m.head_done && fc_cl.eof;
            if (strict && open && !early && !(fc_timed && fc_cl.eof))
                fc_finding(fc_cl.eof ? "a response was cut" : "a response was left unfinished",
                           NULL);
            break;
        }
        if (m.status >= 200) {
            if (m.body == REF_BODY_EOF) {
                if (k < fc_sent.n + (fc_sent.tail_len > 0) && fc_sent.r[k].m.method_len > 0 &&
                    fc_sent.r[k].m.minor == 1)
                    fc_finding("a close-delimited body reached an HTTP/1.1 client (a cut would "
                               "look whole)",
                               NULL);
                fc_finals.eof_bodies++;
            }
            s = ref_find(p, &m, "x-seq");
            if (s) {
                int v = seq_value(p, s);

                if (v <= last_seq)
                    fc_finding("upstream answers reached the client out of order, or twice", NULL);
                last_seq = v;
                ups++;
                if (fc_up.big && v < FC_BIG_ANSWERS && !head_req && m.status == 200)
                    check_big(p, &m, v);
            } else {
                fc_finals.own++;
                if (m.status == 502) {
                    char b[600];

                    check_retry(cin, p, &m, k);
                    fc_finals.connect_502 +=
                        strstr(message(p, &m, &b), "unreachable: connect timed out") != NULL;
                }
            }
            fc_finals.last_status = m.status;
            finals++;
            k++;
        }
        off += m.end;
    }
    fc_finals.finals = finals;
    fc_finals.end = off;
    check_connect_502();
    if (finals > fc_sent.n + (fc_sent.tail_len > 0) &&
        (fc_sent.tail_len == 0 || fc_sent.r[fc_sent.n].m.state != REF_BAD))
        fc_finding("more final responses than requests", NULL);
    if (!strict || !open)
        return;
    if (ups > answered || (!early && !fc_timed && ups != answered))
        fc_finding("an upstream's answer did not reach the client whole", NULL);
    /* llhttp reads a PRI request as the start of the HTTP/2 preface and waits for the rest of
     * it ("\r\n\r\nSM\r\n\r\n") whatever the version; the gateway refuses it once it is in */
    for (k = 0; k < fc_sent.n; k++)
        if (fc_sent.r[k].m.method_len == 3 &&
            memcmp((const char *)cin + fc_sent.r[k].off + fc_sent.r[k].m.method_off, "PRI", 3) == 0)
            break;
    if (!fc_cl.eof && finals != k && !fc_up_stalled())
        fc_finding("the connection stayed open with complete requests unanswered", NULL);
}

/* ---------------- oracle 3: nothing left behind ---------------- */

void fc_check_clean(void)
{
    size_t i;

    if (fc_gw.w->nconns != 0)
        fc_finding("a client connection outlived its client", NULL);
    if (atomic_load(&fc_gw.limit.used) != 0)
        fc_finding("server.max_connections slots not given back", NULL);
    if (fc_gw.w->gen->refs != 1)
        fc_finding("generation references left (a request or pooled connection leaked)", NULL);
    for (i = 0; i < fc_gw.w->gen->npools; i++)
        if (fc_gw.w->gen->pools[i].nidle != 0)
            fc_finding("a pool kept a connection the upstream closed", NULL);
    if (fc_gw.w->bufs.nlive != 0)
        fc_finding("pg_buf references leaked", NULL);
    if (fc_gw.w->loop.active_reqs.count != 0)
        fc_finding("libuv requests left active", NULL);
    if (fc_handles() != fc_gw.base_handles)
        fc_finding("libuv handles left open", NULL);
    for (i = 0; i < fc_gw.cref->cfg->nupstreams; i++) {
        pg_policy_agent_t *a = pg_policy_agent(fc_gw.cref->limits, i);

        if (a && pg_policy_agent_active(a) != 0)
            fc_finding("a pprof.max_concurrent slot was not given back", NULL);
    }
}
