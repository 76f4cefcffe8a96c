#!/usr/bin/env bash
# integration.agent_endpoints: libprofagent's HTTP endpoints, talked to directly over its Unix
# socket with curl and checked with go tool pprof: status codes, messages and headers as
# net/http/pprof has them, the socket file's life, keep-alive, a client leaving mid-profile,
# a foreign SIGPROF handler, PROFAGENT_CPU_HZ=0.
# ctest-timeout: 180
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"

PROG=$BIN/tests/programs/agent_burn
SOCK=$T/run/agent.sock
URL=http://agent/debug/pprof

get()  # get NAME URL [curl args]: body in $T/NAME.body, headers in $T/NAME.hdr, prints status
{
    local name=$1 url=$2
    shift 2
    timeout 60 curl -s --unix-socket "$SOCK" -D "$T/$name.hdr" -o "$T/$name.body" \
        -w '%{http_code}' "$@" "$url"
}

has_header()  # has_header NAME "Header: value"
{
    tr -d '\r' <"$T/$1.hdr" | grep -qixF "$2"
}

is_error()  # is_error NAME STATUS MESSAGE: Go's serveError
{
    local name=$1 status=$2 msg=$3 got
    got=$(head -n 1 "$T/$name.hdr" | tr -d '\r')
    [ "$got" = "HTTP/1.1 $status $(http_reason "$status")" ] &&
        has_header "$name" "Content-Type: text/plain; charset=utf-8" &&
        has_header "$name" "X-Go-Pprof: 1" &&
        has_header "$name" "X-Content-Type-Options: nosniff" &&
        [ "$(cat "$T/$name.body")" = "$msg" ] &&
        [ "$(stat -c %s "$T/$name.body")" = $((${#msg} + 1)) ]
}

http_reason()
{
    case $1 in
    400) echo "Bad Request" ;;
    404) echo "Not Found" ;;
    500) echo "Internal Server Error" ;;
    esac
}

# a stale socket file (nobody listening) must be replaced
mkdir -p "$T/run"
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SOCK"
pg_check "stale socket file present before start" test -S "$SOCK"

PROFAGENT_SOCKET=$SOCK pg_start burn "$PROG" --threads 2 --seconds 150
pg_wait_unix "$SOCK" 10
for _ in $(seq 1 50); do
    curl -s --unix-socket "$SOCK" -o /dev/null "$URL/" && break
    sleep 0.1
done
pg_check "socket file is mode 0600" test "$(stat -c %a "$SOCK")" = 600

code=$(get index "$URL/")
pg_check "index: 200" test "$code" = 200
pg_check "index: text/html" has_header index "Content-Type: text/html; charset=utf-8"
pg_check "index: links profile and cmdline" grep -q "href='profile?debug=1'" "$T/index.body"

code=$(get cmdline "$URL/cmdline")
pg_check "cmdline: 200" test "$code" = 200
pg_check "cmdline: text/plain" has_header cmdline "Content-Type: text/plain; charset=utf-8"
printf '%s\0%s\0%s\0%s\0%s' "$PROG" --threads 2 --seconds 150 >"$T/cmdline.want"
pg_check "cmdline: argv joined by NUL" cmp -s "$T/cmdline.want" "$T/cmdline.body"

code=$(get unknown "$URL/nosuchprofile")
pg_check "nosuchprofile: 404 Unknown profile, Go's error headers" is_error unknown 404 "Unknown profile"
code=$(get unknown2 "$URL/nonsense")
pg_check "nonsense: 404 Unknown profile" is_error unknown2 404 "Unknown profile"

# Go's pprof.Profile: seconds unreadable or not positive means its default, 30 s. The agent
# starts profiling (the client gives up after 2 s: no answer, or Go's 500 while the previous
# one still runs), never a 400; above the agent's limit it is a 400.
for bad in 0 -1 abc 1.5 '' 99999999999999999999; do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" \
        "$URL/profile?seconds=$bad")
    pg_check "profile?seconds='$bad': a 30 s profile, as Go's default (got $code)" \
        bash -c "[ '$code' = 000 ] || [ '$code' = 500 ]"
done
code=$(get long "$URL/profile?seconds=86401")
pg_check "profile?seconds=86401: 400 naming the limit" is_error long 400 \
    "profile duration exceeds the agent's limit of 86400 seconds"
# the client gone, the agent stops that profile within a second: the next one starts
for _ in $(seq 1 50); do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" \
        "$URL/profile?seconds=1")
    [ "$code" = 200 ] && break
    sleep 0.2
done
pg_check "a profile starts once the abandoned ones stopped ($code)" test "$code" = 200

# a CPU profile, and a second one while it runs
get prof "$URL/profile?seconds=3" >"$T/prof.code" &
cpid=$!
sleep 1
code=$(get busy "$URL/profile?seconds=1")
pg_check "second profile while one runs: Go's 500" is_error busy 500 \
    "Could not enable CPU profiling: cpu profiling already in use"
# the agent still answers other requests while a profile runs
code=$(get during "$URL/cmdline")
pg_check "cmdline answered during a profile" test "$code" = 200
wait $cpid
pg_check "profile: 200" test "$(cat "$T/prof.code")" = 200
pg_check "profile: octet-stream" has_header prof "Content-Type: application/octet-stream"
pg_check "profile: attachment" has_header prof 'Content-Disposition: attachment; filename="profile"'
pg_check "profile: nosniff" has_header prof "X-Content-Type-Options: nosniff"
pg_check "profile: Content-Length" grep -qi '^Content-Length: [0-9]' "$T/prof.hdr"
pg_check "profile: gzip" test "$(head -c 2 "$T/prof.body" | od -An -tx1 | tr -d ' ')" = 1f8b
pg_pprof_raw "profile parses (go tool pprof -raw)" "$T/prof.body" "$T/prof.raw"
pg_check "profile: sample types samples/count cpu/nanoseconds" \
    grep -q '^Samples:' "$T/prof.raw"
pg_check "profile: period type cpu/nanoseconds, 10 ms" \
    bash -c "grep -q 'samples/count cpu/nanoseconds' '$T/prof.raw' && grep -q '^PeriodType: cpu nanoseconds' '$T/prof.raw' && grep -q '^Period: 10000000' '$T/prof.raw'"
go tool pprof -top "$T/prof.body" >"$T/prof.top" 2>/dev/null
pg_check "profile: burn_cpu_hot is the top function" \
    bash -c "sed -n '/flat%/{n;p;q}' '$T/prof.top' | grep -q burn_cpu_hot"

# symbol: GET without addresses, GET and POST with burn_cpu_hot's address
code=$(get sym0 "$URL/symbol")
pg_check "symbol GET: num_symbols: 1" test "$(cat "$T/sym0.body")" = "num_symbols: 1"
pg_check "symbol: text/plain + nosniff" bash -c \
    "tr -d '\r' <'$T/sym0.hdr' | grep -qx 'Content-Type: text/plain; charset=utf-8' && tr -d '\r' <'$T/sym0.hdr' | grep -qx 'X-Content-Type-Options: nosniff'"
pid=$(pg_pid burn)
base=$(awk -v exe="$(readlink -f "$PROG")" '$6 == exe && $3 == "00000000" {split($1, a, "-"); print a[1]; exit}' /proc/$pid/maps)
off=$(nm "$PROG" | awk '$3 == "burn_cpu_hot" {print $1}')
addr=$(printf '%#x' $((0x$base + 0x$off + 4)))
code=$(get sym1 "$URL/symbol" --data-binary "0x0+bogus+$addr+0x1")
pg_check "symbol POST: '$addr burn_cpu_hot' only" \
    test "$(cat "$T/sym1.body")" = "$(printf 'num_symbols: 1\n%s burn_cpu_hot' "$addr")"
code=$(get sym2 "$URL/symbol?$addr")
pg_check "symbol GET ?$addr" \
    test "$(cat "$T/sym2.body")" = "$(printf 'num_symbols: 1\n%s burn_cpu_hot' "$addr")"

# keep-alive: two requests on one connection
curl -sv --unix-socket "$SOCK" -o /dev/null -o /dev/null "$URL/cmdline" "$URL/" 2>"$T/ka.err"
pg_check "keep-alive: second request reuses the connection" grep -q 'Re-using existing connection' "$T/ka.err"

# a client that leaves stops the profile: the next one starts at once
timeout 10 curl -s --unix-socket "$SOCK" -m 1 -o /dev/null "$URL/profile?seconds=30"
code=$(get again "$URL/profile?seconds=1")
pg_check "after the client left a 30 s profile, a new one is served (got $code)" test "$code" = 200

# a second agent on a live socket is refused, and its host keeps running
PROFAGENT_SOCKET=$SOCK pg_start second "$PROG" --threads 0 --seconds 150
sleep 0.5
pg_check "second agent on a live socket says why" grep -q '^profagent: cannot listen on .*another process' "$T/second.log"
pg_check "its host keeps running" kill -0 "$(pg_pid second)"
code=$(get still "$URL/cmdline")
pg_check "the first agent still serves" cmp -s "$T/cmdline.want" "$T/still.body"
pg_stop second

# SIGPROF owned by the host: left alone, profile refused naming the reason
SOCK2=$T/run/foreign.sock
PROFAGENT_SOCKET=$SOCK2 pg_start foreign "$PROG" --threads 1 --seconds 150 --foreign-sigprof 1
pg_wait_unix "$SOCK2" 10
code=$(SOCK=$SOCK2 get foreign "$URL/profile?seconds=1")
pg_check "foreign SIGPROF handler: 500 naming it" is_error foreign 500 \
    "Could not enable CPU profiling: SIGPROF already has a handler in this process (profagent leaves it alone)"
pg_check "foreign SIGPROF handler: one log line" grep -q '^profagent: SIGPROF already has a handler' "$T/foreign.log"
pg_check "foreign: host keeps running" kill -0 "$(pg_pid foreign)"
pg_stop foreign

# PROFAGENT_CPU_HZ=0 turns CPU profiling off
SOCK3=$T/fresh/dir/off.sock
PROFAGENT_SOCKET=$SOCK3 PROFAGENT_CPU_HZ=0 pg_start off "$PROG" --threads 0 --seconds 150
pg_wait_unix "$SOCK3" 10
code=$(SOCK=$SOCK3 get off "$URL/profile?seconds=1")
pg_check "PROFAGENT_CPU_HZ=0: 500 cpu profiling is turned off" is_error off 500 \
    "Could not enable CPU profiling: cpu profiling is turned off (PROFAGENT_CPU_HZ=0)"
pg_check "missing socket dirs are created 0700" \
    test "$(stat -c %a "$T/fresh")/$(stat -c %a "$T/fresh/dir")" = 700/700
pg_stop off

# the socket file goes away when the host stops the agent
SOCK4=$T/run/short.sock
PROFAGENT_SOCKET=$SOCK4 "$PROG" --threads 0 --seconds 1 >"$T/short.log" 2>&1
pg_check "short-lived host: exit 0" test $? = 0
pg_check "short-lived host: socket removed at profagent_stop" test ! -e "$SOCK4"

pg_check "main host still alive" kill -0 "$(pg_pid burn)"
# a clean stop after all of the above, with a 30 s profile still running: profagent_stop ends
# it (its client sees the connection close) and frees it (under ASan, leaks would show here)
get cut "$URL/profile?seconds=30" >"$T/cut.code" &
cutpid=$!
sleep 1
start=$(date +%s)
pg_stop burn
rc=$?
wait $cutpid
pg_check "main host exits 0 on SIGTERM during a profile (got $rc)" test "$rc" = 0
pg_check "... within 10 s ($(($(date +%s) - start)) s)" test $(($(date +%s) - start)) -le 10
pg_check "... and the running profile's client got no 200 ($(cat "$T/cut.code"))" \
    test "$(cat "$T/cut.code")" != 200
pg_check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$T/burn.log'"
pg_check "socket removed at stop" test ! -e "$SOCK"
pg_done
