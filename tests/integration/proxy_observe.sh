#!/usr/bin/env bash
# integration.proxy_observe: what profgate tells its operator: the access log (combined to
# a file, JSON after a reload; rotation is mv + SIGHUP) and the Prometheus text at
# server.metrics_path (requests by route and status class, upstream latency histogram,
# connections, bytes, profiles by kind, errors by cause).
# ctest-timeout: 60
. "$(dirname "$0")/lib/common.sh"

pg_ports P U1 DEAD

write_cfg()
{
    cat >"$T/pg.toml" <<EOF
[server]
listen            = "127.0.0.1:$P"
workers           = 2
access_log        = "access.log"
access_log_format = "$1"
metrics_path      = "/metrics"

[[upstream]]
name    = "up1"
address = "127.0.0.1:$U1"
agent   = "unix:$T/agent.sock"

[[upstream]]
name    = "dead"
address = "127.0.0.1:$DEAD"

[[route]]
prefix   = "/"
upstream = "up1"

[[route]]
prefix   = "/dead"
upstream = "dead"
EOF
}

pg_upstreams up1 "127.0.0.1:$U1" agent "unix:$T/agent.sock"
write_cfg combined
pg_gateway profgate "$T/pg.toml" "$P"
base=http://127.0.0.1:$P

curl -s -A 'agent "quoted"' -e 'http://ref/' "$base/echo?a=1" >/dev/null
curl -s "$base/status?code=404" >/dev/null
curl -s "$base/dead/x" >/dev/null
curl -s "$base/debug/pprof/heap" >/dev/null
curl -s "$base/debug/pprof/profile?seconds=1" >/dev/null
curl -s "$base/debug/pprof/profile?seconds=1000" >/dev/null
curl -s "$base/metrics" >"$T/m"

pg_check "access log: combined line with escaped user agent" grep -q '^127.0.0.1 - - \[[0-9]*/[A-Z][a-z]*/[0-9:]* +0000\] "GET /echo?a=1 HTTP/1.1" 200 [0-9]* "http://ref/" "agent \\x22quoted\\x22" [0-9.]*$' "$T/access.log"
pg_check "access log: 502 line for the dead upstream" grep -q '"GET /dead/x HTTP/1.1" 502 ' "$T/access.log"
pg_check "metrics: text format content" grep -q '^# TYPE profgate_requests_total counter' "$T/m"
# 2xx: /echo; 4xx: /status?code=404, heap and profile (the test agent knows neither), and
# our own 400 for seconds=1000
pg_check "metrics: requests by route and class" bash -c "grep -q '^profgate_requests_total{route=\"/\",code=\"2xx\"} 1\$' '$T/m' && grep -q '^profgate_requests_total{route=\"/\",code=\"4xx\"} 4\$' '$T/m' && grep -q '^profgate_requests_total{route=\"/dead\",code=\"5xx\"} 1\$' '$T/m'"
pg_check "metrics: upstream latency histogram" bash -c "grep -q '^profgate_upstream_latency_seconds_bucket{upstream=\"up1\",le=\"+Inf\"} 4\$' '$T/m' && grep -q '^profgate_upstream_latency_seconds_count{upstream=\"up1\"} 4\$' '$T/m'"
pg_check "metrics: profiles by kind" bash -c "grep -q '^profgate_profiles_total{kind=\"heap\"} 1\$' '$T/m' && grep -q '^profgate_profiles_total{kind=\"profile\"} 1\$' '$T/m'"
pg_check "metrics: errors by cause" bash -c "grep -q '^profgate_errors_total{cause=\"upstream_unreachable\"} 1\$' '$T/m' && grep -q '^profgate_errors_total{cause=\"pprof_seconds_limit\"} 1\$' '$T/m'"
pg_check "metrics: connections and bytes" bash -c "grep -q '^profgate_connections_total [1-9]' '$T/m' && grep -q '^profgate_bytes_total{direction=\"out\"} [1-9]' '$T/m'"

# rotation and format change: mv + SIGHUP
mv "$T/access.log" "$T/access.log.1"
write_cfg json
kill -HUP "$(pg_pid profgate)"
# the reload has taken effect once the worker logs in the new format to the new file (a slow
# build, TSan, can take more than half a second); a line reaches the file when its worker next
# waits for events: a request, then a look, until the line is there
pg_check "after mv + SIGHUP: a new file, JSON lines" pg_poll 10 bash -c "curl -s '$base/echo' >/dev/null; grep -q '^{\"time\":\"[0-9T:-]*Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\"target\":\"/echo\",\"protocol\":\"HTTP/1.1\",\"status\":200,' '$T/access.log' 2>/dev/null"
pg_check "the rotated file is left alone" bash -c "! grep -q '^{' '$T/access.log.1'"

pg_stop_check profgate
if [ "$PG_FAILED" -gt 0 ]; then pg_log profgate; cat "$T/m" "$T/access.log"* 2>/dev/null | head -40; fi
pg_done
