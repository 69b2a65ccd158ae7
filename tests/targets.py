"""What a client asked the emulator: each request's method and target (path and query).

The emulator counts requests per route; which fields a ``GET /jobs/...`` asked for is in
its query. A fault that never fires sees every request (``fts_emulator`` clears it after
the test). No Airflow import.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_fts.testing.faults import RequestInfo


def record_targets(emulator) -> list[str]:
    """A list that fills with ``"GET /jobs/a,b,?files=..."`` for each request from now on."""
    seen: list[str] = []

    def watch(request: RequestInfo) -> bool:
        seen.append(f"{request.method} {unquote(request.path)}")
        return False  # never fires

    emulator.faults.slow(0, count=None, when=watch)
    return seen


def job_reads(seen: list[str]) -> list[tuple[set[str], str | None]]:
    """``(job ids, ?files= value)`` of each ``GET /jobs/<ids>`` in ``seen``."""
    reads = []
    for line in seen:
        method, target = line.split(" ", 1)
        parts = urlsplit(target)
        if method == "GET" and parts.path.startswith("/jobs/"):
            ids = {i for i in parts.path.removeprefix("/jobs/").split(",") if i}
            files = parse_qs(parts.query).get("files")
            reads.append((ids, files[0] if files else None))
    return reads
