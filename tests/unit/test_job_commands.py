"""``manage.py run_job`` and ``manage.py sync_jobs``: what an operator types and reads."""

import datetime
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import CommandError, call_command

from scheduling.choices import RunStatus, Trigger
from scheduling.models import JobDefinition, JobLog, JobRun

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def empty_cache():
    # Cancellation flags live in the cache under run ids, which the rolled-back database reuses.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def today(time_machine):
    time_machine.move_to(NOW, tick=True)


def run_job(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("run_job", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_job_error(*args: str) -> str:
    with pytest.raises(CommandError) as raised:
        run_job(*args)
    message = str(raised.value)
    assert "\n" not in message
    return message


# --- run_job --------------------------------------------------------------------------------------


def test_run_job_inline_executes_the_run_and_prints_succeeded():
    out, err = run_job("SYS_PROBE", "--inline")

    run = JobRun.objects.get(job__code="SYS_PROBE")
    assert (run.status, run.trigger, run.run_key) == (RunStatus.SUCCEEDED, Trigger.MANUAL, "2026-11-21")
    assert out.startswith(f"run {run.pk} SYS_PROBE 2026-11-21: succeeded in ")
    assert "(processed 0, created 0, skipped 0, failed 0)" in out
    assert err == ""


def test_run_job_accepts_a_lower_case_code():
    out, _ = run_job("sys_probe", "--inline")

    assert ": succeeded" in out


def test_run_job_without_inline_only_queues_the_run():
    out, _ = run_job("SYS_PROBE")

    run = JobRun.objects.get(job__code="SYS_PROBE")
    assert run.status == RunStatus.QUEUED
    assert ": queued" in out


def test_waiting_for_a_run_no_worker_takes_gives_up_after_the_timeout():
    message = run_job_error("SYS_PROBE", "--wait", "--timeout", "0")

    run = JobRun.objects.get(job__code="SYS_PROBE")
    assert message == f"run {run.pk} still queued after 0s: is queued on default, waiting for a worker that consumes it"


def test_waiting_for_a_held_run_says_what_it_waits_for():
    with pytest.raises(CommandError) as raised:
        run_job("TEST_DOWNSTREAM", "--date", "2026-11-02", "--wait", "--timeout", "0")

    run = JobRun.objects.get(job__code="TEST_DOWNSTREAM")
    assert (
        str(raised.value) == f"run {run.pk} still waiting after 0s: waiting for TEST_UPSTREAM 2026-11-02 (no run yet)"
    )


def test_waiting_for_a_blocked_run_ends_at_once_naming_the_root_run(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run_job_error("TEST_UPSTREAM", "--date", "2026-11-02", "--param", "fail=true", "--inline")
    upstream = JobRun.objects.get(job__code="TEST_UPSTREAM")

    message = run_job_error("TEST_DOWNSTREAM", "--date", "2026-11-02", "--wait", "--timeout", "60")

    run = JobRun.objects.get(job__code="TEST_DOWNSTREAM")
    assert message == (
        f"run {run.pk} blocked: upstream did not succeed: TEST_UPSTREAM 2026-11-02 (failed); "
        f"the root is TEST_UPSTREAM 2026-11-02 (run {upstream.pk}, failed)"
    )


def test_an_inline_run_retries_a_passing_failure_until_it_succeeds():
    out, _ = run_job("TEST_FLAKY", "--inline", "--param", "failures=1")

    run = JobRun.objects.get(job__code="TEST_FLAKY")
    assert (run.status, run.attempts, run.result) == (RunStatus.SUCCEEDED, 2, {"succeeded_on": 2})
    assert ": succeeded" in out


def test_an_inline_run_of_a_job_waiting_for_its_upstream_is_reported_not_executed():
    message = run_job_error("TEST_DOWNSTREAM", "--date", "2026-11-02", "--inline")

    run = JobRun.objects.get(job__code="TEST_DOWNSTREAM")
    assert run.status == RunStatus.WAITING
    assert message == f"run {run.pk} waiting: waiting for TEST_UPSTREAM 2026-11-02 (no run yet)"


def test_a_failed_inline_run_is_a_one_line_command_error():
    message = run_job_error("TEST_FAIL", "--inline")

    run = JobRun.objects.get(job__code="TEST_FAIL")
    assert message == f"run {run.pk} failed: RuntimeError: the ledger is on fire"


def test_a_multi_line_error_is_reported_on_one_line():
    run_job("TEST_FAIL", "--date", "2026-11-02")
    JobRun.objects.filter(job__code="TEST_FAIL").update(
        status=RunStatus.FAILED, error="duplicate key value\nDETAIL:  Key (name)=(x) already exists."
    )

    message = run_job_error("TEST_FAIL", "--date", "2026-11-02", "--inline")

    assert message.endswith("failed: duplicate key value DETAIL: Key (name)=(x) already exists.")


def test_an_unknown_job_lists_the_known_ones():
    message = run_job_error("NOPE")

    assert message.startswith("no job NOPE; known jobs: ")
    assert "SYS_PROBE" in message and "TEST_WRITE" in message


def test_an_invalid_parameter_value_is_reported():
    message = run_job_error("TEST_WRITE", "--param", "hold=abc")

    assert message == "invalid parameters: hold: expected float"
    assert not JobRun.objects.exists()


def test_an_unknown_parameter_is_reported():
    message = run_job_error("TEST_WRITE", "--param", "speed=3")

    assert message == "invalid parameters: speed: unknown parameter"


def test_a_parameter_without_a_value_is_reported():
    message = run_job_error("TEST_WRITE", "--param", "novalue")

    assert message == "--param 'novalue' must be KEY=VALUE"


def test_an_impossible_date_is_reported():
    message = run_job_error("TEST_WRITE", "--date", "2026-13-01")

    assert message == "--date '2026-13-01' must be YYYY-MM-DD"


def test_a_company_job_runs_for_the_company_named_by_slug(company):
    out, _ = run_job("TEST_PER_COMPANY", "--company", "acme", "--inline")

    run = JobRun.objects.get(job__code="TEST_PER_COMPANY")
    assert run.company == company
    assert run.status == RunStatus.SUCCEEDED
    assert run.result == {"company": "acme"}
    assert ": succeeded" in out


def test_a_company_job_runs_for_the_company_named_by_id(company):
    run_job("TEST_PER_COMPANY", "--company", str(company.pk), "--inline")

    assert JobRun.objects.get(job__code="TEST_PER_COMPANY").company == company


def test_an_unknown_company_is_reported(company):
    message = run_job_error("TEST_PER_COMPANY", "--company", "nobody")

    assert message == "no company 'nobody'"


def test_a_company_job_without_a_company_is_reported():
    message = run_job_error("TEST_PER_COMPANY")

    assert message == "invalid parameters: company: TEST_PER_COMPANY runs per company; name one"


def test_json_output_is_the_run_as_the_api_shows_it():
    out, _ = run_job("TEST_WRITE", "--date", "2026-11-02", "--param", "hold=0", "--inline", "--json")

    shown = json.loads(out)
    run = JobRun.objects.get(job__code="TEST_WRITE")
    assert shown["id"] == run.pk
    assert shown["job"] == "TEST_WRITE"
    assert shown["run_key"] == "2026-11-02"
    assert shown["status"] == RunStatus.SUCCEEDED
    assert shown["params"] == {"hold": 0.0}
    assert shown["counts"]["created"] == 1
    assert shown["attempts"] == 1


def test_asking_again_for_a_slot_reports_the_existing_run_and_runs_nothing():
    run_job("TEST_WRITE", "--date", "2026-11-02", "--inline")
    run = JobRun.objects.get(job__code="TEST_WRITE")

    out, err = run_job("TEST_WRITE", "--date", "2026-11-02", "--inline")

    assert err.strip() == f"run {run.pk} for 2026-11-02 already exists (succeeded); --rerun runs it again"
    assert ": succeeded" in out
    assert JobRun.objects.filter(job__code="TEST_WRITE").count() == 1
    run.refresh_from_db()
    assert run.attempts == 1


def test_rerun_runs_a_finished_slot_again():
    run_job("TEST_WRITE", "--date", "2026-11-02", "--inline")
    run = JobRun.objects.get(job__code="TEST_WRITE")
    # TEST_WRITE creates a uniquely named group: remove it so the second execution can write it again.
    Group.objects.filter(name=f"write-{run.pk}").delete()

    out, err = run_job("TEST_WRITE", "--date", "2026-11-02", "--inline", "--rerun")

    assert err == ""
    assert ": succeeded" in out
    run.refresh_from_db()
    assert (run.status, run.trigger, run.attempts) == (RunStatus.SUCCEEDED, Trigger.RETRY, 2)
    assert list(run.attempt_history.values_list("number", "status", "trigger")) == [
        (1, "succeeded", Trigger.MANUAL),
        (2, "succeeded", Trigger.RETRY),
    ]
    assert JobLog.objects.filter(run=run, message="re-run by an operator").exists()
    assert Group.objects.filter(name=f"write-{run.pk}").exists()


def test_a_fan_out_runs_its_chunks_inline_to_the_end():
    out, _ = run_job("TEST_FANOUT", "--inline", "--param", "chunks=3")

    run = JobRun.objects.get(job__code="TEST_FANOUT")
    assert run.status == RunStatus.SUCCEEDED
    assert (run.chunks_total, run.chunks_done) == (3, 3)
    assert (run.processed, run.created) == (9, 9)
    assert set(run.chunks.values_list("status", flat=True)) == {"done"}
    assert ": succeeded" in out


def test_a_missing_job_code_is_an_argument_error_without_a_traceback():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}

    finished = subprocess.run(
        [sys.executable, "manage.py", "run_job"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )

    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    errors = [line for line in finished.stderr.splitlines() if "error:" in line]
    assert errors == ["manage.py run_job: error: the following arguments are required: code"]


# --- sync_jobs --------------------------------------------------------------------------------------


def sync_jobs() -> list[str]:
    out = io.StringIO()
    call_command("sync_jobs", stdout=out)
    return out.getvalue().splitlines()


def test_sync_jobs_twice_has_nothing_to_do_the_second_time():
    sync_jobs()

    assert sync_jobs() == ["job definitions are up to date"]


def test_sync_jobs_keeps_an_admin_edit_over_the_declaration():
    JobDefinition.objects.filter(code="SYS_PROBE").update(queue="ledger")

    lines = sync_jobs()

    assert lines == ["kept admin edits of SYS_PROBE: queue"]
    probe = JobDefinition.objects.get(code="SYS_PROBE")
    assert probe.queue == "ledger"
    assert probe.declared["queue"] == "default"


def test_sync_jobs_restores_a_field_that_was_never_edited_but_drifted_from_an_old_declaration():
    # The declaration at the last sync said 5; the code now says 1: an unedited field follows the code.
    probe = JobDefinition.objects.get(code="SYS_PROBE")
    declared_now = probe.declared["max_retries"]
    JobDefinition.objects.filter(pk=probe.pk).update(max_retries=5, declared={**probe.declared, "max_retries": 5})

    lines = sync_jobs()

    assert lines == ["updated SYS_PROBE: max_retries"]
    assert JobDefinition.objects.get(pk=probe.pk).max_retries == declared_now
    assert sync_jobs() == ["job definitions are up to date"]


def test_sync_jobs_marks_a_definition_no_longer_declared():
    JobDefinition.objects.create(code="OLD_GONE", title="Gone", declared={})

    lines = sync_jobs()

    assert lines == ["no longer declared: OLD_GONE"]
    assert JobDefinition.objects.get(code="OLD_GONE").registered is False
    assert sync_jobs() == ["job definitions are up to date"]
