#!/usr/bin/env bash
# integration.agent_preload: attach the agent to a program this project did not write, without
# changing it: `LD_PRELOAD=libprofagent.so PROFAGENT_SOCKET=... perl -e LOOP`, and get its CPU
# profile through the gateway (profgate, upstream with `agent = "unix:..."`) with go tool pprof.
# Why perl: /usr/bin/perl is in perl-base, which is Essential (in every Debian), and is linked
# with libperl statically, exporting its functions (Perl_pp_add, Perl_runops_standard, ...) in
# .dynsym: Debian strips .symtab, so the frames of stock binaries are usually bare addresses
# (gzip, sha256sum: their own code; bzip2/xz: libbz2/liblzma's hot code is static), while
# perl's hot frames are the program's own named functions. The loop runs for a fixed 8 s
# (bounded) and prints "done"; the test checks it still does, with exit status 0.
# Checks: the profile parses; most samples' leaves are Perl_ functions; Perl_runops_standard
# (the interpreter loop) is on most stacks; the program's output and exit status are unchanged.
# ctest-timeout: 90
# ctest-resource: cpu
. "$(dirname "$0")/lib/common.sh"
unset PROFAGENT_SOCKET

SO=$BIN/agent-lib/libprofagent.so
pg_need "$SO" "$PG" go curl perl
if ldd "$PG" | grep -Eq 'lib[at]san'; then
    # a sanitizer runtime must come first in the preload list of an uninstrumented program
    SAN_RT=$(ldd "$SO" | awk '/lib[at]san/ { print $3; exit }')
    PRELOAD="$SAN_RT:$SO"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0
else
    PRELOAD=$SO
fi

DEAD_PORT=$(pg_free_port) || exit 1 # perl serves no HTTP: only the pprof route is used
PG_PORT=$(pg_free_port) || exit 1
SOCK=$T/agent/perl.sock
GW=http://127.0.0.1:$PG_PORT

pg_gateway_config "$PG_PORT" "127.0.0.1:$DEAD_PORT" "$SOCK" perl >"$T/profgate.toml"

pg_start pg "$PG" --config "$T/profgate.toml"
pg_wait_port "$PG_PORT" || { pg_log pg; echo "FAIL: profgate did not come up"; exit 1; }
LOOP='my ($s, $end) = (0, time + 8); while (time < $end) { for my $i (1 .. 100000) { $s += $i * 3 % 7 } } print "done\n";'
# exec: only perl gets the preload (a `timeout` or `env` in between would load the agent too
# and take the socket first); the loop bounds itself to 8 s
LD_PRELOAD= PRELOAD=$PRELOAD SOCK=$SOCK LOOP=$LOOP bash -c \
    'export LD_PRELOAD=$PRELOAD PROFAGENT_SOCKET=$SOCK; exec perl -e "$LOOP"' >"$T/perl.out" 2>"$T/perl.err" &
PERL=$!
PG_PIDS[perl]=$PERL
pg_wait_unix "$SOCK" 10 || { cat "$T/perl.err"; echo "FAIL: the agent did not open its socket in perl"; kill $PERL; exit 1; }
pg_pprof_raw "go tool pprof -raw $GW/debug/pprof/profile?seconds=3 (perl, preloaded)" "$GW/debug/pprof/profile?seconds=3" "$T/cpu.raw"
go tool pprof -top -nodecount=5 "$T/pprof/"*.pb.gz >"$T/top.txt" 2>&1
cat "$T/top.txt"
read -r total leaf runops <<<"$(python3 - "$T/cpu.raw" <<'PY'
import re, sys
sec, names, samples = "", {}, []
for line in open(sys.argv[1]):
    if line.startswith("Samples:"): sec = "s"; continue
    if line.startswith("Locations"): sec = "l"; continue
    if line.startswith("Mappings"): sec = ""; continue
    if sec == "s" and ":" in line:
        vals, locs = line.split(":", 1)
        if vals.split() and vals.split()[0].isdigit():
            samples.append((int(vals.split()[0]), [int(x) for x in locs.split()]))
    elif sec == "l":
        m = re.match(r"\s*(\d+): \S+ M=\d+ (\S+)", line)
        if m:
            names[int(m.group(1))] = m.group(2)
total = sum(v for v, _ in samples)
leaf = sum(v for v, l in samples if l and names.get(l[0], "").startswith("Perl_"))
runops = sum(v for v, l in samples if any(names.get(x) == "Perl_runops_standard" for x in l))
print(total, leaf, runops)
PY
)"
echo "samples $total, leaf in Perl_* $leaf, under Perl_runops_standard $runops"
pg_check "some samples (got $total)" [ "${total:-0}" -ge 10 ]
pg_check "most leaves are perl's own named functions (Perl_*: $leaf of $total)" [ $((2 * ${leaf:-0})) -gt "${total:-0}" ]
pg_check "Perl_runops_standard on most stacks ($runops of $total)" [ $((2 * ${runops:-0})) -gt "${total:-0}" ]
pg_check "the top 5 flat frames are Perl_ functions" \
    bash -c "awk '/flat%/ { t = 1; next } t && NF >= 6 { print \$6 }' '$T/top.txt' | head -5 | grep -vq '^Perl_' && exit 1 || exit 0"
wait $PERL
rc=$?
unset "PG_PIDS[perl]"
pg_check "perl exits 0 with the agent preloaded (rc=$rc)" [ $rc = 0 ]
pg_check "perl's output is unchanged ($(cat "$T/perl.out"))" [ "$(cat "$T/perl.out")" = done ]
pg_check "the agent's socket is removed when perl exits" [ ! -e "$SOCK" ]
pg_stop pg TERM
[ "$PG_FAILED" = 0 ] || { pg_log pg; cat "$T/perl.err" "$T/cpu.err"; }
pg_done
