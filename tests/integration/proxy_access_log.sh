#!/usr/bin/env bash
# integration.proxy_access_log: the access log under load, with lines batched per worker
# (pg_access.h): 2 workers, real clients (curl --parallel with a distinct target per
# request, ab), and every request gets exactly one whole line:
#  1. combined, to a file, concurrent load;
#  2. rotation under load: mv + SIGHUP (new config: JSON) while requests run; lines of
#     requests done before the mv are in the old file, of requests begun after both workers
#     reloaded in the new one, of those in between in one of the two; each file has only its
#     own format's lines;
#  3. SIGTERM drain under load: every request a client saw answered 200 has its line,
#     including those that finished after the signal (lines written at exit);
#  4. access_log = "stderr" into a pipe (FIFO), common format, concurrent load: whole lines
#     among the diagnostic log's;
#  5. a log whose writes fail (/dev/full): requests are still served, the lost lines are
#     counted in profgate_access_log_dropped_total.
# ctest-timeout: 180
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"

pg_need "$PG" "$UP" curl ab python3
pg_ports P P2 P3 U1
base=http://127.0.0.1:$P

# write_cfg FILE PORT FORMAT LOG [LINE]: LINE is added to [server]
write_cfg()
{
    cat >"$1" <<EOF
[server]
listen            = "127.0.0.1:$2"
workers           = 2
access_log        = "$4"
access_log_format = "$3"
${5:-}

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"

[[route]]
prefix   = "/"
upstream = "up1"
EOF
}

# load NAME URL PARALLEL: curl over URL (a curl glob: one transfer each), PARALLEL at once,
# in the background as NAME; "CODE URL" per transfer in $T/NAME.log.
load()
{
    pg_start "$1" curl -s --no-progress-meter --parallel --parallel-max "$3" -o /dev/null \
        -w '%{http_code} %{url_effective}\n' "$2"
}

# finish NAME...: wait for the background clients to end.
finish()
{
    local n
    for n in "$@"; do
        wait "${PG_PIDS[$n]}" 2>/dev/null
        unset "PG_PIDS[$n]"
    done
}

# ids FILE... : the request ids ("k=TAG&i=N") in access log lines, one per line
ids()
{
    cat "$@" 2>/dev/null | grep -o 'k=[a-z0-9]*&i=[0-9]*' || true
}

# count PATTERN FILE...: lines matching PATTERN
count()
{
    cat "${@:2}" 2>/dev/null | grep -c -- "$1" || true
}

# once EXPECTED_FILE FILE...: every id in EXPECTED_FILE appears exactly once in FILE...
once()
{
    local exp=$1
    shift
    diff <(sort "$exp") <(ids "$@" | grep -F -x -f "$exp" | sort) >"$T/once.diff" &&
        [ "$(ids "$@" | grep -c -F -x -f "$exp")" -eq "$(wc -l <"$exp")" ]
}

# ab_ok OUT: ab's output OUT says 3000 requests completed, none failed
ab_ok()
{
    grep -q '^Complete requests: *3000$' "$1" && grep -q '^Failed requests: *0$' "$1"
}

# ab_lines TAG LOG: lines of ab's requests (/status?k=TAG&code=200) answered 200 in LOG
ab_lines()
{
    count "k=$1&code=200 HTTP/1.0\" 200 " "$2"
}

# expect FILE TAG N: the ids k=TAG&i=1..N into FILE
expect()
{
    seq 1 "$3" | sed "s/^/k=$2\&i=/" >"$1"
}

COMBINED='^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} \+0000\] "GET /[^" ]* HTTP/1\.[01]" [0-9]{3} [0-9]+ "[^"]*" "[^"]*" [0-9]+\.[0-9]{3}$'
COMMON='^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} \+0000\] "GET /[^" ]* HTTP/1\.[01]" [0-9]{3} [0-9]+$'
DIAG='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z profgate\[[a-z0-9]+\] [a-z]+: '

# all_json FILE: every line a JSON object with the access log's fields
all_json()
{
    python3 - "$1" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    assert line.endswith("}\n"), line
    assert {"time", "client", "method", "target", "protocol", "status", "bytes",
            "duration_ms"} <= o.keys(), line
    n += 1
assert n > 0
PY
}

# json_ids_200 FILE: ids of the JSON lines with status 200
json_ids_200()
{
    python3 - "$1" <<'PY'
import json, re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    m = re.search(r"k=[a-z0-9]*&i=[0-9]*", o["target"])
    if m and o["status"] == 200:
        print(m.group(0))
PY
}

pg_upstreams up1 "127.0.0.1:$U1"
write_cfg "$T/pg.toml" "$P" combined access.log
pg_gateway profgate "$T/pg.toml" "$P"
LOG=$T/access.log

