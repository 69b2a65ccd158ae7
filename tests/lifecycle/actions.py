"""What a user does through Airflow's REST API v2, and what the emulator then holds.

Every wait is a bounded poll (:func:`~.stack.wait_for`) whose failure names the DAG run,
what it waited for, the last value seen and every task instance's state and try (or, if
an Airflow process died meanwhile, the tail of its output).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from airflow_provider_fts.testing.server import FTSEmulator

from .stack import AirflowStack, StackError, wait_for

FINISHED_TI_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


@dataclass(frozen=True)
class Run:
    """One DAG run of the suite, with the calls a user makes on it."""

    stack: AirflowStack
    dag_id: str
    run_id: str

    # -- the run -----------------------------------------------------------------------

    @classmethod
    def trigger(cls, stack: AirflowStack, dag_id: str) -> Run:
        run_id = f"lc-{uuid.uuid4().hex[:10]}"
        stack.call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "dag_run_id": run_id},
        )
        return cls(stack, dag_id, run_id)

    @property
    def path(self) -> str:
        return f"/api/v2/dags/{self.dag_id}/dagRuns/{self.run_id}"

    def ti_path(self, task_id: str, map_index: int = -1) -> str:
        suffix = f"/{map_index}" if map_index >= 0 else ""
        return f"{self.path}/taskInstances/{task_id}{suffix}"

    def state(self) -> str:
        return self.stack.get(self.path)["state"]

    def wait_run(self, states: set[str], timeout: float = 120.0) -> str:
        return self._wait(
            f"the run to be {sorted(states)}", lambda: _within(self.state(), states), timeout
        )

    # -- task instances ----------------------------------------------------------------

    def ti(self, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        """The task instance, or None while it does not exist (a mapped task not expanded)."""
        reply = self.stack.call("GET", self.ti_path(task_id, map_index), expect=(200, 404))
        return None if reply.get("detail") else reply

    def wait_ti(
        self,
        task_id: str,
        states: set[str],
        *,
        map_index: int = -1,
        try_number: int | None = None,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """The task instance once it is in one of ``states`` (and at ``try_number``)."""

        def probe() -> dict[str, Any] | None:
            ti = self.ti(task_id, map_index)
            if ti is not None and ti["state"] in states and try_number in (None, ti["try_number"]):
                return ti
            return None

        what = f"{task_id}[{map_index}] in {sorted(states)}" + (
            f" at try {try_number}" if try_number else ""
        )
        return self._wait(what, probe, timeout)

    def wait_deferred(
        self, task_id: str, *, try_number: int = 1, map_index: int = -1, timeout: float = 90.0
    ) -> dict:
        """The task instance once deferred AND its trigger taken by the triggerer.

        A mark or clear before the triggerer runs the trigger reaches no ``on_kill``; the
        scenarios are about a trigger that is running.
        """

        def probe() -> dict[str, Any] | None:
            ti = self.ti(task_id, map_index) or {"state": None, "try_number": 0}
            ready = ti["state"] == "deferred" and ti["try_number"] == try_number
            return ti if ready and ti.get("triggerer_job") else None

        return self._wait(
            f"{task_id} deferred in the triggerer at try {try_number}", probe, timeout
        )

    def wait_ti_done(self, task_id: str, map_index: int = -1, timeout: float = 180.0) -> dict:
        return self.wait_ti(task_id, FINISHED_TI_STATES, map_index=map_index, timeout=timeout)

    def clear(self, task_id: str, map_index: int = -1) -> None:
        """Clear one task instance of this run, as the "Clear" button does."""
        self.stack.call(
            "POST",
            f"/api/v2/dags/{self.dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": self.run_id,
                "task_ids": [[task_id, map_index] if map_index >= 0 else task_id],
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )

    def mark(self, task_id: str, state: str, map_index: int = -1) -> None:
        """Mark one task instance ``failed`` or ``success``, as the UI's buttons do.

        The suite's SQLite takes one writer at a time: a mark made at the same moment as
        others may answer 500 ("Database error"), and is made again, as a user clicks again.
        """
        path, body = self.ti_path(task_id, map_index), {"new_state": state}
        for _ in range(10):
            reply = self.stack.request("PATCH", path, json=body)
            if reply.status_code != 500:
                break
            time.sleep(0.2)
        if reply.status_code != 200:
            raise StackError(f"PATCH {path} answered {reply.status_code}: {reply.text[:2000]}")

    def log(self, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log for one try, as the UI shows it (worker and triggerer parts)."""
        query = {"full_content": "true", "map_index": map_index}
        reply = self.stack.get(
            f"{self.ti_path(task_id)}/logs/{try_number}",
            params=query,
            headers={"Accept": "application/json"},
        )
        content = reply["content"]
        if isinstance(content, str):
            return content
        return "\n".join(str(line.get("event", "")) for line in content)

    def links(self, task_id: str) -> dict[str, str | None]:
        return self.stack.get(f"{self.ti_path(task_id)}/links")

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        entry = self.stack.get(f"{self.ti_path(task_id)}/xcomEntries/{key}")
        return entry["value"]

    def xcom_mapped(self, task_id: str, map_index: int, key: str = "return_value") -> Any:
        entry = self.stack.get(
            f"{self.ti_path(task_id)}/xcomEntries/{key}", params={"map_index": map_index}
        )
        return entry["value"]

    def _wait(self, what: str, probe, timeout: float) -> Any:
        def checked() -> Any:
            self.stack.check_alive()
            return probe()

        try:
            return wait_for(f"{self.dag_id} run {self.run_id}: {what}", checked, timeout)
        except StackError as error:
            raise StackError(f"{error}\n{self.describe()}") from None

    def describe(self) -> str:
        """Every task instance's state and try, for failure messages."""
        try:
            tis = self.stack.get(f"{self.path}/taskInstances")["task_instances"]
        except StackError as error:
            return f"(task instances unavailable: {error})"
        return "; ".join(
            f"{t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']}" for t in tis
        )


