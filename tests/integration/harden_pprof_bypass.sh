#!/usr/bin/env bash
# harden_pprof_bypass: the pprof gate cannot be walked around through the URL. profgate fronts
# a recording app (tests/integration/harden/rawhttp.py upstream) whose agent is a recording
# Unix socket (rawhttp.py unixsink): every byte the "agent" receives is logged, so "never
# reached the agent" is read off its log, not inferred from a status. The policy refuses the
# client unless it sends the bearer token (pprof.token_file); a second upstream has pprof
# enabled = false under prefix /off; max_seconds = 5. Each trick — percent-encoded dots and
# slashes, "..", "//", ";" parameters, absolute-form targets, mixed case, the Host header,
# and query spellings of seconds the agent would read as more than max_seconds — must be
# refused (4xx) or go to the app, with the agent's log unchanged.
# ctest-timeout: 120
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/harden/recording_proxy.sh"
echo s3cret >"$T/token"

pg_start agent $RAW unixsink "$T/agent.sock" "$T/agent.log"
pg_start agentoff $RAW unixsink "$T/agent-off.sock" "$T/agent-off.log"
pg_wait_unix "$T/agent.sock" 10 && pg_wait_unix "$T/agent-off.sock" 10 ||
    { pg_fail "recording agents did not start"; pg_done; }
recording_proxy_start "" "agent = \"unix:$T/agent.sock\"" "$(cat <<TOML

[[upstream]]
name = "off"
address = "127.0.0.1:$U"
agent = "unix:$T/agent-off.sock"
[upstream.pprof]
enabled = false

[[route]]
prefix = "/off"
upstream = "off"

[pprof]
path = "/debug/pprof"
allow = ["127.0.0.0/8"]
token_file = "token"
max_seconds = 5
TOML
)"

size() { stat -c %s "$1"; }
. "$(dirname "$0")/harden/bsend.sh"
agents() { echo "$(size "$T/agent.log"):$(size "$T/agent-off.log"):$(wc -l <"$T/agent.log.conns"):$(wc -l <"$T/agent-off.log.conns")"; }
AUTH='Authorization: Bearer s3cret\r\n'

# send REQUEST -> sets ST (status) and APP_GREW (1 when the app received bytes)
send() {
    local a0 out
    a0=$(size "$T/up.log")
    bsend "$P" "$1" 5
    sleep 0.15
    APP_GREW=0
    [ "$(size "$T/up.log")" != "$a0" ] && APP_GREW=1
    return 0
}

# trick NAME TARGET [EXTRA HEADERS]: refused or sent to the app; the agents got nothing
trick() {
    local name=$1 target=$2 extra=${3:-} before after
    before=$(agents)
    local host="Host: 127.0.0.1:$P\r\n"
    [[ $extra == Host:* ]] && host="" # the trick brings its own Host
    send "GET $target HTTP/1.1\r\n${host}${extra}Connection: close\r\n\r\n"
    after=$(agents)
    if [ "$before" != "$after" ]; then
        pg_fail "$name ($target): reached an agent (status $ST; agent log $before -> $after)"
    elif [ "$APP_GREW" = 1 ] || [[ $ST =~ ^4[0-9][0-9]$ ]]; then
        pg_pass "$name: $([ "$APP_GREW" = 1 ] && echo "went to the app" || echo "refused $ST"), agent untouched"
    else
        pg_fail "$name ($target): status $ST, app got nothing, agent untouched: neither refused nor the app's"
    fi
}

# controls: the gate refuses without the token, and the recording agent does record
before=$(agents)
send "GET /debug/pprof/heap HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
pg_check "control: no token -> 401, agent untouched (got $ST)" test "$ST" = 401 -a "$before" = "$(agents)"
send "GET /debug/pprof/heap HTTP/1.1\r\nHost: a\r\n${AUTH}Connection: close\r\n\r\n"
pg_check "control: with the token the request reaches the agent (got $ST)" test "$ST" = 200 -a "$before" != "$(agents)"
pg_check "control: the agent saw /debug/pprof/heap without the credential" \
    bash -c "grep -q 'GET /debug/pprof/heap ' '$T/agent.log' && ! grep -qi 'authorization' '$T/agent.log'"
