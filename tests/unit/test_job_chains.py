"""Dependencies as chains: blocking that travels down them naming the root run, one alert
per root, release and re-run moving the chain on in order, ``before`` links; failure alerts
per company; attempts kept across retries and re-runs."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache

from scheduling.choices import Cause, RunStatus, Trigger
from scheduling.models import JobAlert, JobDefinition, JobLog, JobRun
from scheduling.services import execution, runs

pytestmark = pytest.mark.django_db
DAY = datetime.date(2026, 11, 2)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run what a commit would trigger (dependents released, alerts), as a worker's commit does."""

    def capture():
        return django_capture_on_commit_callbacks(execute=True)

    return capture


def request(code: str, day: datetime.date = DAY, **kwargs) -> JobRun:
    run, _ = runs.request_run(JobDefinition.objects.get(code=code), business_date=day, **kwargs)
    return run


def execute(run: JobRun, on_commit) -> JobRun:
    with on_commit():
        execution.execute_run(run.pk, task_id=f"task-{run.pk}-{run.attempts}", worker="test@host")
    run.refresh_from_db()
    return run


def fail(code: str) -> None:
    Group.objects.create(name=f"fail-{code}")


def mend(code: str) -> None:
    Group.objects.filter(name=f"fail-{code}").delete()


def statuses(*held: JobRun) -> list[tuple[str, int | None]]:
    for run in held:
        run.refresh_from_db()
    return [(run.status, run.blocked_by_id) for run in held]


@pytest.fixture
def chain(on_commit):
    """The second and third links asked for, waiting; the job that goes before the second done."""
    execute(request("TEST_CHAIN_EXTRA"), on_commit)
    second, third = request("TEST_CHAIN_2"), request("TEST_CHAIN_3")
    assert statuses(second, third) == [(RunStatus.WAITING, None), (RunStatus.WAITING, None)]
    return second, third


# --- Blocking travels down the chain ----------------------------------------------------------


def test_a_failed_root_blocks_every_link_below_it_naming_itself(chain, on_commit):
    second, third = chain
    fail("TEST_CHAIN_1")

    root = execute(request("TEST_CHAIN_1"), on_commit)

    assert root.status == RunStatus.FAILED
    assert statuses(second, third) == [(RunStatus.BLOCKED, root.pk), (RunStatus.BLOCKED, root.pk)]
    assert "the root is TEST_CHAIN_1 2026-11-02" in runs.dependency_status(third)[1]


def test_one_alert_per_root_lists_every_run_it_holds_back(chain, on_commit):
    fail("TEST_CHAIN_1")

    root = execute(request("TEST_CHAIN_1"), on_commit)

    alert = JobAlert.objects.get(cause=Cause.BLOCKED)
    assert (alert.job.code, alert.run_id, alert.subject) == ("TEST_CHAIN_1", root.pk, f"run:{root.pk}")
    assert "holds back 2 run(s): TEST_CHAIN_2 2026-11-02, TEST_CHAIN_3 2026-11-02" in alert.message
    assert "TEST_CHAIN_1 was told to fail" in alert.message


def test_re_running_the_root_lets_the_chain_proceed_in_dependency_order(chain, on_commit):
    second, third = chain
    fail("TEST_CHAIN_1")
    root = execute(request("TEST_CHAIN_1"), on_commit)
    mend("TEST_CHAIN_1")

    with on_commit():
        root = runs.rerun(root)

    assert statuses(second, third) == [(RunStatus.WAITING, None), (RunStatus.WAITING, None)]
    assert JobAlert.objects.get(cause=Cause.BLOCKED).resolved_at is not None
    assert execute(root, on_commit).status == RunStatus.SUCCEEDED
    assert statuses(second, third) == [(RunStatus.QUEUED, None), (RunStatus.WAITING, None)]
    assert execute(second, on_commit).status == RunStatus.SUCCEEDED
    assert statuses(third) == [(RunStatus.QUEUED, None)]
    assert execute(third, on_commit).status == RunStatus.SUCCEEDED


