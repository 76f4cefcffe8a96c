/* conn_oracle_up: fuzz_conn's oracle 1, no smuggling: what each upstream connection
 * received, read by the strict reference reader (ref_http.c), is a sequence of complete
 * requests, the last one possibly cut short; taken in arrival order they are the client's
 * requests as the same reader parses the client's bytes, one for one and in order (one retry
 * allowed: an idempotent request without a body on a pooled connection the upstream closed):
 * same method, the target in origin form (agents: /debug/pprof + the rest), the same framing
 * and body bytes, no field the client did not send (but X-Forwarded-*, Via, and Host when the
 * client sent none), every field it sent that is not hop-by-hop; one Host line, which for an
 * absolute-form target is its authority (RFC 9112 3.2.2: the client's Host lines dropped, and
 * X-Forwarded-Host says the authority too), and only an http or https URI with a host, no
 * userinfo, goes on. A cut request is a prefix of
 * the client's, and never holds a byte from the first one the reader refuses on.
 * Also here: the client's requests as the reference reads them (fc_sent, which oracle 2
 * reads too) and the run's trace (FUZZ_CONN_TRACE).
 * Owns: fc_sent (offsets into the run's input). Threads: the fuzzing thread.
 * Errors: a finding aborts. */
#include "conn_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

fc_sent_t fc_sent;

void fc_parse_sent(const uint8_t *p, size_t n)
{
    size_t off = 0;

    fc_sent.n = 0;
    fc_sent.tail_len = 0;
    while (off < n && fc_sent.n < MAX_REQ) {
        fc_sent.r[fc_sent.n].off = off;
        ref_parse_request((const char *)p + off, n - off, &fc_sent.r[fc_sent.n].m);
        if (fc_sent.r[fc_sent.n].m.state != REF_DONE) {
            fc_sent.tail_len = n - off;
            return;
        }
        off += fc_sent.r[fc_sent.n].m.end;
        fc_sent.n++;
    }
    if (off < n) { /* beyond what is tracked: treat as an unknown tail */
        fc_sent.r[fc_sent.n].off = off;
        fc_sent.r[fc_sent.n].m.state = REF_BAD;
        fc_sent.r[fc_sent.n].m.end = 0;
        fc_sent.r[fc_sent.n].m.head_done = false;
        fc_sent.tail_len = n - off;
    }
}

void fc_finding(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_conn: FINDING: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static bool ci_same(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;

    if (an != bn)
        return false;
    for (i = 0; i < an; i++)
        if ((a[i] | 0x20) != (b[i] | 0x20) && !(a[i] == b[i]))
            return false;
    return true;
}

static bool same_field(const char *a, const ref_field_t *fa, const char *b, const ref_field_t *fb)
{
    return ci_same(a + fa->name_off, fa->name_len, b + fb->name_off, fb->name_len) &&
           fa->value_len == fb->value_len &&
           memcmp(a + fa->value_off, b + fb->value_off, fa->value_len) == 0;
}

/* Does the token list value [v, v+n) (a Connection field) name the field name [s, s+len)? */
static bool conn_lists(const char *v, size_t n, const char *s, size_t len)
{
    size_t i = 0, a, e;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        a = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > a && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > a && ci_same(v + a, e - a, s, len))
            return true;
    }
    return false;
}

/* Fields the gateway drops or replaces on the way up (a superset: every Connection field's
 * names count, the gateway reads the first); absolute: an absolute-form target's request,
 * whose Host the authority replaces. */
