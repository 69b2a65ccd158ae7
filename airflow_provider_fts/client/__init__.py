"""A framework-free FTS3 REST client (no Airflow import anywhere in it).

from airflow_provider_fts.client import Credentials, FTSClient

with FTSClient("https://fts3.example.org:8446", Credentials.from_proxy_file(path)) as fts:
    job_id = fts.submit_job([("davs://a.example/f", "davs://b.example/f")], verify_checksum="both")
    print(fts.get_job(job_id)["job_state"])
"""

from __future__ import annotations

from airflow_provider_fts.client.client import FTSClient
from airflow_provider_fts.client.credentials import Credentials, Trust
from airflow_provider_fts.client.delegation_cache import DelegationCache
from airflow_provider_fts.client.errors import (
    AmbiguousSubmission,
    BadRequest,
    Conflict,
    FTSConnectionError,
    FTSCredentialError,
    FTSError,
    FTSHTTPError,
    FTSValidationError,
    NeedsDelegation,
    NotAuthorised,
    NotFound,
    ServerCertificateError,
    ServerError,
    TryAgain,
)
from airflow_provider_fts.client.states import FileState, JobState, summarize_jobs
from airflow_provider_fts.client.submission import JobParams, Transfer, build_submission

__all__ = [
    "AmbiguousSubmission",
    "BadRequest",
    "Conflict",
    "Credentials",
    "DelegationCache",
    "FTSClient",
    "FTSConnectionError",
    "FTSCredentialError",
    "FTSError",
    "FTSHTTPError",
    "FTSValidationError",
    "FileState",
    "JobParams",
    "JobState",
    "NeedsDelegation",
    "NotAuthorised",
    "NotFound",
    "ServerCertificateError",
    "ServerError",
    "Transfer",
    "Trust",
    "TryAgain",
    "build_submission",
    "summarize_jobs",
]
