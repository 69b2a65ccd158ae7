"""What OIDC tokens cost: token requests and added latency, per submission and per big job.

The identity provider is the tests' real one (panva's oidc-provider on Node, in its own
process, ``tests/tokens/idp``); the emulator runs in its own process (``harness.py``) and
validates every bearer and per-file token as FTS 3.13 does. Two measurements:

* 1,000 single-file submissions by one client: a static token (fetched beforehand, the
  floor) against an OIDC robot credential (tokens fetched and renewed by the client), with
  the IdP's usual 300 s tokens and with 10 s tokens (renewed at half-life).
* one 10,000-file job (3 source and 3 destination directories, 2 storage endpoints): an
  OIDC credential without and with ``storage_tokens``.

Token requests are counted at the IdP, FTS requests at the emulator.

    .venv/bin/python benchmarks/bench_tokens.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from harness import REPO, EmulatorProcess, print_table

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.oidc import OIDCSettings, TokenSource, reset_token_sources
from airflow_provider_fts.client.storage_tokens import StorageTokenMinter
from airflow_provider_fts.testing.environment import make_test_pki

IDP_DIR = REPO / "tests" / "tokens" / "idp"
SECRET = "bench-robot-secret"
SHORT_TTL = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=1_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds, interleaved; median")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 and 1,000, once")
    args = parser.parse_args()
    if args.quick:
        args.submissions, args.files, args.repeats = 100, 1_000, 1
    return args


def interleaved(
    idp: IdPProcess, emulator: EmulatorProcess, cases: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, int, int]]:
    """Each case ``repeats`` times, in turn; the median time and the last run's counts."""
    runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, work in cases.items():
            runs[name].append(timed(idp, emulator, work))
    return {
        name: (statistics.median(r[0] for r in results), *results[-1][1:])
        for name, results in runs.items()
    }


class IdPProcess:
    """The test identity provider in its own Node process, over HTTPS with a test CA."""

    def __init__(self, workdir: Path) -> None:
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True)
        pki = make_test_pki(workdir)
        self.ca_file = str(pki.ca.cert_pem.write_to_path(workdir / "idp-ca.pem", mode=0o644))
        env = {
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "IDP_CERT": str(pki.host.chain_pem.write_to_path(workdir / "idp-cert.pem")),
            "IDP_KEY": str(pki.host.key_pem.write_to_path(workdir / "idp-key.pem")),
            "IDP_ROBOT_SECRET": SECRET,
            "IDP_SHORT_TTL": str(SHORT_TTL),
        }
        node = shutil.which("node") or "node"
        self._process = subprocess.Popen(
            [node, "server.mjs"], cwd=IDP_DIR, env=env, stdout=subprocess.PIPE, text=True
        )
        self.issuer = json.loads(self._process.stdout.readline())["issuer"]

    def token_requests(self) -> int:
        answer = requests.get(self.issuer + "/test/counts", verify=self.ca_file, timeout=10)
        return answer.json()["token"]

    def reset(self) -> None:
        requests.post(self.issuer + "/test/reset", verify=self.ca_file, timeout=10)

    def robot(self, audience: str, client_id: str = "fts-robot") -> OIDCSettings:
        return OIDCSettings(
            self.issuer,
            client_id,
            client_secret=SECRET,
            scope="fts",
            audience=audience,
            verify=self.ca_file,
        )

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def client(emulator: EmulatorProcess, credentials: Credentials, **options) -> FTSClient:
    return FTSClient(
        emulator.info.url, credentials, trust=Trust(ca_path=emulator.info.ca_dir), **options
    )


def timed(
    idp: IdPProcess, emulator: EmulatorProcess, work: Callable[[], object]
) -> tuple[float, int, int]:
    """(seconds, token requests, FTS requests) of ``work``, counted from zero."""
    reset_token_sources()
    idp.reset()
    emulator.reset()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    fts = sum(emulator.counts()["requests"].values())
    return seconds, idp.token_requests(), fts


