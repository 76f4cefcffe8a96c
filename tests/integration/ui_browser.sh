#!/usr/bin/env bash
# ui_browser: the profile viewer page (issue 7) in a real browser. randomstring + profgate on
# free ports, pprof policy with a token; headless Chromium (Debian's) driven by playwright-core
# (tests/integration/ui/ui_browser.js) opens <gateway>/debug/pprof/ui/, enters the token,
# shows a debug=1 text view, sees a colliding CPU profile refused in words, then collects a
# 2 s CPU profile under load (ab), watches the countdown, waits for speedscope to show it,
# switches to the sandwich view and finds rs_random_char / rs_random_string there. A second
# gateway without the speedscope bundle must say how to install it, and show its 502 (agent
# unreachable) in words. Also checks with curl
# what a browser cannot show: traversal refused, token only required for services.json,
# no token in URLs. Screenshots: $PG_BUILD_DIR/tests/artifacts/ui*.png.
# Installs what it needs with scripts/install-ui-deps.sh test (only what is missing); skipped
# (exit 77) only when Chromium cannot be installed.
# ctest-timeout: 300
# ctest-resource: cpu
# ctest-skip-code: 77
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

pg_need "$RS" "$PG" ab curl node

# --- what the browser test needs (idempotent; only what is missing)
if ! "$SRC/scripts/install-ui-deps.sh" test >"$T/install.log" 2>&1; then
    cat "$T/install.log"
    if [ ! -x /usr/bin/chromium ]; then
        echo "SKIP: Chromium cannot be installed here (scripts/install-ui-deps.sh test failed, see above)"
        exit 77
    fi
    echo "FAIL: scripts/install-ui-deps.sh test failed"
    exit 1
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "SKIP: /usr/bin/chromium is missing after scripts/install-ui-deps.sh test"
    exit 77
fi
PW=$SRC/third_party/ui-test/node_modules/playwright-core
VIEWER=$SRC/third_party/speedscope/node_modules/speedscope/dist/release
[ -f "$PW/package.json" ] || { echo "FAIL: playwright-core not installed in $PW"; exit 1; }
[ -f "$VIEWER/index.html" ] || { echo "FAIL: speedscope not installed in $VIEWER"; exit 1; }

SOCK=$T/agent/randomstring.sock
TOKEN=ui-test-$RANDOM$RANDOM-token
printf '%s\n' "$TOKEN" >"$T/pprof.token"
ART=$BIN/tests/artifacts
mkdir -p "$ART"
rm -f "$ART"/ui*.png

# Free ports can be taken between the check and the bind (other tests' client sockets use
# the same range): on "address already in use" start again on other ports, up to 3 times.
start_all()
{
    local name
    pg_ports RS_PORT PG_PORT NV_PORT
    PG_PPROF_EXTRA='token_file  = "pprof.token"'
    pg_gateway_config "$PG_PORT" "127.0.0.1:$RS_PORT" "$SOCK" >"$T/profgate.toml"
    # the second gateway: no speedscope bundle, and an agent socket nobody listens on (502)
    pg_gateway_config "$NV_PORT" "127.0.0.1:$RS_PORT" "$T/agent/nobody.sock" >"$T/noviewer.toml"
    pg_start rs "$RS" --listen 127.0.0.1:$RS_PORT --agent-socket "$SOCK"
    if pg_up rs "$RS_PORT" "$SOCK"; then
        pg_start pg "$PG" --config "$T/profgate.toml"
        mkdir -p "$T/empty"
        PROFGATE_SPEEDSCOPE_DIR=$T/empty pg_start nv "$PG" --config "$T/noviewer.toml"
        pg_up pg "$PG_PORT" && pg_up nv "$NV_PORT" && return 0
    fi
    for name in nv pg rs; do
        [ -n "${PG_PIDS[$name]:-}" ] && pg_stop $name KILL
    done
    return 1
}
up=0
for attempt in 1 2 3; do
    if start_all; then
        up=1
        break
    fi
    grep -qi 'address already in use' "$T"/rs.log "$T"/pg.log "$T"/nv.log 2>/dev/null || break
    echo "note: a port was taken meanwhile (attempt $attempt), starting again on others"
done
if [ $up = 0 ]; then
    pg_log rs; pg_log pg; pg_log nv
    echo "FAIL: randomstring and the two gateways did not come up"
    exit 1
fi
GW=http://127.0.0.1:$PG_PORT
NV=http://127.0.0.1:$NV_PORT

# --- what curl can check
UI=$GW/debug/pprof/ui
code=$(curl -s -m 10 -o /dev/null -w '%{http_code} %{redirect_url}' "$UI")
pg_check "GET /debug/pprof/ui redirects to ui/ ($code)" [ "$code" = "301 $UI/" ]
curl -s -m 10 -D "$T/index.h" -o "$T/index.html" "$UI/"
pg_check "the page is served without a token, as text/html" \
    bash -c "grep -q '^HTTP/1.1 200' '$T/index.h' && grep -qi '^Content-Type: text/html' '$T/index.h'"
pg_check "the page carries a same-origin Content-Security-Policy" \
    grep -qi "^Content-Security-Policy: default-src 'self'" "$T/index.h"
