#!/usr/bin/env bash
# integration.fault_fd_exhaust: profgate runs out of file descriptors and stays so. Under
# `ulimit -n 128` (2 workers), a holder opens 300 connections and sends each an unfinished
# request head, so that profgate holds every connection it accepted (for header_timeout = 60s)
# and its descriptor table stays full. Then:
# - no busy loop: while saturated, and while new clients keep knocking, profgate's CPU time
#   (utime + stime of all its threads, /proc/PID/stat) over a 3 s window stays far below the
#   window (a spin uses about all of it; backing off uses next to nothing);
# - its log says so once per back-off, not once per attempt;
# - the old code (libuv's uv_listen) spun here: once its EMFILE reserve descriptor had been
#   taken by the other worker thread, libuv retried accept in a loop that never returned to
#   the event loop, writing a warning per attempt (tens of MB of log a second; profgate runs
#   with `ulimit -f` so that such a log cannot fill the disk: the flood kills it instead,
#   and the checks below fail);
# - recovery: once the holder lets go, proxied requests are served again, a burst of ab has
#   no failure, and profgate_connections_active comes back to 1; SIGTERM ends it.
# ctest-timeout: 180
. "$(dirname "$0")/lib/common.sh"

pg_ports P U
LIMIT=128
HOLD=300
WINDOW=3
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

# hold.py PORT N OUT RELEASE: open N connections and send each an unfinished request head (no
# blank line yet): profgate holds every connection it accepted and answers none. Write how
# each fared to OUT ("closed" by profgate, "held": no answer within 3 s, held by profgate or
# waiting in its backlog, "refused": the connect failed), then wait until RELEASE exists and
# close them all.
cat >"$T/hold.py" <<'EOF'
import os, socket, sys, time
port, n, out, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks, fate = [], {"closed": 0, "held": 0, "refused": 0}
for i in range(n):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: hold\r\n")
    except OSError:
        fate["refused"] += 1
        s.close()
        continue
    socks.append(s)
deadline = time.time() + 3
for s in socks:
    s.settimeout(max(0.05, deadline - time.time()))
    try:
        s.recv(65536)
        fate["closed"] += 1
    except socket.timeout:
        fate["held"] += 1
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