def test_releasing_a_blocked_link_queues_it_and_puts_what_waits_on_it_back_to_waiting(chain, on_commit):
    second, third = chain
    fail("TEST_CHAIN_1")
    execute(request("TEST_CHAIN_1"), on_commit)

    with on_commit():
        runs.release(second)

    assert statuses(second, third) == [(RunStatus.QUEUED, None), (RunStatus.WAITING, None)]
    assert JobAlert.objects.get(cause=Cause.BLOCKED).resolved_at is not None  # it holds nothing back now
    assert execute(second, on_commit).status == RunStatus.SUCCEEDED
    assert statuses(third) == [(RunStatus.QUEUED, None)]


def test_a_cancelled_or_skipped_upstream_blocks_as_a_failed_one_does(chain, on_commit):
    second, third = chain
    root = request("TEST_CHAIN_1")

    with on_commit():
        runs.cancel(root)

    assert statuses(second, third) == [(RunStatus.BLOCKED, root.pk), (RunStatus.BLOCKED, root.pk)]


def test_a_run_asked_for_below_a_blocked_link_is_blocked_by_the_same_root(on_commit):
    fail("TEST_CHAIN_1")
    execute(request("TEST_CHAIN_EXTRA"), on_commit)
    root = execute(request("TEST_CHAIN_1"), on_commit)
    second = request("TEST_CHAIN_2")

    third = request("TEST_CHAIN_3")

    assert statuses(second, third) == [(RunStatus.BLOCKED, root.pk), (RunStatus.BLOCKED, root.pk)]
    assert "holds back 2 run(s)" in JobAlert.objects.get(cause=Cause.BLOCKED).message


# --- before: a dependency declared from the upstream's side ------------------------------------------------


def test_a_job_named_in_another_s_before_is_waited_for_like_a_dependency(on_commit):
    execute(request("TEST_CHAIN_1"), on_commit)

    second = request("TEST_CHAIN_2")

    assert second.status == RunStatus.WAITING
    assert runs.dependency_status(second)[1] == "waiting for TEST_CHAIN_EXTRA 2026-11-02 (no run yet)"
    assert execute(request("TEST_CHAIN_EXTRA"), on_commit).status == RunStatus.SUCCEEDED
    assert statuses(second) == [(RunStatus.QUEUED, None)]


def test_before_is_declared_into_the_definition_and_checked_like_depends_on():
    extra = JobDefinition.objects.get(code="TEST_CHAIN_EXTRA")
    assert extra.before == [{"job": "TEST_CHAIN_2", "offset": "same"}]

    extra.before = [{"job": "TEST_CHAIN_EXTRA"}]
    with pytest.raises(Exception, match="a job cannot depend on itself"):
        extra.full_clean()


def test_a_failed_before_job_blocks_the_run_that_waits_for_it(on_commit):
    execute(request("TEST_CHAIN_1"), on_commit)
    second = request("TEST_CHAIN_2")
    fail("TEST_CHAIN_EXTRA")

    extra = execute(request("TEST_CHAIN_EXTRA"), on_commit)

    assert statuses(second) == [(RunStatus.BLOCKED, extra.pk)]


# --- Failure alerts per company ---------------------------------------------------------------------------


def fail_for(company, on_commit, day: int, *, fails: bool) -> JobRun:
    run = request("TEST_COMPANY_FAIL", DAY + datetime.timedelta(days=day), company=company, params={"fail": fails})
    return execute(run, on_commit)


def test_two_companies_failing_once_each_is_not_two_failures_in_a_row(company, other_company, on_commit):
    fail_for(company, on_commit, 0, fails=True)
    fail_for(other_company, on_commit, 0, fails=True)

    assert not JobAlert.objects.filter(cause=Cause.CONSECUTIVE_FAILURES).exists()


def test_another_company_s_success_does_not_break_a_company_s_streak(company, other_company, on_commit):
    fail_for(company, on_commit, 0, fails=True)
    fail_for(other_company, on_commit, 0, fails=False)
    fail_for(company, on_commit, 1, fails=True)

    alert = JobAlert.objects.get(cause=Cause.CONSECUTIVE_FAILURES)
    assert (alert.company, alert.subject) == (company, f"company:{company.pk}")
    assert alert.message.startswith("TEST_COMPANY_FAIL for Acme Books Ltd failed 2 times in a row")


