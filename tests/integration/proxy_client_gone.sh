#!/usr/bin/env bash
# integration.proxy_client_gone: a client that leaves while its exchange waits on the upstream
# (issue 5, "Timeouts"; nginx's proxy_ignore_client_abort off) is noticed at once, not when a
# timeout fires; the exchange ends with status 499 and cause client_gone in the access log and
# profgate_errors_total, and its upstream connection is closed, never pooled. A half-close
# after a whole request is not leaving: the client still gets its whole response.
#  1. connect wait: an upstream whose listen backlog is full (its SYNs unanswered),
#     connect_timeout 30 s; the client sends a GET and resets -> the access log line (499,
#     client_gone) appears well before 30 s (a bounded wait of 10 s), and profgate's
#     connecting socket is gone (ss: no SYN-SENT of profgate to that port);
#  2. connect wait, the client closes (FIN) after a POST's head, its body not sent -> the
#     same, at once;
#  3. response wait: an upstream that holds the request; the client resets -> the upstream
#     sees its connection closed (EOF), the access log says 499 client_gone;
#  4. half-close: a GET, then shutdown(SHUT_WR) while the upstream holds it; the upstream then
#     answers -> the client gets the whole response, then the close (and the upstream's
#     connection was not closed under it);
#  5. a client that keeps sending while its exchange waits on a connect is read only so far
#     (one buffer): what the client manages to send stays far below what it tries (32 MiB).
#     (Its reset is then seen only once reading resumes -- here at connect_timeout: the
#     documented limit, not checked.)
# Clients are python3 raw sockets in the background; the test tells one to go on by creating
# a file, and reads what it saw from its output file.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need "$PG" python3 ss
pg_ports P FULL HOLD

cat >"$T/pg.toml" <<EOF
[server]
listen            = "127.0.0.1:$P"
workers           = 1
access_log        = "$T/access.log"
access_log_format = "json"
metrics_path      = "/metrics"
drain_timeout     = "2s"

[[upstream]]
name            = "full"
address         = "127.0.0.1:$FULL"
connect_timeout = "30s"

[[upstream]]
name    = "hold"
address = "127.0.0.1:$HOLD"
timeout = "30s"

[[route]]
prefix   = "/full"
upstream = "full"

[[route]]
prefix   = "/hold"
upstream = "hold"
EOF

# full (pg_full_upstream): its connects never complete.
# hold: logs "got PATH" for each request head, then waits: a path under /hold/answer is
# answered (Content-Length 6, "hello\n") once the file $T/go-<last path element> exists;
# any other is never answered. Either way "eof PATH" is logged when profgate closes the
# connection (EOF or reset), "answered PATH" once answered.
cat >"$T/servers.py" <<'EOF'
import os, socket, sys, threading, time
what, port, tdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
lock = threading.Lock()
def log(line):
    with lock:
        with open(os.path.join(tdir, "hold.events"), "a") as f:
            f.write(line + "\n")
