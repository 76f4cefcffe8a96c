#!/usr/bin/env python3
"""Differential check of a toml-test decoder against Python's tomllib (TOML 1.0.0).

For every file given (or every file in the directories given, e.g. a fuzzing corpus), both
must agree on accept/reject, and accepted documents must decode to the same values (compared
as run_toml_test.py compares). Not a ctest: run it on fuzz corpora, e.g.
    tests/toml/differential.py --decoder build-toml/tests/toml/toml_decode build-fuzz/fuzz-corpus/toml
Prints each disagreement and a summary; exits 1 if any.
"""
import argparse
import concurrent.futures
import datetime
import json
import math
import os
import subprocess
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_toml_test import compare  # noqa: E402


def tagged(v):
    if isinstance(v, dict):
        return {k: tagged(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tagged(x) for x in v]
    if isinstance(v, bool):
        return {"type": "bool", "value": "true" if v else "false"}
    if isinstance(v, int):
        if not -2**63 <= v < 2**63:
            raise OverflowError("TOML integers are 64-bit; tomllib's are not")
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        return {"type": "float", "value": "nan" if math.isnan(v) else repr(v)}
    if isinstance(v, str):
        return {"type": "string", "value": v}
    if isinstance(v, datetime.datetime):
        return {"type": "datetime" if v.tzinfo else "datetime-local", "value": v.isoformat()}
    if isinstance(v, datetime.date):
        return {"type": "date-local", "value": v.isoformat()}
    if isinstance(v, datetime.time):
        return {"type": "time-local", "value": v.isoformat()}
    raise TypeError(type(v))


def check(decoder, path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return path, None  # a live fuzzing corpus drops files it has reduced
    try:
        # utf-8-sig: TOML allows a byte order mark, tomllib does not skip it.
        want = tagged(tomllib.loads(data.decode("utf-8-sig")))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, RecursionError,
            OverflowError):
        want = None
    p = subprocess.run([decoder], input=data, capture_output=True, timeout=20)
    if p.returncode not in (0, 1):
        return path, f"decoder exit {p.returncode}: {p.stderr.decode('utf-8', 'replace')[:200]}"
    if want is None:
        if p.returncode == 0 and b'"value":"0000-' in p.stdout:
            return path, None  # year 0 is valid RFC 3339; Python's datetime cannot hold it
        return path, None if p.returncode == 1 else "decoder accepts what tomllib rejects"
    if p.returncode != 0:
        return path, f"decoder rejects what tomllib accepts: {p.stderr.decode('utf-8', 'replace').strip()[:200]}"
    return path, compare(want, json.loads(p.stdout))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--decoder", required=True)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    files = []
    for p in args.paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, n) for n in os.listdir(p))
        else:
            files.append(p)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(lambda f: check(args.decoder, f), files))
    bad = [(f, r) for f, r in results if r]
    for f, r in bad:
        print(f"DIFF {f}: {r}")
    print(f"{len(files) - len(bad)} agree, {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
