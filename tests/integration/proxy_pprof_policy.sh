#!/usr/bin/env bash
# integration.proxy_pprof_policy: the [pprof] policy per upstream, end to end (issue 6 "global
# and per upstream"): each upstream overrides one key of the global policy and only that one,
# and each refusal comes with its status, Go's X-Go-Pprof: 1 and a message naming the cause,
# while its neighbours keep the global policy. The "agents" are test servers that answer
# /debug/pprof/sleep and count their connections (pg_test_upstream's conn=N), so that a refused
# request is seen not to reach them.
#  - allow: global 127.0.0.1/32; a client connecting from 127.0.0.2 gets 403 naming its
#    address; an upstream whose allow names 127.0.0.2 lets it in; one whose allow is 10/8
#    refuses even 127.0.0.1; an empty global allow (second gateway) refuses everyone, while
#    an upstream that allows loopback still serves;
#  - token_file on one upstream: 401 with WWW-Authenticate: Bearer without it or with a wrong
#    one, the agent reached with it (without the Authorization header); the others need none;
#  - max_seconds on one upstream: 400 naming its own limit; the global limit elsewhere;
#  - enabled = false on one upstream: 404 naming pprof.enabled; an upstream without an agent:
#    404 naming upstream.agent; the application paths of both still served;
#  - metrics count the refusals by cause.
# ctest-timeout: 90
. "$(dirname "$0")/lib/common.sh"

pg_ports P P2 U
echo s3cret >"$T/tok"

cat >"$T/pg.toml" <<EOF
[server]
listen       = "127.0.0.1:$P"
metrics_path = "/metrics"

[[upstream]]
name    = "plain"
address = "127.0.0.1:$U"
agent   = "unix:$T/plain.sock"

[[upstream]]
name    = "wide"
address = "127.0.0.1:$U"
agent   = "unix:$T/wide.sock"
pprof   = { allow = ["127.0.0.2"] }

[[upstream]]
name    = "far"
address = "127.0.0.1:$U"
agent   = "unix:$T/far.sock"
pprof   = { allow = ["10.0.0.0/8"] }

[[upstream]]
name    = "tok"
address = "127.0.0.1:$U"
agent   = "unix:$T/tok.sock"
pprof   = { token_file = "tok" }

[[upstream]]
name    = "short"
address = "127.0.0.1:$U"
agent   = "unix:$T/short.sock"
pprof   = { max_seconds = 5 }

[[upstream]]
name    = "off"
address = "127.0.0.1:$U"
agent   = "unix:$T/off.sock"
pprof   = { enabled = false }

[[upstream]]
name    = "noagent"
address = "127.0.0.1:$U"

[[route]]
prefix   = "/"
upstream = "plain"

[[route]]
prefix   = "/wide"
upstream = "wide"

[[route]]
prefix   = "/far"
upstream = "far"

[[route]]
prefix   = "/tok"
upstream = "tok"

[[route]]
prefix   = "/short"
upstream = "short"

[[route]]
prefix   = "/off"
upstream = "off"

[[route]]
prefix   = "/noagent"
upstream = "noagent"

[pprof]
allow       = ["127.0.0.1/32"]
max_seconds = 20
EOF

# a second gateway: nobody may profile by default, one upstream allows loopback
cat >"$T/none.toml" <<EOF
[server]
listen = "127.0.0.1:$P2"

[[upstream]]
name    = "plain"
address = "127.0.0.1:$U"
agent   = "unix:$T/plain.sock"

[[upstream]]
name    = "loop"
address = "127.0.0.1:$U"
agent   = "unix:$T/wide.sock"
pprof   = { allow = ["127.0.0.0/8"] }

[[route]]
prefix   = "/"
upstream = "plain"

[[route]]
prefix   = "/loop"
upstream = "loop"

[pprof]
allow = []
EOF

agents=()
for a in plain wide far tok short off; do
    agents+=("agent-$a" "unix:$T/$a.sock")
