"""OpenLineage facets of FTS tasks: sources in, destinations out, and an ``fts`` run facet.

Only OpenLineage's extractor imports this module (through the three short methods of the
operator and the sensor), so without the OpenLineage provider nothing of it loads.

Where the data comes from: the listener calls these on the task object that ran the final
execution segment, in a forked process by default. Nothing is read from XCom (a forked
child must not talk to the task supervisor): the job ids are the ones the task holds
(recorded by ``add_replica_events`` or, after a deferral, ``prepare_lineage``; else the
operator's ``_job_ids`` or the sensor's rendered ``job_id``), and the outcome and files
come from FTS in one request per 100 jobs through the task's hook (its connection loaded
by then), unless :func:`~airflow_provider_fts.assets.add_replica_events` fetched them in
this segment. Inputs are the sources read, outputs the destinations that FINISHED, both
capped by :data:`~airflow_provider_fts.assets.MAX_LINEAGE_DATASETS` per side (then
directories). At start the operator reports what it plans to move; the sensor knows only
its job ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define, field

from airflow_provider_fts.assets import (
    MAX_LINEAGE_DATASETS,
    asset_uri,
    collapse,
    fetch_jobs,
    files_of,
    finished,
    namespace_and_name,
    remembered_jobs,
)
from airflow_provider_fts.client.states import summarize_jobs

log = logging.getLogger(__name__)

#: Failed files listed in a FAIL event's run facet; the count says how many there were.
MAX_FAILED_FILES = 100
RUN_FACET_KEY = "fts"


@define
class FTSRunFacet(RunFacet):
    """The FTS side of a task run.

    :param jobIds: The FTS job ids.
    :param endpoint: The FTS REST endpoint.
    :param jobStates: Each job's state (final once the task waited).
    :param files: Files in the jobs.
    :param fileStates: Files per file state.
    :param bytes: Bytes of the FINISHED files.
    :param failedFiles: Failed files with source, destination, state and reason (capped).
    :param failedFilesTotal: How many files failed in all.
    """

    jobIds: list[str]
    endpoint: str | None = None
    jobStates: dict[str, str] = field(factory=dict)
    files: int | None = None
    fileStates: dict[str, int] = field(factory=dict)
    bytes: int | None = None
    failedFiles: list[dict[str, Any]] = field(factory=list)
    failedFilesTotal: int = 0


def facets_on_start(task: Any) -> OperatorLineage:
    """Planned lineage: the operator's transfers; the sensor's job ids."""
    sources: list[str] = []
    destinations: list[str] = []
    if getattr(task, "transfers", None) is not None:
        from airflow_provider_fts.client.submission import Transfer

        for index, item in enumerate(task.transfers):
            transfer = Transfer.coerce(item, index)
            sources += transfer.sources
            destinations += transfer.destinations
    facet = FTSRunFacet(jobIds=_sensor_job_ids(task), endpoint=_endpoint(task))
    return OperatorLineage(
        inputs=datasets(sources), outputs=datasets(destinations), run_facets={RUN_FACET_KEY: facet}
    )


def facets_on_complete(task: Any, task_instance: Any) -> OperatorLineage:
    """What moved: sources read, destinations FINISHED, the jobs' outcome."""
    return _facets_after(task, failed=False)


def facets_on_failure(task: Any, task_instance: Any) -> OperatorLineage:
    """Like :func:`facets_on_complete`, with the failed files and their reasons."""
    return _facets_after(task, failed=True)


def _facets_after(task: Any, *, failed: bool) -> OperatorLineage:
    job_ids = task_job_ids(task)
    if not job_ids:  # nothing submitted: the input was refused before any job
        return OperatorLineage(run_facets={RUN_FACET_KEY: FTSRunFacet(jobIds=[])})
    jobs = _jobs(task, job_ids)
    files = files_of(jobs)
    summary = summarize_jobs(jobs) if jobs else {}
    facet = run_facet(job_ids, _endpoint(task), summary, failed=failed)
    read = [f["source_surl"] for f in files if f.get("file_state") != "NOT_USED"]
    written = [f["dest_surl"] for f in finished(files)]
    return OperatorLineage(
        inputs=datasets(read), outputs=datasets(written), run_facets={RUN_FACET_KEY: facet}
    )


def _jobs(task: Any, job_ids: list[str]) -> list[dict]:
    """The job records the success path fetched, else fetched now; none without a hook."""
    jobs = remembered_jobs(task, job_ids)
    hook = _loaded_hook(task)
    if jobs is not None or hook is None:
        return jobs or []
    try:
        return fetch_jobs(hook, job_ids)
    except Exception as error:  # lineage must not hide the task's own outcome
        log.warning("FTS lineage: could not read jobs %s: %s", job_ids, error)
        return []


def run_facet(
    job_ids: Sequence[str], endpoint: str | None, summary: Mapping[str, Any], *, failed: bool
) -> FTSRunFacet:
    """The ``fts`` run facet from a job summary (see ``summarize_jobs``)."""
    failures = list(summary.get("failed_files") or [])
    shown = failures[:MAX_FAILED_FILES] if failed else []
    return FTSRunFacet(
        jobIds=list(job_ids),
        endpoint=endpoint,
        jobStates={k: str(v) for k, v in (summary.get("job_states") or {}).items()},
        files=summary.get("files"),
        fileStates=dict(summary.get("file_states") or {}),
        bytes=summary.get("bytes"),
        failedFiles=[_failure(entry) for entry in shown],
        failedFilesTotal=len(failures),
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


def datasets(urls: Iterable[str]) -> list[Dataset]:
    """One dataset per URL, or per directory beyond :data:`MAX_LINEAGE_DATASETS`."""
    uris = [asset_uri(url) for url in urls if url]
    result = []
    for key in collapse(uris, MAX_LINEAGE_DATASETS):
        namespace, name = namespace_and_name(key)
        result.append(Dataset(namespace=namespace, name=name))
    return result


def task_job_ids(task: Any) -> list[str]:
    """The FTS job ids the task holds: recorded by the success path or before the verdict
    (``prepare_lineage``), else the operator's submitted ones, else the sensor's."""
    known = getattr(task, "_fts_job_ids", None) or getattr(task, "_job_ids", None)
    return list(known) if known else _sensor_job_ids(task)


def _sensor_job_ids(task: Any) -> list[str]:
    if getattr(task, "job_id", None) is None:
        return []
    from airflow_provider_fts.sensors.fts import job_id_list

    return job_id_list(task.job_id)


def _loaded_hook(task: Any) -> Any:
    """The task's hook if it already loaded its connection, else None: asking for a
    connection from the listener's forked process could hang on the task supervisor."""
    hook = task.__dict__.get("hook")
    return hook if hook is not None and "settings" in hook.__dict__ else None


def _endpoint(task: Any) -> str | None:
    hook = _loaded_hook(task)
    return hook.settings.endpoint if hook else None
