"""Jobs the tests run (loaded through JOB_MODULES in the test settings, in workers too).

Writes go to auth groups with plain ``create`` on a unique name: a write done twice shows
up as an IntegrityError or a second row, so "never runs its writes twice" is checkable.
"""

from __future__ import annotations

import time

from django.contrib.auth.models import Group

from scheduling.choices import KeyBy, Offset, Overlap, Scope
from scheduling.registry import Dependency, JobError, Param, RetryPolicy, job

FAST_RETRY = RetryPolicy(max_retries=2, backoff_base=1, backoff_cap=2)


def hold(ctx, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.checkpoint()
        time.sleep(0.05)


@job("TEST_WRITE", title="Atomic write", params={"hold": Param(float, default=0.0)}, retry=FAST_RETRY)
def write(ctx) -> None:
    Group.objects.create(name=f"write-{ctx.run.pk}")
    ctx.count(created=1)
    hold(ctx, ctx.params["hold"])


@job(
    "TEST_FANOUT",
    title="Fan-out writes",
    params={"chunks": Param(int, default=4, min=0), "size": Param(int, default=3), "hold": Param(float, default=0.0)},
    retry=FAST_RETRY,
)
def fanout(ctx) -> None:
    ctx.fan_out({"index": i, "size": ctx.params["size"]} for i in range(ctx.params["chunks"]))


@fanout.chunk
def fanout_chunk(ctx, chunk: dict) -> None:
    for k in range(chunk["size"]):
        Group.objects.create(name=f"chunk-{ctx.run.pk}-{chunk['index']}-{k}")
    ctx.count(processed=chunk["size"], created=chunk["size"])
    ctx.info(f"chunk {chunk['index']} wrote {chunk['size']}")
    hold(ctx, ctx.params["hold"])


@job("TEST_FANOUT_LOOSE", title="Fan-out outside transactions", atomic_chunks=False, retry=FAST_RETRY)
def fanout_loose(ctx) -> None:
    ctx.fan_out({"index": i} for i in range(2))


@fanout_loose.chunk
def fanout_loose_chunk(ctx, chunk: dict) -> None:
    from django.db import connection

    # What a chunk waiting on a remote API sees: no transaction of the job layer around it.
    Group.objects.get_or_create(name=f"loose-{ctx.run.pk}-{chunk['index']}-atomic-{connection.in_atomic_block}")
    ctx.count(created=1)


@job("TEST_FAIL", title="Always fails", retry=RetryPolicy(max_retries=0))
def always_fails(ctx) -> None:
    ctx.info("about to fail")
    raise RuntimeError("the ledger is on fire")


@job("TEST_FLAKY", title="Fails, then succeeds", params={"failures": Param(int, default=1)}, retry=FAST_RETRY)
def flaky(ctx) -> None:
    if ctx.attempt <= ctx.params["failures"]:
        raise ConnectionError(f"attempt {ctx.attempt}: the database went away")
    ctx.result = {"succeeded_on": ctx.attempt}


@job("TEST_INVALID", title="Fails for good", retry=FAST_RETRY)
def invalid(ctx) -> None:
    raise JobError("account 4000 does not exist")


@job("TEST_UPSTREAM", title="Upstream", params={"fail": Param(bool, default=False)}, retry=RetryPolicy(max_retries=0))
def upstream(ctx) -> None:
    if ctx.params["fail"]:
        raise RuntimeError("upstream broke")


@job("TEST_DOWNSTREAM", title="Downstream", depends_on=["TEST_UPSTREAM"])
def downstream(ctx) -> None:
    Group.objects.create(name=f"downstream-{ctx.run.run_key}")


@job(
    "TEST_MONTHLY_AFTER_DAILY",
    title="Waits for the previous day's upstream",
    key_by=KeyBy.MONTH,
    depends_on=[Dependency("TEST_UPSTREAM", Offset.PREVIOUS)],
)
def monthly_after_daily(ctx) -> None:
    pass


@job("TEST_MINUTE", title="Every minute", key_by=KeyBy.MINUTE, overlap=Overlap.ALLOW)
def every_minute(ctx) -> None:
    Group.objects.create(name=f"minute-{ctx.run.run_key}")


@job("TEST_PER_COMPANY", title="Per company", scope=Scope.COMPANY)
def per_company(ctx) -> None:
    ctx.result = {"company": ctx.company.slug}


@job("TEST_SLOW", title="Runs until cancelled", params={"hold": Param(float, default=30.0)}, time_limit=120)
def slow(ctx) -> None:
    Group.objects.create(name=f"slow-{ctx.run.pk}")
    hold(ctx, ctx.params["hold"])


@job(
    "TEST_NOTIFY_MANY",
    title="Notifies the same recipients as any other run, at a given moment",
    params={"company": Param(int), "user": Param(int), "count": Param(int, default=2000), "at": Param(float)},
    overlap=Overlap.ALLOW,
)
def notify_many_at(ctx) -> None:
    """Runs started together collide on the same dedupe keys: a barrier at ``at`` (epoch seconds)."""
    from notifications.services.recipients import Recipient
    from notifications.services.sending import Message, notify_many

    user, company = ctx.params["user"], ctx.params["company"]
    messages = [
        Message(
            Recipient(f"test.party:{i}", name=f"Party {i}", email=f"party{i}@example.com", user_id=user),
            "job_alert",
            {"job": f"TEST_{i}", "severity": "warning", "cause": "a test"},
            company=company,
            dedupe_key=f"same:{i}",
        )
        for i in range(ctx.params["count"])
    ]
    hold(ctx, ctx.params["at"] - time.time())
    began = time.time()
    outcome = notify_many(messages)
    ctx.result = {"began": began, "ended": time.time(), "created": len(outcome.created), "skipped": outcome.skipped}


# A three-level chain with a job that goes before its middle link, for blocking and ordering.
# A step fails while a group named "fail-<CODE>" exists, so a re-run after removing it passes.
def _chain_step(ctx) -> None:
    if Group.objects.filter(name=f"fail-{ctx.spec.code}").exists():
        raise JobError(f"{ctx.spec.code} was told to fail")
    Group.objects.create(name=f"{ctx.spec.code.lower()}-{ctx.run_key}-{ctx.run.company_id}-{ctx.attempt}")


NO_RETRY = RetryPolicy(max_retries=0)

job("TEST_CHAIN_1", title="Chain, first", retry=NO_RETRY)(_chain_step)
job("TEST_CHAIN_2", title="Chain, second", retry=NO_RETRY, depends_on=["TEST_CHAIN_1"])(_chain_step)
job("TEST_CHAIN_3", title="Chain, third", retry=NO_RETRY, depends_on=["TEST_CHAIN_2"])(_chain_step)
job("TEST_CHAIN_EXTRA", title="Goes before the second", retry=NO_RETRY, before=["TEST_CHAIN_2"])(_chain_step)


@job(
    "TEST_COMPANY_FAIL",
    title="Per company, fails for the companies it is told",
    scope=Scope.COMPANY,
    params={"fail": Param(bool, default=False)},
    retry=NO_RETRY,
)
def company_fail(ctx) -> None:
    if ctx.params["fail"]:
        raise JobError(f"{ctx.company.slug} broke")


@job(
    "TEST_NOTIFYING",
    title="Notifies a user; a backfill may not",
    params={"user": Param(int)},
    key_by=KeyBy.MONTH,
    overlap=Overlap.SKIP,
)
def notifying(ctx) -> None:
    from django.contrib.auth import get_user_model

    from notifications.services.sending import notify

    user = get_user_model().objects.get(pk=ctx.params["user"])
    notify(user, "job_alert", {"job": ctx.spec.code, "severity": "info", "cause": "a test"}, dedupe_key=ctx.run_key)
    Group.objects.create(name=f"notifying-{ctx.run_key}")
