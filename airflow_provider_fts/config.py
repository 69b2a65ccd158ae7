"""The provider's settings in ``airflow.cfg`` (section ``[fts]``): names, defaults, meaning.

The one place of each setting: the provider metadata declares them from here
(:func:`provider_config`) and the code reads them through here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RESUME_GUARD_SECONDS", "SECTION", "provider_config", "resume_guard_seconds"]

SECTION = "fts"

#: ``[fts] resume_guard_seconds``: how long after a deferral a trigger holds back an event
#: (Airflow 3.3 may misread a task resumed within seconds: apache/airflow#72716).
RESUME_GUARD_SECONDS = 10.0


def provider_config() -> dict[str, Any]:
    """The ``config`` entry of the provider metadata: every ``[fts]`` option."""
    return {
        SECTION: {
            "description": "Settings of the CERN FTS3 provider.",
            "options": {
                "resume_guard_seconds": {
                    "description": "Seconds after a task defers during which its "
                    "FTSJobTrigger holds back an event for jobs that ended sooner, so "
                    "Airflow does not misread a task resumed within seconds of its "
                    "deferral (apache/airflow#72716). 0 turns the guard off.",
                    "version_added": "0.1.0",
                    "type": "float",
                    "example": "0",
                    "default": str(RESUME_GUARD_SECONDS),
                }
            },
        }
    }


def resume_guard_seconds() -> float:
    """``[fts] resume_guard_seconds`` (never negative)."""
    # Imported here: provider discovery imports this module (through get_provider_info).
    from airflow.providers.common.compat.sdk import conf

    guard = conf.getfloat(SECTION, "resume_guard_seconds", fallback=RESUME_GUARD_SECONDS)
    return max(0.0, guard)
