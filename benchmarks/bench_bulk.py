"""A bulk move: one ``FTSSubmitOperator(wait_for_completion=True)`` task, 10^4 to 10^6 files.

Each scenario is one DAG run by Airflow's ``dag.test()`` in a fresh process (the task
process): ``N`` mock transfers (the emulator's ``mock://`` storage, every transfer
``--hold`` seconds), 1 % of them failing recoverably in their first job
(``transfer_errno=110&fail_jobs=1``), one Airflow retry that resends them. Deferred, the
trigger runs in a process of its own (the triggerer: ``dag.test`` hands it the trigger's
serialised kwargs and gets the event back), as Airflow's triggerer runs it, one event.

The same scenarios run twice in one run: with the code of a git ref (``--baseline``,
default ``80115dc``, unpacked with ``git archive`` into a temporary directory and put first
on ``PYTHONPATH``) and with this checkout. Against the emulator (its own process) the
figures come from its request log: requests and bytes by route, bytes per poll round
(requests grouped by pauses of at least half the poll interval), the file records a retry
reads before it resends, and the submission wall time (first POST in, last POST answered)
with each POST delayed ``--post-delay`` seconds at the emulator, sequential
(``submit_concurrency=1``) and at the default concurrency. ``--connection`` runs the
scenarios against any FTS endpoint instead (an Airflow connection as JSON); then only
what the task and the triggerer see is reported.

    .venv/bin/python benchmarks/bench_bulk.py [--quick] [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness import REPO, EmulatorProcess, print_table, use_private_airflow

BASELINE = "80115dc"
ETIMEDOUT = 110  # a recoverable failure


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000], help="none: no wait"
    )
    parser.add_argument("--modes", nargs="+", choices=["sync", "deferred"])
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline code")
    parser.add_argument("--no-baseline", action="store_true", help="this checkout only")
    parser.add_argument("--connection", help="an FTS endpoint (Airflow connection JSON)")
    parser.add_argument("--files-per-job", type=int, default=200)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each transfer takes")
    parser.add_argument("--poll", type=float, default=5.0, help="the task's poll interval")
    parser.add_argument("--post-delay", type=float, default=0.05)
    parser.add_argument(
        "--submit-files", type=int, default=20_000, help="for submission timing (0: none)"
    )
    parser.add_argument(
        "--no-sequential", action="store_true", help="submission table: the default only"
    )
    parser.add_argument(
        "--failures",
        choices=["spread", "clustered"],
        default="spread",
        help="1 %% failing: every 100th file, or every file of every 100th job",
    )
    parser.add_argument("--engine-concurrency", type=int, default=2_000_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 files (sync)")
    parser.add_argument("--child", choices=["task", "trigger"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.hold, args.poll, args.submit_files = [2_000], 4.0, 1.0, 2_000
    args.modes = args.modes or (["sync"] if args.quick else ["sync", "deferred"])
    return args


# --------------------------------------------------------------------------- the task side


def transfers(spec: dict) -> list[tuple[str, str]]:
    """``size`` mock pairs; 1 % fail recoverably in their first job only: every 100th file
    (``spread``: every job ends FINISHEDDIRTY), or every file of every 100th job
    (``clustered``: one storage node down; the other jobs end FINISHED)."""
    size, tag, hold, per_job = spec["size"], spec["tag"], spec["hold"], spec["files_per_job"]
    clustered = spec.get("failures") == "clustered"
    pairs = []
    for n in range(size):
        query = f"time={hold:g}"
        if (n // per_job if clustered else n) % 100 == 99:
            query += f"&transfer_errno={ETIMEDOUT}&fail_jobs=1"
        pairs.append((f"mock://src.example/{tag}/f{n}", f"mock://dst.example/{tag}/f{n}?{query}"))
    return pairs


DAG_FILE = """
import json, os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_fts.operators.fts import FTSSubmitOperator
from bench_bulk import transfers

