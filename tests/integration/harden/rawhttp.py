#!/usr/bin/env python3
"""rawhttp.py: raw-socket helpers for the harden_* integration tests (no HTTP library, so
nothing is normalised on the way).

  rawhttp.py upstream PORT LOG     TCP server on 127.0.0.1:PORT; every byte received is
                                   appended to LOG, and to LOG.c<N> for the N-th connection
                                   (1-based; "conn N"/"close N" lines to LOG.conns); each
                                   complete request (head, and the body it announces) is
                                   answered "200 ok" (keep-alive).
  rawhttp.py unixsink PATH LOG     the same on a Unix socket (a stand-in agent).
  rawhttp.py send PORT HEX [SECS] [DELAY]
                                   connect, send the bytes (hex), read until the server
                                   closes or SECS pass (default 5); with DELAY, send them one
                                   byte every DELAY seconds (slowloris), stopping when the
                                   server closes. Prints "STATUS CLOSED ELAPSED" (STATUS of
                                   the first response, 0 if none; CLOSED 1 when the server
                                   closed the connection) and the first response line on
                                   stderr.
  rawhttp.py parts PORT SECS DELAY HEX...
                                   connect, send each HEX as one write, DELAY seconds apart
                                   (DELAY "@FILE": before each next write, wait until FILE
                                   exists, 10 s at most), then read until the server closes
                                   or SECS pass (counted from the last write). Prints
                                   "STATUS CLOSED ELAPSED NRESP" (NRESP: response status lines
                                   seen at the start of a line; a body "HTTP/1.1 " line
                                   would count too: test bodies have none).
"""
import os
import socket
import sys
import threading
import time


def chunked_len(rest):
    """Length of the chunked body at the start of rest (chunks, last chunk, trailer section),
    or None while incomplete; bad framing takes all of rest (the connection is then useless)."""
    i = 0
    while True:
        j = rest.find(b"\r\n", i)
        if j < 0:
            return None
        try:
            size = int(rest[i:j].split(b";")[0], 16)
        except ValueError:
            return len(rest)
        if size == 0:
            k = rest.find(b"\r\n\r\n", j)
            return None if k < 0 else k + 4
        i = j + 2 + size + 2
        if i > len(rest):
            return None
        if rest[i - 2:i] != b"\r\n":
            return len(rest)


def complete(buf):
    """Length of the first complete request in buf (head and body, as a plain upstream
    frames it: Content-Length, or chunked with trailers), or None: the sink answers only once
    the body it was promised has arrived, as a real service would."""
    if b"\r\n\r\n" not in buf:
        return None
    head, rest = buf.split(b"\r\n\r\n", 1)
    hlen = len(head) + 4
    low = head.lower()
    if b"\ntransfer-encoding:" in low and b"chunked" in low:
        n = chunked_len(rest)
        return None if n is None else hlen + n
    for line in low.split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            try:
                n = int(line.split(b":", 1)[1].strip())
            except ValueError:
                return hlen
            return hlen + n if len(rest) >= n else None
    return hlen


def serve(sock, log):
    conns = open(log + ".conns", "a")
    lock = threading.Lock()
    count = [0]

    def handle(c):
        buf = b""
        with lock:
            count[0] += 1
            cn = count[0]
            open("%s.c%d" % (log, cn), "ab").close()
            conns.write("conn %d\n" % cn)
            conns.flush()
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                with lock:
                    with open(log, "ab") as f:
                        f.write(d)
                    with open("%s.c%d" % (log, cn), "ab") as f:
                        f.write(d)
                buf += d
                while True:
                    n = complete(buf)
                    if n is None:
                        break
                    buf = buf[n:]
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except OSError:
            pass
        c.close()
        with lock:
            conns.write("close %d\n" % cn)
            conns.flush()

    while True:
        c, _ = sock.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def read_reply(s, t0, secs, got=b"", closed=0):
    """Read until the server closes or secs pass since t0; returns (bytes, closed)."""
    while not closed and time.monotonic() - t0 < secs:
        s.settimeout(max(0.05, secs - (time.monotonic() - t0)))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = 1
            break
        if not d:
            closed = 1
            break
        got += d
    return got, closed


def status_of(got):
    line = got.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    sys.stderr.write(line.decode("latin-1") + "\n")
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit():
        return int(parts[1])
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "upstream":
        port, log = int(sys.argv[2]), sys.argv[3]
        open(log, "ab").close()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(64)
        serve(s, log)
    elif cmd == "unixsink":
        path, log = sys.argv[2], sys.argv[3]
        open(log, "ab").close()
        open(log + ".conns", "a").close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(64)
        serve(s, log)
    elif cmd == "send":
        port, data = int(sys.argv[2]), bytes.fromhex(sys.argv[3])
        secs = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
        delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=secs)
        got, closed = b"", 0
        try:
            if delay:
                s.settimeout(delay)
                for i in range(len(data)):
                    try:
                        s.send(data[i:i + 1])
                    except OSError:
                        break
                    try:
                        d = s.recv(65536)
                        if not d:
                            closed = 1
                            break
                        got += d
                    except socket.timeout:
                        pass
                    if time.monotonic() - t0 > secs:
                        break
            else:
                s.sendall(data)
            got, closed = read_reply(s, t0, secs, got, closed)
        except (ConnectionResetError, BrokenPipeError):
            closed = 1
        print(status_of(got), closed, "%.2f" % (time.monotonic() - t0))
    elif cmd == "parts":
        port, secs, delay = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
        s = socket.create_connection(("127.0.0.1", port), timeout=secs)
        got, closed = b"", 0
        for i, h in enumerate(sys.argv[5:]):
            if i and delay.startswith("@"):
                for _ in range(100):
                    if os.path.exists(delay[1:]):
                        break
                    time.sleep(0.1)
            elif i:
                time.sleep(float(delay))
            try:
                s.sendall(bytes.fromhex(h))
            except (ConnectionResetError, BrokenPipeError):
                closed = 1
                break
        t0 = time.monotonic()
        got, closed = read_reply(s, t0, secs, got, closed)
        nresp = sum(1 for ln in (b"\n" + got).split(b"\n")[1:] if ln.startswith(b"HTTP/1.1 "))
        print(status_of(got), closed, "%.2f" % (time.monotonic() - t0), nresp)
    else:
        sys.exit("usage: rawhttp.py upstream|unixsink|send|parts ...")


if __name__ == "__main__":
    main()
