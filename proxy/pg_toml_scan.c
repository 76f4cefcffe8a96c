/* pg_toml_scan: the lexical half of the TOML 1.0.0 parser (see pg_toml_int.h): bytes to keys
 * and scalar values. Every read is bounded by P->end; the input need not be NUL-terminated.
 * The grammar followed is the ABNF of toml.io/en/v1.0.0 (toml.abnf). */
#include "pg_toml_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pg__toml_fail(pg__toml_parser_t *P, pg_pos_t pos, const char *fmt, ...)
{
    va_list ap;

    if (P->failed)
        return -EINVAL;
    P->failed = true;
    if (P->err) {
        snprintf(P->err->file, sizeof P->err->file, "%s", P->file ? P->file : "");
        P->err->pos = pos;
        va_start(ap, fmt);
        vsnprintf(P->err->msg, sizeof P->err->msg, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

const char *pg__toml_found(const pg__toml_parser_t *P, char *buf, size_t size)
{
    unsigned char c;

    if (P->p >= P->end)
        return "end of file";
    c = (unsigned char)*P->p;
    if (c == '\n' || (c == '\r' && P->p + 1 < P->end && P->p[1] == '\n'))
        return "end of line";
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, size, "'%c'", c);
    else if (c == ' ')
        snprintf(buf, size, "a space");
    else if (c == '\t')
        snprintf(buf, size, "a tab");
    else if (c >= 0x80)
        snprintf(buf, size, "a non-ASCII character");
    else
        snprintf(buf, size, "control character 0x%02x", c);
    return buf;
}

static int fail_here(pg__toml_parser_t *P, const char *at, const char *what)
{
    char fb[32];
    const char *save = P->p;
    int rc;

    P->p = at;
    rc = pg__toml_fail(P, pg__toml_pos(P, at), "%s, found %s", what,
                       pg__toml_found(P, fb, sizeof fb));
    P->p = save;
    return rc;
}

/* Position of byte `at` when the parser has not walked there (UTF-8 check runs first). */
static pg_pos_t pos_of(const pg__toml_parser_t *P, const char *at)
{
    pg_pos_t pos = {1, 1};
    const char *ls = P->buf;

    for (const char *q = P->buf; q < at; q++)
        if (*q == '\n') {
            pos.line++;
            ls = q + 1;
        }
    pos.col = (uint32_t)(at - ls) + 1;
    return pos;
}

int pg__toml_check_utf8(pg__toml_parser_t *P)
{
    const unsigned char *s = (const unsigned char *)P->p, *e = (const unsigned char *)P->end;

    while (s < e) {
        unsigned c = *s, need, cp, min;

        if (c < 0x80) {
            /* Fast path: eight ASCII bytes at a time. */
            while (e - s >= 8) {
                uint64_t w;

                memcpy(&w, s, 8);
                if (w & 0x8080808080808080ull)
                    break;
                s += 8;
            }
            if (s < e && *s < 0x80)
                s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return pg__toml_fail(P, pos_of(P, (const char *)s), "invalid UTF-8 byte 0x%02x", c);
        }
        if ((size_t)(e - s) <= need)
            return pg__toml_fail(P, pos_of(P, (const char *)s),
                                 "truncated UTF-8 sequence at end of file");
        for (unsigned i = 1; i <= need; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return pg__toml_fail(P, pos_of(P, (const char *)s),
                                     "invalid UTF-8 sequence (byte 0x%02x after 0x%02x)", s[i], c);
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return pg__toml_fail(P, pos_of(P, (const char *)s),
                                 "invalid UTF-8 sequence (overlong, surrogate or past U+10FFFF)");
        s += need + 1;
    }
    return 0;
}

void pg__toml_skip_ws(pg__toml_parser_t *P)
{
    while (P->p < P->end && (*P->p == ' ' || *P->p == '\t'))
        P->p++;
}

/* Control characters TOML forbids in comments and strings: U+0000..U+001F but tab, and
 * U+007F. Newlines are handled by the callers. */
static inline bool is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

int pg__toml_skip_comment(pg__toml_parser_t *P)
{
    P->p++; /* '#' */
    while (P->p < P->end && *P->p != '\n') {
        unsigned char c = (unsigned char)*P->p;

        if (c == '\r' && P->p + 1 < P->end && P->p[1] == '\n')
            break;
        if (is_ctl(c))
            return pg__toml_fail(P, pg__toml_pos(P, P->p),
                                 "control character 0x%02x is not allowed in a comment", c);
        P->p++;
    }
    return 0;
}

int pg__toml_newline(pg__toml_parser_t *P)
{
    if (*P->p == '\r') {
        if (P->p + 1 >= P->end || P->p[1] != '\n')
            return pg__toml_fail(P, pg__toml_pos(P, P->p),
                                 "a carriage return must be followed by a line feed");
        P->p++;
    }
    P->p++;
    P->line++;
    P->line_start = P->p;
    return 0;
}

int pg__toml_skip_ws_nl(pg__toml_parser_t *P)
{
    int rc;

    for (;;) {
        pg__toml_skip_ws(P);
        if (P->p >= P->end)
            return 0;
        if (*P->p == '#') {
            if ((rc = pg__toml_skip_comment(P)) < 0)
                return rc;
        } else if (*P->p == '\n' || *P->p == '\r') {
            if ((rc = pg__toml_newline(P)) < 0)
                return rc;
        } else {
            return 0;
        }
    }
}

/* --- scratch buffer ------------------------------------------------------------------- */

static int scratch_reserve(pg__toml_parser_t *P, size_t more)
{
    size_t cap;
    char *s;

    if (P->scratch_len + more + 1 <= P->scratch_cap)
        return 0;
    cap = P->scratch_cap ? P->scratch_cap : 256;
    while (cap < P->scratch_len + more + 1)
        cap *= 2;
    s = realloc(P->scratch, cap);
    if (s == NULL)
        return -ENOMEM;
    P->scratch = s;
    P->scratch_cap = cap;
    return 0;
}

static int scratch_put(pg__toml_parser_t *P, const char *s, size_t n)
{
    if (scratch_reserve(P, n) < 0)
        return -ENOMEM;
    memcpy(P->scratch + P->scratch_len, s, n);
    P->scratch_len += n;
    P->scratch[P->scratch_len] = '\0';
    return 0;
}

static int scratch_utf8(pg__toml_parser_t *P, uint32_t cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return scratch_put(P, b, n);
}

/* --- strings -------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* At the '\' of an escape in a basic string (not a line-ending backslash). */
static int scan_escape(pg__toml_parser_t *P)
{
    const char *at = P->p;
    char c;
    int n;
    uint32_t cp = 0;

    if (P->p + 1 >= P->end)
        return pg__toml_fail(P, pg__toml_pos(P, at), "unterminated string");
    c = P->p[1];
    P->p += 2;
    switch (c) {
    case 'b':
        return scratch_put(P, "\b", 1);
    case 't':
        return scratch_put(P, "\t", 1);
    case 'n':
        return scratch_put(P, "\n", 1);
    case 'f':
        return scratch_put(P, "\f", 1);
    case 'r':
        return scratch_put(P, "\r", 1);
    case '"':
        return scratch_put(P, "\"", 1);
    case '\\':
        return scratch_put(P, "\\", 1);
    case 'u':
        n = 4;
        break;
    case 'U':
        n = 8;
        break;
    default:
        P->p = at + 1;
        return fail_here(P, at + 1,
                         "invalid escape in string (expected one of \\b \\t \\n \\f \\r \\\" "
                         "\\\\ \\uXXXX \\UXXXXXXXX)");
    }
    for (int i = 0; i < n; i++) {
        int h = P->p < P->end ? hexval((unsigned char)*P->p) : -1;

        if (h < 0)
            return fail_here(P, P->p,
                             n == 4 ? "expected 4 hex digits after \\u"
                                    : "expected 8 hex digits after \\U");
        cp = (cp << 4) | (uint32_t)h;
        P->p++;
    }
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return pg__toml_fail(P, pg__toml_pos(P, at),
                             "escape \\%c%.*s is not a Unicode scalar value (surrogates and "
                             "values past 10FFFF are not allowed)",
                             c, n, at + 2);
    return scratch_utf8(P, cp);
}

/* Opening quote(s) already consumed. q is '"' or '\''; ml for the triple-quoted forms. */
static int scan_string_body(pg__toml_parser_t *P, char q, bool ml, const char *start)
{
    bool basic = q == '"';
    int rc;

    P->scratch_len = 0;
    if (scratch_reserve(P, 0) < 0)
        return -ENOMEM;
    P->scratch[0] = '\0';
    /* A newline right after the opening delimiter is trimmed. */
    if (ml && P->p < P->end && (*P->p == '\n' || *P->p == '\r'))
        if ((rc = pg__toml_newline(P)) < 0)
            return rc;
    for (;;) {
        const char *run = P->p;
        unsigned char c;

        /* Copy plain runs in one go. */
        while (P->p < P->end) {
            c = (unsigned char)*P->p;
            if (c == (unsigned char)q || (basic && c == '\\') || c < 0x20 || c == 0x7f)
                break;
            P->p++;
        }
        if (P->p > run && scratch_put(P, run, (size_t)(P->p - run)) < 0)
            return -ENOMEM;
        if (P->p >= P->end)
            return pg__toml_fail(P, pg__toml_pos(P, start), "unterminated string (no closing %s)",
                                 ml ? (basic ? "\"\"\"" : "'''") : (basic ? "\"" : "'"));
        c = (unsigned char)*P->p;
        if (c == (unsigned char)q) {
            size_t nq = 0;

            if (!ml) {
                P->p++;
                return 0;
            }
            while (P->p + nq < P->end && P->p[nq] == q && nq < 5)
                nq++;
            if (nq >= 3) {
                /* Up to two quotes right before the closing delimiter belong to the string. */
                if (scratch_put(P, P->p, nq - 3) < 0)
                    return -ENOMEM;
                P->p += nq;
                return 0;
            }
            if (scratch_put(P, P->p, nq) < 0)
                return -ENOMEM;
            P->p += nq;
        } else if (c == '\\') {
            const char *b = P->p + 1;

            if (ml) {
                /* Line-ending backslash: eat whitespace and newlines up to the next text. */
                while (b < P->end && (*b == ' ' || *b == '\t'))
                    b++;
                if (b < P->end && (*b == '\n' || *b == '\r')) {
                    P->p = b;
                    if ((rc = pg__toml_newline(P)) < 0)
                        return rc;
                    for (;;) {
                        pg__toml_skip_ws(P);
                        if (P->p < P->end && (*P->p == '\n' || *P->p == '\r')) {
                            if ((rc = pg__toml_newline(P)) < 0)
                                return rc;
                        } else {
                            break;
                        }
                    }
                    continue;
                }
            }
            if ((rc = scan_escape(P)) < 0)
                return rc;
        } else if (c == '\n' || c == '\r') {
            if (!ml)
                return fail_here(P, P->p,
                                 "unterminated string (strings in \"\" or '' end on "
                                 "the same line; use \"\"\" or ''' for several lines)");
            if ((rc = pg__toml_newline(P)) < 0)
                return rc;
            if (scratch_put(P, "\n", 1) < 0)
                return -ENOMEM;
        } else if (c == '\t') {
            if (scratch_put(P, "\t", 1) < 0)
                return -ENOMEM;
            P->p++;
        } else {
            return pg__toml_fail(P, pg__toml_pos(P, P->p),
                                 "control character 0x%02x is not allowed in a string; write "
                                 "it as an escape",
                                 c);
        }
    }
}

/* At a quote: decodes any of the four string kinds into the scratch buffer. */
static int scan_string(pg__toml_parser_t *P, bool allow_ml)
{
    const char *start = P->p;
    char q = *P->p;
    bool ml = P->end - P->p >= 3 && P->p[1] == q && P->p[2] == q;

    if (ml && !allow_ml)
        return pg__toml_fail(P, pg__toml_pos(P, start), "a key cannot be a multi-line string");
    P->p += ml ? 3 : 1;
    return scan_string_body(P, q, ml, start);
}

static inline bool is_bare(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int pg__toml_scan_key_part(pg__toml_parser_t *P)
{
    const char *s = P->p;

    if (P->p < P->end && (*P->p == '"' || *P->p == '\''))
        return scan_string(P, false);
    while (P->p < P->end && is_bare((unsigned char)*P->p))
        P->p++;
    if (P->p == s)
        return fail_here(P, s, "expected a key (letters, digits, '_', '-', or a quoted string)");
    P->scratch_len = 0;
    return scratch_put(P, s, (size_t)(P->p - s));
}

/* --- numbers -------------------------------------------------------------------------- */

static inline bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Digits of a radix with single '_' only between digits; [s, e) must be all of it.
 * Appends the digits (no '_') to out when out is not NULL. Returns false if malformed. */
static bool check_digits(const char *s, const char *e, int radix, char *out, size_t *outn)
{
    bool prev_digit = false;

    if (s >= e)
        return false;
    for (; s < e; s++) {
        int d = hexval((unsigned char)*s);

        if (*s == '_') {
            if (!prev_digit)
                return false;
            prev_digit = false;
            continue;
        }
        if (d < 0 || d >= radix)
            return false;
        if (out)
            out[(*outn)++] = *s;
        prev_digit = true;
    }
    return prev_digit;
}

static int scan_radix_int(pg__toml_parser_t *P, const char *s, const char *e, pg_toml_value_t *v)
{
    int radix = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
    uint64_t acc = 0;

    if (!check_digits(s + 2, e, radix, NULL, NULL))
        return pg__toml_fail(P, pg__toml_pos(P, s),
                             "malformed %s integer '%.*s' (digits, with single '_' only between "
                             "digits)",
                             radix == 16  ? "hexadecimal"
                             : radix == 8 ? "octal"
                                          : "binary",
                             (int)(e - s), s);
    for (const char *q = s + 2; q < e; q++) {
        if (*q == '_')
            continue;
        if (acc > ((uint64_t)INT64_MAX - (uint64_t)hexval((unsigned char)*q)) / (uint64_t)radix)
            return pg__toml_fail(P, pg__toml_pos(P, s), "integer '%.*s' does not fit in 64 bits",
                                 (int)(e - s), s);
        acc = acc * (uint64_t)radix + (uint64_t)hexval((unsigned char)*q);
    }
    v->type = PG_TOML_INTEGER;
    v->u.i = (int64_t)acc;
    return 0;
}

/* [s, e) is a run of number characters starting at a sign or a digit (or i/n for inf/nan). */
static int scan_number(pg__toml_parser_t *P, const char *s, const char *e, pg_toml_value_t *v)
{
    const char *q = s, *ip, *ipe, *fp = NULL, *fpe = NULL, *xp = NULL, *xpe = NULL;
    bool neg = false;
    char buf[520];
    size_t n = 0;
    int len = (int)(e - s);

    if (*q == '+' || *q == '-')
        neg = *q++ == '-';
    if (e - q == 3 && (memcmp(q, "inf", 3) == 0 || memcmp(q, "nan", 3) == 0)) {
        v->type = PG_TOML_FLOAT;
        v->u.f = q[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
        return 0;
    }
    if (q == s && e - q > 2 && q[0] == '0' && (q[1] == 'x' || q[1] == 'o' || q[1] == 'b'))
        return scan_radix_int(P, s, e, v);
    ip = q;
    while (q < e && (is_digit(*q) || *q == '_'))
        q++;
    ipe = q;
    if (q < e && *q == '.') {
        fp = ++q;
        while (q < e && (is_digit(*q) || *q == '_'))
            q++;
        fpe = q;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        xp = ++q;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        while (q < e && (is_digit(*q) || *q == '_'))
            q++;
        xpe = q;
    }
    if (q != e || e - s > 500)
        goto bad;
    if (neg)
        buf[n++] = '-';
    if (!check_digits(ip, ipe, 10, buf, &n))
        goto bad;
    if (ipe - ip > 1 && ip[0] == '0')
        return pg__toml_fail(P, pg__toml_pos(P, s), "leading zeros are not allowed in '%.*s'", len,
                             s);
    if (!fp && !xp) {
        /* |INT64_MIN| = INT64_MAX + 1 */
        uint64_t acc = 0, limit = (uint64_t)INT64_MAX + (neg ? 1 : 0);

        for (size_t i = neg ? 1 : 0; i < n; i++) {
            uint64_t d = (uint64_t)(buf[i] - '0');

            if (acc > (limit - d) / 10)
                return pg__toml_fail(P, pg__toml_pos(P, s),
                                     "integer '%.*s' does not fit in 64 bits", len, s);
            acc = acc * 10 + d;
        }
        v->type = PG_TOML_INTEGER;
        v->u.i = !neg ? (int64_t)acc : acc > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)acc;
        return 0;
    }
    if (fp) {
        buf[n++] = '.';
        if (!check_digits(fp, fpe, 10, buf, &n))
            goto bad;
    }
    if (xp) {
        buf[n++] = 'e';
        if (xp < xpe && (*xp == '+' || *xp == '-'))
            buf[n++] = *xp++;
        if (!check_digits(xp, xpe, 10, buf, &n))
            goto bad;
    }
    buf[n] = '\0';
    v->type = PG_TOML_FLOAT;
    if (P->c_locale == (locale_t)0) {
        P->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (P->c_locale == (locale_t)0)
            return -ENOMEM;
    }
    v->u.f = strtod_l(buf, NULL, P->c_locale);
    return 0;
bad:
    return pg__toml_fail(P, pg__toml_pos(P, s),
                         "malformed number '%.*s' (expected an integer like 42, 0x2a, 1_000, or "
                         "a float like 3.14, 1e6, inf)",
                         len > 60 ? 60 : len, s);
}

/* --- dates and times (RFC 3339 as TOML 1.0 restricts it) ------------------------------- */

static int digits(const char *s, const char *e, int n)
{
    int v = 0;

    if (e - s < n)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* HH:MM:SS[.frac] at P->p. */
static int scan_time(pg__toml_parser_t *P, pg_toml_datetime_t *dt)
{
    const char *s = P->p;
    int h = digits(s, P->end, 2), mi = -1, se = -1;

    if (h >= 0 && s + 2 < P->end && s[2] == ':')
        mi = digits(s + 3, P->end, 2);
    if (mi >= 0 && s + 5 < P->end && s[5] == ':')
        se = digits(s + 6, P->end, 2);
    if (se < 0)
        return pg__toml_fail(P, pg__toml_pos(P, s),
                             "malformed time (expected HH:MM:SS with two digits each)");
    if (h > 23 || mi > 59 || se > 59)
        return pg__toml_fail(P, pg__toml_pos(P, s),
                             "time %.8s out of range (hours 00-23, minutes and seconds 00-59)", s);
    dt->hour = h, dt->minute = mi, dt->second = se;
    P->p = s + 8;
    if (P->p < P->end && *P->p == '.') {
        const char *f = ++P->p;
        int ns = 0, nd = 0;

        while (P->p < P->end && is_digit(*P->p)) {
            if (nd < 9)
                ns = ns * 10 + (*P->p - '0'), nd++;
            P->p++;
        }
        if (P->p == f)
            return fail_here(P, P->p, "expected digits after '.' in time");
        while (nd++ < 9)
            ns *= 10;
        dt->nanosecond = ns;
    }
    return 0;
}

static int scan_datetime(pg__toml_parser_t *P, pg_toml_value_t *v, bool has_date)
{
    pg_toml_datetime_t *dt = &v->u.dt;
    const char *s = P->p;
    int rc;

    memset(dt, 0, sizeof *dt);
    if (!has_date) {
        v->type = PG_TOML_TIME_LOCAL;
        return scan_time(P, dt);
    }
    dt->year = digits(s, P->end, 4);
    dt->month = s + 4 < P->end && s[4] == '-' ? digits(s + 5, P->end, 2) : -1;
    dt->day = dt->month >= 0 && s + 7 < P->end && s[7] == '-' ? digits(s + 8, P->end, 2) : -1;
    if (dt->year < 0 || dt->day < 0)
        return pg__toml_fail(P, pg__toml_pos(P, s), "malformed date (expected YYYY-MM-DD)");
    if (dt->month < 1 || dt->month > 12)
        return pg__toml_fail(P, pg__toml_pos(P, s), "month %02d out of range (01-12)", dt->month);
    if (dt->day < 1 || dt->day > days_in_month(dt->year, dt->month))
        return pg__toml_fail(P, pg__toml_pos(P, s), "day %02d out of range for %04d-%02d", dt->day,
                             dt->year, dt->month);
    P->p = s + 10;
    v->type = PG_TOML_DATE_LOCAL;
    /* 'T', 't', or a space followed by a time. */
    if (P->p < P->end && (*P->p == 'T' || *P->p == 't' ||
                          (*P->p == ' ' && P->end - P->p > 3 && is_digit(P->p[1]) &&
                           is_digit(P->p[2]) && P->p[3] == ':'))) {
        P->p++;
        if ((rc = scan_time(P, dt)) < 0)
            return rc;
        v->type = PG_TOML_DATETIME_LOCAL;
        if (P->p < P->end && (*P->p == 'Z' || *P->p == 'z')) {
            P->p++;
            v->type = PG_TOML_DATETIME;
        } else if (P->p < P->end && (*P->p == '+' || *P->p == '-')) {
            const char *o = P->p;
            int oh = digits(o + 1, P->end, 2);
            int om = oh >= 0 && o + 3 < P->end && o[3] == ':' ? digits(o + 4, P->end, 2) : -1;

            if (om < 0)
                return pg__toml_fail(P, pg__toml_pos(P, o),
                                     "malformed time offset (expected Z, +HH:MM or -HH:MM)");
            if (oh > 23 || om > 59)
                return pg__toml_fail(P, pg__toml_pos(P, o), "time offset %.6s out of range", o);
            dt->offset_minutes = (oh * 60 + om) * (*o == '-' ? -1 : 1);
            P->p = o + 6;
            v->type = PG_TOML_DATETIME;
        }
    }
    return 0;
}

/* --- scalars -------------------------------------------------------------------------- */

static inline bool is_num_char(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.' || c == '+' || c == '-';
}

int pg__toml_scan_scalar(pg__toml_parser_t *P, pg_toml_value_t *v)
{
    const char *s = P->p;
    int rc;

    switch (*s) {
    case '"':
    case '\'':
        if ((rc = scan_string(P, true)) < 0)
            return rc;
        v->type = PG_TOML_STRING;
        v->u.str.len = P->scratch_len;
        v->u.str.s = pg__toml_alloc(P, P->scratch_len + 1);
        if (v->u.str.s == NULL)
            return -ENOMEM;
        memcpy(v->u.str.s, P->scratch, P->scratch_len + 1);
        return 0;
    case 't':
        if (P->end - s >= 4 && memcmp(s, "true", 4) == 0) {
            v->type = PG_TOML_BOOL, v->u.b = true, P->p += 4;
            return 0;
        }
        break;
    case 'f':
        if (P->end - s >= 5 && memcmp(s, "false", 5) == 0) {
            v->type = PG_TOML_BOOL, v->u.b = false, P->p += 5;
            return 0;
        }
        break;
    default:
        break;
    }
    if (is_digit(*s)) {
        /* Dates start with 4 digits and '-', times with 2 digits and ':'. */
        if (P->end - s >= 5 && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) && s[4] == '-')
            return scan_datetime(P, v, true);
        if (P->end - s >= 3 && is_digit(s[1]) && s[2] == ':')
            return scan_datetime(P, v, false);
    }
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) {
        const char *w = s;

        while (w < P->end && is_bare((unsigned char)*w) && w - s < 40)
            w++;
        if (!(w - s == 3 && (memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0)))
            return pg__toml_fail(P, pg__toml_pos(P, s),
                                 "expected a value, found '%.*s' (a string needs quotes; "
                                 "booleans are true and false)",
                                 (int)(w - s), s);
    }
    if (is_digit(*s) || *s == '+' || *s == '-' || *s == 'i' || *s == 'n') {
        while (P->p < P->end && is_num_char((unsigned char)*P->p))
            P->p++;
        return scan_number(P, s, P->p, v);
    }
    return fail_here(P, s,
                     "expected a value (a string, number, true/false, date-time, array or "
                     "inline table)");
}