# ---- 1. concurrent load, combined, 2 workers ----
N1=400
for k in a b c d; do load "l1$k" "$base/echo?k=$k&i=[1-$N1]" 8; done
ab -k -c 32 -n 3000 "$base/status?k=ab1&code=200" >"$T/ab1.out" 2>&1
finish l1a l1b l1c l1d
for k in a b c d; do expect "$T/l1$k.exp" "$k" $N1; done
cat "$T"/l1?.exp >"$T/l1.exp"
pg_poll 10 bash -c "[ \$(grep -c 'k=[a-d]&i=' '$LOG') -ge $((4 * N1)) ] && [ \$(grep -c 'k=ab1&code=200 HTTP' '$LOG') -ge 3000 ]"
pg_check "1: ab: 3000 requests, none failed" ab_ok "$T/ab1.out"
pg_check "1: every curl request answered 200" \
    bash -c "[ \$(cat '$T'/l1?.log | grep -c '^200 ') -eq $((4 * N1)) ]"
pg_check "1: each of the $((4 * N1)) curl requests has exactly one line" once "$T/l1.exp" "$LOG"
n=$(ab_lines ab1 "$LOG")
pg_check "1: one line for each of ab's 3000 requests (got $n)" test "$n" -eq 3000
pg_check "1: every line whole (combined format), $((4 * N1 + 3000)) of them" \
    bash -c "[ \$(grep -c -E '$COMBINED' '$LOG') -eq $((4 * N1 + 3000)) ] && [ \$(wc -l <'$LOG') -eq $((4 * N1 + 3000)) ]"

# ---- 2. rotation (mv + SIGHUP) under load ----
# each client needs at least N2/6 * 20 ms = 2 s: the rotation happens while they run
N2=600
reloads=$(grep -c 'configuration reloaded' "$T/profgate.log")
for k in 1 2 3 4; do load "l2$k" "$base/sleep?ms=20&k=r$k&i=[1-$N2]" 6; done
pg_poll 20 bash -c "[ \$(grep -c 'k=r[1-4]&i=' '$LOG') -ge 20 ]" || pg_fail "2: no load seen before the rotation"
mv "$LOG" "$LOG.1"
write_cfg "$T/pg.toml" "$P" json access.log
kill -HUP "$(pg_pid profgate)"
pg_poll 20 bash -c "[ \$(grep -c 'configuration reloaded' '$T/profgate.log') -ge $((reloads + 2)) ]" ||
    pg_fail "2: the workers did not log the reload"
busy=0
for k in 1 2 3 4; do kill -0 "${PG_PIDS[l2$k]}" 2>/dev/null && busy=$((busy + 1)); done
# begun after both workers reloaded: new file only
load l3 "$base/echo?k=p&i=[1-200]" 4
finish l3 l21 l22 l23 l24
for k in 1 2 3 4; do expect "$T/l2$k.exp" "r$k" $N2; done
cat "$T"/l2?.exp >"$T/l2.exp"
expect "$T/l3.exp" p 200
pg_poll 10 bash -c "[ \$(cat '$LOG' '$LOG.1' | grep -c 'k=[rp][0-9]*&i=') -ge $((4 * N2 + 200)) ]"
pg_check "2: clients were still running when both workers had reloaded ($busy of 4)" test "$busy" -gt 0
pg_check "2: every request answered 200" \
    bash -c "[ \$(cat '$T'/l2?.log '$T/l3.log' | grep -c '^200 ') -eq $((4 * N2 + 200)) ]"
pg_check "2: each request during the rotation has exactly one line, old file and new together" \
    once "$T/l2.exp" "$LOG.1" "$LOG"
pg_check "2: the rotation split them: lines in the old file ($(ids "$LOG.1" | grep -c '^k=r')) and in the new ($(ids "$LOG" | grep -c '^k=r'))" \
    bash -c "ids() { grep -o 'k=r[0-9]&i=' \"\$1\"; }; [ \$(ids '$LOG.1' | wc -l) -gt 0 ] && [ \$(ids '$LOG' | wc -l) -gt 0 ]"
pg_check "2: requests done before the mv: all in the old file, once" once "$T/l1.exp" "$LOG.1"
pg_check "2: ... and none in the new one" bash -c "! grep -q 'k=[a-d]&i=\|k=ab1' '$LOG'"
pg_check "2: requests begun after the reload: all in the new file, once" once "$T/l3.exp" "$LOG"
pg_check "2: ... and none in the old one" bash -c "! grep -q 'k=p&i=' '$LOG.1'"
pg_check "2: the old file: whole combined lines only" \
    bash -c "[ \$(grep -c -v -E '$COMBINED' '$LOG.1') -eq 0 ]"
