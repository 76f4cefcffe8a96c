/* pg_addr: the small value parsers declared in pg_config.h — socket addresses, CIDR networks,
 * durations — and CIDR matching. They never resolve names (no DNS: a config must mean the
 * same thing on every start), and every refusal comes with a static string saying why, so the
 * config layer can put it after FILE:LINE:COL. */
#include "pg_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

/* Port: decimal digits only, 1..65535 (no sign, no spaces). */
static int parse_port(const char *s, uint16_t *port, const char **why)
{
    unsigned long v = 0;
    size_t i;

    if (*s == '\0') {
        *why = "missing port after ':'";
        return -EINVAL;
    }
    for (i = 0; s[i]; i++) {
        if (!isdigit((unsigned char)s[i]) || i >= 5) {
            *why = "port must be a number 1..65535";
            return -EINVAL;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        *why = "port must be a number 1..65535";
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

static int parse_unix(const char *path, pg_addr_t *out, const char **why)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
    size_t len = strlen(path);

    if (len == 0) {
        *why = "missing path after \"unix:\"";
        return -EINVAL;
    }
    if (len >= sizeof un->sun_path) {
        *why = "unix socket path is too long (at most 107 bytes)";
        return -EINVAL;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len + 1);
    out->kind = PG_ADDR_UNIX;
    out->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return 0;
}

int pg_addr_parse(const char *text, pg_addr_t *out, const char **why)
{
    char host[64];
    const char *colon;
    size_t hlen;
    uint16_t port;
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(out->text, sizeof out->text, "%s", text);
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, out, why);
    if (*text == '\0') {
        *why = "empty address";
        return -EINVAL;
    }
    if (*text == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
        const char *end = strchr(text, ']');

        if (end == NULL) {
            *why = "missing ']' after the IPv6 address";
            return -EINVAL;
        }
        hlen = (size_t)(end - text - 1);
        if (hlen == 0 || hlen >= sizeof host) {
            *why = "not a numeric IPv6 address";
            return -EINVAL;
        }
        memcpy(host, text + 1, hlen);
        host[hlen] = '\0';
        if (end[1] != ':') {
            *why = "missing :PORT after the IPv6 address (e.g. [::1]:8080)";
            return -EINVAL;
        }
        if ((rc = parse_port(end + 2, &port, why)) < 0)
            return rc;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            *why = "not a numeric IPv6 address";
            return -EINVAL;
        }
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        out->kind = PG_ADDR_TCP;
        out->salen = sizeof *in6;
        return 0;
    }

    colon = strrchr(text, ':');
    if (colon == NULL) {
        *why = "missing :PORT (write HOST:PORT, [IPv6]:PORT or unix:PATH)";
        return -EINVAL;
    }
    if (strchr(text, ':') != colon) {
        *why = "IPv6 addresses go in brackets, e.g. [::1]:8080";
        return -EINVAL;
    }
    hlen = (size_t)(colon - text);
    if (hlen == 0) {
        *why = "missing host before ':' (write 0.0.0.0:PORT for every IPv4 address)";
        return -EINVAL;
    }
    if ((rc = parse_port(colon + 1, &port, why)) < 0)
        return rc;
    if (hlen >= sizeof host) {
        *why = "host names are not resolved: write a numeric IPv4 address, [IPv6] or localhost";
        return -EINVAL;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';

    struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;

    if (strcasecmp(host, "localhost") == 0) {
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
        size_t i;

        for (i = 0; host[i]; i++)
            if (!isdigit((unsigned char)host[i]) && host[i] != '.')
                break;
        *why = host[i] ? "host names are not resolved: write a numeric IPv4 address, [IPv6] "
                         "or localhost"
                       : "not a numeric IPv4 address (four numbers 0..255 separated by dots)";
        return -EINVAL;
    }
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    out->kind = PG_ADDR_TCP;
    out->salen = sizeof *in;
    return 0;
}

int pg_cidr_parse(const char *text, pg_cidr_t *out, const char **why)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    int max, prefix, i;

    memset(out, 0, sizeof *out);
    if (hlen == 0) {
        *why = "empty network (write e.g. 127.0.0.0/8 or ::1/128)";
        return -EINVAL;
    }
    if (hlen >= sizeof host) {
        *why = "not a numeric IPv4 or IPv6 address";
        return -EINVAL;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        *why = "not a numeric IPv4 or IPv6 address";
        return -EINVAL;
    }
    prefix = max;
    if (slash) {
        const char *p = slash + 1;

        if (*p == '\0' || strlen(p) > 3) {
            *why = "prefix length after '/' must be a number (0..32 for IPv4, 0..128 for IPv6)";
            return -EINVAL;
        }
        prefix = 0;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p)) {
                *why = "prefix length after '/' must be a number (0..32 for IPv4, 0..128 for "
                       "IPv6)";
                return -EINVAL;
            }
            prefix = prefix * 10 + (*p - '0');
        }
        if (prefix > max) {
            *why = max == 32 ? "prefix length must be 0..32 for IPv4"
                             : "prefix length must be 0..128 for IPv6";
            return -EINVAL;
        }
    }
    out->prefix = prefix;
    /* Bits beyond the prefix are almost always a typo (10.1.2.3/8 meant 10.0.0.0/8 or
     * 10.1.2.3/32); refuse rather than guess. */
    for (i = prefix; i < max; i++) {
        if (out->addr[i / 8] & (0x80 >> (i % 8))) {
            *why = "address has bits set beyond the prefix length";
            return -EINVAL;
        }
    }
    return 0;
}

