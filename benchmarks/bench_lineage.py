"""Asset events and OpenLineage facets of a 10,000-file job: time and payload, capped or not.

One job of 10,000 files is submitted to the emulator (its own process) and read back once
as the task's success path reads it (``GET /jobs/<id>?files=...``, the summary's fields).
The records, marked FINISHED, then go through the provider's asset events
(``replica_events`` + Airflow ``Asset`` objects) and OpenLineage facets (datasets + the
``fts`` run facet, serialised by the OpenLineage client), with the cap (per-file up to
1,000 events / 100 datasets per side, then directories) and without it, for three
layouts of the destinations: 100 directories of 100 files, one directory, and each file
in its own directory (the cap must climb two levels).

    .venv/bin/python benchmarks/bench_lineage.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any

from harness import EmulatorProcess, make_client, print_table, use_private_airflow

LAYOUTS: dict[str, Callable[[int], str]] = {
    "100 dirs x 100 files": lambda n: f"davs://dst.example/bench/d{n // 100}/f{n}",
    "1 dir": lambda n: f"davs://dst.example/bench/all/f{n}",
    "1 dir per file": lambda n: f"davs://dst.example/bench/run{n}/out/f{n}",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 files")
    args = parser.parse_args()
    if args.quick:
        args.files = 2_000
    return args


def best_of(runs: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


@contextmanager
def uncapped():
    """The cap lifted (module constants read at call time)."""
    from airflow_provider_fts import lineage, openlineage

    saved = lineage.MAX_ASSET_EVENTS, openlineage.MAX_LINEAGE_DATASETS
    lineage.MAX_ASSET_EVENTS = openlineage.MAX_LINEAGE_DATASETS = 10**9
    try:
        yield
    finally:
        lineage.MAX_ASSET_EVENTS, openlineage.MAX_LINEAGE_DATASETS = saved


def asset_events(files: list[dict]) -> tuple[int, int]:
    """Events as the task adds them (Asset objects built); their count and JSON bytes."""
    from airflow.sdk import Asset

    from airflow_provider_fts.lineage import replica_events

    events = replica_events(files)
    assets = [Asset(uri) for uri, _ in events]
    payload = json.dumps(
        [[a.name, a.uri, extra] for a, (_, extra) in zip(assets, events, strict=True)]
    )
    return len(events), len(payload)


def lineage(files: list[dict], job: dict) -> tuple[int, int]:
    """The COMPLETE event ``facets_after`` leads to; datasets and JSON bytes."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde
    from openlineage.client.uuid import generate_new_uuid

    from airflow_provider_fts import openlineage
    from airflow_provider_fts.client.states import summarize_jobs
    from airflow_provider_fts.lineage import Collapsed

    read = Collapsed(openlineage.MAX_LINEAGE_DATASETS)
    written = Collapsed(openlineage.MAX_LINEAGE_DATASETS)
    for f in files:
        read.add(f["source_surl"])
        written.add(f["dest_surl"])
    inputs, outputs = openlineage.datasets(read), openlineage.datasets(written)
    run_facet = openlineage.run_facet
    facet = run_facet(["j"], "https://fts.example:8446", summarize_jobs([job]), failed=True)
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-01-01T00:00:00Z",
        run=Run(runId=str(generate_new_uuid()), facets={"fts": facet}),
        job=Job(namespace="airflow", name="dag.task"),
        inputs=inputs,
        outputs=outputs,
        producer="bench",
    )
    return len(inputs) + len(outputs), len(Serde.to_json(event))


def size(count: int) -> str:
    return f"{count / 1024:.0f} KiB" if count >= 10_240 else f"{count:,} B"


def main() -> None:
    args = parse_args()
    rows = []
    with EmulatorProcess() as emulator:
        use_private_airflow(emulator.info.connection)

        def fetch_jobs(client, ids):
            return client.get_jobs(ids, files=True)

        def files_of(jobs):
            return [{**f, "job_id": job["job_id"]} for job in jobs for f in job["files"]]

        for layout, destination in LAYOUTS.items():
            transfers = [
                (f"mock://src.example/bench/f{n}?size=1048576", destination(n))
                for n in range(args.files)
            ]
            with make_client(emulator.info) as client:
                job_id = client.submit(transfers)
                seconds, jobs = best_of(3, partial(fetch_jobs, client, [job_id]))
            response = len(json.dumps(jobs))
            for record in jobs[0]["files"]:
                record.update(file_state="FINISHED", filesize=1048576)
            files = files_of(jobs)
            rows.append(
                [
                    layout,
                    "fetch files (1 GET)",
                    f"{seconds * 1000:.0f} ms",
                    "-",
                    size(response),
                ]
            )
            for label, context in (
                ("capped", nullcontext()),
                ("uncapped", uncapped()),
            ):
                with context:
                    t_events, (n_events, b_events) = best_of(3, partial(asset_events, files))
                    t_ol, (n_ol, b_ol) = best_of(3, partial(lineage, files, jobs[0]))
                rows.append(
                    [
                        layout,
                        f"asset events, {label}",
                        f"{t_events * 1000:.0f} ms",
                        n_events,
                        size(b_events),
                    ]
                )
                rows.append(
                    [
                        layout,
                        f"OpenLineage facets, {label}",
                        f"{t_ol * 1000:.0f} ms",
                        n_ol,
                        size(b_ol),
                    ]
                )
    print(f"{args.files:,} files, the summary's file fields\n")
    print_table(["destinations", "step", "time (best of 3)", "events / datasets", "payload"], rows)


if __name__ == "__main__":
    main()
