"""Run the FTS emulator from a shell: ``python -m airflow_provider_fts.testing``.

Creates a throw-away PKI (CA, host certificate, a user with a VOMS proxy), starts the
emulator and prints the ``export AIRFLOW_CONN_FTS_DEFAULT=...`` line that points Airflow at
it (paste it into a shell, or ``eval`` it).
With ``--test-issuer`` it also trusts a built-in token issuer and prints a signed token of
user ``token-user`` and a token connection, to test token DAGs without an identity
provider (``--token-lifetime`` hours). Serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path

from airflow_provider_fts.testing.environment import TOKEN_USER, make_test_issuer, make_test_pki
from airflow_provider_fts.testing.server import FTSEmulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_fts.testing",
        description="Run a local FTS3 REST emulator over HTTPS with a throw-away grid PKI.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8446, help="port (0: any free port)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to write the CA directory, proxies and keys (default: a new temp dir)",
    )
    parser.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="serve davs://NAME/ from the local directory DIR (repeatable)",
    )
    parser.add_argument(
        "--test-issuer",
        action="store_true",
        help="trust a built-in token issuer and print a ready token and token connection",
    )
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=12.0,
        metavar="HOURS",
        help="lifetime of the printed token (default: 12 hours)",
    )
    return parser.parse_args(argv)


def storage_map(sites: list[str]) -> dict[str, Path]:
    storage = {}
    for site in sites:
        name, separator, directory = site.partition("=")
        if not separator or not name or not directory:
            raise SystemExit(f"--site expects NAME=DIR, got {site!r}")
        storage[f"davs://{name}"] = Path(directory)
    return storage


def print_token(emulator: FTSEmulator, token: str, ca_dir: Path) -> None:
    """The built-in issuer's token, alone and in a token connection (a throw-away test key)."""
    connection = emulator.connection_json(token=token, ca_path=ca_dir)
    print(f"export FTS_ACCESS_TOKEN={token}")
    print(f"export AIRFLOW_CONN_FTS_TOKEN={shlex.quote(connection)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    storage = storage_map(args.site)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fts-emulator-"))
    pki = make_test_pki(workdir)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    issuer = make_test_issuer() if args.test_issuer else None
    emulator = FTSEmulator(
        ca=pki.ca,
        host_credential=pki.host,
        ca_dir=pki.ca_dir,
        storage=storage,
        token_issuers=[issuer] if issuer else (),
        host=args.host,
        port=args.port,
    )
    with emulator:
        connection = emulator.connection_json(pki.voms_proxy_path, ca_path=pki.ca_dir)
        print(f"FTS emulator listening on {emulator.url} (PKI in {workdir})")
        print(f"export AIRFLOW_CONN_FTS_DEFAULT={shlex.quote(connection)}")
        if issuer is not None:
            lifetime = args.token_lifetime * 3600
            token = issuer.mint(TOKEN_USER, emulator.url, lifetime=lifetime)
            print_token(emulator, token, pki.ca_dir)
        sys.stdout.flush()
        stop.wait()
    print("FTS emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
