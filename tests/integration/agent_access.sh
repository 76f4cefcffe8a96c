#!/usr/bin/env bash
# integration.agent_access: who may talk to the agent (issue 6), with real processes under real
# uids. The agent (agent_burn, idle) runs as nobody; curl and profgate run as other uids
# (setpriv). Without settings only the agent's uid (and root) get in; PROFAGENT_ALLOW_UID lets
# a named uid in (socket 0666, SO_PEERCRED refuses everyone else, logged and rate-limited);
# PROFAGENT_SOCKET_GROUP keeps strangers from connecting at all (socket 0660 of that group);
# a gateway running as the allowed uid relays a profile; unsafe and unreachable directories
# are warned about. Needs root (to switch uids): exits 77 otherwise.
# ctest-timeout: 120
# ctest-skip-code: 77
# shellcheck disable=SC2046 # $(as ...) prints setpriv words, split on purpose
. "$(dirname "$0")/lib/common.sh"

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    echo "skipped: needs root and setpriv to run processes under other uids"
    exit 77
fi

PROG=$BIN/tests/programs/agent_burn
AGENT_UID=65534 # nobody
GW_UID=12345    # the gateway's user: no passwd entry needed
STRANGER_UID=23456
GROUP=4242

# as UID[:GROUPS]: the setpriv words that run a command as that uid (gid = uid), with those
# supplementary groups or none (unquoted on use; pg_start then holds the program's own PID)
as()
{
    local uid=${1%%:*}
    if [ "$1" != "$uid" ]; then
        echo "setpriv --reuid=$uid --regid=$uid --groups=${1#*:}"
    else
        echo "setpriv --reuid=$uid --regid=$uid --clear-groups"
    fi
}

if ! $(as $AGENT_UID) test -x "$PROG"; then
    echo "skipped: $PROG is not reachable by uid $AGENT_UID (build directory permissions)"
    exit 77
fi

# $T is root's 0700 temp dir: open it for passing through, and give the agent a home it owns
chmod 0755 "$T"
mkdir -p "$T/home"
chown $AGENT_UID:$AGENT_UID "$T/home"

# fetch WHO SOCKET: the status of GET /debug/pprof/cmdline as WHO ("000" when refused)
fetch()
{
    $(as "$1") timeout 10 curl -s -o /dev/null -w '%{http_code}' --unix-socket "$2" \
        http://agent/debug/pprof/cmdline
}

# agent NAME SOCKET [VAR=VALUE...]: start agent_burn (no busy threads) as nobody, in the groups
# of $AGENT_GROUPS if set
agent()
{
    local name=$1 sock=$2 who=$AGENT_UID
    shift 2
    [ -n "${AGENT_GROUPS:-}" ] && who=$AGENT_UID:$AGENT_GROUPS
    pg_start "$name" $(as "$who") env PROFAGENT_SOCKET="$sock" "$@" "$PROG" --threads 0 \
        --seconds 100
    # the file appears when it is renamed into place, after listen(): it answers from then on
    pg_wait_unix "$sock" 10 || pg_fail "$name: no socket at $sock"
}

mode() { stat -c %a "$1"; }
owner() { stat -c %u:%g "$1"; }

# --- 1. no settings: the agent's own uid and root only; the file keeps others out ---------------
S1=$T/home/plain/agent.sock
agent plain "$S1"
pg_check "default: socket 0600, directory 0700" \
    test "$(mode "$S1") $(mode "$T/home/plain")" = "600 700"
pg_check "default: the agent's own uid gets 200" test "$(fetch $AGENT_UID "$S1")" = 200
pg_check "default: root gets 200" test "$(fetch 0 "$S1")" = 200
pg_check "default: another uid cannot connect" test "$(fetch $GW_UID "$S1")" = 000

# --- 2. PROFAGENT_ALLOW_UID: that uid in; others reach the file but SO_PEERCRED turns them away ---
S2=$T/home/allow/agent.sock
agent allow "$S2" PROFAGENT_ALLOW_UID="bogus-user-x,$GW_UID"
pg_check "allow_uid: socket 0666, directory 0711" \
    test "$(mode "$S2") $(mode "$T/home/allow")" = "666 711"
pg_check "allow_uid: the allowed uid gets 200" test "$(fetch $GW_UID "$S2")" = 200
pg_check "allow_uid: the agent's own uid still gets 200" test "$(fetch $AGENT_UID "$S2")" = 200
pg_check "allow_uid: a bad entry is logged and ignored" \
    grep -q 'PROFAGENT_ALLOW_UID: "bogus-user-x" ignored: no such name' "$T/allow.log"
start=$(date +%s)
pg_check "allow_uid: a stranger is refused" test "$(fetch $STRANGER_UID "$S2")" = 000
pg_check "allow_uid: the refusal is logged with the stranger's uid" \
    grep -q "profagent: refused a connection to $S2 from uid $STRANGER_UID (pid [0-9]*)" \
    "$T/allow.log"
# rate limit: a stranger dialling in a loop gets one line per 10 s, not one per attempt
for _ in $(seq 1 20); do
    fetch $STRANGER_UID "$S2" >/dev/null
done
elapsed=$(($(date +%s) - start))
lines=$(grep -c "refused a connection to $S2" "$T/allow.log")
if [ "$elapsed" -lt 9 ]; then
    pg_check "allow_uid: 21 refusals within 10 s log one line ($lines)" test "$lines" = 1
else
    echo "note: 20 refused attempts took ${elapsed}s (loaded machine): $lines lines, not checked"
