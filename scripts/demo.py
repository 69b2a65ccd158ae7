"""``make demo``: the replication example DAG, end to end, against a local FTS emulator.

In a throw-away directory it sets up an Airflow home (``airflow db migrate``), a test grid
PKI and an FTS emulator serving two local "sites" (``davs://site-a.example`` and
``davs://site-b.example``), writes a few files of random bytes to site A, runs
``airflow dags test example_fts_replication``, then checks and prints what moved: each
file's source, destination, bytes and ADLER32 at both ends (computed here, on disk), with
the FTS job ids and final states asked of the emulator. Everything is removed afterwards,
also on failure. The exit status is non-zero unless every file arrived intact.

Run it from a clone with the provider installed: ``make demo`` or ``python scripts/demo.py``
(``--keep`` keeps the directory for a look around). It lives outside the package because
it needs the repository's ``example_dags/``.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.testing.environment import FTSTestPKI, make_test_pki
from airflow_provider_fts.testing.server import FTSEmulator

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "example_dags"
DAG_ID = "example_fts_replication"
SITES = ("davs://site-a.example", "davs://site-b.example")
FILE_SIZE = 256 * 1024
#: How long each copy takes: long enough that the sensor finds the job running and defers.
TRANSFER_SECONDS = 1.0
TERMINAL = ("FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED")


@dataclass(frozen=True)
class Moved:
    """One file of the DAG's job, checked on disk at both ends."""

    source: str
    destination: str
    state: str
    source_bytes: int
    destination_bytes: int | None
    source_adler32: str
    destination_adler32: str | None

    @property
    def intact(self) -> bool:
        return (
            self.state == "FINISHED"
            and self.destination_bytes == self.source_bytes
            and self.destination_adler32 == self.source_adler32
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.py")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fts-demo-"))
    try:
        ok = run_demo(workdir)
    finally:
        if args.keep:
            print(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"Demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s.")
    return 0 if ok else 1


def run_demo(workdir: Path) -> bool:
    env = airflow_environment(workdir / "airflow")
    step("Preparing an Airflow home (airflow db migrate)")
    if not airflow(env, "db", "migrate", quiet=True):
        return False
    step("Starting the FTS emulator with two sites")
    pki = make_test_pki(workdir / "pki")
    storage = {site: workdir / site.split("//")[1] for site in SITES}
    for directory in storage.values():
        directory.mkdir()
    with FTSEmulator(
        ca=pki.ca, host_credential=pki.host, ca_dir=pki.ca_dir, storage=storage
    ) as emu:
        emu.engine.default_duration = TRANSFER_SECONDS
        env["AIRFLOW_CONN_FTS_DEFAULT"] = emu.connection_json(
            pki.voms_proxy_path, ca_path=pki.ca_dir
        )
        print(
            f"  FTS REST at {emu.url}; site A = {storage[SITES[0]]}; site B = {storage[SITES[1]]}"
        )
        sources = write_source_files(storage)
        day = dt.datetime.now(dt.UTC).date().isoformat()
        step(f"Running: airflow dags test {DAG_ID} {day}")
        dag_ok = airflow(env, "dags", "test", DAG_ID, day, log=workdir / "dags-test.log")
        step("What moved")
        moved, jobs = inspect_jobs(emu, pki, storage)
    print_report(moved, jobs)
    return dag_ok and bool(moved) and len(moved) == len(sources) and all(m.intact for m in moved)


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def airflow_environment(home: Path) -> dict[str, str]:
    """The environment of the Airflow commands: an Airflow of their own, the example DAGs."""
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "FTS_EXAMPLE_POLL_SECONDS": "0.5",
    }
    return env


