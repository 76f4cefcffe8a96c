#!/usr/bin/env bash
# demo_service: randomstring on its own (no gateway): command line, how it starts its agent;
# then, without an agent: every endpoint, bad input answered 400/404/405/414/431, keep-alive,
# pipelining in order, and the process still serving and stopping cleanly (exit 0 on SIGTERM).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

pg_need "$RS"

# start_rs NAME SOCKET [ENV...]: randomstring (under env ENV...) on a free port, set in RS_PORT;
# waits for the port (and SOCKET, if not empty). A port free when picked can be taken before the
# bind (pg_free_port's range overlaps the kernel's ephemeral ports, used by parallel tests'
# clients): then it picks again, up to 3 times.
start_rs()
{
    local name=$1 sock=$2 attempt pid
    shift 2
    for attempt in 1 2 3; do
        pg_ports RS_PORT
        pg_start "$name" "${@:-env}" "$RS" --listen 127.0.0.1:$RS_PORT
        pid=$(pg_pid "$name")
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$RS_PORT") 2>/dev/null && { [ -z "$sock" ] || [ -S "$sock" ]; }; then
                return 0
            fi
            sleep 0.1
        done
        pg_stop "$name"
        [ $attempt -lt 3 ] && grep -q 'address already in use' "$T/$name.log" && continue
        pg_log "$name"
        echo "FAIL: randomstring ($name) did not come up"
        return 1
    done
}

# --- command line
pg_check "--help exits 0 and documents --listen and --agent-socket" \
    bash -c "'$RS' --help | grep -q -- '--listen HOST:PORT' && '$RS' --help | grep -q -- '--agent-socket PATH'"
"$RS" --listen nonsense >"$T/badlisten.out" 2>&1
rc=$?
pg_check "--listen without a port exits 2 and says so (rc=$rc)" \
    bash -c "[ $rc = 2 ] && grep -q 'expected HOST:PORT' '$T/badlisten.out'"
"$RS" --bogus >/dev/null 2>&1
rc=$?
pg_check "an unknown option exits 2 (rc=$rc)" [ "$rc" = 2 ]

# --- how randomstring starts its agent (the agent itself is tested elsewhere)
start_rs envagent "$T/env.sock" env PROFAGENT_SOCKET="$T/env.sock" || exit 1
APORT=$RS_PORT
pg_check "PROFAGENT_SOCKET alone starts the agent (its constructor) and the banner names it" \
    grep -q "agent $T/env.sock" "$T/envagent.log"
pg_check "that agent answers /debug/pprof/cmdline with randomstring's argv" \
    bash -c "curl -s -m 5 --unix-socket '$T/env.sock' http://agent/debug/pprof/cmdline | tr '\\0' ' ' | grep -q 'randomstring --listen 127.0.0.1:$APORT'"
"$RS" --listen 127.0.0.1:$(pg_free_port) --agent-socket "$T/env.sock" >"$T/agentbusy.out" 2>&1
rc=$?
pg_check "--agent-socket on a socket another process serves: exit 1, says so (rc=$rc)" \
    bash -c "[ $rc = 1 ] && grep -q 'cannot start the profiling agent on $T/env.sock' '$T/agentbusy.out'"
env PROFAGENT_SOCKET="$T/other.sock" "$RS" --listen 127.0.0.1:$(pg_free_port) \
    --agent-socket "$T/mine.sock" >"$T/agentboth.out" 2>&1
rc=$?
pg_check "--agent-socket differing from PROFAGENT_SOCKET: exit 1, names both (rc=$rc)" \
    bash -c "[ $rc = 1 ] && grep -q 'already runs on $T/other.sock' '$T/agentboth.out'"
pg_stop envagent TERM
rc=$?
pg_check "with its agent running, SIGTERM still exits 0 (rc=$rc) and removes the socket" \
    bash -c "[ $rc = 0 ] && [ ! -e '$T/env.sock' ]"

start_rs rs "" || exit 1
PORT=$RS_PORT
URL=http://127.0.0.1:$PORT

"$RS" --listen 127.0.0.1:$PORT >"$T/busy.out" 2>&1
rc=$?
pg_check "a busy port exits 1 naming the address and the cause (rc=$rc)" \
    bash -c "[ $rc = 1 ] && grep -q '127.0.0.1:$PORT: address already in use' '$T/busy.out'"

# status URL [curl args...]: the status code only
status()
{
    curl -s -o /dev/null -w '%{http_code}' "$@"
}

# --- /randomstring
curl -s -D "$T/h1" -o "$T/b1" "$URL/randomstring"
curl -s -o "$T/b2" "$URL/randomstring"
pg_check "GET /randomstring: 64 alphanumerics and a newline" \
    bash -c "grep -qx '[A-Za-z0-9]\{64\}' '$T/b1' && [ \$(wc -c <'$T/b1') = 65 ]"
pg_check "GET /randomstring: Content-Length 65, text/plain" \
    bash -c "grep -qi '^Content-Length: 65' '$T/h1' && grep -qi '^Content-Type: text/plain' '$T/h1'"
