"""A per-file report written as it is read: CSV or JSON lines, one file record a line.

Feed it :meth:`FTSClient.iter_files <airflow_provider_fts.client.client.FTSClient.iter_files>`
(or the hook's): records are written one at a time, so a report of a million files never
holds them in memory::

    with open("failed.csv", "w", newline="") as out:
        write_files(hook.iter_files(job_ids, states=FAILED_FILE_STATES), out, format="csv")
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TextIO

__all__ = ["REPORT_FIELDS", "write_files"]

#: The columns of a report unless told otherwise.
REPORT_FIELDS: tuple[str, ...] = (
    "job_id",
    "file_id",
    "file_state",
    "source_surl",
    "dest_surl",
    "filesize",
    "reason",
    "recoverable",
)


def write_files(
    files: Iterable[Mapping[str, Any]],
    out: TextIO,
    *,
    format: Literal["csv", "jsonl"] = "jsonl",
    fields: Sequence[str] = REPORT_FIELDS,
) -> int:
    """Write each file record's ``fields`` to ``out`` (CSV with a header, or one JSON object
    a line); return how many records were written.

    :param files: File records, e.g. from ``iter_files``.
    :param out: A text file object (for CSV opened with ``newline=""``).
    :param format: ``"csv"`` or ``"jsonl"``.
    :param fields: The fields written, in order; a missing one is empty (CSV) or null.
    """
    if format not in ("csv", "jsonl"):
        raise ValueError(f"format {format!r} is not 'csv' or 'jsonl'")
    writer = csv.DictWriter(out, fields, extrasaction="ignore") if format == "csv" else None
    if writer is not None:
        writer.writeheader()
    written = 0
    for record in files:
        row = {field: record.get(field) for field in fields}
        if writer is not None:
            writer.writerow(row)
        else:
            out.write(json.dumps(row) + "\n")
        written += 1
    return written