fi
pg_check "allow_uid: the agent still serves its own after the strangers" \
    test "$(fetch $AGENT_UID "$S2")" = 200

# --- 3. a gateway running as the allowed uid relays the agent; as another uid it cannot --------
PG_PORT=$(pg_free_port)
APP_PORT=$(pg_free_port) # nothing listens there: only /debug/pprof is asked for
pg_gateway_config "$PG_PORT" "127.0.0.1:$APP_PORT" "$S2" >"$T/gw.toml"
chmod 0644 "$T/gw.toml"
pg_start gw $(as $GW_UID) "$PG" --config "$T/gw.toml"
if pg_up gw "$PG_PORT" "" 15; then
    pg_check "gateway as the allowed uid relays cmdline (200)" test "$(timeout 10 curl -s \
        -o "$T/gw.body" -w '%{http_code}' "http://127.0.0.1:$PG_PORT/debug/pprof/cmdline")" = 200
    pg_check "the relayed cmdline is the agent's program" grep -q agent_burn "$T/gw.body"
    timeout 30 curl -s -o "$T/goroutine.pb.gz" "http://127.0.0.1:$PG_PORT/debug/pprof/goroutine"
    pg_check "gateway as the allowed uid relays a goroutine profile (gzip)" \
        test "$(head -c 2 "$T/goroutine.pb.gz" | od -An -tx1 | tr -d ' ')" = 1f8b
    pg_stop gw
else
    pg_fail "gateway did not start as uid $GW_UID"
    pg_log gw
fi
# the same gateway as a uid the agent does not allow: it reaches the 0666 file, SO_PEERCRED
# turns it away, and the client gets the gateway's 502
pg_start gw2 $(as $STRANGER_UID) "$PG" --config "$T/gw.toml"
if pg_up gw2 "$PG_PORT" "" 15; then
    pg_check "gateway as a uid the agent does not allow gets 502" test "$(timeout 10 curl -s \
        -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PG_PORT/debug/pprof/cmdline")" = 502
    pg_stop gw2
else
    pg_fail "gateway did not start as uid $STRANGER_UID"
    pg_log gw2
fi

# --- 4. PROFAGENT_SOCKET_GROUP: the file is the group's; strangers cannot even connect ---------
S4=$T/home/group/agent.sock
AGENT_GROUPS=$GROUP agent group "$S4" PROFAGENT_ALLOW_UID=$GW_UID PROFAGENT_SOCKET_GROUP=$GROUP
pg_check "socket group: socket 0660, directory 0710, both of group $GROUP" \
    test "$(mode "$S4") $(owner "$S4") $(mode "$T/home/group") $(owner "$T/home/group")" = \
    "660 $AGENT_UID:$GROUP 710 $AGENT_UID:$GROUP"
pg_check "socket group: the allowed uid in the group gets 200" \
    test "$(fetch $GW_UID:$GROUP "$S4")" = 200
pg_check "socket group: the allowed uid outside the group cannot connect" \
    test "$(fetch $GW_UID "$S4")" = 000
pg_check "socket group: a stranger outside the group cannot connect" \
    test "$(fetch $STRANGER_UID "$S4")" = 000
pg_check "socket group: ... and never reaches the agent (no refusal logged)" \
    sh -c "! grep -q 'from uid $STRANGER_UID' '$T/group.log'"
pg_check "socket group: a stranger in the group is refused by SO_PEERCRED" \
    test "$(fetch $STRANGER_UID:$GROUP "$S4")" = 000
pg_check "socket group: ... and logged" \
    grep -q "refused a connection to $S4 from uid $STRANGER_UID" "$T/group.log"
# a group the agent's user is not in: the start fails, saying why, and leaves no file
S4b=$T/home/group2/agent.sock
agent_out=$($(as $AGENT_UID) env PROFAGENT_SOCKET="$S4b" PROFAGENT_SOCKET_GROUP=4343 \
    "$PROG" --threads 0 --seconds 1 2>&1)
pg_check "socket group the agent is not in: start fails with a message" \
    grep -q "cannot give .* to group 4343" <<<"$agent_out"
pg_check "... and leaves neither socket nor directory" test ! -e "$T/home/group2"

# --- 5. warnings about directories -------------------------------------------------------------
mkdir -p "$T/home/wide"
chmod 0777 "$T/home/wide"
agent wide "$T/home/wide/agent.sock"
pg_check "a directory writable by others (no sticky bit) is warned about" \
    grep -q "warning: socket $T/home/wide/agent.sock: directory $T/home/wide (mode 0777.*writable by group or others without the sticky bit" \
    "$T/wide.log"
pg_check "... a sticky one (/tmp) is not" sh -c "! grep -qF 'directory /tmp (' '$T/wide.log'"
$(as $AGENT_UID) mkdir -m 0700 "$T/home/closed"
agent closed "$T/home/closed/agent.sock" PROFAGENT_ALLOW_UID=$GW_UID
pg_check "an existing directory the allowed uid cannot search is warned about, not changed" \
    grep -q "warning: allowed uid $GW_UID cannot reach socket $T/home/closed/agent.sock: directory $T/home/closed (mode 0700)" \
    "$T/closed.log"
pg_check "... its mode is left alone" test "$(mode "$T/home/closed")" = 700

for name in plain allow group wide closed; do
    pg_stop "$name" || pg_fail "agent $name did not exit cleanly"
done
pg_check "sockets removed at exit" sh -c "! ls '$T'/home/*/agent.sock 2>/dev/null"
pg_done
