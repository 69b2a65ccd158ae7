"""The FTS ``sid`` of each job a task try submits: the one formula of the exactly-once rule.

``FTSSubmitOperator`` submits chunk ``c`` of try ``t`` with this sid; FTS derives the job
id from it (``uuid5(uuid5(BASE_ID, vo), sid)``), so a retry and the "FTS transfers" view
compute every earlier try's job ids without a store. No Airflow import: plain values in.
"""

from __future__ import annotations

__all__ = ["task_sid"]


def task_sid(
    dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int, chunk: int
) -> str:
    """The sid of chunk ``chunk`` of try ``try_number`` of one (mapped) task instance."""
    return f"airflow:{dag_id}:{task_id}:{run_id}:{map_index}:{try_number}:{chunk}"
