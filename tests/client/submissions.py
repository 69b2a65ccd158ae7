"""Shared by the submission tests: two URLs, a secret token and small builders."""

from __future__ import annotations

from itertools import pairwise

import pytest

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.submission import build_submission

SRC = "davs://src.example.org/data/f1"
DST = "davs://dst.example.org/data/f1"
SECRET = "eyJhbGciOiJSUzI1NiJ9.secret-token-payload.sig"


def one(**fields) -> dict:
    """One transfer dict from SRC to DST with extra fields."""
    return {"source": SRC, "destination": DST, **fields}


def hops(*urls: str) -> list[tuple[str, str]]:
    """Multihop transfers through the given URLs, in order."""
    return list(pairwise(urls))


def refused(transfers, **params) -> FTSValidationError:
    """The error build_submission raises for these transfers and parameters."""
    with pytest.raises(FTSValidationError) as caught:
        build_submission(transfers, **params)
    return caught.value
