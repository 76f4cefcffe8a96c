/* pg_http: small HTTP/1.1 helpers the connection state machine uses to rewrite heads and
 * to answer on its own: hop-by-hop header detection (RFC 9110 7.6.1), token lists,
 * query parameters, client address text for X-Forwarded-For, and whole error responses.
 * Owns: nothing; every function works on caller memory.
 * Threads: any. Errors: see each function. */
#ifndef PG_HTTP_H
#define PG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Header names the proxy acts on, so that a head's names are compared once, when parsed
 * (pg_head stores the kind), not by name at every use. The hop-by-hop ones (RFC 9110
 * 7.6.1) come first, so that PG_HTTP_HDR_IS_HOP is one range check. */
typedef enum pg_http_hdr {
    PG_HTTP_HDR_OTHER = 0,
    PG_HTTP_HDR_CONNECTION,
    PG_HTTP_HDR_KEEP_ALIVE,
    PG_HTTP_HDR_PROXY_CONNECTION,
    PG_HTTP_HDR_TE,
    PG_HTTP_HDR_TRAILER,
    PG_HTTP_HDR_UPGRADE,
    PG_HTTP_HDR_PROXY_AUTHENTICATE,
    PG_HTTP_HDR_PROXY_AUTHORIZATION, /* last hop-by-hop */
    PG_HTTP_HDR_HOST,
    PG_HTTP_HDR_VIA,
    PG_HTTP_HDR_AUTHORIZATION,
    PG_HTTP_HDR_X_FORWARDED_FOR,
    PG_HTTP_HDR_X_FORWARDED_PROTO,
    PG_HTTP_HDR_X_FORWARDED_HOST,
    PG_HTTP_HDR_TRANSFER_ENCODING,
    PG_HTTP_HDR_CONTENT_LENGTH,
} pg_http_hdr_t;

#define PG_HTTP_HDR_IS_HOP(k)                                                                   \
    ((k) >= PG_HTTP_HDR_CONNECTION && (k) <= PG_HTTP_HDR_PROXY_AUTHORIZATION)

/* The kind of header name [name, name+len), case-insensitive; PG_HTTP_HDR_OTHER for any
 * other name. One length switch and at most two comparisons. */
pg_http_hdr_t pg_http_hdr_kind(const char *name, size_t len);

/* Headers a proxy must not forward (RFC 9110 7.6.1): Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Upgrade, Proxy-Authenticate, Proxy-Authorization.
 * Transfer-Encoding is hop-by-hop too, but profgate relays message bodies with their
 * framing untouched, so it and Content-Length stay; the caller decides. Case-insensitive. */
bool pg_http_is_hop_by_hop(const char *name, size_t len);

/* Case-insensitive comparison of a header name with a NUL-terminated lower-case name. */
bool pg_http_name_is(const char *name, size_t len, const char *lower);

/* Is tok one of the comma-separated tokens of list (e.g. a Connection header value)?
 * Whitespace around tokens is ignored; comparison is case-insensitive. */
bool pg_http_token_list_has(const char *list, size_t len, const char *tok, size_t toklen);

/* Value of query parameter name in q (the part after '?', without it), not
 * percent-decoded. Returns true and sets *val and *vlen when present ("a" and "a=" give "").*/
bool pg_http_query_get(const char *q, size_t qlen, const char *name, const char **val,
                       size_t *vlen);

/* Decimal digits only, no sign, value <= UINT32_MAX: 0 and *out set; else -EINVAL. */
int pg_http_parse_uint(const char *s, size_t len, unsigned long *out);

/* The address part of sa as text ("127.0.0.1", "::1"); "unix" for AF_UNIX; returns
 * length written (buf is NUL-terminated), 0 if size is too small. */
size_t pg_http_addr_text(const struct sockaddr *sa, char *buf, size_t size);

/* Standard reason phrase, "Unknown" for codes it does not know. */
const char *pg_http_reason(int status);

/* Does the Authorization value auth carry "Bearer <token>" (scheme case-insensitive,
 * RFC 9110 11.1)? The token is compared in time independent of where it differs. */
bool pg_http_bearer_ok(const char *auth, size_t alen, const char *token);

/* A complete text/plain response "HTTP/1.1 <status> <reason>" with body and a newline,
 * Content-Length, "Connection: close" when close, "X-Go-Pprof: 1" when pprof (so that
 * go tool pprof shows the body to its user). Returns the length, or 0 when buf is too
 * small (the caller's buffer should be >= 256 + strlen(body)). */
size_t pg_http_error_response(char *buf, size_t size, int status, const char *body, bool pprof,
                              bool close);
/* The same with extra header lines (each ending in CRLF, e.g. WWW-Authenticate). */
size_t pg_http_error_response_ex(char *buf, size_t size, int status, const char *body,
                                 bool pprof, bool close, const char *extra);

#endif
