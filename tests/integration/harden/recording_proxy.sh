# harden/recording_proxy.sh: sourced by harden_* scenarios after lib/common.sh.
#   recording_proxy_start [SERVER_LINES]
# starts rawhttp.py's recording upstream on a free port $U (every byte it gets in $T/up.log,
# per connection in $T/up.log.c<N>, see rawhttp.py) and profgate (1 worker) on a free port
# $P routing "/" to it, with SERVER_LINES (TOML) added to [server]. Sets PG, RAW, P, U; when
# either does not start, the test fails and ends.
PG=$BIN/proxy/profgate
RAW="python3 $SRC/tests/integration/harden/rawhttp.py"

recording_proxy_start()
{
    P=$(pg_free_port)
    U=$(pg_free_port)
    while [ "$U" = "$P" ]; do U=$(pg_free_port); done
    cat >"$T/pg.toml" <<TOML
[server]
listen = "127.0.0.1:$P"
workers = 1
${1:-}

[[upstream]]
name = "app"
address = "127.0.0.1:$U"

[[route]]
prefix = "/"
upstream = "app"
TOML
    pg_start up $RAW upstream "$U" "$T/up.log"
    pg_wait_port "$U" 10 || { pg_fail "recording upstream did not start"; pg_done; }
    pg_start pg "$PG" --config "$T/pg.toml"
    pg_wait_port "$P" 20 || { pg_log pg; pg_fail "profgate did not start"; pg_done; }
}