done
pg_upstreams app "127.0.0.1:$U" "${agents[@]}"
pg_gateway pg "$T/pg.toml" "$P"
pg_gateway none "$T/none.toml" "$P2"
base=http://127.0.0.1:$P

# req NAME URL [curl args]: status printed; body in $T/NAME, head in $T/NAME.h
req()
{
    local name=$1 url=$2
    shift 2
    curl -s -m 20 -D "$T/$name.h" -o "$T/$name" -w '%{http_code}' "$@" "$url"
}

# refused NAME STATUS MESSAGE: the response NAME is STATUS, Go's X-Go-Pprof, text/plain, MESSAGE
refused()
{
    local h
    h=$(tr -d '\r' <"$T/$1.h")
    grep -q "^HTTP/1.1 $2 " <<<"$h" && grep -qix 'X-Go-Pprof: 1' <<<"$h" &&
        grep -qi '^Content-Type: text/plain' <<<"$h" && grep -qxF "$3" "$T/$1"
}

# agent connections so far (pg_test_upstream counts them; a direct probe is one more)
agent_conns()
{
    curl -s --unix-socket "$T/$1.sock" "http://a/echo" | sed -n 's/.* conn=\([0-9]*\) .*/\1/p'
}

# --- allow ---
code=$(req a1 "$base/debug/pprof/sleep?ms=1")
pg_check "global allow: 127.0.0.1 reaches the agent (got $code)" test "$code" = 200
before=$(agent_conns plain)
code=$(req a2 "$base/debug/pprof/sleep?ms=1" --interface 127.0.0.2)
pg_check "global allow 127.0.0.1/32: 127.0.0.2 gets 403 naming it (got $code: $(cat "$T/a2"))" \
    refused a2 403 "pprof access denied: client 127.0.0.2 is not in pprof.allow"
pg_check "... and the agent saw nothing of it" test "$(agent_conns plain)" = $((before + 1))
code=$(req a3 "$base/echo" --interface 127.0.0.2)
pg_check "the application path is not behind pprof.allow (got $code)" test "$code" = 200
code=$(req a4 "$base/wide/debug/pprof/sleep?ms=1" --interface 127.0.0.2)
pg_check "upstream allow [127.0.0.2] lets 127.0.0.2 in (got $code)" test "$code" = 200
code=$(req a5 "$base/wide/debug/pprof/sleep?ms=1")
pg_check "... and replaces the global list: 127.0.0.1 refused there (got $code)" \
    refused a5 403 "pprof access denied: client 127.0.0.1 is not in pprof.allow"
before=$(agent_conns far)
code=$(req a6 "$base/far/debug/pprof/heap")
pg_check "upstream allow [10.0.0.0/8]: loopback refused (got $code)" \
    refused a6 403 "pprof access denied: client 127.0.0.1 is not in pprof.allow"
pg_check "... its agent saw nothing" test "$(agent_conns far)" = $((before + 1))
code=$(req a7 "http://127.0.0.1:$P2/debug/pprof/heap")
pg_check "global allow = []: nobody, not even loopback (got $code)" \
    refused a7 403 "pprof access denied: client 127.0.0.1 is not in pprof.allow"
code=$(req a8 "http://127.0.0.1:$P2/loop/debug/pprof/sleep?ms=1")
pg_check "global allow = [] with an upstream allowing loopback: served there (got $code)" \
    test "$code" = 200

# --- token_file on one upstream ---
before=$(agent_conns tok)
code=$(req t1 "$base/tok/debug/pprof/sleep?ms=1")
pg_check "upstream token: none sent -> 401 (got $code)" \
    refused t1 401 "pprof token required: send Authorization: Bearer <token> (the contents of pprof.token_file)"
pg_check "upstream token: 401 carries WWW-Authenticate: Bearer" \
    bash -c "tr -d '\r' <'$T/t1.h' | grep -qi '^WWW-Authenticate: Bearer'"
