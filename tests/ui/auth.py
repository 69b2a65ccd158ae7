"""An auth manager with a per-DAG permission, for the access tests of the API server.

Airflow's simple auth manager lets every role read every DAG, and FAB is not installed
here: this one is the simple auth manager, except that the user ``outsider`` may read
only the DAG ``other_dag`` (as a FAB or Keycloak role limited to some DAGs would).
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

OUTSIDER, ITS_DAG = "outsider", "other_dag"


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name() == OUTSIDER and (details is None or details.id != ITS_DAG):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
