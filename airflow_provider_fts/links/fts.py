"""FTSJobLink: the job's page in FTS web monitoring, on the task's page in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.sdk import BaseOperator

#: XCom keys the submit operator pushes before it waits (the link reads the URL).
JOB_ID_KEY = "fts_job_id"
JOB_URL_KEY = "fts_job_url"
#: XCom key of ``{job_id: "https://host:port"}``: the server that holds each job, for
#: other tools (a connection may name several servers; job ids stay plain FTS ids).
JOB_ENDPOINT_KEY = "fts_job_endpoints"
#: XCom key of the outcome summary, pushed by whatever waited, even when the task fails.
SUMMARY_KEY = "fts_summary"


class FTSJobLink(BaseOperatorLink):
    """Link to FTS monitoring for the (first) job a task submitted.

    The worker computes links after each execution segment; the URL comes from the XCom
    the operator pushed, so no request is made and a failed task still shows its link.
    """

    name = "FTS job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=JOB_URL_KEY, ti_key=ti_key) or ""
