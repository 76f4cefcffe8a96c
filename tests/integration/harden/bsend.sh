# harden/bsend.sh: sourced by harden_* scenarios after lib/common.sh; gives bsend.
trap '' PIPE # a server that closes early must not kill the shell mid-write
# bsend PORT REQUEST [SECS]: one request (printf %b escapes) on a new connection, with bash's
# /dev/tcp (no process per request: the suite stays fast on a loaded machine). Sets ST (status
# of the first response line, 0 if none), CLOSED (1 when the server closed the connection, 0
# when SECS passed first) and LINE (the first response line).
bsend() {
    local port=$1 req=$2 secs=${3:-5} rc
    ST=0 CLOSED=0 LINE=
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
    printf '%b' "$req" >&3 2>/dev/null
    if IFS= read -r -t "$secs" LINE <&3; then
        LINE=${LINE%$'\r'}
        [[ $LINE =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]] && ST=${BASH_REMATCH[1]}
        while IFS= read -r -t "$secs" _ <&3; do :; done
        rc=${PIPESTATUS[0]}
    else
        rc=$?
    fi
    [ "$rc" -ge 1 ] && [ "$rc" -le 128 ] && CLOSED=1 # EOF or reset, not a timeout
    exec 3>&-
    return 0
}
