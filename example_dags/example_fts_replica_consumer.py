"""Downstream of the replication: runs when replicas land at site B, and reads them there.

Scheduled on the ``fts-replicas`` alias, to which ``example_fts_replication`` adds one
asset event per file FTS FINISHED. Each event names the replica by its destination URL
as the transfer wrote it (without its query) and carries the FTS job id, the source and
the size. The task reads each replica through the site's POSIX mount (an EOS FUSE mount,
NFS, or the emulator's folder), checks its size against what FTS reported, and returns
size and ADLER32 per file.

To run on one replica only, schedule on the asset itself, spelled exactly as the transfer
spells the destination: ``schedule=Asset("davs://site-b.example/replica/run-001.root")``.
Run by hand (no triggering event), the task reads the latest transfer's replicas.
"""

from __future__ import annotations

import json
import os
import zlib
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, AssetAlias, task

REPLICAS = AssetAlias("fts-replicas")
#: Where the destination site's storage is mounted locally: URL prefix -> directory.
MOUNTS = json.loads(
    os.environ.get("FTS_EXAMPLE_MOUNTS", '{"davs://site-b.example": "/data/site-b"}')
)


def local_path(uri: str) -> Path:
    """The mounted file of a replica URL."""
    for prefix, directory in MOUNTS.items():
        if uri.startswith(prefix + "/"):
            return Path(directory) / uri.removeprefix(prefix + "/")
    raise ValueError(f"{uri} is on no mounted site; set FTS_EXAMPLE_MOUNTS for it")


def read_replica(uri: str, extra: dict) -> dict:
    """Read one replica; fail if it is missing or its size is not what FTS moved."""
    data = local_path(uri).read_bytes()
    if "size" in extra and extra["size"] != len(data):
        raise ValueError(f"{uri} has {len(data)} bytes, FTS moved {extra['size']}")
    return {
        "replica": uri,
        "fts_job_id": extra.get("fts_job_id"),
        "bytes": len(data),
        "adler32": f"{zlib.adler32(data):08x}",
    }


with DAG(
    dag_id="example_fts_replica_consumer",
    schedule=REPLICAS,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["fts", "example"],
) as dag:

    @task(inlets=[REPLICAS])
    def read_replicas(triggering_asset_events=None, inlet_events=None) -> list[dict]:
        # An event added through the alias is listed under the alias and under its asset:
        # read it through the alias, once.
        events = list(triggering_asset_events[REPLICAS]) if triggering_asset_events else []
        if not events:  # run by hand: the replicas of the latest transfer
            recorded = list(inlet_events[REPLICAS])
            latest = recorded[-1].extra.get("fts_job_id") if recorded else None
            events = [e for e in recorded if e.extra.get("fts_job_id") == latest]
        return [read_replica(e.asset.uri, e.extra) for e in events]

    read_replicas()