pg_check "two strings differ" bash -c "! cmp -s '$T/b1' '$T/b2'"
pg_check "?n=1000 gives 1000 characters" \
    bash -c "curl -s '$URL/randomstring?n=1000' | grep -qx '[A-Za-z0-9]\{1000\}'"
pg_check "?n=65536 (the maximum) is served" \
    bash -c "[ \$(curl -s '$URL/randomstring?n=65536' | wc -c) = 65537 ]"
curl -s -I "$URL/randomstring?n=10" >"$T/head"
pg_check "HEAD: 200, Content-Length 11, no body" \
    bash -c "grep -q '^HTTP/1.1 200' '$T/head' && grep -qi '^Content-Length: 11' '$T/head' && [ \$(curl -s -I '$URL/randomstring' -o /dev/null -w '%{size_download}') = 0 ]"
for q in 'n=0' 'n=65537' 'n=abc' 'n=-1' 'n=' 'n=1&n=2' 'x=1' 'n=99999999999999'; do
    pg_check "GET /randomstring?$q is 400" [ "$(status "$URL/randomstring?$q")" = 400 ]
done
pg_check "the 400 says the bound" \
    bash -c "curl -s '$URL/randomstring?n=0' | grep -q 'must be an integer in 1..65536'"
pg_check "the 400 names an unknown parameter" \
    bash -c "curl -s '$URL/randomstring?x=1' | grep -q 'unknown parameter \"x\"'"
curl -s -D "$T/h405" -o "$T/b405" -X POST "$URL/randomstring"
pg_check "POST /randomstring is 405 with Allow: GET, HEAD" \
    bash -c "grep -q '^HTTP/1.1 405' '$T/h405' && grep -qi '^Allow: GET, HEAD' '$T/h405'"
pg_check "DELETE /alloc is 405" [ "$(status -X DELETE "$URL/alloc?kb=1")" = 405 ]
pg_check "GET /nope is 404" [ "$(status "$URL/nope")" = 404 ]
pg_check "GET /randomstring/ is 404 (exact paths)" [ "$(status "$URL/randomstring/")" = 404 ]
pg_check "GET / lists the endpoints" bash -c "curl -s '$URL/' | grep -q '/contend?threads=T&ms=M'"

# --- exercise endpoints
pg_check "/alloc?kb=2048 keeps 2048 KiB live" \
    bash -c "curl -s '$URL/alloc?kb=2048' | grep -q 'live: 2048 KiB in 32 blocks'"
pg_check "a second /alloc adds up" \
    bash -c "curl -s '$URL/alloc?kb=100' | grep -q 'live: 2148 KiB in 34 blocks'"
pg_check "/alloc without kb is 400" [ "$(status "$URL/alloc")" = 400 ]
pg_check "/alloc?kb=262145 is 400" [ "$(status "$URL/alloc?kb=262145")" = 400 ]
pg_check "/free frees all of it" \
    bash -c "curl -s -X POST '$URL/free' | grep -q 'freed 2148 KiB in 34 blocks'"
pg_check "/free with a parameter is 400" [ "$(status "$URL/free?kb=1")" = 400 ]
pg_check "/contend?threads=4&ms=100 counts acquisitions" \
    bash -c "curl -s '$URL/contend?threads=4&ms=100' | grep -Eq '^4 threads contended for 100 ms: [1-9][0-9]* acquisitions'"
pg_check "/contend?threads=1 is 400" [ "$(status "$URL/contend?threads=1")" = 400 ]
pg_check "/contend?ms=10001 is 400" [ "$(status "$URL/contend?ms=10001")" = 400 ]
pg_check "/spawn?n=8 starts and joins 8 threads" \
    bash -c "curl -s '$URL/spawn?n=8' | grep -q 'spawned and joined 8 threads'"
pg_check "/spawn?n=257 is 400" [ "$(status "$URL/spawn?n=257")" = 400 ]
t=$(curl -s -o "$T/block" -w '%{time_total}' "$URL/block?ms=300")
pg_check "/block?ms=300 waits at least 300 ms (took ${t}s)" \
    bash -c "grep -q 'blocked 300 ms' '$T/block' && awk 'BEGIN{exit !($t >= 0.29)}'"
pg_check "/block?ms=0 is 400" [ "$(status "$URL/block?ms=0")" = 400 ]

# --- keep-alive, pipelining, framing, on raw sockets
cat >"$T/wire.py" <<'EOF'
import socket, sys

port = int(sys.argv[1])
failures = 0

def check(desc, ok):
    global failures
    print(("ok: " if ok else "FAIL: ") + desc)
    failures += 0 if ok else 1

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s, s.makefile("rb")