static bool dropped_up(const char *p, const ref_msg_t *m, const ref_field_t *f, bool agent,
                       bool absolute)
{
    static const char *const hop[] = {
        "connection",      "keep-alive",        "proxy-connection",   "te",
        "trailer",         "upgrade",           "proxy-authenticate", "proxy-authorization",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",   "via"};
    size_t i;

    for (i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (ref_field_is(p, f, hop[i]))
            return true;
    if (agent && ref_field_is(p, f, "authorization"))
        return true;
    if (absolute && ref_field_is(p, f, "host"))
        return true;
    for (i = 0; i < m->nf; i++)
        if (ref_field_is(p, &m->f[i], "connection") &&
            conn_lists(p + m->f[i].value_off, m->f[i].value_len, p + f->name_off, f->name_len))
            return true;
    return false;
}

/* Fields the gateway adds (Host: when the client sent none, or in place of the client's). */
static bool added_up(const char *p, const ref_field_t *f, bool client_had_host, bool absolute)
{
    return ref_field_is(p, f, "x-forwarded-for") || ref_field_is(p, f, "x-forwarded-proto") ||
           ref_field_is(p, f, "x-forwarded-host") || ref_field_is(p, f, "via") ||
           ((!client_had_host || absolute) && ref_field_is(p, f, "host"));
}

/* Whether [t, t+n) is an absolute-form target the gateway may forward (RFC 9110 4.2, RFC 3986
 * 3.2): "http" or "https" (any case) "://", an authority of unreserved, pct-encoded and
 * sub-delims bytes, ':' and the brackets of an IP literal, without userinfo, whose host (the
 * part before the port) is not empty. [*aoff, *aoff + *alen): the authority. */
static bool absolute_target(const char *t, size_t n, size_t *aoff, size_t *alen)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "-._~%!$&'()*+,;=:[]";
    size_t s, i, host;

    if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
        s = 7;
    else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
        s = 8;
    else
        return false;
    for (i = s; i < n && t[i] != '/' && t[i] != '?'; i++)
        if (t[i] == '\0' || strchr(ok, t[i]) == NULL)
            return false;
    *aoff = s;
    *alen = i - s;
    if (*alen > 0 && t[s] == '[') {
        const char *e = memchr(t + s, ']', *alen);

        host = e ? (size_t)(e - (t + s)) + 1 : *alen;
    } else {
        const char *e = memchr(t + s, ':', *alen);

        host = e ? (size_t)(e - (t + s)) : *alen;
    }
    return host > 0;
}

/* The target the upstream must get for the client's target (origin form; agents get
 * /debug/pprof + what follows the route's pprof path). Into out; false when the gateway
 * must not forward this target at all. */
static bool expected_target(const char *t, size_t n, int role, char *out, size_t cap, size_t *olen)
{
    size_t i = 0, k = 0, aoff, alen;

    if (n >= cap - 1)
        return false;
    if (n > 0 && t[0] != '/') {
        if (!absolute_target(t, n, &aoff, &alen))
            return false;
        i = aoff + alen;
        if (i == n || t[i] == '?')
            out[k++] = '/';
    }
    if (role == 2) { /* agent of route "/svc": the prefix goes */
        if (n - i < 4 || memcmp(t + i, "/svc", 4) != 0)
            return false;
        i += 4;
    }
    memcpy(out + k, t + i, n - i);
    *olen = k + n - i;
    return true;
}

/* Upstream request u (at p, parsed as um) against the client's request c. */
static void compare(const char *p, const ref_msg_t *um, int role, const creq_t *c,
                    const uint8_t *cin, bool last)
{
    const char *cp = (const char *)cin + c->off;
    const ref_msg_t *cm = &c->m;
    char want[FZ_MAX_INPUT + 2];
    size_t wlen, i, j, aoff = 0, alen = 0, nhost = 0;
    bool had_host = ref_find(cp, cm, "host") != NULL, absolute;
    const char *ct = cp + cm->target_off;
    size_t ub, cb;

    if (um->state == REF_BAD)
        fc_finding("an upstream received bytes a strict reader refuses", um->why);
    if (um->state == REF_MORE && !last)
        fc_finding("an upstream got a cut request, and then another one", NULL);
    if (um->state == REF_DONE && cm->state != REF_DONE)
        fc_finding("an upstream got a whole request the client never sent whole",
                   cm->state == REF_BAD ? cm->why : "client's is incomplete");
    if (!um->head_done)
        return; /* a head cut short: nothing more to compare */
    if (!cm->head_done || (cm->state == REF_BAD && cm->end < cm->head_len) ||
        (cm->state == REF_BAD && cm->body == REF_BODY_NONE))
        fc_finding("an upstream got a head the client's bytes do not fc_up.hold", cm->why);
    if (um->method_len != cm->method_len ||
        memcmp(p + um->method_off, cp + cm->method_off, um->method_len) != 0)
        fc_finding("method differs upstream", NULL);
    if (!expected_target(cp + cm->target_off, cm->target_len, role, want, sizeof want, &wlen))
        fc_finding("a target the gateway must not forward went upstream", NULL);
    if (um->target_len != wlen || memcmp(p + um->target_off, want, wlen) != 0)
        fc_finding("target differs upstream", NULL);
    absolute = cm->target_len > 0 && ct[0] != '/' &&
               absolute_target(ct, cm->target_len, &aoff, &alen);
    /* one Host; an absolute-form target's authority is it (and X-Forwarded-Host) */
    for (i = 0; i < um->nf; i++) {
        const ref_field_t *f = &um->f[i];
        bool is_host = ref_field_is(p, f, "host");

        if (!is_host && !ref_field_is(p, f, "x-forwarded-host"))
            continue;
        nhost += is_host;
        if (absolute && (f->value_len != alen || memcmp(p + f->value_off, ct + aoff, alen) != 0))
            fc_finding(is_host ? "an absolute-form request went upstream with a Host other than "
                                 "its authority"
                               : "an absolute-form request went upstream with an "
                                 "X-Forwarded-Host other than its authority",
                       NULL);
    }
    if (nhost != 1)
        fc_finding("an upstream request without exactly one Host", NULL);
    if (um->body != cm->body || (um->body == REF_BODY_CL && um->cl != cm->cl))
        fc_finding("framing differs upstream", NULL);
    /* fields: upstream's (but added ones) a subsequence of the client's; the client's (but
     * dropped ones) a subsequence of the upstream's */
    for (i = 0, j = 0; i < um->nf; i++) {
        if (added_up(p, &um->f[i], had_host, absolute))
            continue;
        while (j < cm->nf && !same_field(p, &um->f[i], cp, &cm->f[j]))
            j++;
        if (j == cm->nf)
            fc_finding("an upstream got a field the client did not send", NULL);
        j++;
    }
    for (i = 0, j = 0; i < cm->nf; i++) {
        if (dropped_up(cp, cm, &cm->f[i], role != 0, absolute))
            continue;
        while (j < um->nf && !same_field(cp, &cm->f[i], p, &um->f[j]))
            j++;
        if (j == um->nf)
            fc_finding("a field the client sent did not reach the upstream", NULL);
        j++;
    }
    /* body bytes: the same as far as they went (fc_up.raw, framing included) */
    ub = um->end - um->head_len;
    cb = (cm->state == REF_DONE   ? cm->end
          : cm->state == REF_MORE ? fc_sent.tail_len
                                  : cm->end) -
         cm->head_len;
    if (ub > cb)
        fc_finding("an upstream got body bytes past what the client sent validly", cm->why);
    if (memcmp(p + um->head_len, cp + cm->head_len, ub) != 0)
        fc_finding("body bytes differ upstream", NULL);
    if (um->state == REF_DONE && ub != cb)
        fc_finding("body length differs upstream", NULL);
}

/* RFC 9110 9.2.2 */
bool fc_idempotent(const char *p, const ref_msg_t *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    size_t i;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (m->method_len == strlen(ok[i]) && memcmp(p + m->method_off, ok[i], m->method_len) == 0)
            return true;
    return false;
}

typedef struct uref {
    int seq, conn, k;
    size_t off;
} uref_t;

static int by_seq(const void *a, const void *b)
{
    return ((const uref_t *)a)->seq - ((const uref_t *)b)->seq;
}

int fc_check_upstreams(const uint8_t *cin, size_t cn)
{
    static uref_t r[4 * MAX_REQ + MAX_UPC]; /* requests begun upstream: the client's, retries */
    static ref_msg_t m;
    int nr = 0, i, k, next = 0, answered = 0;
    const uref_t *prev = NULL;

    fc_parse_sent(cin, cn);
    for (i = 0; i < fc_up.n; i++) {
        size_t off = 0;

        for (k = 0; k < fc_up.c[i].nstart; k++) {
            if (nr == (int)(sizeof r / sizeof r[0]))
                fc_fail("more upstream requests in one run than tracked");
            r[nr++] = (uref_t){fc_up.c[i].seq[k], i, k, off};
            ref_parse_request(fc_up.c[i].in + off, fc_up.c[i].in_len - off, &m);
            if (m.state != REF_DONE)
                break;
            off += m.end;
        }
    }
    qsort(r, (size_t)nr, sizeof r[0], by_seq);
    for (i = 0; i < nr; i++) {
        upconn_t *u = &fc_up.c[r[i].conn];
        const char *p = u->in + r[i].off;

        ref_parse_request(p, u->in_len - r[i].off, &m);
        /* a retry: the same request again after a pooled connection the upstream closed
         * took it without an answer (only for idempotent requests without a body: none, or
         * Content-Length: 0; RFC 9110 9.2.2) */
        if (prev && m.state == REF_DONE && !fc_up.c[prev->conn].answered[prev->k] &&
            fc_up.c[prev->conn].by_us && next > 0 &&
            (fc_sent.r[next - 1].m.body == REF_BODY_NONE ||
             (fc_sent.r[next - 1].m.body == REF_BODY_CL && fc_sent.r[next - 1].m.cl == 0)) &&
            fc_sent.r[next - 1].m.state == REF_DONE &&
            fc_idempotent((const char *)cin + fc_sent.r[next - 1].off, &fc_sent.r[next - 1].m)) {
            ref_msg_t pm;
            const char *pp = fc_up.c[prev->conn].in + prev->off;

            ref_parse_request(pp, fc_up.c[prev->conn].in_len - prev->off, &pm);
            if (pm.state == REF_DONE && pm.end == m.end && memcmp(pp, p, m.end) == 0) {
                prev = &r[i];
                answered += u->answered[r[i].k];
                continue;
            }
        }
        if (next > fc_sent.n || (next == fc_sent.n && fc_sent.tail_len == 0))
            fc_finding("an upstream got more requests than the client sent", NULL);
        compare(p, &m, u->role, &fc_sent.r[next], cin, i == nr - 1);
        answered += u->answered[r[i].k];
        prev = &r[i];
        next++;
    }
    return answered;
}

void fc_trace_run(const uint8_t *cin, size_t sent, int mode)
{
    int i;

    fc_parse_sent(cin, sent);
    fprintf(stderr, "run: mode %#x, sent %zu bytes: %d complete request(s), tail %zu (%s%s%s)\n",
            mode, sent, fc_sent.n, fc_sent.tail_len,
            fc_sent.tail_len == 0                      ? "none"
            : fc_sent.r[fc_sent.n].m.state == REF_MORE ? "incomplete"
                                                       : "bad",
            fc_sent.tail_len && fc_sent.r[fc_sent.n].m.why ? ": " : "",
            fc_sent.tail_len && fc_sent.r[fc_sent.n].m.why ? fc_sent.r[fc_sent.n].m.why : "");
    for (i = 0; i < fc_up.n; i++)
        fprintf(stderr,
                "  upstream conn %d (role %d): %zu bytes, %d begun, %d complete, %s:\n%.*s\n", i,
                fc_up.c[i].role, fc_up.c[i].in_len, fc_up.c[i].nstart, fc_up.c[i].nreq,
                fc_up.c[i].eof     ? "closed by the gateway"
                : fc_up.c[i].by_us ? "closed by us"
                                   : "open",
                (int)(fc_up.c[i].in_len > 2000 ? 2000 : fc_up.c[i].in_len), fc_up.c[i].in);
    fprintf(stderr, "  client got %zu bytes%s:\n%.*s\n", fc_cl.in_len,
            fc_cl.eof ? " and a close" : "", (int)(fc_cl.in_len > 2000 ? 2000 : fc_cl.in_len),
            fc_cl.in);
}