def submissions(
    idp: IdPProcess, emulator: EmulatorProcess, count: int, repeats: int
) -> list[list[object]]:
    url = emulator.info.url
    transfer = [("mock://src.example/bench/f", "mock://dst.example/bench/f")]

    def run(make_credentials: Callable[[], Credentials]) -> Callable[[], None]:
        def work() -> None:
            with client(emulator, make_credentials()) as fts:
                for _ in range(count):
                    fts.submit_job(transfer, sid=uuid.uuid4().hex)

        return work

    static = TokenSource(idp.robot(url)).token()  # fetched before the clock starts
    cases = {
        "static token (floor)": lambda: Credentials.from_token(static),
        "OIDC robot, 300 s tokens": lambda: Credentials.from_oidc(idp.robot(url)),
        f"OIDC robot, {SHORT_TTL} s tokens": lambda: Credentials.from_oidc(
            idp.robot(url, "fts-robot-short")
        ),
    }
    results = interleaved(idp, emulator, {n: run(make) for n, make in cases.items()}, repeats)
    floor = results["static token (floor)"][0]
    return [
        [
            f"{count:,} submissions",
            name,
            f"{seconds:.2f}",
            f"{(seconds - floor) / count * 1000:+.3f}",
            tokens,
            fts,
        ]
        for name, (seconds, tokens, fts) in results.items()
    ]


class TimedMinter(StorageTokenMinter):
    """The minter, timing its own part of a submission (token lookups and requests)."""

    seconds = 0.0

    def with_tokens(self, transfers):
        started = time.perf_counter()
        try:
            return super().with_tokens(transfers)
        finally:
            TimedMinter.seconds = time.perf_counter() - started


def big_job(
    idp: IdPProcess, emulator: EmulatorProcess, files: int, repeats: int
) -> list[list[object]]:
    url = emulator.info.url
    transfers = [
        (
            f"davs://src.example.org/data/run{n % 3}/f{n:06d}",
            f"davs://dst{n % 2}.example.org:8443/replica/run{n % 3}/f{n:06d}",
        )
        for n in range(files)
    ]

    def run(minter: StorageTokenMinter | None) -> Callable[[], None]:
        def work() -> None:
            credentials = Credentials.from_oidc(idp.robot(url))
            with client(emulator, credentials, storage_tokens=minter) as fts:
                fts.submit_job(transfers, sid=uuid.uuid4().hex)

        return work

    cases = {
        "OIDC robot, FTS token only": run(None),
        "OIDC robot + storage_tokens": run(TimedMinter(idp.robot(url))),
    }
    results = interleaved(idp, emulator, cases, repeats)
    floor = results["OIDC robot, FTS token only"][0]
    minting = f" (minting {TimedMinter.seconds * 1000:.0f})"
    return [
        [
            f"one {files:,}-file job",
            name,
            f"{seconds:.2f}",
            f"{(seconds - floor) * 1000:+.0f} per job" + (minting if "storage" in name else ""),
            tokens,
            fts,
        ]
        for name, (seconds, tokens, fts) in results.items()
    ]


def first_fetch_ms(idp: IdPProcess, audience: str, repeats: int) -> float:
    """One fresh token (discovery document and token request), as a new process pays it."""
    times = []
    for _ in range(max(repeats, 3)):
        reset_token_sources()
        started = time.perf_counter()
        TokenSource(idp.robot(audience)).token()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="fts-bench-tokens-") as workdir:
        idp = IdPProcess(Path(workdir))
        try:
            with EmulatorProcess(token_issuer=idp.issuer, issuer_ca=idp.ca_file) as emulator:
                rows = submissions(idp, emulator, args.submissions, args.repeats)
                rows += big_job(idp, emulator, args.files, args.repeats)
                fetch = first_fetch_ms(idp, emulator.info.url, args.repeats)
        finally:
            idp.close()
    headers = ["workload", "credential", "wall s", "added ms", "token requests", "FTS requests"]
    print_table(headers, rows)
    print(f"\nFirst token of a process (discovery + token request): {fetch:.0f} ms (median)")


if __name__ == "__main__":
    main()