# cpu_ticks PID: user + system time of a process (all its threads), in clock ticks
cpu_ticks()
{
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# stop_bounded NAME SECS: SIGTERM, then wait at most SECS for the exit (a profgate stuck in
# a loop never drains: the test must fail, not hang until ctest's timeout); 0 on exit 0
stop_bounded()
{
    local pid
    pid=$(pg_pid "$1")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 $(($2 * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$1 did not exit within $2 s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        unset "PG_PIDS[$1]"
        return 1
    fi
    pg_stop "$1"
}

pg_upstreams up "127.0.0.1:$U"
# ulimit -f 20000: at most ~20 MB of log (1 KiB blocks)
pg_start profgate bash -c "ulimit -n $LIMIT && ulimit -f 20000 && exec '$PG' --config '$T/pg.toml'"
pg_ready profgate "$P"
pgpid=$(pg_pid profgate)
pg_check "profgate runs under ulimit -n $LIMIT" \
    bash -c "grep -q '^Max open files *$LIMIT ' /proc/$pgpid/limits"
pg_check "before: a proxied request" bash -c "curl -s -m 10 '$base/echo' | grep -q '^up GET'"

pg_start hold python3 "$T/hold.py" "$P" "$HOLD" "$T/fate" "$T/release"
for _ in $(seq 1 600); do
    [ -s "$T/fate" ] && break
    sleep 0.1
done
fate=$(cat "$T/fate" 2>/dev/null)
nfd=$(ls "/proc/$pgpid/fd" 2>/dev/null | wc -l)
pg_check "saturated: profgate holds connections up to its descriptor limit ($fate; profgate holds $nfd fds)" \
    bash -c "[ '$nfd' -ge $((LIMIT - 8)) ]"
pg_check "saturated: the rest wait in the backlog or were shed ($HOLD opened, at most $nfd held by profgate)" \
    test "$HOLD" -gt "$nfd"

# knock.py PORT SECS OUT: for SECS seconds, 4 threads open connections and ask for /echo
# (500 ms each at most; 4000 connections in all at most), so that both workers keep finding
# their listeners readable while no descriptor is free; writes "served=N unserved=M" to OUT.
cat >"$T/knock.py" <<'EOF'
import socket, sys, threading, time
port, secs, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end, lock, n = time.time() + secs, threading.Lock(), {"served": 0, "unserved": 0}
def knock():
    while time.time() < end:
        with lock:
            if n["served"] + n["unserved"] >= 4000:
                return
        ok = False
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: knock\r\nConnection: close\r\n\r\n")
            ok = s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            pass
        s.close()
        with lock:
            n["served" if ok else "unserved"] += 1
ts = [threading.Thread(target=knock) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    f.write("served=%d unserved=%d\n" % (n["served"], n["unserved"]))
EOF

# while saturated, new clients keep knocking; profgate must not spin
t0=$(cpu_ticks "$pgpid")
w0=$(date +%s%N)
python3 "$T/knock.py" "$P" "$WINDOW" "$T/knocks"
t1=$(cpu_ticks "$pgpid" 2>/dev/null) # empty when profgate is gone
w1=$(date +%s%N)
hz=$(getconf CLK_TCK)
wall_ms=$(((w1 - w0) / 1000000))
cpu_ms=$wall_ms
[ -n "$t1" ] && cpu_ms=$(((t1 - t0) * 1000 / hz))
knocks=$(cat "$T/knocks")
echo "saturated: profgate used ${cpu_ms} ms CPU in ${wall_ms} ms; new clients: $knocks"
pg_check "saturated: no busy loop (profgate CPU ${cpu_ms} ms over ${wall_ms} ms wall; a spin uses most of the wall time)" \
    test "$cpu_ms" -lt $((wall_ms / 5))
pg_check "saturated: new clients were turned away, not served ($knocks)" \
    bash -c "[[ '$knocks' =~ ^served=0\ unserved=[1-9] ]]"
pg_check "saturated: profgate still running" kill -0 "$pgpid"
nlog=$(grep -c 'accept' "$T/profgate.log")
pg_check "saturated: the descriptor shortage is logged once per back-off, not per attempt ($nlog lines)" \
    bash -c "[ '$nlog' -ge 1 ] && [ '$nlog' -le 20 ]"

touch "$T/release"
for _ in $(seq 1 100); do
    kill -0 "$(pg_pid hold)" 2>/dev/null || break
    sleep 0.1
done
ok=
for _ in $(seq 1 50); do
    if curl -s -m 2 "$base/echo" | grep -q '^up GET'; then
        ok=1
        break
    fi
    sleep 0.2
done
pg_check "released: proxied requests are served again" test -n "$ok"
ab -s 10 -k -c 8 -n 2000 "$base/big?kb=4" >"$T/ab" 2>&1
pg_check "released: ab 2000 requests, none failed" \
    bash -c "grep -q 'Complete requests: *2000' '$T/ab' && grep -q 'Failed requests: *0' '$T/ab' && ! grep -q 'Non-2xx' '$T/ab'"
conns=
for _ in $(seq 1 50); do
    conns=$(curl -s -m 5 "$base/metrics" | awk '$1 == "profgate_connections_active" { print $2 }')
    [ "$conns" = 1 ] && break
    sleep 0.2
done
pg_check "released: profgate_connections_active back to 1 (this request; got $conns)" test "$conns" = 1
pg_check "released: the log says accepting works again" grep -q 'accepting again' "$T/profgate.log"

pg_check "profgate exits 0 on SIGTERM (within 20 s)" stop_bounded profgate 20
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    cat "$T/ab"
fi
pg_done