send "GET /off/debug/pprof/heap HTTP/1.1\r\nHost: a\r\n${AUTH}Connection: close\r\n\r\n"
pg_check "control: pprof.enabled = false -> 404 even with the token (got $ST)" [ "$ST" = 404 ]
send "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
pg_check "control: an app path goes to the app (got $ST)" test "$ST" = 200 -a "$APP_GREW" = 1

# percent-encoding
trick "%2e%2e segment" "/x/%2e%2e/debug/pprof/heap"
trick "%2E%2E segment" "/x/%2E%2E/debug/pprof/heap"
trick "%2f for a slash" "/debug%2fpprof%2fheap"
trick "%2F in the pprof rest" "/debug/pprof%2Fheap"
trick "%64 for d" "/%64ebug/pprof/heap"
trick "%70 for p" "/debug/%70prof/profile"
trick "%2e for ." "/debug/pprof/%2e/heap"
trick "double encoding %252e" "/x/%252e%252e/debug/pprof/heap"
trick "/off with %2e%2e to the other agent" "/off/%2e%2e/debug/pprof/heap"
# dot segments and slashes
trick ".. segment" "/x/../debug/pprof/heap"
trick ". segment" "/./debug/pprof/heap"
trick "/off/.. segment" "/off/../debug/pprof/heap"
trick "// before" "//debug/pprof/heap"
trick "// inside" "/debug//pprof/heap"
trick "/off// to its disabled agent" "/off//debug/pprof/heap" "$AUTH"
trick "backslash" "/debug\\\\pprof/heap"
# ; parameters
trick "; on the segment" "/debug/pprof;x=1/heap"
trick "; at the end" "/debug/pprof/heap;x=1"
trick "; on the first segment" "/debug;/pprof/heap"
# absolute-form
trick "absolute-form" "http://127.0.0.1:$P/debug/pprof/heap"
trick "absolute-form, other host" "http://evil.example/debug/pprof/profile?seconds=1"
trick "absolute-form, /off" "http://127.0.0.1/off/debug/pprof/heap" "$AUTH"
trick "absolute-form, userinfo" "http://x@127.0.0.1/debug/pprof/heap"
trick "absolute-form, https scheme" "https://127.0.0.1/debug/pprof/heap"
trick "absolute-form, empty path" "http://127.0.0.1?/debug/pprof/heap"
# mixed case
trick "/DEBUG/pprof" "/DEBUG/pprof/heap"
trick "/debug/PPROF" "/debug/PPROF/heap"
trick "/OFF with the token" "/OFF/debug/pprof/heap" "$AUTH"
# Host header
trick "Host naming the upstream" "/debug/pprof/heap" "Host: 127.0.0.1:$U\r\n"
trick "duplicate Host" "/debug/pprof/heap" "X-A: 1\r\nHost: localhost\r\n"
trick "Host localhost" "/debug/pprof/heap" "Host: localhost\r\n"
trick "no Host, HTTP/1.1" "/debug/pprof/heap" "Host:\r\n"
trick "Host with a path" "/heap" "X-Forwarded-Host: x\r\nX-Original-URL: /debug/pprof/heap\r\n"
# the token itself
trick "token in the query" "/debug/pprof/heap?token=s3cret"
trick "wrong token" "/debug/pprof/heap" 'Authorization: Bearer s3cre\r\n'
trick "token as Basic" "/debug/pprof/heap" 'Authorization: Basic czNjcmV0\r\n'
trick "token with a trailing NUL" "/debug/pprof/heap" 'Authorization: Bearer s3cret\0\r\n'
trick "two Authorization fields, the first wrong" "/debug/pprof/heap" "Authorization: Bearer no\r\n${AUTH}"

