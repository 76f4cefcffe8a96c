#!/usr/bin/env bash
# integration.fault_fd_exhaust: profgate runs out of file descriptors. Under `ulimit -n 128`,
# a holder opens 300 keep-alive connections and keeps them; profgate must shed what it cannot
# hold (a connection it cannot keep is closed, never left to spin on), stay nearly idle while
# saturated and new connections keep arriving (no busy loop on a listener it cannot accept
# from: its CPU time over a few seconds is measured), and serve normally once the holder lets
# go: proxied requests and a burst of ab with no failure.
# ctest-timeout: 180
. "$(dirname "$0")/lib/common.sh"

port()
{
    local p
    for _ in $(seq 1 100); do
        p=$(pg_free_port) || return 1
        [ "$p" -lt 32768 ] && { echo "$p"; return 0; }
    done
    pg_free_port
}

PG=$BIN/proxy/profgate
UP=$BIN/tests/programs/pg_test_upstream
P=$(port)
U=$(port)
LIMIT=128
HOLD=300
base=http://127.0.0.1:$P

cat >"$T/pg.toml" <<EOF
[server]
listen         = "127.0.0.1:$P"
workers        = 2
metrics_path   = "/metrics"
header_timeout = "60s"
idle_timeout   = "120s"

[[upstream]]
name    = "up"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "up"
EOF

# hold.py PORT N OUT RELEASE: open N connections, ask each for /metrics (answered by profgate
# itself, so no upstream descriptor is needed), keep them all open; write how each fared to
# OUT ("answered" a full response head, "closed" by profgate before answering, "pending" no
# answer within the deadline), then wait until RELEASE exists and close them all.
cat >"$T/hold.py" <<'EOF'
import os, socket, sys, time
port, n, out, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks, fate = [], {"answered": 0, "closed": 0, "pending": 0, "refused": 0}
for i in range(n):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: hold\r\n\r\n")
    except OSError:
        fate["refused"] += 1
        s.close()
        continue
    socks.append(s)
deadline = time.time() + 10
for s in socks:
    s.settimeout(max(0.05, deadline - time.time()))
    try:
        data = s.recv(65536)
        fate["answered" if data.startswith(b"HTTP/1.1 200") else "closed"] += 1
    except socket.timeout:
        fate["pending"] += 1
    except OSError:
        fate["closed"] += 1
with open(out + ".tmp", "w") as f:
    f.write(" ".join("%s=%d" % kv for kv in sorted(fate.items())) + "\n")
os.rename(out + ".tmp", out)
for _ in range(1200):
    if os.path.exists(release):
        break
    time.sleep(0.1)
for s in socks:
    s.close()
EOF

# cpu_ticks PID: user + system time of a process, in clock ticks
cpu_ticks()
{
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

pg_start up "$UP" --listen "127.0.0.1:$U" --name up
pg_wait_port "$U" || pg_fail "upstream did not start"
pg_start profgate bash -c "ulimit -n $LIMIT && exec '$PG' --config '$T/pg.toml'"
pg_wait_port "$P" || { pg_log profgate; pg_fail "profgate did not start"; pg_done; }
pgpid=$(pg_pid profgate)
pg_check "profgate runs under ulimit -n $LIMIT" \
    bash -c "grep -q '^Max open files *$LIMIT ' /proc/$pgpid/limits"
pg_check "before: a proxied request" bash -c "curl -s -m 10 '$base/echo' | grep -q '^up GET'"

pg_start hold python3 "$T/hold.py" "$P" "$HOLD" "$T/fate" "$T/release"
for _ in $(seq 1 300); do
    [ -s "$T/fate" ] && break
    sleep 0.1
done
fate=$(cat "$T/fate" 2>/dev/null)
nfd=$(ls "/proc/$pgpid/fd" | wc -l)
answered=$(echo "$fate" | sed -n 's/.*answered=\([0-9]*\).*/\1/p')
shed=$(($(echo "$fate" | sed -n 's/.*closed=\([0-9]*\).*/\1/p') + $(echo "$fate" | sed -n 's/.*pending=\([0-9]*\).*/\1/p')))
pg_check "saturated: the holder's connections were answered up to the limit ($fate; profgate holds $nfd fds)" \
    bash -c "[ '${answered:-0}' -ge 50 ] && [ '$nfd' -ge $((LIMIT - 8)) ]"
pg_check "saturated: the rest were shed (closed or left in the backlog: $shed)" test "$shed" -gt 0

# while saturated, new clients keep knocking; profgate must not spin
t0=$(cpu_ticks "$pgpid")
w0=$(date +%s%N)
knocks=0
knock_fail=0
for _ in $(seq 1 20); do
    curl -s -m 1 -o /dev/null "$base/echo" || knock_fail=$((knock_fail + 1))
    knocks=$((knocks + 1))
    sleep 0.2
done
t1=$(cpu_ticks "$pgpid")
w1=$(date +%s%N)
hz=$(getconf CLK_TCK)
cpu_ms=$(((t1 - t0) * 1000 / hz))
wall_ms=$(((w1 - w0) / 1000000))
echo "saturated: profgate used ${cpu_ms} ms CPU in ${wall_ms} ms; $knock_fail of $knocks new clients not served"
pg_check "saturated: no busy loop (profgate CPU ${cpu_ms} ms over ${wall_ms} ms wall; spinning would be ~${wall_ms})" \
    test "$cpu_ms" -lt $((wall_ms / 4))
pg_check "saturated: new clients were turned away, not served ($knock_fail of $knocks)" \
    test "$knock_fail" -gt 0
pg_check "saturated: profgate still running" kill -0 "$pgpid"

touch "$T/release"
wait "$(pg_pid hold)" 2>/dev/null
unset "PG_PIDS[hold]"
ok=
for _ in $(seq 1 100); do
    if curl -s -m 2 "$base/echo" | grep -q '^up GET'; then
        ok=1
        break
    fi
    sleep 0.1
done
pg_check "released: proxied requests are served again" test -n "$ok"
ab -s 10 -k -c 8 -n 2000 "$base/big?kb=4" >"$T/ab" 2>&1
pg_check "released: ab 2000 requests, none failed" \
    bash -c "grep -q 'Complete requests: *2000' '$T/ab' && grep -q 'Failed requests: *0' '$T/ab' && ! grep -q 'Non-2xx' '$T/ab'"
conns=$(curl -s -m 10 "$base/metrics" | awk '$1 == "profgate_connections_active" { print $2 }')
pg_check "released: profgate_connections_active back to 1 (this request; got $conns)" test "$conns" = 1

pg_check "profgate exits 0 on SIGTERM" pg_stop profgate
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    cat "$T/ab"
fi
pg_done
