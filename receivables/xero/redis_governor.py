"""The governor's windows in Redis, for the distributed mode: one Lua script decides and
records each call atomically, on Redis's clock, so workers on several machines share the
windows. A call's concurrency slot is a lease with an expiry: a worker killed mid-call frees
it when the lease lapses. (One Redis, not a cluster: a script's keys span tenants and app.)"""

from __future__ import annotations

from receivables.xero.governor import CONCURRENCY_POLL_MS, DEFAULT_PREFIX, Usage

ACQUIRE = """
-- KEYS: 1 tenant minute, 2 tenant day, 3 tenant leases, 4 tenant block, 5 app minute, 6 app block
-- ARGV: 1 now ms ('' for Redis's clock), 2 lease, 3 per minute, 4 concurrent, 5 per day,
--       6 app per minute, 7 lease ms, 8 '1' for a call to a tenant, 9 concurrency poll ms
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local lease, for_tenant = ARGV[2], ARGV[8] == '1'
local wait, reason = 0, ''
local function consider(ms, why)
  if ms > wait then wait, reason = ms, why end
end
local function blocked(key, why)
  local till = tonumber(redis.call('GET', key) or '0')
  if till > now then consider(till - now, why) end
end
local function window(key, span, limit, why)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    -- room comes when the call (count - limit + 1) from the oldest leaves the window
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    consider(tonumber(oldest[2]) + span - now, why)
  end
end
blocked(KEYS[6], 'app blocked')
window(KEYS[5], 60000, tonumber(ARGV[6]), 'app minute')
if for_tenant then
  blocked(KEYS[4], 'blocked')
  window(KEYS[1], 60000, tonumber(ARGV[3]), 'minute')
  window(KEYS[2], 86400000, tonumber(ARGV[5]), 'day')
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    consider(math.max(1, math.min(tonumber(ARGV[9]), tonumber(first[2]) - now)), 'concurrent')
  end
end
if wait > 0 then return {math.ceil(wait), reason} end
redis.call('ZADD', KEYS[5], now, lease)
redis.call('PEXPIRE', KEYS[5], 60000)
if for_tenant then
  local lease_ms = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[1], now, lease)
  redis.call('PEXPIRE', KEYS[1], 60000)
  redis.call('ZADD', KEYS[2], now, lease)
  redis.call('PEXPIRE', KEYS[2], 86400000)
  redis.call('ZADD', KEYS[3], now + lease_ms, lease)
  redis.call('PEXPIRE', KEYS[3], lease_ms)
end
return {0, ''}
"""

BLOCK = """
-- KEYS: 1 block key; ARGV: 1 now ms ('' for Redis's clock), 2 ms. A block only ever lengthens.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local till = now + tonumber(ARGV[2])
if till > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], till, 'PX', ARGV[2])
end
return till
"""

USAGE = """
-- KEYS as ACQUIRE's; ARGV: 1 now ms ('' for Redis's clock)
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local till = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(redis.call('GET', KEYS[6]) or '0'))
return {
  redis.call('ZCOUNT', KEYS[1], now - 60000 + 1, '+inf'),
  redis.call('ZCOUNT', KEYS[2], now - 86400000 + 1, '+inf'),
  redis.call('ZCOUNT', KEYS[3], now + 1, '+inf'),
  redis.call('ZCOUNT', KEYS[5], now - 60000 + 1, '+inf'),
  math.max(0, till - now),
}
"""


class RedisBackend:
    """The windows in Redis under ``prefix`` (keys ``{prefix}:{app}:{tenant}:…``). Tests and
    benchmarks use a prefix and database of their own."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        import redis  # only the distributed mode needs it

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.prefix = prefix
        self._acquire = self.client.register_script(ACQUIRE)
        self._block = self.client.register_script(BLOCK)
        self._usage = self.client.register_script(USAGE)

    def _keys(self, app: str, tenant: str | None) -> list[str]:
        base = f"{self.prefix}:{app}:{tenant or '-'}"
        return [
            f"{base}:minute",
            f"{base}:day",
            f"{base}:leases",
            f"{base}:blocked",
            f"{self.prefix}:{app}:minute",
            f"{self.prefix}:{app}:blocked",
        ]

    def acquire(self, app, tenant, lease, limits, app_limit, now_ms) -> tuple[int, str]:
        args = [
            "" if now_ms is None else now_ms,
            lease,
            limits.per_minute,
            limits.concurrent,
            limits.per_day,
            app_limit,
            int(limits.lease_seconds * 1000),
            "1" if tenant else "0",
            CONCURRENCY_POLL_MS,
        ]
        wait, reason = self._acquire(keys=self._keys(app, tenant), args=args)
        return int(wait), reason.decode() if isinstance(reason, bytes) else str(reason)

    def release(self, app, tenant, lease) -> None:
        if tenant:
            self.client.zrem(self._keys(app, tenant)[2], lease)

    def block(self, app, tenant, ms, now_ms) -> None:
        key = self._keys(app, tenant)[3] if tenant else self._keys(app, None)[5]
        self._block(keys=[key], args=["" if now_ms is None else now_ms, ms])

    def usage(self, app, tenant, now_ms) -> Usage:
        minute, day, in_flight, app_minute, blocked = self._usage(
            keys=self._keys(app, tenant), args=["" if now_ms is None else now_ms]
        )
        return Usage(int(minute), int(day), int(in_flight), int(app_minute), int(blocked) / 1000)

    def clear(self) -> None:
        """Forget everything under the prefix (tests, benchmarks)."""
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keys:
            self.client.delete(*keys)
