"""Admission control: at most ``MAX_CONCURRENT_RUNS`` runs at once per process, the rest queue.

Each run holds one thread-lock session for its whole duration, from a lock
pool of the same size (``database.connect``), so runs admitted here never wait
for a lock session, and the work pool only ever lends connections for one
operation: no run can wait on a connection that only another waiting run
could free. Requests beyond the limit wait in a FIFO queue (asyncio's
semaphore is fair); a request that would wait longer than
``QUEUE_WAIT_SECONDS``, or find the queue already ``QUEUE_FACTOR`` times the
limit deep, is answered 503 with ``Retry-After`` instead of stalling the
server. Planning a turn (which reads the checkpoint and probes the thread's
lock) happens inside the slot, so it is bounded the same way; ``/health`` and
``/memory/status`` never take a slot.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

QUEUE_WAIT_SECONDS = 60.0
"""Longest a request waits for a run slot before it is answered 503 (Databricks Apps cuts
connections at about 120 s, so a request admitted by then still has time to run)."""
QUEUE_FACTOR = 16
"""Requests allowed to wait, as a multiple of the number of slots."""


class Overloaded(RuntimeError):
    """No run slot within the wait: answer 503 with ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RunSlots:
    """A fair semaphore of run slots with a bounded queue and a bounded wait."""

    def __init__(self, slots: int, *, wait_seconds: float = QUEUE_WAIT_SECONDS) -> None:
        self.slots = slots
        self.max_waiting = slots * QUEUE_FACTOR
        self.wait_seconds = wait_seconds
        self._semaphore = asyncio.Semaphore(slots)
        self.waiting = 0
        self.running = 0

    def _retry_after(self) -> int:
        # Roughly how many "generations" of runs are ahead of a new request.
        return max(1, math.ceil((self.waiting + 1) / self.slots))

    async def acquire(self) -> None:
        """Take a slot, waiting in line; raise ``Overloaded`` when the line is too long or slow."""
        if self.waiting >= self.max_waiting:
            raise Overloaded(
                f"the server is busy: {self.running} runs in progress and "
                f"{self.waiting} waiting; retry shortly",
                self._retry_after(),
            )
        self.waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.wait_seconds)
        except TimeoutError:
            raise Overloaded(
                f"the server is busy: no run slot freed within {self.wait_seconds:g} s; "
                "retry shortly",
                self._retry_after(),
            ) from None
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._semaphore.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def as_dict(self) -> dict[str, int]:
        return {"slots": self.slots, "running": self.running, "waiting": self.waiting}
