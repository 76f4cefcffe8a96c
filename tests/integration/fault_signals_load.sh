#!/usr/bin/env bash
# integration.fault_signals_load: signals while profgate is busy.
#  - SIGHUP x6 during 8 s of wrk load (16 keep-alive connections), the route flipping between
#    two upstreams each time: wrk sees no error and no non-2xx answer, every slow request in
#    flight across a reload finishes with 200 from the upstream it started on, and after each
#    reload new connections follow the new route.
#  - SIGTERM during load (8 keep-alive client threads plus 4 slow requests started before the
#    signal): every request that had begun is answered completely (none truncated), the slow
#    ones with 200, and profgate exits 0. Requests sent after the drain began may be refused
#    or see their idle keep-alive connection closed before any byte; those are counted, not
#    failed.
# (integration.proxy_signals covers one reload under ab, a bad file, and the drain deadline.)
# ctest-timeout: 240
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 U2
base=http://127.0.0.1:$P

write_cfg()  # write_cfg UPSTREAM: the catch-all route goes to UPSTREAM
{
    pg_two_upstreams_config "$P" "$1" 'drain_timeout = "20s"' >"$T/pg.toml.new"
    mv "$T/pg.toml.new" "$T/pg.toml"
}

pg_upstreams up1 "127.0.0.1:$U1" up2 "127.0.0.1:$U2"
write_cfg up1
pg_gateway profgate "$T/pg.toml" "$P"
pgpid=$(pg_pid profgate)
pg_check "before: / -> up1" bash -c "curl -s -m 10 '$base/echo' | grep -q '^up1 GET'"

# ---------------- SIGHUP under load ----------------
wrk -t 2 -c 16 -d 8s --timeout 10s "$base/big?kb=2" >"$T/wrk" 2>&1 &
wrkpid=$!
sleep 0.5
cur=up1
slow=()
for i in 1 2 3 4 5 6; do
    # a slow request on the current route, in flight across the reload
    curl -s -m 30 -o "$T/slow$i.body" -w '%{http_code}' "$base/sleep?ms=1500" >"$T/slow$i.code" &
    slow+=($!)
    echo "$cur" >"$T/slow$i.from"
    sleep 0.3
    if [ "$cur" = up1 ]; then cur=up2; else cur=up1; fi
    write_cfg "$cur"
    kill -HUP "$pgpid"
    ok=
    for _ in $(seq 1 30); do
        if curl -s -m 10 "$base/echo" | grep -q "^$cur GET"; then
            ok=1
            break
        fi
        sleep 0.1
    done
    pg_check "reload #$i under load: new connections go to $cur" test -n "$ok"
    sleep 0.4
done
wait "${slow[@]}"
for i in 1 2 3 4 5 6; do
    pg_check "reload #$i: the slow request in flight across it finished (200; started on $(cat "$T/slow$i.from"))" \
        bash -c "[ \"\$(cat '$T/slow$i.code')\" = 200 ] && grep -qx slept '$T/slow$i.body'"
done
wait "$wrkpid"
reqs=$(awk '/requests in/ { print $1 }' "$T/wrk")
pg_check "reloads under wrk: ${reqs:-no} requests, no socket error, no non-2xx" \
    bash -c "[ -n '$reqs' ] && [ '$reqs' -gt 0 ] && ! grep -q 'Socket errors' '$T/wrk' && ! grep -q 'Non-2xx' '$T/wrk'"
pg_check "six reloads logged" test "$(grep -c 'configuration reloaded' "$T/profgate.log")" -ge 6

