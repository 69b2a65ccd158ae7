"""The FastAPI app behind the "FTS transfers" tab (:mod:`.transfers` registers it).

Only the API server imports this module (on the tab's first request). Every route needs
Airflow's authentication and the user's read access to the DAG's runs and task
instances, checked by Airflow's auth manager as the core routes check it. The API server
reads FTS through :class:`FTSHook` with each task's own connection; the browser gets
HTML, never a credential or a signed URL.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy import select

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.links.fts import JOB_ID_KEY
from airflow_provider_fts.plugins.page import render_page, render_unavailable
from airflow_provider_fts.plugins.report import (
    Filters,
    FTSTask,
    Report,
    ReportCache,
    Unavailable,
    build_report,
    iso,
)

OPERATOR_NAMES = {"FTSSubmitOperator"}
PER_PAGE = 50
#: Seconds a hook (its client, with the loaded credential) is reused before it is rebuilt.
HOOK_LIFETIME = 300.0

app = FastAPI(title="FTS transfers", docs_url=None, redoc_url=None, openapi_url=None)
cache = ReportCache()
Readable = [
    Depends(requires_access_dag("GET", DagAccessEntity.RUN)),
    Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE)),
]


# -- the routes ----------------------------------------------------------------------------


@app.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse, dependencies=Readable)
def run_page(
    request: Request,
    dag_id: str,
    run_id: str,
    session: SessionDep,
    filters: Annotated[Filters, Depends(Filters)],
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    title = f"DAG {dag_id}, run {run_id}"
    return _page(request.url.path, title, session, dag_id, run_id, None, None, filters, page)


@app.get(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/{map_index}",
    response_class=HTMLResponse,
    dependencies=Readable,
)
def task_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    session: SessionDep,
    filters: Annotated[Filters, Depends(Filters)],
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    index = _map_index(map_index)
    shown = task_id + (f"[{index}]" if index is not None and index >= 0 else "")
    title = f"DAG {dag_id}, run {run_id}, task {shown}"
    return _page(request.url.path, title, session, dag_id, run_id, task_id, index, filters, page)


@app.get("/dags/{dag_id}/runs/{run_id}/files.{kind}", dependencies=Readable)
def run_files(
    dag_id: str,
    run_id: str,
    kind: str,
    session: SessionDep,
    filters: Annotated[Filters, Depends(Filters)],
    task_id: str | None = None,
    map_index: str | None = None,
) -> StreamingResponse:
    """The per-file report (``csv`` or ``json``) of the run, or of one task instance."""
    if kind not in STREAMS:
        raise HTTPException(404, "Ask for files.csv or files.json.")
    try:
        report = _report(session, dag_id, run_id).only(task_id, _map_index(map_index))
    except Unavailable as error:
        raise HTTPException(503, f"{error.problem} What to do: {error.fix}") from None
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"fts-files-{dag_id}-{run_id}")
    media, stream = STREAMS[kind]
    return StreamingResponse(
        stream(report, filters),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'},
    )


@app.get(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/{map_index}/files.{kind}",
    dependencies=Readable,
)
def task_files(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    kind: str,
    session: SessionDep,
    filters: Annotated[Filters, Depends(Filters)],
) -> StreamingResponse:
    return run_files(dag_id, run_id, kind, session, filters, task_id, map_index)


def _page(
    here: str,
    title: str,
    session: SessionDep,
    dag_id: str,
    run_id: str,
    task_id: str | None,
    map_index: int | None,
    filters: Filters,
    page: int,
) -> HTMLResponse:
    try:
        report = _report(session, dag_id, run_id).only(task_id, map_index)
    except Unavailable as error:
        return HTMLResponse(render_unavailable(title, error), status_code=503)
    downloads = quote(f"{here}/files", safe="/:+@")
    return HTMLResponse(render_page(title, report, filters, page, PER_PAGE, downloads))


# -- reading the run -----------------------------------------------------------------------


def _report(session: SessionDep, dag_id: str, run_id: str) -> Report:
    tasks = fts_tasks(session, dag_id, run_id)
    if tasks is None:
        raise HTTPException(404, f"DAG {dag_id} has no run {run_id}.")
    # The tasks are in the key: a new try or newly pushed ids make a new report at once.
    return cache.get((dag_id, run_id, tuple(tasks)), lambda: build_report(hook_for, tasks))


def fts_tasks(session: SessionDep, dag_id: str, run_id: str) -> list[FTSTask] | None:
    """The run's task instances that submit FTS jobs (None: no such run).

    A task counts when it is an FTS submit operator or pushed FTS job ids (a subclass).
    """
    columns = (TaskInstance.task_id, TaskInstance.map_index, TaskInstance.try_number)
    names = (TaskInstance.operator, TaskInstance.custom_operator_name)
    rows = session.execute(
        select(*columns, *names).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ).all()
    if not rows:
        return None
    pushed = {
        (x.task_id, x.map_index): XComModel.deserialize_value(x)
        for x in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == JOB_ID_KEY
            )
        )
    }
    conn_ids = _conn_ids(session, dag_id, run_id)
    tasks = []
    for task_id, map_index, try_number, operator, custom_name in rows:
        ids = pushed.get((task_id, map_index))
        if ids is None and not {operator, custom_name} & OPERATOR_NAMES:
            continue
        tasks.append(
            FTSTask(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                try_number=try_number or 0,
                conn_id=conn_ids.get((task_id, map_index)) or FTSHook.default_conn_name,
                pushed=tuple([ids] if isinstance(ids, str) else ids or ()),
            )
        )
    return tasks


def _conn_ids(session: SessionDep, dag_id: str, run_id: str) -> dict[tuple[str, int], str]:
    """The connection each task instance rendered (its ``fts_conn_id`` may be a template)."""
    table = RenderedTaskInstanceFields
    rows = session.execute(
        select(table.task_id, table.map_index, table.rendered_fields).where(
            table.dag_id == dag_id, table.run_id == run_id
        )
    )
    return {
        (task_id, map_index): conn_id
        for task_id, map_index, fields in rows
        if isinstance(conn_id := (fields or {}).get("fts_conn_id"), str) and conn_id
    }


_hooks: dict[str, tuple[float, FTSHook]] = {}
_hooks_lock = threading.Lock()


def hook_for(conn_id: str) -> FTSHook:
    """One hook per connection, rebuilt now and then so a renewed proxy is read again."""
    with _hooks_lock:
        made, hook = _hooks.get(conn_id, (0.0, None))  # type: ignore[assignment]
        if hook is None or time.monotonic() - made > HOOK_LIFETIME:
            hook = FTSHook(conn_id)
            _hooks[conn_id] = (time.monotonic(), hook)
        return hook


def _map_index(value: str | None) -> int | None:
    """A map index from the URL; anything else (Airflow's unfilled placeholder) means all."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- the downloads -------------------------------------------------------------------------

COLUMNS = (
    "job_id", "try_number", "task_id", "map_index", "file_id", "state", "source", "destination",
    "size", "start_time", "finish_time", "reason", "recoverable",
)  # fmt: skip


def _records(report: Report, filters: Filters) -> Iterator[tuple]:
    made_by = {j.job_id: j.made_by for j in report.jobs}
    for f in filters.match(report.files):
        by = made_by[f.job_id]
        yield (
            f.job_id, by.try_number, by.task_id, by.map_index, f.file_id, f.state, f.source,
            f.destination, f.size, iso(f.start), iso(f.finish), f.reason, f.recoverable,
        )  # fmt: skip


def stream_csv(report: Report, filters: Filters, batch: int = 2000) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for count, record in enumerate(_records(report, filters), 1):
        writer.writerow(record)
        if count % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def stream_json(report: Report, filters: Filters, batch: int = 2000) -> Iterator[str]:
    jobs = json.dumps([j.as_json() for j in report.jobs])
    yield f'{{"jobs": {jobs}, "files": ['
    chunk: list[str] = []
    for count, record in enumerate(_records(report, filters)):
        chunk.append(("," if count else "") + json.dumps(dict(zip(COLUMNS, record, strict=True))))
        if len(chunk) == batch:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk) + "]}"


STREAMS = {"csv": ("text/csv", stream_csv), "json": ("application/json", stream_json)}
