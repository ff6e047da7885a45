"""Fault injection for the local MCE: what goes wrong with a real tenant, on demand.

SOAP faults are drawn per call (by operation, count, seeded rate or exact call
number): an MCE fault code or a bare HTTP status, answered instead of doing the work
or after it (the ambiguous case), a slow answer, a dropped connection, or every token
expiring. The SFTP, import and query faults live with their servers (`SftpFaults`,
`Imports.stuck` / `Imports.refuse_rows`, `Activities.fail_half_way`).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass
class InjectedFault:
    operation: str  # a SOAPAction, or "*" for any
    api_code: int | None = 17  # the apifault Code of a soap:Server fault; None for a bare HTTP error
    http_status: int = 500
    message: str = "Rate Limited: an abnormal spike in your call volume"
    remaining: int = 1
    delay_seconds: float = 0.0  # answer this late
    fail: bool = True  # answer with the fault (False: only the delay / token expiry)
    after: bool = False  # do the work first, then fail: the client cannot know it was done
    reset: bool = False  # drop the connection instead of answering
    expire_tokens: bool = False  # every issued token stops working before this call
    rate: float = 1.0  # chance that a matching call is hit
    nth: int | None = None  # only the nth matching call (1-based)
    seen: int = 0

    @property
    def kind(self) -> str:
        if self.expire_tokens:
            return "token expiry"
        if self.reset:
            return "connection reset" + (" after the work" if self.after else "")
        if not self.fail:
            return f"slow answer ({self.delay_seconds:g}s)"
        what = f"fault {self.api_code}" if self.api_code is not None else f"HTTP {self.http_status}"
        return what + (" after the work" if self.after else "")


class FaultPlan:
    """The faults to inject, drawn with a seeded random generator (same seed, same faults)."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[InjectedFault] = []
        self._rng = random.Random(seed)  # noqa: S311 - reproducible fault drawing, not cryptography
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def add(self, fault: InjectedFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)  # noqa: S311 - reproducible fault drawing, not cryptography

    def draw(self, action: str) -> InjectedFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining <= 0 or fault.operation not in (action, "*"):
                    continue
                fault.seen += 1
                if fault.nth is not None and fault.seen != fault.nth:
                    continue
                if fault.rate < 1.0 and self._rng.random() >= fault.rate:
                    continue
                fault.remaining -= 1
                self.injected[f"{action}: {fault.kind}"] += 1
                return fault
        return None