def response(f):
    """One response: (status, headers dict, body); None at EOF."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline().decode()
        if h in ("\r\n", ""):
            break
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers["content-length"]))
    return status, headers, body

def req(path, extra="", method="GET", version="1.1"):
    return ("%s %s HTTP/%s\r\nHost: t\r\n%s\r\n" % (method, path, version, extra)).encode()

# keep-alive: several requests, one after another, on one connection
s, f = connect()
lens = []
for n in (5, 6, 7):
    s.sendall(req("/randomstring?n=%d" % n))
    st, h, b = response(f)
    lens.append((st, len(b), h.get("connection")))
check("keep-alive: three requests answered on one connection %r" % lens,
      lens == [(200, 6, "keep-alive"), (200, 7, "keep-alive"), (200, 8, "keep-alive")])
s.close()

# pipelining: all sent at once, a blocking one in the middle, answers in request order
s, f = connect()
s.sendall(req("/randomstring?n=3") + req("/block?ms=150") + req("/randomstring?n=4") +
          req("/spawn?n=2", "Content-Length: 5\r\n", "POST") + b"hello" +
          req("/nope") + req("/contend?threads=2&ms=50") + req("/randomstring?n=9") +
          req("/randomstring?n=2", "Connection: close\r\n") + req("/randomstring?n=99"))
got = []
while True:
    r = response(f)
    if r is None:
        break
    got.append((r[0], r[2][:12]))
want_status = [200, 200, 200, 200, 404, 200, 200, 200]
check("pipelining: 8 answers, in order, then close after Connection: close: %r" % got,
      [g[0] for g in got] == want_status and len(got[0][1]) == 4 and got[1][1] == b"blocked 150 "
      and len(got[2][1]) == 5 and got[3][1] == b"spawned and " and got[5][1] == b"2 threads co"
      and len(got[6][1]) == 10 and len(got[7][1]) == 3)
s.close()

# a pipelined burst bigger than one read: 2000 requests in one write
s, f = connect()
s.sendall(b"".join(req("/randomstring?n=%d" % (1 + i % 50)) for i in range(2000)))
ok = True
for i in range(2000):
    st, h, b = response(f)
    ok = ok and st == 200 and len(b) == 2 + i % 50
check("pipelining: a burst of 2000 requests answered in order", ok)
s.close()

# HTTP/1.0: close by default, keep-alive when asked (what ab -k sends)
s, f = connect()
s.sendall(req("/randomstring", "", "GET", "1.0"))
st, h, b = response(f)
check("HTTP/1.0 without keep-alive: answered, Connection: close, then EOF",
      st == 200 and h.get("connection") == "close" and f.read() == b"")
s.close()
s, f = connect()
s.sendall(req("/randomstring", "Connection: Keep-Alive\r\n", "GET", "1.0"))
st1, h1, _ = response(f)
s.sendall(req("/randomstring", "Connection: Keep-Alive\r\n", "GET", "1.0"))
st2, h2, _ = response(f)
check("HTTP/1.0 with Connection: Keep-Alive stays open",
      (st1, st2) == (200, 200) and h1.get("connection") == "keep-alive")
s.close()

# half-close after the request: still answered
s, f = connect()
s.sendall(req("/randomstring?n=2"))
s.shutdown(socket.SHUT_WR)
st, h, b = response(f)
check("a request followed by FIN is still answered", st == 200 and len(b) == 3 and f.read() == b"")
s.close()

# malformed input: 400/414/431, Connection: close, reason from the parser
for name, data, want in (("garbage", b"BLAH\r\n\r\n", 400),
                         ("bad header", b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
                         ("url of 9000 bytes", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
                         ("40 KiB of headers", b"GET / HTTP/1.1\r\n" + b"X-A: " + b"b" * 40000 + b"\r\n\r\n", 431)):
    s, f = connect()
    s.sendall(data)
    r = response(f)
    check("%s: %d and close (%r)" % (name, want, r and r[2][:70]),
          r is not None and r[0] == want and r[1].get("connection") == "close" and f.read() == b"")
    s.close()

# a client that goes away with a blocking request outstanding does not hurt the server
s, f = connect()
s.sendall(req("/block?ms=200") + req("/randomstring"))
s.close()

sys.exit(1 if failures else 0)
EOF
python3 "$T/wire.py" "$PORT" >"$T/wire.out" 2>&1
rc=$?
cat "$T/wire.out"
PG_PASSED=$((PG_PASSED + $(grep -c '^ok: ' "$T/wire.out")))
PG_FAILED=$((PG_FAILED + $(grep -c '^FAIL: ' "$T/wire.out")))
[ $rc = 0 ] || grep -q '^FAIL: ' "$T/wire.out" || pg_fail "wire.py crashed (rc=$rc)"

# --- load, then still serving
ab -k -c 8 -n 5000 "$URL/randomstring" >"$T/ab.out" 2>&1
pg_check "ab -k -c 8 -n 5000: 5000 complete, 0 failed, all keep-alive" \
    bash -c "grep -q '^Complete requests: *5000' '$T/ab.out' && grep -q '^Failed requests: *0' '$T/ab.out' && grep -q '^Keep-Alive requests: *5000' '$T/ab.out'"
sleep 0.3
pg_check "still serving afterwards" \
    bash -c "curl -s '$URL/randomstring' | grep -qx '[A-Za-z0-9]\{64\}'"
pg_check "process still alive" kill -0 "$(pg_pid rs)"

pg_stop_check rs
pg_check "and it said it stopped" grep -q 'randomstring: stopped' "$T/rs.log"
[ "$PG_FAILED" = 0 ] || pg_log rs
pg_done
