"""The "FTS transfers" tab of each DAG run and task instance in the Airflow UI.

:class:`FTSTransfersPlugin` mounts a small FastAPI app in the API server
(``/fts-transfers``) and adds the tab (``external_views``) to the ``dag_run`` and
``task_instance`` pages. Every Airflow process loads plugins (workers and the triggerer
too, for listeners): this module stays light, and the app with its routes
(:mod:`.app`, which imports the API server's modules) is imported on its first request,
in the API server only. Importing the API server's modules in a worker stops
OpenLineage's task events there.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/fts-transfers"


class _App:
    """An ASGI app that imports the real one (:data:`.app.app`) when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_provider_fts.plugins.app import app  # the API server only

            self._app = app
        await self._app(scope, receive, send)


class FTSTransfersPlugin(AirflowPlugin):
    """The "FTS transfers" tab on each DAG run and task instance, served by the API server."""

    name = "fts_transfers"
    fastapi_apps = [{"app": _App(), "url_prefix": URL_PREFIX, "name": "FTS transfers"}]
    external_views = [
        {
            "name": "FTS transfers",
            "href": f"{URL_PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "fts-transfers-run",
        },
        {
            "name": "FTS transfers",
            "href": f"{URL_PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}/tasks/{{TASK_ID}}/{{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "fts-transfers-task",
        },
    ]