spec = json.loads(os.environ["FTS_BENCH_BULK_SPEC"])
options = {"submit_concurrency": spec["concurrency"]} if spec["concurrency"] else {}
with DAG(
    spec["tag"],
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1),
    render_template_as_native_obj=True,
    # Built when the task renders its fields, as from an upstream task's XCom: not parsed
    # into the serialised DAG.
    user_defined_macros={"bulk": lambda: transfers(spec)},
) as dag:
    FTSSubmitOperator(
        task_id="move",
        transfers="{{ bulk() }}",
        max_files_per_job=spec["files_per_job"],
        wait_for_completion=spec["wait"],
        deferrable=spec["deferred"],
        poll_interval=spec["poll"],
        retries=1,
        retry_delay=timedelta(seconds=0),
        **options,
    )
"""


def run_task(spec: dict) -> dict:
    """One DAG run of one task in this process; what it cost and what it left."""
    import importlib.util

    use_private_airflow(spec["connection"])
    dags = Path(os.environ["AIRFLOW_HOME"]) / "dags"
    dags.mkdir()
    (dags / "bulk_dag.py").write_text(DAG_FILE)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["FTS_BENCH_BULK_SPEC"] = json.dumps(spec)
    os.environ["AIRFLOW__FTS__RESUME_GUARD_SECONDS"] = "0"  # no scheduler: no #72716 race
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
                   check=True, capture_output=True)  # fmt: skip
    if spec["deferred"]:
        _trigger_in_own_process(spec)
    module_spec = importlib.util.spec_from_file_location("bulk_dag", dags / "bulk_dag.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    rss_before = _peak_rss()
    started = time.time()
    run = module.dag.test()
    ended = time.time()
    return {
        "state": str(run.state),
        "started": started,
        "ended": ended,
        "peak_rss": _peak_rss(),
        "rss_before": rss_before,
        "tries": _try_starts(spec["tag"], run.run_id),
        "xcoms": _xcom_sizes(spec["tag"], run.run_id),
        "events": EVENTS,
    }


EVENTS: list[dict] = []  # what each trigger process answered (deferred runs)


def _trigger_in_own_process(spec: dict) -> None:
    """``dag.test`` runs the trigger in its own process here, one event, as a triggerer."""
    import airflow.sdk.definitions.dag as dag_module
    from airflow.triggers.base import TriggerEvent

    def run_elsewhere(trigger, ti):
        classpath, kwargs = trigger.serialize()
        child = {"classpath": classpath, "kwargs": kwargs, "connection": spec["connection"]}
        output = subprocess.run(
            [sys.executable, __file__, "--child", "trigger", "--spec", "-"],
            input=json.dumps(child), check=True, capture_output=True, text=True,
        )  # fmt: skip
        answer = json.loads(output.stdout.splitlines()[-1])
        EVENTS.append({k: v for k, v in answer.items() if k != "payload"})
        return TriggerEvent(answer["payload"])

    dag_module._run_inline_trigger = run_elsewhere


def run_trigger(spec: dict) -> dict:
    """The trigger's first event, in this process (the triggerer's part)."""
    import asyncio
    import importlib

    use_private_airflow(spec["connection"])
    module, _, name = spec["classpath"].rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**spec["kwargs"])

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    rss_before = _peak_rss()  # Airflow and the provider imported, the trigger made
    started = time.time()
    payload = asyncio.run(first_event())
    summary = (payload or {}).get("summary")
    return {
        "payload": payload,
        "peak_rss": _peak_rss(),
        "rss_before": rss_before,
        "seconds": time.time() - started,
        "event_bytes": len(json.dumps(payload, default=str)),
        "summary_bytes": len(json.dumps(summary, default=str)) if summary is not None else 0,
    }


def _peak_rss() -> int:
    """This process's peak resident memory (``VmHWM``). Not ``ru_maxrss``: Linux carries
    that over ``exec`` from the process forked, so a trigger's process, started by the
    task process, would report the task's memory as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _try_starts(dag_id: str, run_id: str) -> list[float]:
    """When each try of the task started (epoch seconds)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        starts = [
            row.start_date.timestamp()
            for model in (TaskInstanceHistory, TaskInstance)
            for row in session.query(model).filter_by(dag_id=dag_id, run_id=run_id)
            if row.start_date
        ]
    return sorted(starts)


def _xcom_sizes(dag_id: str, run_id: str) -> dict[str, int]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id)
        return {row.key: len(json.dumps(row.value, default=str)) for row in rows}


# --------------------------------------------------------------------------- the bench side


class Code:
    """The provider's code a scenario runs with: this checkout, or a ref unpacked."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root

    @classmethod
    def at_ref(cls, ref: str, directory: Path) -> Code:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
        return cls(f"baseline {ref}", directory)

    def run(self, child: str, spec: dict) -> dict:
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        command = [sys.executable, __file__, "--child", child, "--spec", "-"]
        output = subprocess.run(
            command, env=env, input=json.dumps(spec), check=False, capture_output=True, text=True
        )
        if output.returncode:
            raise RuntimeError(f"{self.name} {child} failed:\n{output.stderr[-4000:]}")
        return json.loads(output.stdout.splitlines()[-1])


