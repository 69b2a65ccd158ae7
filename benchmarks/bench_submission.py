"""CPU time to build, validate and serialise a submission of 1k, 10k and 100k files.

What is measured ("total") is exactly what a submit costs before the request:
``build_submission`` reads the user's dicts, checks every rule and builds the job
document, and ``json.dumps`` serialises it as the transport does (compact separators).
The floor is ``json.dumps`` of the same dicts with no validation at all (what a client
that checks nothing pays); "x floor" is total / floor. The goal: at most 5x at 10,000
files.

CPU time is ``time.process_time``. The four measurements run in turn within each round
(interleaved, so a change of machine load hits all of them alike); times are medians over
the rounds and "x floor" is the median of each round's own ratio. Linear growth shows as
a constant time per file.

    .venv/bin/python benchmarks/bench_submission.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from harness import print_table

from airflow_provider_fts.client.submission import build_submission

JOB_PARAMS = {"verify_checksum": "both", "overwrite": True, "retry": 2, "priority": 3}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1k and 10k, once")
    args = parser.parse_args()
    if args.quick:
        args.files, args.repeats = [1_000, 10_000], 1
    return args


def transfers(count: int) -> list[dict]:
    """Typical user input: URLs, a checksum, a size and a little metadata per file."""
    return [
        {
            "source": f"davs://source.example.org:443/data/run/{n:07d}.root",
            "destination": f"davs://dest.example.org:443/replica/run/{n:07d}.root",
            "checksum": f"adler32:{n:08x}",
            "filesize": 1_000_000 + n,
            "metadata": {"index": n},
        }
        for n in range(count)
    ]


def cpu_seconds(work) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def measure(count: int, repeats: int) -> dict[str, float]:
    files = transfers(count)
    document = build_submission(files, **JOB_PARAMS)
    compact = {"separators": (",", ":")}
    times = {
        "build": lambda: build_submission(files, **JOB_PARAMS),
        "serialise": lambda: json.dumps(document, **compact),
        "total": lambda: json.dumps(build_submission(files, **JOB_PARAMS), **compact),
        "floor": lambda: json.dumps({"files": files, "params": JOB_PARAMS}, **compact),
    }
    rounds = [{name: cpu_seconds(work) for name, work in times.items()} for _ in range(repeats)]
    medians = {name: statistics.median(one[name] for one in rounds) for name in times}
    medians["ratio"] = statistics.median(one["total"] / one["floor"] for one in rounds)
    return medians


def main() -> None:
    args = parse_args()
    results = {count: measure(count, args.repeats) for count in args.files}
    base = args.files[0]
    base_per_file = results[base]["total"] / base
    rows = []
    for count, seconds in results.items():
        per_file = seconds["total"] / count
        rows.append(
            [
                f"{count:,}",
                f"{seconds['build'] * 1000:.1f}",
                f"{seconds['serialise'] * 1000:.1f}",
                f"{seconds['total'] * 1000:.1f}",
                f"{per_file * 1e6:.2f}",
                f"{per_file / base_per_file:.2f}",
                f"{seconds['floor'] * 1000:.1f}",
                f"{seconds['ratio']:.1f}",
            ]
        )
    print(
        f"CPU time (process_time), median of {args.repeats} interleaved rounds; "
        f"job params {JOB_PARAMS}\n"
    )
    headers = [
        "files",
        "build+validate ms",
        "serialise ms",
        "total ms",
        "us/file",
        f"per-file vs {base:,}",
        "floor ms (dumps only)",
        "x floor",
    ]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