code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$UI/app.js")
pg_check "app.js: 200 ($code)" [ "$code" = 200 ]
code=$(curl -s -m 10 -D "$T/sj.h" -o "$T/sj.body" -w '%{http_code}' "$UI/services.json")
pg_check "services.json without the token: 401 ($code)" [ "$code" = 401 ]
pg_check "401 says how to authenticate (WWW-Authenticate: Bearer)" grep -qi '^WWW-Authenticate: Bearer' "$T/sj.h"
code=$(curl -s -m 10 -H "Authorization: Bearer wrong$TOKEN" -o /dev/null -w '%{http_code}' "$UI/services.json")
pg_check "services.json with a wrong token: 401 ($code)" [ "$code" = 401 ]
code=$(curl -s -m 10 -H "Authorization: Bearer $TOKEN" -o "$T/services.json" -w '%{http_code}' "$UI/services.json")
pg_check "services.json with the token: 200 ($code)" [ "$code" = 200 ]
pg_check "services.json lists randomstring with its profile URLs" \
    python3 -c "
import json, sys
d = json.load(open('$T/services.json'))
s = [x for x in d['services'] if x['name'] == 'randomstring'][0]
assert s['base'] == '/debug/pprof' and s['profiles']['profile'] == '/debug/pprof/profile', s
assert s['token_required'] is True and d['viewer']['installed'] is True, d
assert '$TOKEN' not in open('$T/services.json').read()
"
code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$UI/speedscope/")
pg_check "speedscope's index through the gateway: 200 ($code)" [ "$code" = 200 ]
js=$(grep -o 'speedscope-[A-Z0-9]*\.js' "$VIEWER/index.html" | head -n 1)
curl -s -m 10 -D "$T/js.h" -o "$T/js.body" "$UI/speedscope/$js"
pg_check "speedscope's bundle ($js) is served as JavaScript, byte for byte" \
    bash -c "grep -qi '^Content-Type: text/javascript' '$T/js.h' && cmp -s '$T/js.body' '$VIEWER/$js'"
for trick in "speedscope/../../../../../../etc/passwd" "speedscope/%2e%2e/package.json" \
             "speedscope/..%2fpackage.json" "%2e%2e/pg_ui.c" "..%5c..%5cCMakeLists.txt" \
             "speedscope//etc/passwd" "speedscope/index.html%00.png" "./index.html" \
             "speedscope/%252e%252e/package.json"; do
    code=$(curl -s -m 10 --path-as-is -o "$T/trick.body" -w '%{http_code}' "$UI/$trick")
    pg_check "traversal \"ui/$trick\" refused ($code)" \
        bash -c "[ '$code' = 404 ] && ! grep -q 'root:' '$T/trick.body'"
done
# the relay checks the token too (issue 6), so the page's fetches must carry it
code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$GW/debug/pprof/goroutine?debug=1")
pg_check "a profile without the token: 401 ($code)" [ "$code" = 401 ]
code=$(curl -s -m 10 -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{http_code}' \
       "$GW/debug/pprof/goroutine?debug=1")
pg_check "a profile with the token: 200 ($code)" [ "$code" = 200 ]
code=$(curl -s -m 10 -X POST -o /dev/null -w '%{http_code}' "$UI/")
pg_check "POST to the page: 405 ($code)" [ "$code" = 405 ]
code=$(curl -s -m 10 -H "Authorization: Bearer $TOKEN" -o "$T/nv.json" -w '%{http_code}' \
       "$NV/debug/pprof/ui/services.json")
pg_check "a gateway without speedscope says installed: false ($code)" \
    bash -c "[ '$code' = 200 ] && grep -q '\"installed\": false' '$T/nv.json'"
code=$(curl -s -m 10 -o "$T/nv.body" -w '%{http_code}' "$NV/debug/pprof/ui/speedscope/")
pg_check "and its ui/speedscope/ says how to install it ($code)" \
    bash -c "[ '$code' = 404 ] && grep -q 'install-ui-deps.sh' '$T/nv.body'"

# --- the browser, with randomstring under load (bounded: 25 s, 4 connections)
ab -k -c 4 -t 25 -n 5000000 "$GW/randomstring" >"$T/ab.txt" 2>&1 &
AB=$!
PG_PIDS[ab]=$AB
mkdir -p "$T/chromium"
PLAYWRIGHT_CORE=$PW CHROMIUM=/usr/bin/chromium UI_URL="$UI/" UI_TOKEN=$TOKEN \
    UI_NOVIEWER_URL="$NV/debug/pprof/ui/" UI_PROFILE_URL="$GW/debug/pprof/profile?seconds=5" \
    UI_SHOT=$ART/ui.png UI_PROFILE_DIR=$T/chromium \
    timeout 200 node "$SRC/tests/integration/ui/ui_browser.js" >"$T/browser.out" 2>&1
brc=$?
kill "$AB" 2>/dev/null
wait "$AB" 2>/dev/null
unset "PG_PIDS[ab]"
cat "$T/browser.out"
PG_PASSED=$((PG_PASSED + $(grep -c '^ok: ' "$T/browser.out")))
PG_FAILED=$((PG_FAILED + $(grep -c '^FAIL: ' "$T/browser.out")))
pg_check "the browser session exited 0 (rc=$brc)" [ $brc = 0 ]
pg_check "ab saw no failed request" bash -c "! grep -Eq '^Failed requests: *[1-9]' '$T/ab.txt'"
pg_check "screenshot artifact exists" [ -s "$ART/ui.png" ]
echo "screenshot: $ART/ui.png"

pg_stop nv TERM
pg_stop pg TERM
pg_stop_check rs "randomstring exits 0 on SIGTERM"

if [ "$PG_FAILED" != 0 ]; then
    pg_log rs
    pg_log pg
fi
pg_done
