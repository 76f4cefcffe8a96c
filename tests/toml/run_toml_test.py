#!/usr/bin/env python3
"""Run the toml-test corpus (TOML 1.0.0 cases) against a decoder.

The decoder reads TOML on stdin; for a valid case it must exit 0 and print tagged JSON equal
(semantically, as the corpus README defines it) to the case's .json; for an invalid case it must
exit non-zero. Prints one line per failure, then
    valid: N passed, M failed
    invalid: N passed, M failed
    N passed, M failed
and exits 1 if anything failed or the corpus is missing.
"""
import argparse
import concurrent.futures
import datetime
import json
import math
import os
import re
import subprocess
import sys


def die(msg):
    print(f"run_toml_test: {msg}", file=sys.stderr)
    sys.exit(1)


DT_RE = re.compile(
    r"^(?:(\d{4})-(\d{2})-(\d{2}))?(?:T?(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?$")


def norm_datetime(kind, text):
    """A comparable value for a date/time: offset date-times become UTC instants."""
    t = text.replace(" ", "T").replace("t", "T").replace("z", "Z")
    m = DT_RE.match(t)
    if not m:
        return ("unparsable", text)
    y, mo, d, h, mi, s, frac, off = m.groups()
    ms = int((frac or "0")[:3].ljust(3, "0"))
    if kind == "time-local":
        return (int(h), int(mi), int(s), ms)
    if kind == "date-local":
        return (int(y), int(mo), int(d))
    dt = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), ms * 1000)
    if kind == "datetime":
        if off is None:
            return ("no offset", text)
        if off == "Z":
            tz = datetime.timezone.utc
        else:
            sign = -1 if off[0] == "-" else 1
            tz = datetime.timezone(sign * datetime.timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
        return dt.replace(tzinfo=tz).astimezone(datetime.timezone.utc)
    return dt


def is_scalar(x):
    return isinstance(x, dict) and set(x.keys()) == {"type", "value"} and \
        isinstance(x["type"], str) and isinstance(x["value"], str)


def compare(want, got, path="$"):
    """None when equal, else a description of the first difference."""
    if is_scalar(want):
        if not is_scalar(got):
            return f"{path}: want {want['type']} {want['value']!r}, got {json.dumps(got)[:80]}"
        wt, gt = want["type"], got["type"]
        if wt != gt:
            return f"{path}: want type {wt}, got {gt} ({got['value']!r})"
        wv, gv = want["value"], got["value"]
        if wt in ("string", "integer"):
            ok = wv == gv
        elif wt == "bool":
            ok = wv.lower() == gv.lower()
        elif wt == "float":
            try:
                a, b = float(wv), float(gv)
            except ValueError:
                return f"{path}: unparsable float {gv!r}"
            ok = (math.isnan(a) and math.isnan(b)) or a == b
        else:
            ok = norm_datetime(wt, wv) == norm_datetime(wt, gv)
        return None if ok else f"{path}: want {wt} {wv!r}, got {gv!r}"
    if isinstance(want, dict):
        if not isinstance(got, dict) or is_scalar(got):
            return f"{path}: want a table, got {json.dumps(got)[:80]}"
        if set(want) != set(got):
            miss = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            return f"{path}: keys differ (missing {miss}, unexpected {extra})"
        for k in want:
            r = compare(want[k], got[k], f"{path}.{k}")
            if r:
                return r
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"{path}: want an array, got {json.dumps(got)[:80]}"
        if len(want) != len(got):
            return f"{path}: want {len(want)} elements, got {len(got)}"
        for i, (a, b) in enumerate(zip(want, got)):
            r = compare(a, b, f"{path}[{i}]")
            if r:
                return r
        return None
    return f"{path}: unexpected expected-value {want!r}"


def run_case(decoder, corpus, rel, timeout):
    path = os.path.join(corpus, rel)
    with open(path, "rb") as f:
        data = f.read()
    try:
        p = subprocess.run([decoder], input=data, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return rel, f"decoder timed out after {timeout}s"
    err = p.stderr.decode("utf-8", "replace").strip()
    if p.returncode < 0 or p.returncode > 1:
        return rel, f"decoder crashed or failed (exit {p.returncode}): {err[:300]}"
    if rel.startswith("invalid/"):
        if p.returncode == 0:
            return rel, "accepted invalid input"
        return rel, None
    if p.returncode != 0:
        return rel, f"rejected valid input: {err[:300]}"
    try:
        got = json.loads(p.stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return rel, f"decoder printed bad JSON: {e}"
    with open(path[:-5] + ".json", "rb") as f:
        want = json.loads(f.read().decode("utf-8"))
    return rel, compare(want, got)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--corpus", required=True, help="the toml-test directory (shared/toml-test)")
    ap.add_argument("--all", action="store_true",
                    help="run every .toml under valid/ and invalid/, not only files-toml-1.0.0")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("-j", "--jobs", type=int, default=min(8, os.cpu_count() or 2))
    args = ap.parse_args()

    corpus = os.path.abspath(args.corpus)
    if not os.path.isdir(os.path.join(corpus, "valid")) or not os.path.isdir(os.path.join(corpus, "invalid")):
        die(f"toml-test corpus not found at {corpus} (expected valid/ and invalid/ there; "
            "set -DPG_SHARED_DIR=... to the directory holding toml-test/)")
    if not os.access(args.decoder, os.X_OK):
        die(f"decoder {args.decoder} is not executable (build toml_decode first)")

    listing = os.path.join(corpus, "files-toml-1.0.0")
    if os.path.exists(listing) and not args.all:
        with open(listing) as f:
            cases = [l.strip() for l in f if l.strip().endswith(".toml")]
    else:
        cases = []
        for top in ("valid", "invalid"):
            for d, _, files in os.walk(os.path.join(corpus, top)):
                cases += [os.path.relpath(os.path.join(d, n), corpus) for n in files if n.endswith(".toml")]
    cases.sort()
    missing = [c for c in cases if not os.path.exists(os.path.join(corpus, c))]
    if missing:
        die(f"{len(missing)} listed cases are missing from {corpus}, e.g. {missing[0]}")
    if not cases:
        die(f"no cases found in {corpus}")

    counts = {"valid": [0, 0], "invalid": [0, 0]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(lambda c: run_case(args.decoder, corpus, c, args.timeout), cases))
    for rel, problem in results:
        kind = rel.split("/", 1)[0]
        if problem is None:
            counts[kind][0] += 1
        else:
            counts[kind][1] += 1
            print(f"FAIL {rel}: {problem}")
    for kind in ("valid", "invalid"):
        print(f"{kind}: {counts[kind][0]} passed, {counts[kind][1]} failed")
    passed = counts["valid"][0] + counts["invalid"][0]
    failed = counts["valid"][1] + counts["invalid"][1]
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