bool pg_cidr_match(const pg_cidr_t *c, const struct sockaddr *sa)
{
    static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t addr[16];
    int family, bytes, rem;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        family = AF_INET;
        memcpy(addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        /* A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; they must match
         * IPv4 networks ("127.0.0.0/8" would otherwise never match on [::]:PORT). */
        if (memcmp(&in6->sin6_addr, mapped_prefix, 12) == 0) {
            family = AF_INET;
            memcpy(addr, (const uint8_t *)&in6->sin6_addr + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, &in6->sin6_addr, 16);
        }
    } else {
        return false;
    }
    if (family == AF_INET && c->family == AF_INET6) {
        memmove(addr + 12, addr, 4);
        memcpy(addr, mapped_prefix, 12);
        family = AF_INET6;
    }
    if (family != c->family)
        return false;
    bytes = c->prefix / 8;
    rem = c->prefix % 8;
    if (memcmp(addr, c->addr, (size_t)bytes) != 0)
        return false;
    if (rem && ((addr[bytes] ^ c->addr[bytes]) & (uint8_t)(0xff00 >> rem)))
        return false;
    return true;
}

/* "500ms", "10s", "2m", "1h" and sums of them as Go writes them ("1m30s"). Whole numbers
 * only: the proxy's timers tick in milliseconds. */
int pg_duration_parse(const char *text, uint64_t *ms, const char **why)
{
    const char *p = text;
    uint64_t total = 0;

    if (*p == '\0') {
        *why = "empty duration (write e.g. \"500ms\", \"10s\", \"2m\" or \"1h\")";
        return -EINVAL;
    }
    while (*p) {
        uint64_t n = 0, unit;
        size_t ulen;

        if (!isdigit((unsigned char)*p)) {
            *why = "not a duration (write e.g. \"500ms\", \"10s\", \"2m\" or \"1h\")";
            return -EINVAL;
        }
        for (; isdigit((unsigned char)*p); p++) {
            if (n > (UINT64_MAX - 9) / 10) {
                *why = "duration is too large";
                return -EINVAL;
            }
            n = n * 10 + (uint64_t)(*p - '0');
        }
        for (ulen = 0; isalpha((unsigned char)p[ulen]); ulen++)
            ;
        if (ulen == 2 && strncmp(p, "ms", 2) == 0) {
            unit = 1;
        } else if (ulen == 1 && *p == 's') {
            unit = 1000;
        } else if (ulen == 1 && *p == 'm') {
            unit = 60 * 1000;
        } else if (ulen == 1 && *p == 'h') {
            unit = 3600 * 1000;
        } else if (*p == '\0') {
            *why = "missing unit (ms, s, m or h), e.g. \"10s\"";
            return -EINVAL;
        } else if (*p == '.') {
            *why = "fractions are not accepted: write \"1500ms\" rather than \"1.5s\"";
            return -EINVAL;
        } else {
            *why = "unknown unit (use ms, s, m or h)";
            return -EINVAL;
        }
        p += ulen;
        if (n > UINT64_MAX / unit || total > UINT64_MAX - n * unit) {
            *why = "duration is too large";
            return -EINVAL;
        }
        total += n * unit;
    }
    *ms = total;
    return 0;
}
