#!/usr/bin/env bash
# integration.proxy_backpressure: bodies are streamed both ways, never buffered whole, with
# backpressure (issue 5: "bounded per-connection buffers with backpressure (stop reading one
# side while the other's write queue is full)"). A 256 MiB body each way through profgate,
# against a python upstream that can stop reading or a client that does not read:
#  - upload: while the upstream reads nothing, the client's sending stalls (what it managed to
#    push stops growing, far short of the body) and profgate's RSS stays within a bound far
#    below the body; once the upstream reads, every byte arrives, counted by the upstream;
#  - download: while the client reads nothing, the upstream's sending stalls likewise and
#    profgate's RSS stays bounded; then the client receives every byte.
# Kernel socket buffers (up to tcp_rmem's max per socket) hold part of the body: the stall is
# detected as a plateau, not as a byte count, and the RSS bound is what proves profgate holds
# no more than its own bounded buffers. Under a sanitizer (its allocator keeps freed memory in
# quarantine) the RSS figures are printed, not checked.
# ctest-timeout: 120
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"

pg_ports P U
MIB=256
RSS_BOUND_KB=$((32 * 1024))
sanitized=0
[ -n "$(pg_san "$PG")" ] && sanitized=1

cat >"$T/pg.toml" <<EOF
[server]
listen  = "127.0.0.1:$P"
workers = 1

[[upstream]]
name    = "sink"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "sink"
EOF

# The upstream: POST /upload waits for the file "go" before it reads the body, then answers
# "got N"; GET /download?mib=N sends N MiB, writing its progress to the file "sent".
cat >"$T/upstream.py" <<'EOF'
import os, socket, sys, threading, time
port, d = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(16)
def handle(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        x = c.recv(65536)
        if not x:
            return
        buf += x
    head, body = buf.split(b"\r\n\r\n", 1)
    line = head.split(b"\r\n")[0].decode()
    if line.startswith("POST /upload"):
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while not os.path.exists(d + "/go"):
            time.sleep(0.05)
        got = len(body)
        while got < n:
            x = c.recv(1 << 20)
            if not x:
                break
            got += len(x)
        msg = b"got %d\n" % got
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(msg) + msg)
    elif line.startswith("GET /download"):
        n = int(line.split("mib=")[1].split()[0]) << 20
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
        chunk, sent, last = b"x" * 65536, 0, 0
        while sent < n:
            c.sendall(chunk); sent += len(chunk)
            if sent % (1 << 20) == 0 or time.monotonic() - last > 0.1:
                last = time.monotonic()
                with open(d + "/sent.tmp", "w") as f:
                    f.write("%d\n" % sent)
                os.replace(d + "/sent.tmp", d + "/sent")
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
EOF

# The client: upload or download MiB through profgate; prints "plateau P1 P2 TOTAL" (bytes
# moved at 2 s and 3 s into the stall; RSS of profgate then, in KiB), then "done N".
cat >"$T/client.py" <<'EOF'
import os, socket, sys, time
what, port, mib, d, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
total = mib << 20
def rss():
    for l in open("/proc/%s/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
def sent_by_upstream():
    try:
        return int(open(d + "/sent").read())
    except (OSError, ValueError):
        return 0
s = socket.create_connection(("127.0.0.1", port))
print("rss0", rss(), flush=True)
if what == "upload":
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
    s.setblocking(False)
    chunk, pushed, marks, t0 = b"y" * 65536, 0, {}, time.monotonic()
    while time.monotonic() - t0 < 3.0 and pushed < total:
        try:
            pushed += s.send(chunk[: total - pushed])
        except BlockingIOError:
            time.sleep(0.01)
        for m in (2.0, 3.0):
            if m not in marks and time.monotonic() - t0 >= m:
                marks[m] = pushed
    print("plateau", marks.get(2.0, pushed), marks.get(3.0, pushed), rss(), flush=True)
    open(d + "/go", "w").close()
    s.setblocking(True)
    while pushed < total:
        pushed += s.send(chunk[: total - pushed])
    s.settimeout(60); resp = b""
    while b"\n" not in resp.split(b"\r\n\r\n", 1)[-1] or b"\r\n\r\n" not in resp:
        x = s.recv(65536)
        if not x:
            break
        resp += x
    print("done", resp.split(b"\r\n\r\n", 1)[-1].decode().strip(), flush=True)
else:
    s.sendall(b"GET /download?mib=%d HTTP/1.1\r\nHost: a\r\n\r\n" % mib)
    time.sleep(2.0); p2 = sent_by_upstream()
    time.sleep(1.0); p3 = sent_by_upstream()
    print("plateau", p2, p3, rss(), flush=True)
    s.settimeout(60); got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    n = len(got.split(b"\r\n\r\n", 1)[1])
    while n < total:
        x = s.recv(1 << 20)
        if not x:
            break
        n += len(x)
    print("done got %d" % n, flush=True)
EOF

pg_start up python3 "$T/upstream.py" "$U" "$T"
pg_wait_port "$U" || pg_fail "the upstream did not start"
pg_gateway profgate "$T/pg.toml" "$P"
pid=$(pg_pid profgate)
curl -s -m 10 -o /dev/null "http://127.0.0.1:$P/download?mib=1" # warm: first buffers, pool

total=$((MIB << 20))
for what in upload download; do
    timeout 100 python3 "$T/client.py" "$what" "$P" "$MIB" "$T" "$pid" >"$T/$what.out" 2>&1
    read -r _ rss0 < <(grep '^rss0' "$T/$what.out")
    read -r _ p2 p3 rss < <(grep '^plateau' "$T/$what.out")
    echo "$what: moved ${p2:-?} then ${p3:-?} bytes of $total while stalled; profgate RSS ${rss0:-?} -> ${rss:-?} KiB"
    pg_check "$what: the sender stalled while the other end did not read (${p2:-?} = ${p3:-?} bytes)" \
        test -n "${p3:-}" -a "${p2:-x}" = "${p3:-y}"
    pg_check "$what: far short of the body (${p3:-?} of $total bytes)" \
        test -n "${p3:-}" -a "${p3:-0}" -lt $((total / 2))
    if [ "$sanitized" = 0 ]; then
        pg_check "$what: profgate's RSS grew by less than $((RSS_BOUND_KB / 1024)) MiB (${rss0:-?} -> ${rss:-?} KiB)" \
            test -n "${rss:-}" -a $((${rss:-0} - ${rss0:-0})) -lt "$RSS_BOUND_KB"
    fi
    rm -f "$T/go" "$T/sent"
done
pg_check "upload: every byte reached the upstream ($(grep '^done' "$T/upload.out"))" \
    grep -qx "done got $total" "$T/upload.out"
pg_check "download: every byte reached the client ($(grep '^done' "$T/download.out"))" \
    grep -qx "done got $total" "$T/download.out"
pg_check "profgate still serves" \
    bash -c "curl -s -m 10 -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$P/download?mib=1' | grep -qx 200"

pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    cat "$T/upload.out" "$T/download.out"
fi
pg_done