pg_check "2: the new file: whole JSON lines only" all_json "$LOG"

# ---- 3. SIGTERM drain under load ----
# each client needs at least 40/8 * 300 ms = 1.5 s: the signal comes while requests run
for k in 1 2 3; do load "l4$k" "$base/sleep?ms=300&k=t$k&i=[1-40]" 8; done
pg_poll 20 bash -c "[ \$(grep -c 'k=t[1-3]&i=' '$LOG') -ge 8 ]" || pg_fail "3: no load seen before SIGTERM"
before=$(grep -c 'k=t[1-3]&i=' "$LOG")
pg_stop profgate TERM
rc=$?
finish l41 l42 l43
cat "$T"/l4?.log | awk '$1 == 200 { print $2 }' | grep -o 'k=t[0-9]*&i=[0-9]*' | sort >"$T/l4.ok"
json_ids_200 "$LOG" | grep '^k=t' | sort >"$T/l4.logged"
pg_check "3: SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
pg_check "3: requests answered after the signal ($(wc -l <"$T/l4.ok") answered, $before logged at the signal)" \
    test "$(wc -l <"$T/l4.ok")" -gt "$before"
pg_check "3: every request answered 200 has exactly one 200 line, and no other request has one" \
    cmp -s "$T/l4.ok" "$T/l4.logged"
pg_check "3: no request has two lines" bash -c "[ -z \"\$(grep -o 'k=t[0-9]*&i=[0-9]*' '$LOG' | sort | uniq -d)\" ]"
pg_check "3: whole JSON lines only" all_json "$LOG"

# ---- 4. stderr into a pipe, common format ----
mkfifo "$T/err.fifo"
pg_start errcat cat "$T/err.fifo"
write_cfg "$T/pg2.toml" "$P2" common stderr
"$PG" --config "$T/pg2.toml" 2>"$T/err.fifo" >/dev/null &
PG_PIDS[pg2]=$!
pg_ready pg2 "$P2"
b2=http://127.0.0.1:$P2
for k in a b; do load "l5$k" "$b2/echo?k=s$k&i=[1-$N1]" 8; done
ab -k -c 32 -n 3000 "$b2/status?k=ab2&code=200" >"$T/ab2.out" 2>&1
finish l5a l5b
pg_stop pg2 TERM
rc=$?
finish errcat
for k in a b; do expect "$T/l5$k.exp" "s$k" $N1; done
cat "$T"/l5?.exp >"$T/l5.exp"
E=$T/errcat.log
pg_check "4: SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
pg_check "4: ab: 3000 requests, none failed" ab_ok "$T/ab2.out"
pg_check "4: each curl request has exactly one line" once "$T/l5.exp" "$E"
n=$(ab_lines ab2 "$E")
pg_check "4: one line for each of ab's 3000 requests (got $n)" test "$n" -eq 3000
pg_check "4: every line whole: an access line (common) or a diagnostic one" \
    bash -c "[ \$(grep -c -v -E '$COMMON|$DIAG' '$E') -eq 0 ] && [ \$(grep -c -E '$COMMON' '$E') -eq $((2 * N1 + 3000)) ]"

# ---- 5. writes that fail ----
if [ -w /dev/full ]; then
    write_cfg "$T/pg3.toml" "$P3" json /dev/full 'metrics_path = "/metrics"'
    pg_gateway pg3 "$T/pg3.toml" "$P3"
    b3=http://127.0.0.1:$P3
    curl -s --no-progress-meter -o /dev/null -w '%{http_code}\n' "$b3/echo?k=f&i=[1-50]" >"$T/l6.out"
    dropped()
    {
        curl -s "$b3/metrics" | awk '$1 == "profgate_access_log_dropped_total" { print $2 }'
    }
    # each /metrics request's own line is dropped too: at least the 50
    pg_poll 10 eval '[ "$(dropped)" -ge 50 ]'
    n=$(dropped)
    pg_check "5: all 50 requests answered 200 with the log failing" \
        test "$(grep -c '^200$' "$T/l6.out")" -eq 50
    pg_check "5: profgate_access_log_dropped_total counts the lines lost (got $n, want >= 50)" \
        test "${n:-0}" -ge 50
    pg_stop pg3 TERM
    rc=$?
    pg_check "5: SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
else
    echo "5: skipped: no writable /dev/full"
fi

if [ "$PG_FAILED" -gt 0 ]; then
    pg_log profgate
    cat "$T/once.diff" 2>/dev/null | head -20
    for f in "$LOG.1" "$LOG" "$E"; do echo "--- $f"; head -5 "$f"; done
    grep -v -h -E "$COMBINED|$COMMON|$DIAG|^\{" "$LOG.1" "$LOG" "$E" 2>/dev/null | head -10
fi
pg_done
