#!/usr/bin/env bash
# integration.proxy_write_batch: server.batch_writes (pg_conn_batch.c): the client writes of
# one turn of a worker's loop reach the kernel together, in one io_submit. Watched with
# strace on the gateway under `ab -k -c 100 -n 4000` (1 KiB each, all answered 200): responses
# leave by io_submit, several to a call, not by one writev each; after a reload to
# batch_writes = false, one writev each and no io_submit. Meanwhile what a batched write must
# not break: pipelined responses in order (a second response to a connection whose first
# waits in the batch), Connection: close answered whole before the FIN, an 8 MiB response to
# a client that reads slowly (the socket takes part, the rest follows by uv_write) whole and
# the connection reused after it, HEAD, and a client that resets with its response in the
# batch (the worker goes on serving).
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"

pg_need "$PG" "$UP" ab curl strace python3
pg_ports P U

write_config()
{
    cat >"$T/pg.toml" <<EOF
[server]
listen       = "127.0.0.1:$P"
workers      = 1
batch_writes = $1

[[upstream]]
name    = "app"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "app"
EOF
}

# syscalls NAME: ab -k -c 100 -n 4000 through the gateway (more connections than one
# io_submit takes, 64: a full batch is flushed and another begins) while strace counts its system
# calls; ab's output in $T/ab-NAME, strace's table in $T/st-NAME
syscalls()
{
    local s
    strace -f -c -p "$GW" -o "$T/st-$1" 2>/dev/null &
    s=$!
    sleep 0.5
    ab -k -c 100 -n 4000 "http://127.0.0.1:$P/big?kb=1" >"$T/ab-$1" 2>&1
    kill -INT "$s"
    wait "$s" 2>/dev/null
}
calls() { awk -v n="$2" '$NF == n { print $4 }' "$T/st-$1" | head -n 1 | grep . || echo 0; }

write_config true
pg_check "--check prints batch_writes" bash -c "'$PG' --check --config '$T/pg.toml' | grep -qx 'batch_writes yes'"
pg_upstreams app "127.0.0.1:$U"
pg_gateway gw "$T/pg.toml" "$P"
GW=$(pg_pid gw)

syscalls on
pg_check "on: ab 4000 complete, 0 failed" bash -c "grep -Eq '^Complete requests: +4000$' '$T/ab-on' && grep -Eq '^Failed requests: +0$' '$T/ab-on' && ! grep -q '^Non-2xx' '$T/ab-on'"
sub=$(calls on io_submit)
wv=$(calls on writev)
pg_check "on: responses leave by io_submit, several to a call ($sub io_submit for 4000)" \
    test "$sub" -ge 1 -a "$sub" -lt 4000
pg_check "on: not one writev each ($wv writev)" test "$wv" -lt 400

# pipelined: three requests in one write, three responses in order
exec 3<>"/dev/tcp/127.0.0.1/$P"
printf 'GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' >&3
timeout 10 cat <&3 >"$T/pipe.out"
exec 3<&-
pg_check "pipelined: three 200s" test "$(grep -c '^HTTP/1.1 200' "$T/pipe.out")" -eq 3
pg_check "pipelined: in order" bash -c "grep -o 'GET /echo?n=[123]' '$T/pipe.out' | tr '\n' ' ' | grep -qx 'GET /echo?n=1 GET /echo?n=2 GET /echo?n=3 '"

# Connection: close: the whole response, then the FIN
curl -s -m 10 -H 'Connection: close' -o "$T/close.out" -w '%{http_code} %{size_download}\n' \
    "http://127.0.0.1:$P/big?kb=64" >"$T/close.code"
pg_check "Connection: close: 200, 65536 bytes ($(cat "$T/close.code"))" grep -qx '200 65536' "$T/close.code"

# 8 MiB to a client that reads slowly, then the same connection again
python3 - "$P" >"$T/slow.out" 2>&1 <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
def one(path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    time.sleep(0.5)  # the socket's buffers fill; the rest waits in profgate
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            break
        body += d
        time.sleep(0.001)
    return head.split(b"\r\n")[0], len(body), n, body.count(b"x")
print(*one(b"/big?kb=8192"))
print(*one(b"/echo?again=1"))
EOF
pg_check "slow reader: 8 MiB whole ($(head -n 1 "$T/slow.out"))" \
    bash -c "head -n 1 '$T/slow.out' | grep -Eqx \"b'HTTP/1.1 200[^']*' 8388608 8388608 8388608\""
pg_check "slow reader: the connection reused after it" bash -c "sed -n 2p '$T/slow.out' | grep -q \"^b'HTTP/1.1 200\""

pg_check "HEAD: 200, no body" bash -c "curl -s -m 10 -I 'http://127.0.0.1:$P/big?kb=4' | grep -q '^HTTP/1.1 200'"

# clients that reset while their responses may wait in the batch: the worker goes on
python3 - "$P" <<'EOF'
import socket, struct, sys
for i in range(200):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n" * 4)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
EOF
pg_check "after 200 resets: serving" bash -c "curl -s -m 10 'http://127.0.0.1:$P/echo' | grep -q '^app GET /echo'"

# off by reload: one writev each, no io_submit
write_config false
kill -HUP "$GW"
pg_poll 10 grep -q 'SIGHUP: reloading' "$T/gw.log" || pg_fail "no reload logged"
sleep 0.5
syscalls off
pg_check "off: ab 4000 complete, 0 failed" bash -c "grep -Eq '^Complete requests: +4000$' '$T/ab-off' && grep -Eq '^Failed requests: +0$' '$T/ab-off'"
sub=$(calls off io_submit)
wv=$(calls off writev)
pg_check "off (reload): no io_submit ($sub), a writev per response ($wv)" \
    test "$sub" -eq 0 -a "$wv" -ge 4000

pg_stop_check gw
pg_done