s.listen(16)
def handle(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            log("got " + path)
            if path.startswith("/hold/answer"):
                go = os.path.join(tdir, "go-" + path.rsplit("/", 1)[1])
                for _ in range(300):
                    if os.path.exists(go):
                        break
                    time.sleep(0.05)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
                log("answered " + path)
                continue
            c.settimeout(60)
            try:
                d = c.recv(65536)
            except OSError:
                d = b""
            if not d:
                log("eof " + path)
                return
    except OSError:
        log("eof " + path)
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
EOF

pg_full_upstream full "$FULL"
pg_start hold python3 "$T/servers.py" hold "$HOLD" "$T"
pg_wait_port "$HOLD" || pg_fail "the holding upstream did not start"
pg_gateway profgate "$T/pg.toml" "$P"
pgpid=$(pg_pid profgate)

# profgate's sockets connecting to the full upstream (SYN-SENT), as counted by ss
connecting()
{
    ss -tnpH state syn-sent "( dport = :$FULL )" | grep -c "pid=$pgpid,"
}
# log_has TARGET STATUS: the access log has a line for TARGET with STATUS and cause client_gone
log_has()
{
    grep -F "\"target\":\"$1\"" "$T/access.log" 2>/dev/null |
        grep -F "\"status\":$2," | grep -qF '"cause":"client_gone"'
}
events_has()
{
    grep -qxF "$1" "$T/hold.events" 2>/dev/null
}

# client.py PORT MODE PATH [GOFILE]: one client connection, as MODE says; where it waits, it
# waits for GOFILE to exist (30 s at most)
cat >"$T/client.py" <<'EOF'
import os, socket, struct, sys, time
port, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
gofile = sys.argv[4] if len(sys.argv) > 4 else None
def wait_go():
    for _ in range(600):
        if os.path.exists(gofile):
            return
        time.sleep(0.05)
s = socket.create_connection(("127.0.0.1", port))
def reset():
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
if mode == "reset-after-get":            # a GET, then a reset once the test says
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    wait_go()
    reset()
elif mode == "fin-after-post-head":      # a POST's head (10 body bytes announced), then close
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    wait_go()
    s.close()
elif mode == "half-close":               # a GET, SHUT_WR, then read the whole response
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    print("shut", flush=True)
    s.settimeout(30)
    got = b""
    while True:
        try:
            d = s.recv(65536)
        except OSError as e:
            print("error", e); break
        if not d:
            break
        got += d
    head, _, body = got.partition(b"\r\n\r\n")
    print("status:", head.split(b"\r\n")[0].decode())
    print("body:", repr(body))
elif mode == "flood":                    # a GET, then up to 32 MiB more, without blocking
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    s.setblocking(False)
    chunk = b"GET /full/x HTTP/1.1\r\nHost: a\r\n\r\n" * 2000
    sent, idle = 0, 0
    while sent < 32 << 20 and idle < 20:
        try:
            n = s.send(chunk)
            sent += n
            idle = 0
        except BlockingIOError:
            idle += 1
            time.sleep(0.05)
    print(sent, flush=True)
    reset()
EOF

# the number of profgate's connects to the full upstream in progress is at least (ge) or
# exactly (eq) N
connecting_is()
{
    [ "$(connecting)" -"$1" "$2" ]
}

# connect_wait N MODE PATH WHAT: case N, a client (client.py MODE PATH) that leaves while
# profgate connects to the full upstream, is seen gone (WHAT: how it left)
connect_wait()
{
    local pid
    python3 "$T/client.py" "$P" "$2" "$3" "$T/go$1" >"$T/c$1.out" 2>&1 &
    pid=$!
    pg_poll 10 connecting_is ge 1 || pg_fail "$1: profgate never started connecting to the full upstream"
    touch "$T/go$1"
    wait "$pid"
    pg_check "$1: connect wait, $4: access log line with 499, client_gone (within 10 s of a 30 s connect_timeout)" \
        pg_poll 10 log_has "$3" 499
    pg_check "$1: and profgate's connect to the upstream was abandoned" pg_poll 10 connecting_is eq 0
}

# --- 1. connect wait, reset ---
connect_wait 1 reset-after-get /full/one "client reset"

# --- 2. connect wait, FIN before the request is whole ---
connect_wait 2 fin-after-post-head /full/two "client closed mid-request"

# --- 3. response wait, reset ---
python3 "$T/client.py" "$P" reset-after-get /hold/three "$T/go3" >"$T/c3.out" 2>&1 &
c3=$!
pg_poll 10 events_has "got /hold/three" || pg_fail "3: the request never reached the upstream"
touch "$T/go3"
wait "$c3"
pg_check "3: response wait, client reset: the upstream sees its connection closed" \
    pg_poll 10 events_has "eof /hold/three"
pg_check "3: access log line with 499, client_gone" pg_poll 10 log_has /hold/three 499

# --- 4. half-close after a whole request: still answered ---
python3 "$T/client.py" "$P" half-close /hold/answer/four >"$T/c4.out" 2>&1 &
c4=$!
pg_poll 10 events_has "got /hold/answer/four" || pg_fail "4: the request never reached the upstream"
pg_poll 10 grep -q shut "$T/c4.out" || pg_fail "4: the client did not half-close"
# profgate has the client's FIN by now (loopback); a moment more for it to act on it, as the
# code before this test did (it dropped the exchange): this wait only orders events
sleep 0.5
touch "$T/go-four"
wait "$c4"
pg_check "4: the half-closed client gets the whole response, then the close ($(tr '\n' ' ' <"$T/c4.out"))" \
    bash -c "! grep -q '^error' '$T/c4.out' && grep -qx 'status: HTTP/1.1 200 OK' '$T/c4.out' && grep -qxF \"body: b'hello\\\\n'\" '$T/c4.out'"
pg_check "4: the upstream answered on an open connection (no EOF before it)" \
    bash -c "grep -qxF 'answered /hold/answer/four' '$T/hold.events' && ! grep -qxF 'eof /hold/answer/four' '$T/hold.events'"

# --- 5. a client that keeps sending while the exchange waits on a connect ---
sent=$(python3 "$T/client.py" "$P" flood /full/five)
pg_check "5: a client flooding a waiting exchange is read only so far (sent ${sent:-?} of 33554432 bytes)" \
    bash -c "[ -n '$sent' ] && [ '$sent' -lt 16777216 ]"

m=$(curl -s -m 5 "http://127.0.0.1:$P/metrics" | awk '$1 == "profgate_errors_total{cause=\"client_gone\"}" { print $2 }')
pg_check "metrics: profgate_errors_total{cause=\"client_gone\"} counts them (got ${m:-none}, want >= 3)" \
    bash -c "[ -n '$m' ] && [ '$m' -ge 3 ]"

pg_stop_check profgate
[ "$PG_FAILED" -gt 0 ] && { pg_log profgate; cat "$T/access.log" "$T/hold.events" 2>/dev/null; }
pg_done
