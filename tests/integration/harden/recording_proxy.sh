# harden/recording_proxy.sh: sourced by harden_* scenarios after lib/common.sh. Picks two free
# ports, $P (profgate) and $U (the recording upstream), so that TOML written before the start
# can name them; sets PG, RAW; gives
#   recording_proxy_start [SERVER_LINES] [APP_LINES] [MORE_TOML]
# which starts rawhttp.py's recording upstream on $U (every byte it gets in $T/up.log, per
# connection in $T/up.log.c<N>, see rawhttp.py) and profgate (pg_start name "pg", 1 worker,
# config $T/pg.toml) on $P routing "/" to it as upstream "app". SERVER_LINES (TOML) are added
# to [server], APP_LINES to app's [[upstream]] table, MORE_TOML after the "/" route. When
# either does not start, the test fails and ends.
RAW="python3 $SRC/tests/integration/harden/rawhttp.py"
pg_ports P U

recording_proxy_start()
{
    cat >"$T/pg.toml" <<TOML
[server]
listen = "127.0.0.1:$P"
workers = 1
${1:-}

[[upstream]]
name = "app"
address = "127.0.0.1:$U"
${2:-}

[[route]]
prefix = "/"
upstream = "app"
${3:-}
TOML
    pg_start up $RAW upstream "$U" "$T/up.log"
    pg_wait_port "$U" 10 || { pg_fail "recording upstream did not start"; pg_done; }
    pg_gateway pg "$T/pg.toml" "$P"
}
