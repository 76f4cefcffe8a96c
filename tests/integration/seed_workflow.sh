#!/usr/bin/env bash
# seed_workflow: the seed's Go workflow (issue 2), against the C demo service through the
# gateway: randomstring (agent linked in) + profgate on free ports; `go tool pprof -seconds 5
# -top .../debug/pprof/profile` while `ab -k -c 8 -n 20000 .../randomstring` runs. Asserts the
# random-string work is in the top 5 by flat time, `go tool pprof -raw` parses the saved profile,
# ab saw no failure, and /debug/pprof/, /cmdline and /symbol (GET and POST) work through the
# gateway.
# ctest-timeout: 180
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

pg_need "$RS" "$PG" go ab curl

pg_demo_start
pg_check "the agent socket is mode 0600" bash -c "[ \$(stat -c %a '$SOCK') = 600 ]"
"$PG" --check --config "$T/profgate.toml" >"$T/check.out" 2>&1
pg_check "profgate --check accepts the test config" [ $? = 0 ]

pg_check "GET /randomstring through the gateway: 64 alphanumerics" \
    bash -c "curl -s -m 10 '$GW/randomstring' | grep -qx '[A-Za-z0-9]\{64\}'"

# --- the seed's two commands, at once
go tool pprof -seconds 5 -top "$GW/debug/pprof/profile" >"$T/top.txt" 2>"$T/pprof.err" &
PPROF=$!
# Start the load once pprof has sent its request (it prints this line just before), so that
# the 5 s window and ab's run overlap even when the go tool is slow to start.
for _ in $(seq 1 200); do
    grep -q '^Fetching profile over HTTP' "$T/pprof.err" 2>/dev/null && break
    kill -0 $PPROF 2>/dev/null || break
    sleep 0.1
done
sleep 0.5
ab -k -c 8 -n 20000 "$GW/randomstring" >"$T/ab.txt" 2>&1
abrc=$?
# The profile runs 5 s from its request; give it that plus a margin, bounded.
for _ in $(seq 1 300); do
    kill -0 $PPROF 2>/dev/null || break
    sleep 0.1
done
if kill -0 $PPROF 2>/dev/null; then
    kill $PPROF
    pg_fail "go tool pprof still running 30 s after a 5 s profile"
fi
wait $PPROF
pprc=$?

pg_check "ab exited 0 (rc=$abrc)" [ $abrc = 0 ]
pg_check "ab: 20000 complete requests" grep -q '^Complete requests: *20000$' "$T/ab.txt"
pg_check "ab: 0 failed requests" grep -q '^Failed requests: *0$' "$T/ab.txt"
pg_check "ab: no non-2xx responses" bash -c "! grep -q '^Non-2xx responses' '$T/ab.txt'"
pg_check "ab: every request kept alive" grep -q '^Keep-Alive requests: *20000$' "$T/ab.txt"
grep -E '^(Requests per second|Time per request|Failed requests)' "$T/ab.txt"

pg_check "go tool pprof -seconds 5 -top exited 0 (rc=$pprc)" [ $pprc = 0 ]
echo "--- go tool pprof -top (head):"
head -n 16 "$T/top.txt"
# The rows after the "flat  flat%  sum%  cum  cum%" header, name in the 6th column on.
awk 'hdr && n < 5 { n++; $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }
     /^ *flat +flat% +sum% +cum +cum%/ { hdr = 1 }' "$T/top.txt" >"$T/top5.txt"
pg_check "the random-string function is in the top 5 by flat time: $(paste -sd '|' "$T/top5.txt")" \
    grep -Eq '^rs_random_(char|string)( |$)' "$T/top5.txt"
pg_check "the profile's type is cpu" grep -q '^Type: cpu' "$T/top.txt"

saved=$(ls "$PPROF_TMPDIR"/*.pb.gz 2>/dev/null | head -n 1)
pg_check "go tool pprof saved the profile in PPROF_TMPDIR (${saved:-none})" [ -n "$saved" ]
if [ -n "$saved" ]; then
    go tool pprof -raw "$saved" >"$T/raw.txt" 2>"$T/raw.err"
    pg_check "go tool pprof -raw parses it" [ $? = 0 ]
    pg_check "-raw: PeriodType cpu nanoseconds" grep -q '^PeriodType: cpu nanoseconds' "$T/raw.txt"
    pg_check "-raw: sample types samples/count and cpu/nanoseconds" \
        grep -Eq '^ *samples/count +cpu/nanoseconds' "$T/raw.txt"
    pg_check "-raw: a location named rs_random_char" grep -Eq '^ +[0-9]+: 0x[0-9a-f]+ .*rs_random_char' "$T/raw.txt"
    # The address of a location in rs_random_char, for /symbol below.
    ADDR=$(awk '/^Locations/ { in_loc = 1; next } /^[A-Z]/ { in_loc = 0 }
                in_loc && / rs_random_char / { print $2; exit }' "$T/raw.txt")
fi

# --- the other net/http/pprof endpoints, through the gateway
code=$(curl -s -m 10 -o "$T/index.html" -w '%{http_code}' "$GW/debug/pprof/")
pg_check "/debug/pprof/: 200 (got $code)" [ "$code" = 200 ]
pg_check "/debug/pprof/ lists the CPU profile" grep -q 'profile' "$T/index.html"

curl -s -m 10 -D "$T/cmdline.h" -o "$T/cmdline" "$GW/debug/pprof/cmdline"
printf '%s\0' "$RS" --listen "127.0.0.1:$RS_PORT" --agent-socket "$SOCK" >"$T/cmdline.want"
head -c -1 "$T/cmdline.want" >"$T/cmdline.want.go" # Go's form: no trailing NUL
pg_check "/debug/pprof/cmdline is randomstring's argv, NUL-separated ($(tr '\0' ' ' <"$T/cmdline"))" \
    bash -c "cmp -s '$T/cmdline' '$T/cmdline.want.go' || cmp -s '$T/cmdline' '$T/cmdline.want'"
pg_check "/debug/pprof/cmdline is text/plain" grep -qi '^Content-Type: text/plain' "$T/cmdline.h"

pg_check "GET /debug/pprof/symbol says num_symbols: 1" \
    bash -c "curl -s -m 10 '$GW/debug/pprof/symbol' | grep -qx 'num_symbols: 1'"
if [ -n "${ADDR:-}" ]; then
    curl -s -m 10 -X POST --data-binary "$ADDR" "$GW/debug/pprof/symbol" >"$T/symbol.out"
    pg_check "POST /debug/pprof/symbol $ADDR resolves to rs_random_char ($(tr '\n' '|' <"$T/symbol.out"))" \
        bash -c "grep -Eiq '^0x0*${ADDR#0x} rs_random_char\$' '$T/symbol.out'"
else
    pg_fail "no rs_random_char address in the profile to POST to /debug/pprof/symbol"
fi

# --- both still serving, then a clean stop
pg_demo_stop
pg_check "the agent removed its socket" [ ! -e "$SOCK" ]

if [ "$PG_FAILED" != 0 ]; then
    echo "--- pprof stderr:"; cat "$T/pprof.err"
    pg_log rs
    pg_log pg
fi
pg_done
