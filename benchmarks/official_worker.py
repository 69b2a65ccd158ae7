"""The official ``fts3`` client doing the benchmark's calls; runs in benchmarks/.venv-fts3.

Kept alive by bench_client.py so the runs interleave with ours. Usage::

    .venv-fts3/bin/python official_worker.py ENDPOINT PROXY CA_DIR

prints ``{"ready": ...}``, then reads commands from stdin and answers each with one JSON
line holding the wall time of the loop alone (no process start-up, no import):

* ``status JOB_ID N``: ``get_job_status(job_id)`` N times;
* ``status_files JOB_ID N``: ``get_job_status(job_id, list_files=True)`` N times;
* ``submit SOURCE DESTINATION N``: ``submit(new_job([new_transfer(...)]))`` N times.
"""

from __future__ import annotations

import json
import sys
import time

from fts3 import __version__
from fts3.rest.client import easy


def main(endpoint: str, proxy: str, ca_dir: str) -> None:
    started = time.perf_counter()
    context = easy.Context(endpoint, ucert=proxy, ukey=proxy, capath=ca_dir)
    setup = time.perf_counter() - started
    print(json.dumps({"ready": True, "version": __version__, "setup_seconds": setup}), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        started = time.perf_counter()
        if command == "status":
            for _ in range(int(args[1])):
                easy.get_job_status(context, args[0])
        elif command == "status_files":
            for _ in range(int(args[1])):
                easy.get_job_status(context, args[0], list_files=True)
        elif command == "submit":
            job = easy.new_job([easy.new_transfer(args[0], args[1])])
            for _ in range(int(args[2])):
                easy.submit(context, job)
        else:
            raise SystemExit(f"unknown command {command!r}")
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
