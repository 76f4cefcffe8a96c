#!/usr/bin/env bash
# harden_chunk_splits: chunked requests cut at random points into several writes (20 ms
# apart), good and badly framed (tests/integration/harden/splits.py), through profgate to a
# recording upstream (rawhttp.py). Good ones: 200, and the upstream got the body byte for byte,
# wherever the cuts fell (the head is held until the first chunk-size line, then streamed).
# Bad ones (invalid or oversize chunk size, chunk data without its CRLF, "-1"): 400 and a
# close; the upstream got at most a prefix of what came before the first bad byte, on a
# connection then closed, and never the "GET /smuggled" that follows them. Two seeds per run:
# one fixed (reproducible), one new each run (printed, to replay a failure).
# ctest-timeout: 180
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/harden/recording_proxy.sh"

recording_proxy_start

for seed in 1 $((RANDOM + 2)); do
    out=$(python3 "$SRC/tests/integration/harden/splits.py" "$P" "$T/up.log" 120 "$seed")
    rc=$?
    echo "$out" | tail -n 40
    pg_check "seed $seed: $(echo "$out" | tail -n 1)" [ "$rc" = 0 ]
done
pg_check "profgate is still running" kill -0 "$(pg_pid pg)"
pg_check "profgate exits 0 on SIGTERM" pg_stop pg
[ "$PG_FAILED" -gt 0 ] && pg_log pg
pg_done