def airflow(env: dict[str, str], *args: str, quiet: bool = False, log: Path | None = None) -> bool:
    """Run an Airflow CLI command. Its output goes to ``log`` (the FTS lines are echoed)
    or, when ``quiet``, is shown only if the command fails."""
    command = [sys.executable, "-m", "airflow", *args]
    if quiet:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        return done.returncode == 0
    log = log or Path(os.devnull)
    with (
        log.open("w") as output,
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        for line in process.stdout:
            output.write(line)
            if shown := _worth_showing(line):
                print(f"  | {shown}", flush=True)
    if process.returncode:
        print(f"  airflow {' '.join(args)} exited with {process.returncode}; last lines:")
        print("".join(log.read_text().splitlines(keepends=True)[-30:]))
    return process.returncode == 0


_LOG_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<message>.*?)\s+\[(?P<logger>[\w.]+)\]")


def _worth_showing(line: str) -> str | None:
    """The message of an FTS progress line, a task end, or an error; None otherwise."""
    match = _LOG_LINE.match(line)
    if match is None:
        return None
    message, logger = match["message"], match["logger"]
    if match["level"] in ("error", "critical"):
        return f"ERROR {message}"
    if "[DAG TEST] end task" in message:
        return message.replace("[DAG TEST] ", "")
    if logger.startswith(("airflow_provider_fts", "airflow.task.operators.airflow_provider_fts")):
        where = "trigger" if ".triggers." in logger else "task"
        return f"{message}  ({where})"
    return None


def example_constants() -> dict[str, object]:
    """SOURCE, DESTINATION and FILES of the replication example, read without importing it."""
    tree = ast.parse((DAGS_FOLDER / f"{DAG_ID}.py").read_text())
    wanted = {"SOURCE", "DESTINATION", "FILES"}
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in wanted
    }


def write_source_files(storage: dict[str, Path]) -> list[Path]:
    constants = example_constants()
    folder = local_path(str(constants["SOURCE"]), storage)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in constants["FILES"]:
        path = folder / name
        path.write_bytes(os.urandom(FILE_SIZE))
        paths.append(path)
        print(f"  wrote {FILE_SIZE} random bytes to {path}")
    return paths


def local_path(url: str, storage: dict[str, Path]) -> Path:
    site, _, rest = url.partition(".example/")
    return storage[f"{site}.example"] / rest


def adler32(path: Path) -> str:
    value = 1
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            value = zlib.adler32(chunk, value)
    return f"{value:08x}"


def inspect_jobs(
    emu: FTSEmulator, pki: FTSTestPKI, storage: dict[str, Path]
) -> tuple[list[Moved], dict[str, str]]:
    """Ask FTS (with our own client, like any user) which jobs ran, and check each file."""
    credentials = Credentials.from_proxy_file(pki.voms_proxy_path)
    with FTSClient(emu.url, credentials, trust=Trust(ca_path=str(pki.ca_dir))) as client:
        listed = client.list_jobs(state_in=TERMINAL, time_window=1)
        jobs = {job["job_id"]: job["job_state"] for job in listed}
        files = [f for job_id in jobs for f in client.get_job_files(job_id)]
    moved = []
    for record in files:
        source = local_path(record["source_surl"], storage)
        destination = local_path(record["dest_surl"], storage)
        arrived = destination.is_file()
        moved.append(
            Moved(
                source=record["source_surl"],
                destination=record["dest_surl"],
                state=record["file_state"],
                source_bytes=source.stat().st_size,
                destination_bytes=destination.stat().st_size if arrived else None,
                source_adler32=adler32(source),
                destination_adler32=adler32(destination) if arrived else None,
            )
        )
    return moved, jobs


def print_report(moved: list[Moved], jobs: dict[str, str]) -> None:
    for job_id, state in jobs.items():
        print(f"  FTS job {job_id}: {state}")
    if not jobs:
        print("  FTS ran no job.")
    for m in moved:
        verdict = "ok" if m.intact else "NOT COPIED INTACT"
        print(f"  {m.source}\n    -> {m.destination}")
        print(
            f"     {m.state}, {m.destination_bytes} of {m.source_bytes} bytes, ADLER32 "
            f"source {m.source_adler32} / destination {m.destination_adler32}: {verdict}"
        )
    total = sum(m.destination_bytes or 0 for m in moved if m.intact)
    print(f"  {sum(m.intact for m in moved)} of {len(moved)} files copied intact, {total} bytes.")


if __name__ == "__main__":
    sys.exit(main())
