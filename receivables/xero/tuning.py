"""How Xero calls are made: page size, retries, timeouts, when to refresh a token. The
defaults are for Xero itself; tests shrink the waits and pages."""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRYABLE_STATUSES = (500, 502, 503, 504)  # troubles that pass; a 4xx is Xero's answer


@dataclass(frozen=True)
class Tuning:
    page_size: int = 1000  # Xero's largest page
    attempts: int = 4  # tries of a call that failed with 5xx or on the network
    backoff: float = 1.0  # seconds before the first retry, doubled each time (with jitter)
    backoff_cap: float = 30.0
    rate_limited: int = 8  # 429s in a row a call may meet before it gives up
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # below the governor's lease, so a slow call never outlives its slot
    refresh_margin: float = 120.0  # refresh an access token this long before it expires

    def pause(self, failures: int) -> float:
        delay = min(self.backoff_cap, self.backoff * 2 ** max(failures - 1, 0))
        return delay / 2 + random.uniform(0, delay / 2)


DEFAULT_TUNING = Tuning()