def test_each_failing_company_gets_its_own_alert_and_its_success_resolves_only_its_own(
    company, other_company, on_commit
):
    for day in range(2):
        fail_for(company, on_commit, day, fails=True)
        fail_for(other_company, on_commit, day, fails=True)
    assert JobAlert.objects.open().filter(cause=Cause.CONSECUTIVE_FAILURES).count() == 2

    fail_for(company, on_commit, 2, fails=False)

    still_open = JobAlert.objects.open().get(cause=Cause.CONSECUTIVE_FAILURES)
    assert still_open.company == other_company


def test_a_third_failure_counts_on_the_open_alert_instead_of_opening_another(company, on_commit):
    for day in range(3):
        fail_for(company, on_commit, day, fails=True)

    alert = JobAlert.objects.get(cause=Cause.CONSECUTIVE_FAILURES)
    assert alert.occurrences == 2


# --- Attempts ------------------------------------------------------------------------------------------------------


def test_each_retry_is_an_attempt_with_its_own_outcome_and_log_lines(on_commit):
    run = request("TEST_FLAKY", params={"failures": 1})

    execute(run, on_commit)
    run = execute(run, on_commit)  # the retry, as its delayed message would run it

    attempts = list(run.attempt_history.values_list("number", "status", "error"))
    assert attempts == [(1, "failed", "ConnectionError: attempt 1: the database went away"), (2, "succeeded", "")]
    assert run.attempt_history.get(number=2).result == {"succeeded_on": 2}
    started = JobLog.objects.filter(run=run, message__contains="started on").values_list("attempt", "message")
    assert list(started) == [(1, "attempt 1 started on test@host"), (2, "attempt 2 started on test@host")]


def test_a_re_run_adds_an_attempt_and_keeps_the_first_one_s_result(on_commit):
    run = execute(request("TEST_CHAIN_1"), on_commit)
    first = run.attempt_history.get()

    with on_commit():
        run = runs.rerun(run)
    run = execute(run, on_commit)

    assert list(run.attempt_history.values_list("number", "status", "trigger")) == [
        (1, "succeeded", Trigger.MANUAL),
        (2, "succeeded", Trigger.RETRY),
    ]
    assert run.attempt_history.get(number=1).started_at == first.started_at
    assert set(JobLog.objects.filter(run=run, message__contains="started on").values_list("attempt", flat=True)) == {
        1,
        2,
    }


def test_a_re_run_gets_a_fresh_round_of_retries(on_commit):
    run = request("TEST_FLAKY", params={"failures": 9})  # FAST_RETRY: three tries, then it fails
    for _ in range(3):
        run = execute(run, on_commit)
    assert (run.status, run.attempts) == (RunStatus.FAILED, 3)

    with on_commit():
        run = runs.rerun(run)
    run = execute(run, on_commit)

    assert (run.status, run.attempts, run.tries) == (RunStatus.RETRYING, 4, 1)


def test_a_re_run_fan_out_resumes_its_chunks_without_running_its_body_again(on_commit):
    run = request("TEST_FANOUT", params={"chunks": 4, "size": 2})
    run = execute(run, on_commit)
    for index in (0, 1):
        execution.execute_chunk(run.pk, index, retries=0)
    with on_commit():
        runs.cancel(run)
        assert execution.execute_chunk(run.pk, 2, retries=0) == "cancelled"  # it stops at its next chunk
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED

    with on_commit():
        run = runs.rerun(run)
    run = execute(run, on_commit)
    for index in (2, 3):
        with on_commit():
            execution.execute_chunk(run.pk, index, retries=0)

    run.refresh_from_db()
    assert (run.status, run.created, run.chunks_done) == (RunStatus.SUCCEEDED, 8, 4)
    assert Group.objects.filter(name__startswith=f"chunk-{run.pk}-").count() == 8
    assert JobLog.objects.filter(run=run, message__startswith="attempt").count() == 1  # the body ran once
    assert list(run.attempt_history.values_list("number", "status")) == [(1, "cancelled"), (2, "succeeded")]