# ---------------- SIGTERM under load ----------------
# load.py PORT THREADS OUT STOPFILE TERMFILE: each thread loops keep-alive GETs of /big?kb=16
# and /sleep?ms=200 until STOPFILE exists or profgate stops answering. Per request: "complete"
# (200 and the whole Content-Length body), "unserved" (connect refused, or closed before any
# byte of the answer: a keep-alive connection closed by the drain), "truncated" (an answer
# began and did not finish) or "bad" (anything but 200). An unserved request that was in
# profgate's socket more than 1 s before SIGTERM (its time in TERMFILE) had been taken and
# then dropped: "dropped" (the margin keeps a client thread stalled on this loaded machine
# from counting a request it sent after the drain began).
cat >"$T/load.py" <<'EOF'
import os, socket, sys, threading, time
port, nthreads, out, stop, termfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
counts = {"complete": 0, "unserved": 0, "truncated": 0, "bad": 0, "dropped": 0}
unserved_at = []
lock = threading.Lock()

def count(k):
    with lock:
        counts[k] += 1
        if k == "complete" and counts[k] % 10 == 0:
            with open(out + ".progress", "w") as f:
                f.write("%d\n" % counts[k])

def one(s, path, sent):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: load\r\n\r\n")
    sent.append(time.time())  # the request is in profgate's socket from here on
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return "truncated" if buf else "unserved"
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        return "bad"
    n = [int(l.split(b":", 1)[1]) for l in lines if l.lower().startswith(b"content-length:")]
    if not n:
        return "bad"
    while len(body) < n[0]:
        d = s.recv(65536)
        if not d:
            return "truncated"
        body += d
    return "complete"

def worker(i):
    paths = [b"/big?kb=16", b"/sleep?ms=200"]
    k = 0
    while not os.path.exists(stop):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            count("unserved")
            return          # the listener is gone: profgate is draining
        try:
            while not os.path.exists(stop):
                sent = []
                r = one(s, paths[k % 2], sent)
                k += 1
                count(r)
                if r == "unserved" and sent:
                    with lock:
                        unserved_at.append(sent[0])
                if r != "complete":
                    break
        except socket.timeout:
            count("truncated")
        except OSError as e:
            count("unserved" if "reset" in str(e).lower() else "truncated")
        s.close()

ts = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
for t in ts: t.start()
for t in ts: t.join()
term = float(open(termfile).read())
counts["dropped"] = sum(1 for t in unserved_at if t < term - 1.0)
with open(out, "w") as f:
    f.write(" ".join("%s=%d" % kv for kv in sorted(counts.items())) + "\n")
EOF
pg_start load python3 "$T/load.py" "$P" 8 "$T/load.out" "$T/load.stop" "$T/term.at"
for _ in $(seq 1 300); do  # until the load is well under way
    [ "$(cat "$T/load.out.progress" 2>/dev/null || echo 0)" -ge 40 ] && break
    sleep 0.1
done
pids=()
for i in 1 2 3 4; do
    curl -s -m 30 -o "$T/term$i.body" -w '%{http_code}' "$base/sleep?ms=2000" >"$T/term$i.code" &
    pids+=($!)
done
sleep 0.5
date +%s.%N >"$T/term.at"
kill -TERM "$pgpid"
wait "${pids[@]}"
pg_stop profgate
rc=$?
touch "$T/load.stop"
wait "$(pg_pid load)"
unset "PG_PIDS[load]"
for i in 1 2 3 4; do
    pg_check "SIGTERM: slow request $i started before it finished (200, full body)" \
        bash -c "[ \"\$(cat '$T/term$i.code')\" = 200 ] && grep -qx slept '$T/term$i.body'"
done
out=$(cat "$T/load.out" 2>/dev/null)
echo "SIGTERM under load: $out"
complete=$(echo "$out" | sed -n 's/.*complete=\([0-9]*\).*/\1/p')
pg_check "SIGTERM under load: requests were served before it (${complete:-0})" \
    test "${complete:-0}" -gt 20
pg_check "SIGTERM under load: none truncated, none dropped in flight, none but 200 ($out)" \
    bash -c "echo '$out' | grep -q 'bad=0 ' && echo '$out' | grep -q 'dropped=0 ' && echo '$out' | grep -q 'truncated=0'"
pg_check "SIGTERM under load: profgate exits 0 (got $rc)" test "$rc" -eq 0
pg_check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$T/profgate.log'"
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    cat "$T/wrk"
fi
pg_done
