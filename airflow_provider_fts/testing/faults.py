"""Switchable failures for the emulator, so tests can prove a client survives them.

Each switch arms a :class:`Fault` that fires on the next matching requests: ``count`` of
them (``None`` = every one), optionally only for one ``route`` and only when a ``when``
predicate agrees. Switches are thread-safe and can be flipped while the server runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Fault", "Faults", "RequestInfo"]


class RequestInfo(NamedTuple):
    """What a ``when`` predicate sees of a request."""

    method: str
    path: str
    route: str  # "<METHOD> <template>", e.g. "GET /jobs/{id}"
    headers: dict[str, str]


Predicate = Callable[[RequestInfo], bool]


@dataclass
class Fault:
    """One armed failure; ``hits`` counts how often it fired."""

    kind: str
    remaining: int | None
    route: str | None = None
    when: Predicate | None = None
    seconds: float = 0.0
    reply: tuple[int, bytes, str] | None = None  # status, body, content type
    hits: int = field(default=0)

    def matches(self, request: RequestInfo) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.route is not None and self.route not in (request.route, _template(request)):
            return False
        return self.when is None or bool(self.when(request))


def _template(request: RequestInfo) -> str:
    return request.route.split(" ", 1)[1]


class Faults:
    """The fault switches of one emulator (``emu.faults``).

    ``route`` is either a template (``"/jobs/{id}"``, any method) or a method and a
    template (``"POST /jobs"``), exactly as counted in ``emu.requests``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def html_503(
        self, count: int | None = 1, route: str | None = None, when: Predicate | None = None
    ) -> Fault:
        """Answer 503 with an Apache-like HTML page instead of handling the request."""
        return self._arm(Fault("html_503", count, route, when))

    def answer(
        self,
        status: int,
        body: bytes | str,
        content_type: str = "application/json",
        count: int | None = 1,
        route: str | None = None,
        when: Predicate | None = None,
    ) -> Fault:
        """Answer ``status`` with ``body`` instead of handling the request (a server bug's
        500, a gateway's 502, a proxy's HTML refusal)."""
        data = body.encode() if isinstance(body, str) else body
        return self._arm(Fault("answer", count, route, when, reply=(status, data, content_type)))

    def reset_connection(
        self, count: int | None = 1, route: str | None = None, when: Predicate | None = None
    ) -> Fault:
        """Close the connection (TCP reset) without answering or handling the request."""
        return self._arm(Fault("reset", count, route, when))

    def slow(
        self,
        seconds: float,
        count: int | None = 1,
        route: str | None = None,
        when: Predicate | None = None,
    ) -> Fault:
        """Wait ``seconds`` before handling the request (for client timeouts)."""
        return self._arm(Fault("slow", count, route, when, seconds=seconds))

    def post_delay(self, seconds: float) -> Fault:
        """Every POST waits ``seconds`` before it is handled, as over a WAN to a loaded server."""
        return self._arm(Fault("slow", None, when=_is_post, seconds=seconds))

    def ambiguous_submit(self, count: int | None = 1, when: Predicate | None = None) -> Fault:
        """Handle a submission (the job is stored) then drop the connection unanswered."""
        return self._arm(Fault("ambiguous", count, None, _is_submit_and(when)))

    def malformed_json(
        self, count: int | None = 1, route: str | None = None, when: Predicate | None = None
    ) -> Fault:
        """Handle the request but cut the JSON answer in half."""
        return self._arm(Fault("malformed_json", count, route, when))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()

    @property
    def armed(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._armed if f.remaining is None or f.remaining > 0]

    def take(self, request: RequestInfo, kinds: tuple[str, ...]) -> Fault | None:
        """The first armed fault of one of ``kinds`` matching ``request``, now consumed."""
        with self._lock:
            for fault in self._armed:
                if fault.kind in kinds and fault.matches(request):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._armed.append(fault)
        return fault


def _is_post(request: RequestInfo) -> bool:
    return request.method == "POST"


def _is_submit_and(when: Predicate | None) -> Predicate:
    def predicate(request: RequestInfo) -> bool:
        is_submit = request.route in ("POST /jobs", "PUT /jobs")
        return is_submit and (when is None or bool(when(request)))

    return predicate
