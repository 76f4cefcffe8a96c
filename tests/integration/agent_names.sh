#!/usr/bin/env bash
# integration.agent_names: how frames are named (issue 4 "Names"), checked with go tool pprof on
# a CPU profile of a small C++ program (compiled here with g++, linked with libprofagent, so
# libstdc++ and its __cxa_demangle are in the process) whose hot loop, in a class template
# method, calls libc (strtod, snprintf, strlen):
# - C++ names are demangled by the agent (the name as the profile holds it, -symbolize=none),
#   the mangled one kept as the system name;
# - frames in shared libraries carry their library: Function.filename "[/.../libc.so.6]", so
#   -top -filefunctions shows it beside the function, -files sums per object, and -list says
#   there is no source instead of printing the object's bytes;
# - the debug=1 text form names the library on each "#" line;
# - two snapshots merge (go tool pprof given both) without splitting a function in two.
# ctest-timeout: 120
# ctest-resource: cpu
# ctest-skip-code: 77
. "$(dirname "$0")/lib/common.sh"

pg_need go
pg_need --or-skip g++ # to build the C++ program

SO_DIR=$BIN/agent-lib
SOCK=$T/run/agent.sock
# the program gets the build's sanitizer, as the project's own test programs do; it calls
# nothing of the agent: the constructor starts it (PROFAGENT_SOCKET), which needs the library
# linked although unreferenced (--no-as-needed; Debian's toolchain drops it otherwise)
SAN=$(sed -n 's/^PG_SANITIZE:[A-Z]*=//p' "$BIN/CMakeCache.txt" 2>/dev/null)
SANFLAGS=()
[ -n "$SAN" ] && SANFLAGS=(-fsanitize="$SAN" -fno-omit-frame-pointer)

cat >"$T/names.cpp" <<'CPP'
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace names_test {
template <typename T> struct Spinner {
    static T spin(const char *text, unsigned rounds);
};

template <typename T>
__attribute__((noinline)) T Spinner<T>::spin(const char *text, unsigned rounds)
{
    T acc = 0;
    char buf[64];
    for (unsigned i = 0; i < rounds; i++) {
        acc += (T)strtod(text, nullptr);
        snprintf(buf, sizeof buf, "%u %s", i, text);
        acc += (T)strlen(buf);
    }
    return acc;
}
} // namespace names_test

static std::atomic<int> stop_flag;

static void on_term(int)
{
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 30;
    time_t end = time(nullptr) + seconds;
    std::string *text = new std::string("3.14159"); // a C++ host: libstdc++ is loaded
    volatile long sink = 0;

    signal(SIGTERM, on_term);
    while (!stop_flag && time(nullptr) < end)
        sink = sink + names_test::Spinner<long>::spin(text->c_str(), 1000);
    delete text;
    return 0;
}
CPP
if ! g++ -O1 "${SANFLAGS[@]}" -o "$T/names" "$T/names.cpp" -L"$SO_DIR" \
    -Wl,--no-as-needed -lprofagent -Wl,--as-needed \
    -Wl,-rpath,"$SO_DIR" 2>"$T/gxx.err"; then
    cat "$T/gxx.err"
    echo "FAIL: g++ could not build the C++ program"
    exit 1
fi

PROFAGENT_SOCKET=$SOCK pg_start names "$T/names" 60
pg_wait_unix "$SOCK" 10 || { pg_log names; echo "FAIL: no agent socket"; exit 1; }
code=$(timeout 30 curl -s --unix-socket "$SOCK" -o "$T/cpu.pb.gz" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=3")
pg_check "CPU profile of the C++ program (200)" test "$code" = 200
code=$(timeout 30 curl -s --unix-socket "$SOCK" -o "$T/goroutine.txt" -w '%{http_code}' \
    "http://agent/debug/pprof/goroutine?debug=1")
pg_check "goroutine?debug=1 (200)" test "$code" = 200

pprof() { go tool pprof "$@" "$T/cpu.pb.gz" 2>"$T/pprof.err"; }

# names as the profile holds them: -symbolize=none keeps pprof from demangling on its own
pprof -symbolize=none -raw >"$T/raw.txt"
cxx='names_test::Spinner<long>::spin(char const*, unsigned int)'
pg_check "the agent demangled the C++ frame: $cxx" grep -qF " $cxx [" "$T/raw.txt"
pg_check "... and kept the mangled name as the system name" \
    grep -qF "s=0(_ZN10names_test7SpinnerIlE4spinEPKcj)" "$T/raw.txt"
pg_check "the C++ frame's file is the program: [$T/names]" \
    grep -qF " $cxx [$T/names]:0 " "$T/raw.txt"

pprof -top -filefunctions -nodecount=100 >"$T/filefunctions.txt"
pg_check "-top -filefunctions: a libc function beside [.../libc.so.6]" \
    grep -Eq '%  [^ ].* \[/[^]]*/libc\.so\.6\]$' "$T/filefunctions.txt"
pprof -top -files >"$T/files.txt"
pg_check "-top -files: a line for libc" grep -Eq '%  \[/[^]]*/libc\.so\.6\]$' "$T/files.txt"
pg_check "-top -files: a line for the program" grep -qF "%  [$T/names]" "$T/files.txt"
pprof -top >"$T/top.txt"
pg_check "-top (function granularity) shows bare names, no file" \
    sh -c "grep -F 'names_test::Spinner' '$T/top.txt' | grep -vq '\\['"
pprof -list 'Spinner' >"$T/list.txt"
pg_check "-list says there is no source file for an object ..." \
    grep -qF "could not find file [$T/names]" "$T/list.txt"
pg_check "... and prints none of the object's bytes" sh -c "! grep -q ELF '$T/list.txt'"

# two snapshots merge into one function per name and object (pprof merges Functions on name,
# system name, filename and start line)
code=$(timeout 30 curl -s --unix-socket "$SOCK" -o "$T/cpu2.pb.gz" -w '%{http_code}' \
    "http://agent/debug/pprof/profile?seconds=2")
pg_check "a second CPU profile (200)" test "$code" = 200
go tool pprof -top -filefunctions -nodecount=1000 "$T/cpu.pb.gz" "$T/cpu2.pb.gz" \
    >"$T/merged.txt" 2>&1
pg_check "the two merge: the C++ frame is one line, with its file" \
    test "$(grep -F "names_test::Spinner" "$T/merged.txt" | grep -cF " [$T/names]")" = 1

pg_check "debug=1: a '#' line names a libc frame's library" \
    grep -Eq $'^#\t0x[0-9a-f]+\t[^\t]+\t+/[^\t]*/libc\\.so\\.6$' "$T/goroutine.txt"
pg_check "debug=1: the C++ frame, demangled, with the program's path" \
    grep -qF "$cxx+0x" "$T/goroutine.txt"

pg_check "the program exits cleanly at SIGTERM" pg_stop names
for f in raw filefunctions files list merged; do
    echo "--- $f (head)"
    head -n 12 "$T/$f.txt"
done
pg_done
