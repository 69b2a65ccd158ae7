"""Asset events of FTS transfers, the Airflow side of :mod:`airflow_provider_fts.lineage`.

A task adds one asset event per FINISHED destination to each ``AssetAlias`` in its outlets
(or one per directory beyond :data:`~airflow_provider_fts.lineage.MAX_ASSET_EVENTS`). The
files are streamed from FTS a few jobs per request and folded into the events as they come,
so the end of a 10^6-file task holds the events, not the files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from airflow_provider_fts.client.states import FileState
from airflow_provider_fts.lineage import namespace_and_name, replica_events

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_fts.hooks.fts import FTSHook

log = logging.getLogger(__name__)

#: The file fields an asset event reads.
REPLICA_FILE_FIELDS: tuple[str, ...] = (
    "file_state",
    "source_surl",
    "dest_surl",
    "filesize",
    "user_filesize",
    "checksum",
)


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """The ``asset-uris`` OpenLineage converter (called by the OpenLineage provider only)."""
    # Imported here: it loads OpenLineage's client, which only OpenLineage itself needs.
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = namespace_and_name(asset.uri)
    return Dataset(namespace=namespace, name=name)


def asset_aliases(outlets: Sequence[Any] | None) -> list[Any]:
    """The ``AssetAlias`` outlets of a task."""
    return [outlet for outlet in outlets or [] if isinstance(outlet, AssetAlias)]


def add_replica_events(
    hook: FTSHook,
    outlets: Sequence[Any] | None,
    context: Context,
    job_ids: Sequence[str],
    grain: str = "file",
) -> int:
    """Add an asset event per FINISHED destination to every ``AssetAlias`` in ``outlets``;
    return how many events each alias got.

    Call it on success in the task's final execution segment (events added before
    ``defer()`` are lost). Without an alias it does nothing, not even a request.

    :param hook: The task's hook (reads the FINISHED files, streamed).
    :param outlets: The task's outlets.
    :param context: The task's context (its ``outlet_events``).
    :param job_ids: The FTS jobs whose FINISHED files are announced.
    :param grain: One asset per replica (``"file"``) or per directory (``"directory"``).
    """
    aliases = asset_aliases(outlets)
    if not aliases:
        return 0
    files = hook.iter_files(job_ids, states=[FileState.FINISHED], fields=REPLICA_FILE_FIELDS)
    events = []
    for uri, extra in replica_events(files, grain):
        try:
            events.append((Asset(uri), extra))
        except ValueError as error:  # the copy succeeded: an odd URL must not fail the task
            log.warning("No asset event for %s: %s", uri, error)
    for alias in aliases:
        for asset, extra in events:
            context["outlet_events"][alias].add(asset, extra=extra)
    return len(events)
