"""A request limiter: one request at a time, and a minimum gap between requests.

arXiv's API terms ask for at most one request every 3 seconds over a single
connection. `RateLimiter.slot()` gives both: it holds a lock for the whole
request (one at a time, across threads) and waits until `interval` seconds
have passed since the previous request finished. Clock and sleep are
injectable so tests run it on a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RateLimiter:
    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_done: float | None = None

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self._last_done is not None:
                wait = self._last_done + self.interval - self._clock()
                if wait > 0:
                    self._sleep(wait)
            try:
                yield
            finally:
                # Measured from the end: a slow response never shortens the gap.
                self._last_done = self._clock()