def scenario(code: Code, emulator, connection: str, spec: dict) -> dict:
    if emulator:
        emulator.reset()
    result = code.run("task", {**spec, "connection": connection})
    if emulator:
        result["counts"] = emulator.counts()
        result["log"] = emulator.log()
    return result


def poll_rounds(log: list[list], after: float, gap: float) -> list[dict]:
    """The status requests sent after ``after``, grouped into rounds by pauses."""
    rounds: list[dict] = []
    last = None
    for arrived, _, route, size, files in sorted(log):
        if arrived < after or not route.startswith("GET /jobs/"):
            continue
        if last is None or arrived - last >= gap:
            rounds.append({"requests": 0, "bytes": 0, "files": 0})
        rounds[-1]["requests"] += 1
        rounds[-1]["bytes"] += size
        rounds[-1]["files"] += files
        last = arrived
    return rounds


def retry_lookup(log: list[list], try_start: float) -> dict:
    """What the retry read before it resent anything: requests, bytes, file records."""
    posts = [e[0] for e in log if e[2] == "POST /jobs" and e[0] >= try_start]
    until = min(posts) if posts else float("inf")
    read = [e for e in log if try_start <= e[0] < until and e[2].startswith("GET /")]
    return {
        "requests": len(read),
        "bytes": sum(e[3] for e in read),
        "files": sum(e[4] for e in read),
    }


def submission_seconds(log: list[list]) -> float:
    posts = [e for e in log if e[2] == "POST /jobs"]
    return max(e[1] for e in posts) - min(e[0] for e in posts)


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def kib(value: float) -> str:
    return f"{value / 2**10:,.1f}"


def routes(counts: dict) -> str:
    requests, sizes = Counter(counts["requests"]), counts["bytes"]
    return ", ".join(
        f"{route} x{n} ({mib(sizes.get(route, 0))} MiB)" for route, n in sorted(requests.items())
    )


def main() -> None:
    args = parse_args()
    if args.child:
        # On standard input: a trigger's 5,000 job ids outgrow one command-line argument.
        spec = json.loads(sys.stdin.read() if args.spec == "-" else args.spec)
        answer = run_task(spec) if args.child == "task" else run_trigger(spec)
        print(json.dumps(answer, default=str))
        return
    os.environ["FTS_BENCH_ENGINE_CONCURRENCY"] = str(args.engine_concurrency)
    with tempfile.TemporaryDirectory(prefix="fts-bench-bulk-") as directory:
        codes = [] if args.no_baseline else [Code.at_ref(args.baseline, Path(directory))]
        codes.append(Code("this checkout", REPO))
        if args.connection:
            measure(args, codes, None, args.connection)
        else:
            with EmulatorProcess() as emulator:
                measure(args, codes, emulator, emulator.info.connection)