def _within(value: str, states: set[str]) -> str | None:
    return value if value in states else None


# -- the emulator's side ---------------------------------------------------------------


def jobs_of(emulator: FTSEmulator, run: Run, task_id: str | None = None) -> list[dict]:
    """The jobs this run's tasks submitted, oldest first (copies, with their files).

    The operator's ``sid`` is ``airflow:<dag>:<task>:<run>:<map index>:<try>:<chunk>``.
    """
    with emulator.store.lock:
        stored = sorted(emulator.store.stored_jobs(), key=lambda job: job.submitted_at)
        jobs = []
        for job in stored:
            parts = (job.sid or "").split(":")
            if parts[:2] != ["airflow", run.dag_id] or parts[3:4] != [run.run_id]:
                continue
            if task_id is not None and parts[2] != task_id:
                continue
            jobs.append(
                {
                    "job_id": job.job_id,
                    "sid": job.sid,
                    "state": job.record["job_state"],
                    "cancel_job": bool(job.record.get("cancel_job")),
                    "files": [
                        {k: f[k] for k in ("source_surl", "dest_surl", "file_state", "reason")}
                        for f in job.files
                    ],
                }
            )
        return jobs


def wait_jobs(
    emulator: FTSEmulator, run: Run, what: str, check, timeout: float = 120.0
) -> list[dict]:
    """Poll the emulator until ``check(jobs)`` holds for this run's jobs."""

    def probe() -> list[dict] | None:
        run.stack.check_alive()
        jobs = jobs_of(emulator, run)
        return jobs if check(jobs) else None

    try:
        return wait_for(f"{run.dag_id} run {run.run_id}: {what}", probe, timeout, interval=0.2)
    except StackError as error:
        raise StackError(
            f"{error}\njobs: {jobs_of(emulator, run)}\ntasks: {run.describe()}"
        ) from None


def describe_jobs(jobs: list[dict]) -> str:
    return "; ".join(
        f"{j['job_id']} {j['state']}{' (cancel requested)' if j['cancel_job'] else ''} "
        f"[{', '.join(f['file_state'] for f in j['files'])}]"
        for j in jobs
    )
