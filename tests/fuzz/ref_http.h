/* ref_http: a strict reader of HTTP/1.x messages (RFC 9112), the reference fuzz_conn holds
 * the gateway to: it is written from the RFC's grammar, shares no code with llhttp or
 * pg_head, and accepts nothing the grammar does not (no obs-fold, no bare CR or LF, no
 * control bytes in a field, one Content-Length, Transfer-Encoding exactly "chunked" and never
 * beside Content-Length or in HTTP/1.0, chunk extensions by the grammar, CRLF after chunk
 * data). Allowances, all harmless to framing (the gateway rewrites the request line): obs-text
 * (0x80-0xff) in a request target, several SP between the request line's words (RFC 9112 3
 * lets a recipient parse on whitespace-delimited words), empty lines (CRLF) before a request
 * line (RFC 9112 2.2), and any method token (the gateway refuses those llhttp does not know).
 * A request target must be origin-form ("/..."), "*", or hold a ':' (absolute or authority
 * form); which form fits which method is the gateway's business.
 * Chunk extensions are read as ';' and then anything but control bytes up to the CR (no
 * reader frames a body by them).
 * Owns: nothing; a ref_msg_t holds offsets into the bytes it was given.
 * Threads: any. Errors: a message is REF_BAD with the offset of its first bad byte. */
#ifndef REF_HTTP_H
#define REF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { REF_DONE = 0, REF_MORE = 1, REF_BAD = 2 };
enum { REF_BODY_NONE = 0, REF_BODY_CL, REF_BODY_CHUNKED, REF_BODY_EOF };

#define REF_MAX_FIELDS 200

typedef struct ref_field {
    size_t name_off, name_len;
    size_t value_off, value_len; /* without the OWS around it */
} ref_field_t;

typedef struct ref_msg {
    int state;       /* REF_DONE, REF_MORE (a valid prefix), REF_BAD */
    size_t end;      /* DONE: bytes of the message; MORE: bytes given; BAD: the bad byte */
    const char *why; /* BAD: which rule (static text) */
    bool head_done;  /* the head (up to its empty line) has been read */
    size_t head_len; /* head_done: its bytes; the body starts here */
    size_t method_off, method_len, target_off, target_len; /* requests */
    int status;                                            /* responses */
    int minor;                                             /* HTTP/1.<minor> */
    ref_field_t f[REF_MAX_FIELDS];
    size_t nf;
    int body;       /* REF_BODY_* (head_done only) */
    uint64_t cl;    /* REF_BODY_CL */
    size_t payload; /* body payload bytes seen so far (chunk data, or CL bytes) */
} ref_msg_t;

/* Known findings the reader tolerates, so that fuzzing can go on past them (off by default:
 * the fuzzers fail on them). ref_known_from_env() reads PG_FUZZ_KNOWN, a comma-separated
 * list of their names:
 * "eol": line ends as llhttp 8's non-strict build reads them: the byte after the CR that
 *   ends a head, a field line with an empty value, a chunk-size line or a trailer section is
 *   taken as the LF whatever it is, and a bare LF ends the request line and may be the empty
 *   line that ends a head or trailers (known: the gateway accepts and relays these).
 * "te": a request's Transfer-Encoding fields, taken together as one list, end in chunked and
 *   have it once (other codings before it, in one field or several), or hold no coding at
 *   all (then there is no body), as llhttp reads them (known: the gateway forwards such
 *   requests as they are).
 * "head": the gateway's own answers (errors, metrics) to a HEAD request carry a body (read by
 *   fuzz_conn, which then reads them as answers to a GET).
 * "resp": an upstream's bad response framing reaches the client as is (read by fuzz_conn:
 *   issue 5 has the gateway answer 502 or cut the response instead). */
enum { REF_KNOWN_EOL = 1, REF_KNOWN_TE = 2, REF_KNOWN_HEAD = 4, REF_KNOWN_RESP = 8 };
extern int ref_known;
void ref_known_from_env(void);

/* One request from the start of [p, p+n). */
void ref_parse_request(const char *p, size_t n, ref_msg_t *m);
/* One response from the start of [p, p+n): head_request says it answers a HEAD; eof says
 * the connection ended after these n bytes (ends a close-delimited body). */
void ref_parse_response(const char *p, size_t n, bool head_request, bool eof, ref_msg_t *m);

/* Field i's name equals lower (a lower-case name), case-insensitively. */
bool ref_field_is(const char *p, const ref_field_t *f, const char *lower);
/* The first field named lower, or NULL. */
const ref_field_t *ref_find(const char *p, const ref_msg_t *m, const char *lower);
/* Copy of the body's payload (chunked: the chunk data only) into out (cap bytes at most);
 * returns the payload's length (which may exceed cap: then only cap bytes were copied). */
size_t ref_payload(const char *p, const ref_msg_t *m, char *out, size_t cap);

#endif
