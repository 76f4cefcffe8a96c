#!/usr/bin/env bash
# integration.proxy_connect_retry: a connect to an upstream that times out (issue 5: "upstream
# connect (-> 502 or retry on another pooled connection for idempotent requests)"). The
# upstream accepts one connection, which profgate pools, and then no more: its listen backlog
# is full, so a further connect waits for a SYN-ACK that never comes. While the pooled
# connection is busy with a request the upstream holds, profgate must connect anew; the test
# then lets the held request finish, so that by the time connect_timeout (2 s) runs out the
# pooled connection is idle again:
#  1. a GET is retried on it and answered 200 by the upstream (on its one connection);
#  2. a POST is not (RFC 9110 9.2.2): 502 naming the timeout, not "tried twice";
#  3. a GET whose connect times out while the pooled connection is still busy: 502 at once
#     (no second connect: what the test cannot see, the wait being the same either way, is
#     checked by "retried" not being logged again), naming the timeout;
#  4. a GET retried on the pooled connection, which the upstream then closes unanswered:
#     502 saying it was tried twice (no third try).
# (The upstream answers "conn 1 PATH", except a path under /close/: it closes its one
# connection, and exits.)
# The waits below only order events (the test sees the connect in progress with ss before it
# lets the held request go); nothing is timed.
# ctest-timeout: 90
. "$(dirname "$0")/lib/common.sh"

pg_need "$PG" python3 curl ss
pg_ports P U

cat >"$T/pg.toml" <<EOF
[server]
listen        = "127.0.0.1:$P"
workers       = 1
drain_timeout = "2s"

[[upstream]]
name            = "one"
address         = "127.0.0.1:$U"
connect_timeout = "2s"
timeout         = "30s"

[[route]]
prefix   = "/"
upstream = "one"
EOF

# The upstream: accepts one connection, then fills its backlog (0) with two connections of
# its own and accepts no more. On its one connection it answers each request with
# "conn 1 PATH"; a path under /slow/NAME once the file $T/go-NAME exists. Logs "got PATH".
cat >"$T/up.py" <<'EOF'
import os, socket, sys, time
port, tdir = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(0)
print("listening", flush=True)
c, _ = s.accept()
held = []
for _ in range(2):
    f = socket.socket(); f.setblocking(False)
    f.connect_ex(("127.0.0.1", port)); held.append(f)
print("full", flush=True)
buf = b""
while True:
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            sys.exit(0)
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1].decode()
    n = 0
    for l in lines[1:]:
        if l.lower().startswith(b"content-length:"):
            n = int(l.split(b":")[1])
    while len(buf) < n:
        buf += c.recv(65536)
    buf = buf[n:]
    print("got " + path, flush=True)
    if path.startswith("/close/"):
        c.close()
        sys.exit(0)
    if path.startswith("/slow/"):
        go = os.path.join(tdir, "go-" + path.rsplit("/", 1)[1])
        for _ in range(600):
            if os.path.exists(go):
                break
            time.sleep(0.05)
    body = ("conn 1 " + path + "\n").encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
EOF

pg_start up python3 "$T/up.py" "$U" "$T"
pg_poll 10 grep -q listening "$T/up.log" || pg_fail "the upstream did not start"
pg_gateway profgate "$T/pg.toml" "$P"
pgpid=$(pg_pid profgate)
base=http://127.0.0.1:$P

connecting()
{
    [ "$(ss -tnpH state syn-sent "( dport = :$U )" | grep -c "pid=$pgpid,")" -ge 1 ]
}

# req NAME METHOD PATH [DATA]: curl in the background, "BODY STATUS" into $T/NAME; its PID
# added to $reqs (waited for with reqs_wait)
reqs=
req()
{
    curl -s -m 30 -X "$2" ${4:+-d "$4"} -w ' %{http_code}' "$base$3" >"$T/$1" 2>&1 &
    reqs+=" $!"
}
reqs_wait()
{
    local pid
    for pid in $reqs; do wait "$pid"; done
    reqs=
}

got=$(curl -s -m 10 -w ' %{http_code}' "$base/first")
pg_check "the first request opens the upstream's one connection (got: $got)" \
    test "$got" = "conn 1 /first
 200"
pg_poll 10 grep -q full "$T/up.log" || pg_fail "the upstream's backlog is not full"

# --- 1. GET: retried on the pooled connection once it is idle again ---
req slow1 GET /slow/1
pg_poll 10 grep -qx "got /slow/1" "$T/up.log" || pg_fail "1: the held request did not arrive"
req get1 GET /retry/1
pg_poll 10 connecting || pg_fail "1: profgate did not connect anew"
touch "$T/go-1"
reqs_wait
pg_check "1: the held request is answered ($(cat "$T/slow1"))" test "$(cat "$T/slow1")" = "conn 1 /slow/1
 200"
pg_check "1: the GET whose connect timed out is answered on the pooled connection ($(cat "$T/get1"))" \
    test "$(cat "$T/get1")" = "conn 1 /retry/1
 200"
pg_check "1: profgate says it retried" \
    grep -q 'upstream "one" (127.0.0.1:'"$U"'): connect timed out after 2000 ms; retried on a pooled connection' \
    "$T/profgate.log"

# --- 2. POST: not retried ---
req slow2 GET /slow/2
pg_poll 10 grep -qx "got /slow/2" "$T/up.log" || pg_fail "2: the held request did not arrive"
req post2 POST /retry/2 a=1
pg_poll 10 connecting || pg_fail "2: profgate did not connect anew"
touch "$T/go-2"
reqs_wait
pg_check "2: a POST whose connect timed out: 502 naming it, not retried ($(cat "$T/post2"))" \
    test "$(cat "$T/post2")" = "upstream \"one\" (127.0.0.1:$U) unreachable: connect timed out after 2000 ms
 502"
pg_check "2: the upstream never saw it" bash -c "! grep -q '^got /retry/2' '$T/up.log'"

# --- 3. no idle pooled connection when the connect times out: 502, no second wait ---
req slow3 GET /slow/3
pg_poll 10 grep -qx "got /slow/3" "$T/up.log" || pg_fail "3: the held request did not arrive"
got=$(curl -s -m 30 -w ' %{http_code}' "$base/retry/3")
pg_check "3: a GET whose connect timed out with the pooled connection busy: 502 ($got)" \
    test "$got" = "upstream \"one\" (127.0.0.1:$U) unreachable: connect timed out after 2000 ms
 502"
touch "$T/go-3"
reqs_wait
pg_check "3: the held request is answered ($(cat "$T/slow3"))" test "$(cat "$T/slow3")" = "conn 1 /slow/3
 200"

pg_check "3: no retry logged for it" test "$(grep -c 'retried on a pooled connection' "$T/profgate.log")" = 1

# --- 4. retried on the pooled connection, which then fails: 502, tried twice ---
req slow4 GET /slow/4
pg_poll 10 grep -qx "got /slow/4" "$T/up.log" || pg_fail "4: the held request did not arrive"
req get4 GET /close/4
pg_poll 10 connecting || pg_fail "4: profgate did not connect anew"
touch "$T/go-4"
reqs_wait
pg_check "4: the upstream got it on its pooled connection" grep -qx "got /close/4" "$T/up.log"
pg_check "4: the retry failed too: 502, tried twice ($(cat "$T/get4"))" \
    test "$(cat "$T/get4")" = "upstream \"one\" (127.0.0.1:$U) closed the connection before responding (tried twice)
 502"

pg_stop_check profgate
[ "$PG_FAILED" -gt 0 ] && { pg_log profgate; cat "$T/up.log"; }
pg_done