# max_seconds = 5: spellings of seconds=100 that the agent (Go's url.ParseQuery + ParseInt:
# percent-decoding, pairs with ';' skipped, first match wins) reads as 100
trick "seconds over the limit" "/debug/pprof/profile?seconds=100" "$AUTH"
trick "seconds percent-encoded" "/debug/pprof/profile?seconds=%31%30%30" "$AUTH"
trick "seconds key percent-encoded" "/debug/pprof/profile?second%73=100" "$AUTH"
trick "seconds with leading zeros past 10 digits" "/debug/pprof/profile?seconds=00000000100" "$AUTH"
trick "seconds with %2B sign" "/debug/pprof/profile?seconds=%2B100" "$AUTH"
trick "first seconds pair has ';' (Go skips it)" "/debug/pprof/profile?seconds=1;&seconds=100" "$AUTH"
trick "first seconds pair has a bad escape (Go skips it)" "/debug/pprof/profile?seconds=1%zz&seconds=100" "$AUTH"

trick "profile without seconds (Go's default 30 > max_seconds 5)" "/debug/pprof/profile" "$AUTH"
trick "seconds not a number" "/debug/pprof/profile?seconds=1e2" "$AUTH"
# and what the limit allows still goes through
before=$(agents)
send "GET /debug/pprof/profile?seconds=5 HTTP/1.1\r\nHost: a\r\n${AUTH}Connection: close\r\n\r\n"
pg_check "seconds=5 (the limit) reaches the agent (got $ST)" test "$ST" = 200 -a "$before" != "$(agents)"
send "GET /debug/pprof/symbol?0x1234+0x5678 HTTP/1.1\r\nHost: a\r\n${AUTH}Connection: close\r\n\r\n"
pg_check "a GET /symbol query with '+' still reaches the agent (got $ST)" [ "$ST" = 200 ]
send "GET /debug/pprof/heap?seconds= HTTP/1.1\r\nHost: a\r\n${AUTH}Connection: close\r\n\r\n"
pg_check "heap with an empty seconds (Go: no delta) reaches the agent (got $ST)" [ "$ST" = 200 ]
# pprof.admin_listen: the public port must not expose the agent even to a client with the
# token; the same tricks against a second profgate whose pprof lives on an admin address
pg_ports P2 A2
sed -e "s/^listen = .*/listen = \"127.0.0.1:$P2\"/" -e "s|^path = \"/debug/pprof\"|&\nadmin_listen = \"127.0.0.1:$A2\"|" \
    "$T/pg.toml" >"$T/pg2.toml"
pg_start pg2 "$PG" --config "$T/pg2.toml"
if pg_wait_port "$P2" 20 && pg_wait_port "$A2" 20; then
    before=$(agents)
    bsend "$A2" "GET /debug/pprof/heap HTTP/1.1\r\nHost: a\r\n${AUTH}Connection: close\r\n\r\n" 5
    pg_check "admin_listen control: the admin address reaches the agent (got $ST)" \
        test "$ST" = 200 -a "$before" != "$(agents)"
    P=$P2
    for t in /debug/pprof/heap /debug/pprof/profile?seconds=1 /debug/pprof /debug/pprof/ \
        /%64ebug/pprof/heap /x/../debug/pprof/heap //debug/pprof/heap /debug/pprof/heap\;x \
        /DEBUG/pprof/heap "http://127.0.0.1:$A2/debug/pprof/heap" /debug/pprof/ui/ \
        /debug/pprof/symbol; do
        trick "public port with admin_listen, with the token: $t" "$t" "$AUTH"
    done
else
    pg_log pg2
    pg_fail "profgate with admin_listen did not start"
fi

kill -0 "$(pg_pid pg)" 2>/dev/null
pg_check "profgate is still running" [ $? = 0 ]
pg_done
