/* pg_conn_lines: the line ends (and obs-folds, RFC 9112 5.2) of a request head, checked on
 * the bytes llhttp consumed, read by read. RFC 9112 2.2 lets a recipient take a bare LF for a
 * line end; llhttp 8 (non-strict, as Debian builds it) takes one for the end of the request
 * line and of the head, and takes any byte for the LF after the CR that ends the head or a
 * field line with an empty value ("Host: h\r\n\rX"). A proxy in front of us, or an upstream,
 * that reads those bytes otherwise frames the request otherwise (where the head ends, which
 * line is which): every line of a head must end in CRLF, and no line may start with
 * whitespace (obs-fold).
 *
 * This runs on every request head, so it is one pass: 32 bytes at a time (SSE2), a bit mask
 * each of the CRs, the LFs and the SP/HTABs, and the head is fine when the LFs are exactly
 * the bytes after the CRs and no SP/HTAB follows an LF (each mask shifted by one byte, the
 * bit shifted out carried to the next block and, at the end, to the next read). Anything
 * else -- or a read of fewer than 32 bytes, or no SSE2 -- is handed to the reference reading
 * (two memchr passes, the code this replaced), so that the verdict, and which of the two
 * causes is named, are the reference's by construction; unit.pg_conn_lines compares the two.
 * Pure functions on caller-provided state; no allocation. */
#include "pg_conn_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char fold_msg[] = "malformed request: obs-fold (a header line starting with "
                               "whitespace) is not accepted (RFC 9112 5.2)";
static const char eol_msg[] = "malformed request: a line of the head not ended by CRLF (bare "
                              "CR or LF, RFC 9112 2.2)";

/* The reference: every LF preceded by a CR (*cr: the previous read's last byte was one) and
 * followed by no SP/HTAB (*lf: the previous read ended in an LF), and as many CRs as LFs but
 * a last CR whose LF comes in the next read. The first LF at fault names the cause; then a
 * CR without its LF. */
const char *pg__conn_lines_scan_ref(bool *cr, bool *lf, const char *p, size_t n)
{
    const char *s, *end = p + n;
    size_t ncr = 0, nlf = 0;

    if (n == 0)
        return NULL;
    if (*cr ? p[0] != '\n' : *lf && (p[0] == ' ' || p[0] == '\t'))
        return *cr ? eol_msg : fold_msg;
    for (s = memchr(p, '\n', n); s; s = memchr(s + 1, '\n', (size_t)(end - s - 1))) {
        if (s == p ? !*cr : s[-1] != '\r')
            return eol_msg;
        if (s + 1 < end && (s[1] == ' ' || s[1] == '\t'))
            return fold_msg;
        nlf += s > p; /* its CR is in these bytes */
    }
    for (s = memchr(p, '\r', n); s; s = memchr(s + 1, '\r', (size_t)(end - s - 1)))
        ncr++;
    /* every CR here is followed by its LF, but a last one, whose LF comes next */
    *cr = end[-1] == '\r';
    if (ncr != nlf + *cr)
        return eol_msg;
    *lf = end[-1] == '\n';
    return NULL;
}

#ifdef __SSE2__
/* Bit i of each mask: byte i of the 32 at p is a CR, an LF, an SP or HTAB. */
static inline void masks32(const char *p, uint32_t *crm, uint32_t *lfm, uint32_t *wsm)
{
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    const __m128i sp = _mm_set1_epi8(' '), ht = _mm_set1_epi8('\t');
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));

    *crm = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, cr)) |
           (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, cr)) << 16;
    *lfm = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, lf)) |
           (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, lf)) << 16;
    *wsm = (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, sp), _mm_cmpeq_epi8(a, ht))) |
           (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(b, sp), _mm_cmpeq_epi8(b, ht)))
               << 16;
}
#endif

const char *pg__conn_lines_scan(bool *cr, bool *lf, const char *p, size_t n)
{
#ifdef __SSE2__
    uint32_t pcr = *cr, plf = *lf, crm, lfm, wsm, bad = 0;
    size_t off;
    unsigned skip;

    if (n < 32)
        return pg__conn_lines_scan_ref(cr, lf, p, n);
    /* LFs exactly where a CR came before (so no bare LF, and no CR without its LF but a
     * last one, which is carried); no SP/HTAB after an LF */
    for (off = 0; off + 32 <= n; off += 32) {
        masks32(p + off, &crm, &lfm, &wsm);
        bad |= lfm ^ ((crm << 1) | pcr);
        bad |= wsm & ((lfm << 1) | plf);
        pcr = crm >> 31;
        plf = lfm >> 31;
    }
    if (off < n) { /* the rest: the 32 bytes that end at p + n, shifted past those read */
        skip = (unsigned)(off + 32 - n);
        masks32(p + n - 32, &crm, &lfm, &wsm);
        crm >>= skip;
        lfm >>= skip;
        wsm >>= skip;
        bad |= lfm ^ (((crm << 1) | pcr) & (0xffffffffu >> skip));
        bad |= wsm & ((lfm << 1) | plf);
        pcr = (crm >> (31 - skip)) & 1;
        plf = (lfm >> (31 - skip)) & 1;
    }
    if (bad)
        return pg__conn_lines_scan_ref(cr, lf, p, n);
    *cr = pcr;
    *lf = plf;
    return NULL;
#else
    return pg__conn_lines_scan_ref(cr, lf, p, n);
#endif
}

const char *pg__conn_head_bad(pg_conn_t *c, const char *p, size_t n)
{
    bool cr = c->head_cr, lf = c->head_lf;
    const char *why = pg__conn_lines_scan(&cr, &lf, p, n);

    c->head_cr = cr;
    c->head_lf = lf;
    return why;
}
