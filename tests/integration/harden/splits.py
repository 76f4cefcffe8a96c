#!/usr/bin/env python3
"""splits.py: chunked requests, good and badly framed, cut at random points into several
writes (20 ms apart, so that the proxy reads them separately), against a proxy in front of
rawhttp.py's recording upstream. For the harden_chunk_splits integration test.

  splits.py PORT UPLOG N SEED

Each request is a chunked POST with a unique path. A good one (Connection: close; some with
a trailer field) must get 200, and the upstream must have received its body byte for byte. A bad one has good chunks,
then bad framing (an invalid or oversize chunk size, chunk data not followed by CRLF, a CR
then another byte), then a "GET /smuggled-..." request: it must get 400 and a close; the
upstream may have received a prefix of what was sent that stops before the first byte that
makes the framing bad (what arrived in earlier reads than that byte, and was valid as far as
it went: "ffff..." before the digit that overflows), never that byte or anything after it,
and never a smuggled request; the upstream connection that got such a prefix must have been
closed. Prints one line per failure and a
summary; exit status 1 when anything failed.
"""
import glob
import os
import random
import socket
import sys
import time

# bad framing, and the offset of its first byte that makes it bad (the 17th hex digit
# overflows 64 bits; X where the CRLF after chunk data belongs)
BAD = [(b"zz\r\n", 0), (b"fffffffffffffffffff\r\n", 16), (b"3\r\nabcXY", 6),
       (b"3\r\nabc\rX", 7), (b"-1\r\n", 0)]


def chunks(rng):
    out = b""
    for _ in range(rng.randint(1, 3)):
        data = bytes(rng.choice(b"abcdefghij\r\n") for _ in range(rng.randint(1, 40)))
        ext = b";x=y" if rng.random() < 0.3 else b""
        out += b"%x%s\r\n%s\r\n" % (len(data), ext, data)
    return out


def send(port, data, rng):
    cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
    parts = [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    got, closed = b"", False
    try:
        for k, p in enumerate(parts):
            if k:
                time.sleep(0.02)
            s.sendall(p)
    except OSError:
        pass
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not d:
            closed = True
            break
        got += d
    s.close()
    line = got.split(b"\r\n", 1)[0].split(b" ")
    status = int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
    return status, closed


def upstream_view(uplog, path):
    """(connection number, the bytes that connection got from path's request line on)."""
    for f in glob.glob(uplog + ".c*"):
        d = open(f, "rb").read()
        i = d.find(b"POST " + path + b" HTTP/1.1\r\n")
        if i >= 0:
            return int(f.rsplit(".c", 1)[1]), d[i:]
    return None, None


def main():
    port, uplog, n, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    cases, fails = [], 0
    for i in range(n):
        path = b"/split-%d-%d" % (seed, i)
        body = chunks(rng)
        if rng.random() < 0.5:
            head = b"POST %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" \
                   b"Transfer-Encoding: chunked\r\n\r\n" % path
            last = b"0\r\nX-Trailer: %d\r\n\r\n" % i if rng.random() < 0.3 else b"0\r\n\r\n"
            status, closed = send(port, head + body + last, rng)
            cases.append(("good", path, body + last, status, closed))
        else:
            head = b"POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" % path
            bad, off = rng.choice(BAD)
            tail = bad + b"0\r\n\r\nGET /smuggled-%d HTTP/1.1\r\nHost: a\r\n\r\n" % i
            status, closed = send(port, head + body + tail, rng)
            cases.append(("bad", path, body + bad[:off], status, closed))
    time.sleep(0.5)
    conns = open(uplog + ".conns").read().split("\n")
    for kind, path, good, status, closed in cases:
        name = path.decode()
        cn, view = upstream_view(uplog, path)
        got = view.split(b"\r\n\r\n", 1)[1] if view else b""
        if kind == "good":
            if status != 200 or not got.startswith(good):
                print("FAIL good %s: status %d, upstream body %r (want %r)" % (name, status, got, good))
                fails += 1
        else:
            if status != 400 or not closed:
                print("FAIL bad %s: status %d closed %s" % (name, status, closed))
                fails += 1
            elif view is not None and (not good.startswith(got) or "close %d" % cn not in conns):
                print("FAIL bad %s: upstream got %r (may only be a prefix of %r, what came before "
                      "the bad byte), its connection closed: %s"
                      % (name, got, good, "close %d" % cn in conns))
                fails += 1
    smuggled = b"smuggled" in open(uplog, "rb").read()
    if smuggled:
        print("FAIL a smuggled request reached the upstream")
        fails += 1
    ngood = sum(1 for c in cases if c[0] == "good")
    nprefix = sum(1 for c in cases if c[0] == "bad" and upstream_view(uplog, c[1])[0] is not None)
    print("%d requests (%d good, %d bad; %d bad ones had a prefix upstream, cut), %d failed"
          % (n, ngood, n - ngood, nprefix, fails))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
