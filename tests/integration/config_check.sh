#!/usr/bin/env bash
# integration.config_check: `profgate --check --config FILE` on every config the project ships
# (exit 0, the resolved routes on stdout, nothing on stderr) and on broken files written here
# (exit 2, nothing on stdout, every error on stderr as FILE:LINE:COL: key: message).
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"

PROFGATE=$BIN/proxy/profgate
[ -x "$PROFGATE" ] || PROFGATE=$BIN/profgate
if [ ! -x "$PROFGATE" ]; then
    pg_fail "no profgate binary in $BIN"
    pg_done
fi

# check_ok FILE: exit 0, one "route" line per [[route]], no stderr.
check_ok()
{
    local f=$1 rc want got
    "$PROFGATE" --check --config "$f" >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc -ne 0 ]; then
        pg_fail "$f: exit $rc, wanted 0"
        cat "$T/err"
        return
    fi
    if [ -s "$T/err" ]; then
        pg_fail "$f: wrote to stderr on success"
        cat "$T/err"
        return
    fi
    if ! grep -q '^listen ' "$T/out"; then
        pg_fail "$f: no listen line in the description"
        cat "$T/out"
        return
    fi
    want=$(grep -c '^\[\[route\]\]' "$f")
    # an included file's routes count too (multi-service.toml includes conf.d/*.toml)
    if grep -q '^include *= *\["conf.d/\*.toml"\]' "$f"; then
        want=$(cat "$f" "$(dirname "$f")"/conf.d/*.toml | grep -c '^\[\[route\]\]')
    fi
    got=$(grep -c '^route .* -> upstream ' "$T/out")
    if [ "$got" -ne "$want" ]; then
        pg_fail "$f: $got route lines, wanted $want"
        cat "$T/out"
        return
    fi
    pg_pass "$f loads, $got route(s) described"
}

# check_bad FILE EXPECTED-LINE...: exit 2, nothing on stdout, stderr is exactly the expected
# lines (in order), each FILE:LINE:COL: ...
check_bad()
{
    local f=$1 rc
    shift
    "$PROFGATE" --check --config "$f" >"$T/out" 2>"$T/err"
    rc=$?
    printf '%s\n' "$@" >"$T/want"
    if [ $rc -ne 2 ]; then
        pg_fail "$f: exit $rc, wanted 2"
    elif [ -s "$T/out" ]; then
        pg_fail "$f: wrote to stdout on failure"
        cat "$T/out"
    elif ! diff -u "$T/want" "$T/err"; then
        pg_fail "$f: errors differ (above: - wanted, + got)"
    elif grep -qv '^[^:]*:[0-9][0-9]*:[0-9][0-9]*: ' "$T/err"; then
        pg_fail "$f: an error line without FILE:LINE:COL"
    else
        pg_pass "$f: exit 2 with $(wc -l <"$T/err") error(s) at FILE:LINE:COL"
    fi
}

# --- every shipped config ------------------------------------------------------------------
n=0
while IFS= read -r f; do
    check_ok "$f"
    n=$((n + 1))
done < <(find "$SRC/configs" -name '*.toml' | sort)
[ "$n" -ge 4 ] || pg_fail "only $n configs found under $SRC/configs"

# the description says what an operator wants to know
"$PROFGATE" --check --config "$SRC/configs/multi-service.toml" >"$T/out" 2>&1
pg_check "multi-service: host route to api described" \
    grep -q '^route api.example.com / -> upstream api unix:/tmp/profgate/api-http.sock' "$T/out"
pg_check "multi-service: prefix route profiles at /api/debug/pprof" \
    grep -q '^route /api/ -> upstream api .*profiles at /api/debug/pprof' "$T/out"
"$PROFGATE" --check --config "$SRC/configs/demo.toml" >"$T/out" 2>&1
pg_check "demo: pprof policy described" \
    grep -q '^pprof path /debug/pprof, allow 127.0.0.0/8 ::1/128, max_seconds 60' "$T/out"

# --- broken files ----------------------------------------------------------------------------
cd "$T" || exit 1

cat >several.toml <<'EOF'
[server]
listen = "127.0.0.1:8080"
workers = 0

[[upstream]]
name = "randomstring"
adress = "127.0.0.1:9000"
timeout = "30"

[[route]]
prefix = "/"
upstream = "randomstrng"

[pprof]
allow = ["127.0.0.1/8"]
EOF
check_bad several.toml \
    'several.toml:3:11: server.workers: 0 is out of range (1..1024)' \
    'several.toml:7:1: upstream.adress: unknown key (did you mean "address"?)' \
    'several.toml:8:11: upstream.timeout: "30": missing unit (ms, s, m or h), e.g. "10s"' \
    'several.toml:12:12: route.upstream: no upstream named "randomstrng" (did you mean "randomstring"?)' \
    'several.toml:15:10: pprof.allow: "127.0.0.1/8": address has bits set beyond the prefix length'

cat >agent.toml <<'EOF'
[[upstream]]
name = "a"
address = "localhost:9000"
agent = "127.0.0.1:9001"
[[upstream]]
name = "a"
address = "[::1]:9000"
[[route]]
prefix = "/"
upstream = "a"
EOF
check_bad agent.toml \
    'agent.toml:4:9: upstream.agent: "127.0.0.1:9001": must be a unix: socket address (the agent listens on a Unix socket), e.g. "unix:/tmp/profgate/app.sock"' \
    'agent.toml:6:8: upstream.name: duplicate upstream "a" (first defined at agent.toml:2:8)'

mkdir -p sub/conf.d
cat >sub/top.toml <<'EOF'
include = ["conf.d/*.toml", "missing.toml"]
[[upstream]]
name = "web"
address = "127.0.0.1:9000"
EOF
cat >sub/conf.d/a.toml <<'EOF'
# a service's own file

[[route]]
prefix = "/a"
upstream = "wbe"
EOF
cat >sub/conf.d/b.toml <<'EOF'
[[route]]
prefix = "/b"
upstream = "web"
host = "bad host"
EOF
check_bad sub/top.toml \
    'sub/top.toml:1:29: include: "missing.toml": no such file (looked for sub/missing.toml)' \
    'sub/conf.d/a.toml:5:12: route.upstream: no upstream named "wbe" (did you mean "web"?)' \
    'sub/conf.d/b.toml:4:8: route.host: "bad host": expected a host name as in the Host header (letters, digits, '"'"'-'"'"', '"'"'.'"'"', optional :port)'

printf '[server]\nlisten = "127.0.0.1:8080\n' >syntax.toml
"$PROFGATE" --check --config syntax.toml >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q '^syntax.toml:2:[0-9][0-9]*: ' "$T/err"; then
    pg_pass "syntax error: exit 2, one error at syntax.toml:2:COL"
else
    pg_fail "syntax error: exit $rc, stderr:"
    cat "$T/err"
fi

"$PROFGATE" --check --config nonexistent.toml >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && grep -q 'nonexistent.toml' "$T/err"; then
    pg_pass "missing file: exit 2, named"
else
    pg_fail "missing file: exit $rc, stderr:"
    cat "$T/err"
fi

pg_done
