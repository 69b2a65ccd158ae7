"""OpenLineage facets of FTS tasks: sources in, destinations out, and an ``fts`` run facet.

Only OpenLineage's extractor reaches this module (through the three methods of
:class:`~airflow_provider_fts.tasks.FTSTask`), so without the OpenLineage provider nothing
of it loads. The functions here take what they describe as arguments: the job ids, the
jobs' files (a stream: inputs are the sources read, outputs the destinations that
FINISHED, both capped by :data:`~airflow_provider_fts.lineage.MAX_LINEAGE_DATASETS` per
side, then directories), the task's :class:`~airflow_provider_fts.client.states.JobSummary`
and the endpoint. The task gathers them (see ``FTSTask``); nothing here reads a task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define, field

from airflow_provider_fts.client.states import JobSummary, is_finished_replica
from airflow_provider_fts.client.submission import Transfer
from airflow_provider_fts.lineage import (
    MAX_LINEAGE_DATASETS,
    Collapsed,
    asset_uri,
    namespace_and_name,
)

log = logging.getLogger(__name__)

#: Failed files listed in a FAIL event's run facet; the count says how many there were.
MAX_FAILED_FILES = 100
RUN_FACET_KEY = "fts"
#: The file fields the facets read.
LINEAGE_FILE_FIELDS: tuple[str, ...] = ("file_state", "source_surl", "dest_surl")


@define
class FTSRunFacet(RunFacet):
    """The FTS side of a task run.

    :param jobIds: The FTS job ids.
    :param endpoint: The FTS REST endpoint.
    :param jobsPerState: Jobs per job state (final once the task waited).
    :param files: Files in the jobs.
    :param fileStates: Files per file state.
    :param bytes: Bytes of the FINISHED files.
    :param failedFiles: Failed files with source, destination, state and reason (capped).
    :param failedFilesTotal: How many files failed in all.
    """

    jobIds: list[str]
    endpoint: str | None = None
    jobsPerState: dict[str, int] = field(factory=dict)
    files: int | None = None
    fileStates: dict[str, int] = field(factory=dict)
    bytes: int | None = None
    failedFiles: list[dict[str, Any]] = field(factory=list)
    failedFilesTotal: int = 0


def facets_on_start(
    job_ids: Sequence[str], transfers: Iterable[Transfer], endpoint: str | None
) -> OperatorLineage:
    """Planned lineage: the operator's transfers; the sensor's job ids.

    :param job_ids: The jobs known at start (the sensor's; none for the operator).
    :param transfers: The transfers the task plans to submit (none for the sensor).
    :param endpoint: The FTS endpoint, if the task's connection is loaded.
    """
    sources = Collapsed(MAX_LINEAGE_DATASETS)
    destinations = Collapsed(MAX_LINEAGE_DATASETS)
    for transfer in transfers:
        for url in transfer.sources:
            sources.add(asset_uri(url))
        for url in transfer.destinations:
            destinations.add(asset_uri(url))
    facet = FTSRunFacet(jobIds=list(job_ids), endpoint=endpoint)
    return OperatorLineage(
        inputs=datasets(sources), outputs=datasets(destinations), run_facets={RUN_FACET_KEY: facet}
    )


def facets_after(
    job_ids: Sequence[str],
    files: Iterable[Mapping[str, Any]],
    summary: JobSummary | None,
    endpoint: str | None,
    *,
    failed: bool,
) -> OperatorLineage:
    """What moved: sources read, destinations FINISHED, the jobs' outcome.

    :param job_ids: The task's FTS jobs.
    :param files: Their file records (:data:`LINEAGE_FILE_FIELDS`), streamed; a read that
        fails part way keeps what came before it.
    :param summary: The summary the task concluded on, if it got that far.
    :param endpoint: The FTS endpoint, if the task's connection is loaded.
    :param failed: A FAIL event: the facet lists the failed files.
    """
    if not job_ids:  # nothing submitted: the input was refused before any job
        return OperatorLineage(run_facets={RUN_FACET_KEY: FTSRunFacet(jobIds=[])})
    read = Collapsed(MAX_LINEAGE_DATASETS)
    written = Collapsed(MAX_LINEAGE_DATASETS)
    try:
        for file in files:
            if file.get("file_state") != "NOT_USED" and file.get("source_surl"):
                read.add(asset_uri(file["source_surl"]))
            if is_finished_replica(file):
                written.add(asset_uri(file["dest_surl"]))
    except Exception as error:  # lineage must not hide the task's own outcome
        log.warning("FTS lineage: could not read the files of jobs %s: %s", job_ids, error)
    facet = run_facet(job_ids, endpoint, summary, failed=failed)
    return OperatorLineage(
        inputs=datasets(read), outputs=datasets(written), run_facets={RUN_FACET_KEY: facet}
    )


def run_facet(
    job_ids: Sequence[str], endpoint: str | None, summary: JobSummary | None, *, failed: bool
) -> FTSRunFacet:
    """The ``fts`` run facet from a job summary (none: the job ids and endpoint only)."""
    if summary is None:
        return FTSRunFacet(jobIds=list(job_ids), endpoint=endpoint)
    shown = summary["failed_files"][:MAX_FAILED_FILES] if failed else []
    return FTSRunFacet(
        jobIds=list(job_ids),
        endpoint=endpoint,
        jobsPerState=dict(summary["jobs_per_state"]),
        files=summary["files"],
        fileStates=dict(summary["file_states"]),
        bytes=summary["bytes"],
        failedFiles=[_failure(entry) for entry in shown],
        failedFilesTotal=summary["failed_count"],
    )


def _failure(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "jobId": entry.get("job_id"),
        "source": asset_uri(entry.get("source") or ""),
        "destination": asset_uri(entry.get("destination") or ""),
        "state": entry.get("state"),
        "reason": entry.get("reason") or "",
        "recoverable": bool(entry.get("recoverable")),
    }


def datasets(collapsed: Collapsed) -> list[Dataset]:
    """One dataset per collapsed key: a URL, or a directory beyond the cap."""
    result = []
    for key in collapsed.groups:
        namespace, name = namespace_and_name(key)
        result.append(Dataset(namespace=namespace, name=name))
    return result
