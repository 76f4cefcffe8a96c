#!/usr/bin/env python3
"""seed_conn.py DIR: writes fuzz_conn's seed inputs (the committed corpus/conn/ was made by
it): the smuggling and chunk-split cases of the harden_* integration tests, pipelining,
bodies, agents, timeouts on the virtual clock, refused and failing upstream connects,
backpressure both ways, drain, a TCP client, each as fuzz_conn's input (the language is in
conn_input.h): a mode byte, the piece count and upstream's connection behaviour, the raw-answer
length (or big request size), (length, control) per piece, the client's bytes."""
import os
import sys

UP_CL, UP_CHUNKED, UP_CLOSE, UP_EOF, UP_SECOND, UP_EARLY, UP_100, UP_RAW = range(8)
SPLIT_ANSWERS = 8
END_OPEN, END_SHUT, END_CLOSE, END_RST = (0, 16, 32, 48)
RUN_OUT, BIG = 64, 128
HOLD, STALE, PAUSE, RESUME, DRAIN = 1, 2, 4, 8, 128
UP_OK, UP_REFUSE, UP_CLOSE_AT_ONCE, UP_DEAF = range(4)
UP_SECOND_CONN, TCP = 64, 128


def ADV(n):
    """piece control: the clock moves on by fc_advance_ms[n] (conn_input.c) after the piece:
    1 50 ms, 2 120 (past header_timeout), 3 250, 4 350 (past idle_timeout), 5 550 (past an
    upstream's timeout), 6 1100 (past pool_idle_timeout), 7 6000 (past the linger)"""
    return n << 4


def seed(answer=UP_CL, end=END_OPEN, pieces=(), data=b"", raw=b"", split=False,
         run_out=False, big=False, up=UP_OK, up_second=False, tcp=False, big_req=0):
    """pieces: lengths, or (length, control) pairs; the last piece is the rest. big_req (with
    big): the client first sends a POST with a body of big_req * 16 KiB (big_req < 64)."""
    mode = answer | end | (SPLIT_ANSWERS if split else 0) | (RUN_OUT if run_out else 0) | \
        (BIG if big else 0)
    out = bytes([mode, len(pieces) | up << 4 | (UP_SECOND_CONN if up_second else 0) |
                 (TCP if tcp else 0), len(raw) or big_req])
    for p in pieces:
        n, ctl = p if isinstance(p, tuple) else (p, 0)
        out += bytes([n & 255, ctl])
    return out + data + raw


def cuts(data, *points):
    """piece lengths that cut data at these offsets"""
    last, out = 0, []
    for p in points:
        out.append(p - last)
        last = p
    return out


G = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
P = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
C = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
CB = C + b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n"
B = b"POST /x HTTP/1.1\r\nHost: a\r\n"

