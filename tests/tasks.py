"""Test helpers shared by the Airflow-layer suites: one task try, a job's end, a trigger's event.

No Airflow import here: the conftests decide when Airflow loads (see ``tests.airflow_env``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_fts.client.states import JobState


@dataclass
class TaskTry:
    """The task-instance fields the operator and the sensor read, for one try of one task.

    ``state`` is what the API server would answer for this task instance now (what
    ``on_kill`` asks): ``"failed"`` after a mark-failed, ``"success"`` after a
    mark-success, ``None`` or the new try's state after a clear.
    """

    try_number: int = 1
    run_id: str = "run-1"
    dag_id: str = "dag"
    task_id: str = "submit"
    map_index: int = -1
    state: str | None = "running"
    max_tries: int | None = None  # Airflow's; try_number == max_tries - retries + 1 after a clear
    xcoms: dict = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        """This task's own XCom (what a resumed try reads of what it pushed before)."""
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.xcoms.get(key)

    def get_task_states(
        self, dag_id: str, map_index: int, task_ids: list[str], run_ids: list[str]
    ) -> dict[str, dict[str, str | None]]:
        """The shape of ``RuntimeTaskInstance.get_task_states``: ``{run_id: {key: state}}``."""
        assert (dag_id, task_ids, run_ids) == (self.dag_id, [self.task_id], [self.run_id])
        key = self.task_id if map_index < 0 else f"{self.task_id}_{map_index}"
        return {self.run_id: {key: self.state}}


def wait_terminal(hook: Any, job_id: str, timeout: float = 10.0) -> str:
    """The job's final state, polled until it has one."""
    deadline = time.monotonic() + timeout
    while not JobState.parse(state := hook.get_job(job_id)["job_state"]).is_terminal:
        assert time.monotonic() < deadline, f"job {job_id} stayed {state}"
        time.sleep(0.05)
    return state


async def trigger_events(trigger: Any) -> list[dict]:
    """Every event payload a trigger's ``run`` yields."""
    return [event.payload async for event in trigger.run()]


async def only_event(trigger: Any) -> dict:
    """The one event payload a trigger yields (it must yield exactly one)."""
    events = await trigger_events(trigger)
    assert len(events) == 1, events
    return events[0]