def measure(args: argparse.Namespace, codes: list[Code], emulator, connection: str) -> None:
    base = {"files_per_job": args.files_per_job, "hold": args.hold, "poll": args.poll,
            "failures": args.failures}  # fmt: skip
    runs, wait_rows, round_rows, submit_rows = 0, [], [], []
    for size in args.sizes:
        for mode in args.modes:
            for code in codes:
                runs += 1
                spec = {**base, "size": size, "deferred": mode == "deferred", "wait": True,
                        "concurrency": None, "tag": f"bulk{runs}"}  # fmt: skip
                result = scenario(code, emulator, connection, spec)
                wait_rows.append(wait_row(code, size, mode, result))
                if emulator:
                    round_rows.append(round_row(code, size, mode, result, args.poll))
    if emulator and args.submit_files:
        emulator.post_delay(args.post_delay)
        for code in codes:
            sequential = code.root == REPO and not args.no_sequential
            for concurrency in (1, None) if sequential else (None,):
                runs += 1
                spec = {**base, "size": args.submit_files, "deferred": False, "wait": False,
                        "concurrency": concurrency, "tag": f"bulk{runs}"}  # fmt: skip
                result = scenario(code, emulator, connection, spec)
                jobs = result["counts"]["requests"].get("POST /jobs", 0)
                label = "default" if concurrency is None else str(concurrency)
                served = statistics.median(
                    e[1] - e[0] for e in result["log"] if e[2] == "POST /jobs"
                )
                seconds = submission_seconds(result["log"])
                submit_rows.append(
                    [code.name, label, jobs, f"{seconds:.2f}", f"{served * 1000:.0f}",
                     mib(result["peak_rss"]), mib(result["rss_before"])]
                )  # fmt: skip
        emulator.clear_faults()
    print(f"One FTSSubmitOperator task, {args.files_per_job} files per job, transfers of "
          f"{args.hold:g} s, 1 % failing once ({args.failures}), "
          f"poll every {args.poll:g} s\n")  # fmt: skip
    print_table(
        ["code", "files", "mode", "state", "wall s", "task peak RSS MiB", "task RSS before",
         "trigger peak RSS MiB (before it ran), per try", "XCom bytes", "event bytes (summary)",
         "requests by route", "emulator peak RSS MiB"],
        wait_rows,
    )  # fmt: skip
    if emulator:
        print("\nPoll rounds while waiting (after the last submission) and the retry's lookup\n")
        print_table(
            ["code", "files", "mode", "rounds", "KiB per round (median)", "KiB per round (max)",
             "file records per round (median)", "retry: requests", "retry: KiB",
             "retry: file records"],
            round_rows,
        )  # fmt: skip
    if emulator and args.submit_files:
        print(f"\nSubmitting {args.submit_files:,} files, every POST delayed "
              f"{args.post_delay:g} s at the emulator\n")  # fmt: skip
        print_table(["code", "submit_concurrency", "POST /jobs", "first POST to last answer s",
                     "one POST at the emulator ms (median)", "task peak RSS MiB",
                     "task RSS before"], submit_rows)  # fmt: skip


def wait_row(code: Code, size: int, mode: str, result: dict) -> list:
    events = result["events"]
    xcoms = ", ".join(f"{key} {size:,}" for key, size in sorted(result["xcoms"].items()))
    return [
        code.name,
        f"{size:,}",
        mode,
        result["state"],
        f"{result['ended'] - result['started']:.1f}",
        mib(result["peak_rss"]),
        mib(result["rss_before"]),
        ", ".join(f"{mib(e['peak_rss'])} ({mib(e['rss_before'])})" for e in events) or "-",
        xcoms,
        ", ".join(f"{e['event_bytes']:,} ({e['summary_bytes']:,})" for e in events) or "-",
        routes(result["counts"]) if "counts" in result else "-",
        mib(result["counts"]["peak_rss"]) if "counts" in result else "-",
    ]


def round_row(code: Code, size: int, mode: str, result: dict, poll: float) -> list:
    log = result["log"]
    posts = [e[1] for e in log if e[2] == "POST /jobs"]
    tries = result["tries"]
    first_try_posts = [p for p in posts if len(tries) < 2 or p < tries[1]]
    rounds = poll_rounds(log, max(first_try_posts, default=0), poll / 2)
    steady = rounds[1:-1] or rounds  # neither the first look nor the end-of-job reads
    retry = retry_lookup(log, tries[1]) if len(tries) > 1 else {}
    return [
        code.name,
        f"{size:,}",
        mode,
        len(rounds),
        kib(statistics.median(r["bytes"] for r in steady)) if steady else "-",
        kib(max(r["bytes"] for r in steady)) if steady else "-",
        f"{statistics.median(r['files'] for r in steady):,.0f}" if steady else "-",
        retry.get("requests", "-"),
        kib(retry["bytes"]) if retry else "-",
        f"{retry['files']:,}" if retry else "-",
    ]


if __name__ == "__main__":
    main()