code=$(req t2 "$base/tok/debug/pprof/sleep?ms=1" -H 'Authorization: Bearer s3cre')
pg_check "upstream token: a wrong one -> 401 (got $code)" test "$code" = 401
pg_check "upstream token: the agent saw neither" test "$(agent_conns tok)" = $((before + 1))
code=$(req t3 "$base/tok/debug/pprof/echo" -H 'Authorization: Bearer s3cret')
pg_check "upstream token: the right one reaches the agent, without the credential (got $code)" \
    bash -c "[ '$code' = 200 ] && grep -q '^agent-tok GET /debug/pprof/echo' '$T/t3' && ! grep -qi '^authorization' '$T/t3'"
code=$(req t4 "$base/debug/pprof/sleep?ms=1")
pg_check "the other upstreams need no token (got $code)" test "$code" = 200
code=$(req t5 "$base/tok/echo")
pg_check "the token upstream's application path needs none: the app answers (got $code)" \
    grep -qx 'app not found /tok/echo' "$T/t5"

# --- max_seconds on one upstream ---
code=$(req m1 "$base/short/debug/pprof/sleep?ms=1&seconds=6")
pg_check "upstream max_seconds 5: seconds=6 -> 400 naming its limit (got $code)" \
    refused m1 400 "seconds=6 exceeds the limit pprof.max_seconds = 5"
code=$(req m2 "$base/short/debug/pprof/sleep?ms=1&seconds=5")
pg_check "upstream max_seconds 5: seconds=5 passes (got $code)" test "$code" = 200
code=$(req m3 "$base/short/debug/pprof/profile")
pg_check "upstream max_seconds 5: profile without seconds (Go's 30) refused, saying so (got $code)" \
    refused m3 400 "no seconds given: the default 30 exceeds the limit pprof.max_seconds = 5 (ask for seconds=N)"
code=$(req m4 "$base/debug/pprof/sleep?ms=1&seconds=6")
pg_check "elsewhere the global max_seconds 20 holds: seconds=6 passes (got $code)" test "$code" = 200
code=$(req m5 "$base/debug/pprof/sleep?ms=1&seconds=21")
pg_check "... and seconds=21 does not (got $code)" \
    refused m5 400 "seconds=21 exceeds the limit pprof.max_seconds = 20"

# --- enabled = false, no agent ---
before=$(agent_conns off)
code=$(req o1 "$base/off/debug/pprof/heap")
pg_check "enabled = false: 404 naming pprof.enabled (got $code)" \
    refused o1 404 'profiling is disabled for upstream "off" (pprof.enabled)'
pg_check "enabled = false: its agent saw nothing" test "$(agent_conns off)" = $((before + 1))
code=$(req o2 "$base/off/echo")
pg_check "enabled = false: the application is still served (got $code)" \
    grep -qx 'app not found /off/echo' "$T/o2"
code=$(req n1 "$base/noagent/debug/pprof/heap")
pg_check "no agent: 404 naming upstream.agent (got $code)" \
    refused n1 404 'upstream "noagent" has no agent configured (upstream.agent)'

# --- metrics ---
curl -s "$base/metrics" >"$T/m"
pg_check "metrics: this gateway's 401s and 403s counted as pprof_denied (5)" \
    grep -qx 'profgate_errors_total{cause="pprof_denied"} 5' "$T/m"
pg_check "metrics: 400s counted as pprof_seconds_limit (3)" \
    grep -qx 'profgate_errors_total{cause="pprof_seconds_limit"} 3' "$T/m"
pg_check "metrics: 404s counted as pprof_unavailable (2)" \
    grep -qx 'profgate_errors_total{cause="pprof_unavailable"} 2' "$T/m"

pg_stop_check pg
if [ "$PG_FAILED" -gt 0 ]; then
    pg_log pg
    cat "$T/m"
fi
pg_done