S = {
    "get": seed(data=G),
    "get_close": seed(data=b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    "pipeline3": seed(pieces=[40], data=G + P + G),
    "pipeline_hold": seed(pieces=[(len(G) + 3, HOLD), (30, HOLD)], data=G + P + G),
    "post_split": seed(pieces=cuts(P, 20, len(P) - 2), data=P),
    "chunked": seed(data=CB),
    "chunked_splits": seed(pieces=cuts(CB, len(C) + 1, len(C) + 4, len(C) + 9, len(C) + 10,
                                       len(C) + 12, len(C) + 20), data=CB),
    "chunked_trailer": seed(data=C + b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n" + G),
    "chunked_pipeline": seed(pieces=[len(C) + 5], data=CB + G),
    "chunked_100": seed(answer=UP_100, data=B + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    "chunked_early": seed(answer=UP_EARLY, pieces=[len(C) + 3], data=CB),
    "http10": seed(answer=UP_CHUNKED, data=b"GET /old HTTP/1.0\r\n\r\n"),
    "http10_keepalive": seed(data=b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + G),
    "head": seed(answer=UP_CHUNKED, data=b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n" + G),
    "absolute": seed(data=b"GET http://h:1/abs?q=1 HTTP/1.1\r\nHost: h\r\n\r\nGET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n"),
    "hop_fields": seed(data=b"GET /hop HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.0 x\r\nX-Keep: 2\r\n\r\n"),
    "pprof": seed(data=b"GET /debug/pprof/heap?debug=1 HTTP/1.1\r\nHost: h\r\n\r\n" + G),
    "pprof_svc": seed(data=b"GET /svc/debug/pprof/profile?seconds=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
    "pprof_off": seed(data=b"GET /api/debug/pprof/heap HTTP/1.1\r\nHost: h\r\n\r\n"),
    "pprof_ui": seed(data=b"GET /debug/pprof/ui/ HTTP/1.1\r\nHost: h\r\n\r\n"),
    "metrics": seed(data=b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n"),
    "second_stale": seed(answer=UP_SECOND, pieces=[(len(G), STALE)], data=G + G + P),
    "stale_pool": seed(pieces=[(len(G), STALE), (len(G), STALE)], data=G + G + G),
    "close_answers": seed(answer=UP_CLOSE, data=G + G),
    "eof_answer": seed(answer=UP_EOF, split=True, data=G + G),
    "client_shut": seed(end=END_SHUT, pieces=[len(G) + 10], data=G + P),
    "client_rst": seed(end=END_RST, pieces=[(len(G) + 10, HOLD)], data=G + P),
    "client_close_mid_body": seed(end=END_CLOSE, data=C + b"5\r\nhel"),
    "raw_bad_chunks": seed(answer=UP_RAW, data=G + G,
                           raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    "raw_cl_short": seed(answer=UP_RAW, data=G, raw=b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhi"),
    "raw_two": seed(answer=UP_RAW, data=G, raw=b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "413": seed(data=B + b"Content-Length: 600\r\n\r\n" + b"x" * 600),
    "413_chunked": seed(pieces=[len(C) + 4], data=C + b"200\r\n" + b"y" * 512 + b"\r\n1\r\nz\r\n0\r\n\r\n"),
    "431": seed(data=b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 1100 + b"\r\n\r\n"),
}
# harden_smuggling's cases: each must be refused with nothing upstream
SMUGGLE = [
    B + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    B + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    B + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    B + b"Content-Length: 5, 6\r\n\r\nhello!",
    B + b"Content-Length: +5\r\n\r\nhello",
    B + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    B + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    B + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    B + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    b"GET /x HTTP/1.1\nHost: a\n\n",
    b"GET /x HTTP/1.1\r\nHost: a\rX-B: 1\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-N: a\0b\r\n\r\n",
    b"GET /x\tHTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET /x\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
    C + b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    C + b"5 ;\0x\r\nhello\r\n0\r\n\r\n",
    C + b"zz\r\n",
    C + b"5\r\nhelloXX0\r\n\r\n",
    C + b"5\r\nhello\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    C + b"5\r\nhello\r\n3\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    C + b"3\r\nabc\rX",
    B + b"Upgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
]
for i, d in enumerate(SMUGGLE):
    S["smuggle_%02d" % i] = seed(data=G + d + G)
# split across reads: obs-fold after a LF at a read's end; bad framing in the read after the head
S["fold_split"] = seed(pieces=[len(G) + 41], data=G + b"GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n")
S["bad_chunk_next_read"] = seed(pieces=[len(C)], data=C + b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
S["bad_chunk_late"] = seed(pieces=[len(C) + 10, 5], data=C + b"5\r\nhello\r\n3\r\nabcXY" + G)
S["crlf_split"] = seed(pieces=[len(C) + 8, 1], data=C + b"5\r\nhello\r\n0\r\n\r\n" + G)
S["crlf_split_bad"] = seed(pieces=[len(C) + 8, 1], data=C + b"5\r\nhello\rX0\r\n\r\n" + G)
# timeouts on the virtual clock: 408 for a head left unfinished, 504 for an upstream that
# never answers, a silent close when idle, a cut when an answer stalls, the pool's idle timer
H = b"GET /slow HTTP/1.1\r\nHost: h\r\nX-A:"
S["timeout_head_408"] = seed(run_out=True, data=H)
S["timeout_head_mid_run"] = seed(pieces=[(len(H), ADV(2))], data=H + b" 1\r\n\r\n" + G)
S["timeout_method_only"] = seed(run_out=True, data=b"GET ")
S["timeout_chunk_size_408"] = seed(run_out=True, data=C + b"5")
S["timeout_idle"] = seed(run_out=True, data=G + G)
S["timeout_idle_mid_run"] = seed(pieces=[(len(G), ADV(4))], data=G + G)
S["timeout_body_504"] = seed(run_out=True, data=P[:-2])
S["timeout_deaf_504"] = seed(run_out=True, up=UP_DEAF, data=G + G)
S["timeout_held_504"] = seed(pieces=[(len(G), HOLD | ADV(5))], data=G + G)
S["timeout_answer_stalls"] = seed(answer=UP_RAW, pieces=[(len(G), ADV(5))], data=G + G,
                                  raw=b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhi")
S["timeout_pool_idle"] = seed(pieces=[(len(G), ADV(6))], run_out=True, data=G + G)
S["timeout_early_then_stall"] = seed(answer=UP_EARLY, run_out=True, data=P[:-2])
S["timeout_linger"] = seed(pieces=[(len(G), ADV(7))], data=b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + G)
# refused and failing connects: 502, idempotent requests tried twice, never a POST
S["refused"] = seed(up=UP_REFUSE, data=G)
S["refused_post"] = seed(up=UP_REFUSE, data=P)
S["refused_second"] = seed(up=UP_REFUSE, up_second=True, pieces=[(len(G), STALE)], data=G + G + P)
S["refused_pprof_ok"] = seed(up=UP_REFUSE, data=b"GET /debug/pprof/heap HTTP/1.1\r\nHost: h\r\n\r\n" + G)
S["closed_at_once"] = seed(up=UP_CLOSE_AT_ONCE, data=G)
S["closed_at_once_post"] = seed(up=UP_CLOSE_AT_ONCE, data=P)
S["closed_second_stale"] = seed(up=UP_CLOSE_AT_ONCE, up_second=True, pieces=[(len(G), STALE)], data=G + G)
S["deaf_second"] = seed(up=UP_DEAF, up_second=True, run_out=True, pieces=[(len(G), STALE)], data=G + G)
# backpressure: a client that stops reading a big answer, then reads again or goes away
S["big_paused"] = seed(big=True, pieces=[(1, PAUSE), (len(G) - 1, 0)], data=G + G)
S["big_paused_chunked"] = seed(answer=UP_CHUNKED, big=True, pieces=[(1, PAUSE), (len(G), 0)], data=G + G)
S["big_paused_eof"] = seed(answer=UP_EOF, big=True, pieces=[(1, PAUSE)], data=G)
S["big_paused_gone"] = seed(big=True, end=END_RST, pieces=[(1, PAUSE)], data=G + G)
S["big_paused_close"] = seed(big=True, end=END_CLOSE, pieces=[(1, PAUSE), (len(G), 0)], data=G + G)
S["big_paused_timeout"] = seed(big=True, run_out=True, pieces=[(1, PAUSE), (len(G) - 1, ADV(5))], data=G)
S["big_resume"] = seed(big=True, pieces=[(1, PAUSE), (len(G) - 1, 0), (3, RESUME)], data=G + G)
S["big_http10"] = seed(answer=UP_CHUNKED, big=True, pieces=[(1, PAUSE)], data=b"GET /old HTTP/1.0\r\n\r\n")
# drain: the exchange in progress finishes, then everything closes
S["drain_idle"] = seed(pieces=[(len(G), DRAIN)], data=G + G)
S["drain_in_flight"] = seed(pieces=[(len(G), HOLD | DRAIN)], data=G + G)
S["drain_mid_head"] = seed(pieces=[(10, DRAIN)], data=G + G)
S["drain_mid_body"] = seed(pieces=[(len(P) - 2, DRAIN)], data=P + G)
S["drain_deadline"] = seed(pieces=[(len(G), HOLD | DRAIN), (0, HOLD | ADV(7))], up=UP_DEAF, data=G)
S["drain_big_paused"] = seed(big=True, pieces=[(1, PAUSE), (len(G) - 1, DRAIN)], data=G)
S["drain_pool"] = seed(pieces=[(len(G), 0), (len(G), DRAIN)], data=G + G + G)
# the client over loopback TCP
S["tcp_get"] = seed(tcp=True, data=G + P)
S["tcp_pipeline_hold"] = seed(tcp=True, pieces=[(len(G) + 3, HOLD), (30, HOLD)], data=G + P + G)
S["tcp_client_rst"] = seed(tcp=True, end=END_RST, pieces=[(len(G) + 10, HOLD)], data=G + P)
S["tcp_client_shut"] = seed(tcp=True, end=END_SHUT, pieces=[len(G) + 10], data=G + P)
S["tcp_big_paused"] = seed(tcp=True, big=True, pieces=[(1, PAUSE), (len(G) - 1, 0)], data=G + G)
S["tcp_big_paused_gone"] = seed(tcp=True, big=True, end=END_RST, pieces=[(1, PAUSE)], data=G + G)
S["tcp_timeout_head_408"] = seed(tcp=True, run_out=True, data=H)
S["tcp_drain_in_flight"] = seed(tcp=True, pieces=[(len(G), HOLD | DRAIN)], data=G + G)
# an upstream that does not read a big request body: the gateway stops reading the client
S["big_req"] = seed(big=True, big_req=48, data=G)
S["big_req_deaf"] = seed(big=True, big_req=48, up=UP_DEAF, run_out=True, data=G)
S["big_req_deaf_wakes"] = seed(big=True, big_req=48, up=UP_DEAF, pieces=[(1, RESUME)], data=G)
S["big_req_deaf_paused"] = seed(big=True, big_req=40, up=UP_DEAF, pieces=[(1, PAUSE | RESUME)], data=G)
S["big_req_deaf_drain"] = seed(big=True, big_req=48, up=UP_DEAF, pieces=[(1, DRAIN | ADV(3))], data=G)
S["big_req_tcp_rst"] = seed(big=True, big_req=48, up=UP_DEAF, tcp=True, end=END_RST, data=G)
# F12: a 304 or 204 with Content-Length ends with its head; conditional requests get a 304
# that keeps the Content-Length a 200 would have had
CG = b"GET /a HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n"
S["finding_resp_304_content_length"] = seed(answer=UP_RAW, run_out=True, data=G + G,
                                            raw=b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")
S["finding_resp_204_content_length_extra"] = seed(answer=UP_RAW, data=G,
                                                  raw=b"HTTP/1.1 204 OK\r\nContent-Length: 9\r\n\r\nho")
S["finding_resp_204_chunked"] = seed(answer=UP_RAW, data=G + G,
                                     raw=b"HTTP/1.1 204 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
S["conditional_304"] = seed(data=CG + G)
S["conditional_304_chunked_split"] = seed(answer=UP_CHUNKED, split=True, data=CG + G + CG)
S["conditional_304_close"] = seed(answer=UP_CLOSE, data=CG + G)
S["conditional_304_http10"] = seed(answer=UP_EOF, data=b"GET /old HTTP/1.0\r\nIf-Modified-Since: x\r\n\r\n")
# F10, F11: their reproducers under the finding's name
S["finding_paused_client_cut_as_upstream_stall"] = S["big_paused_timeout"]
S["finding_method_only_no_408"] = S["timeout_method_only"]

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
for name, b in S.items():
    assert len(b) < 8192, name
    with open(os.path.join(d, name), "wb") as f:
        f.write(b)
