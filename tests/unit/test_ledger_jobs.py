"""The GL jobs through the job layer on SQLite (requested or fired, executed inline), their
dependencies and default schedules, and the report services they run: budget against
actual and the control account reconciliation."""

from __future__ import annotations

import datetime
from contextlib import contextmanager
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache

from ledger import subledgers
from ledger.models import (
    AccountRole,
    Budget,
    BudgetVariance,
    DailyTotal,
    EntryStatus,
    JournalEntry,
    JournalLine,
    Period,
    PeriodStatus,
    Reconciliation,
    TrialBalanceSnapshot,
)
from ledger.services import closing, periods, reports
from ledger.services.posting import Entry, Line, create_draft, post
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun, JobSchedule
from scheduling.services import execution, firing, runs
from scheduling.services.sync import sync_jobs

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
GL_JOBS = (
    "GL_ACCOUNT_RECONCILIATION",
    "GL_BUDGET_VARIANCE",
    "GL_DAILY_CLOSE",
    "GL_PERIOD_CLOSE",
    "GL_TRIAL_BALANCE",
    "GL_YEAR_END_CLOSE",
)
NOV_30, DEC_31 = datetime.date(2026, 11, 30), datetime.date(2026, 12, 31)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def month_end():
    """Late on the last day of November, after every GL job's time."""
    with time_machine.travel(datetime.datetime(2026, 11, 30, 23, 50, tzinfo=UTC), tick=False):
        yield


@pytest.fixture
def quiet_platform():
    """Only the GL jobs' schedules: with time frozen, the others would be due (or missed)
    depending on the hour."""
    JobSchedule.objects.exclude(job__code__startswith="GL_").delete()


def definition(code: str) -> JobDefinition:
    return JobDefinition.objects.get(code=code)


def request(code: str, day: datetime.date, company, **kwargs) -> JobRun:
    run, _ = runs.request_run(definition(code), business_date=day, company=company, **kwargs)
    return run


def execute(run: JobRun) -> JobRun:
    execution.execute_run(run.pk, task_id=f"task-{run.pk}-{run.attempts}", worker="test@host")
    run.refresh_from_db()
    return run


def run_job(code: str, day: datetime.date, company, **kwargs) -> JobRun:
    """Request and execute a run whose dependencies are met; it must succeed."""
    run = request(code, day, company, **kwargs)
    assert run.status == RunStatus.QUEUED, run.logs.values_list("message", flat=True)
    run = execute(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def sale(chart, amount: str, day: datetime.date) -> Entry:
    return Entry(day, [Line(chart["1100"], debit=amount), Line(chart["4100"], credit=amount)])


# --- Declarations and schedules ----------------------------------------------------------------


def test_the_gl_jobs_run_per_company_on_the_ledger_queue():
    found = JobDefinition.objects.filter(code__startswith="GL_").order_by("code")

    assert [(d.code, d.scope, d.queue, d.registered) for d in found] == [
        (code, "company", "ledger", True) for code in GL_JOBS
    ]
    assert definition("GL_PERIOD_CLOSE").dependencies() == [("GL_DAILY_CLOSE", "same")]
    assert definition("GL_YEAR_END_CLOSE").dependencies() == [("GL_PERIOD_CLOSE", "same")]


def test_the_default_schedules_follow_seed_004():
    daily = JobSchedule.objects.get(job__code="GL_DAILY_CLOSE")
    monthly = JobSchedule.objects.get(job__code="GL_PERIOD_CLOSE")

    def cron(schedule):
        c = schedule.periodic_task.crontab
        return (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week, schedule.rule)

    assert cron(daily) == ("0", "23", "*", "*", "*", "")
    assert cron(monthly) == ("0", "22", "*", "*", "*", "last_day_of_month")
    after = datetime.datetime(2026, 2, 27, 23, 30, tzinfo=UTC)
    assert daily.next_fires(after, count=2) == [
        datetime.datetime(2026, 2, 28, 23, 0, tzinfo=UTC),
        datetime.datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
    ]
    assert monthly.next_fires(after, count=3) == [
        datetime.datetime(2026, 2, 28, 22, 0, tzinfo=UTC),
        datetime.datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
        datetime.datetime(2026, 4, 30, 22, 0, tzinfo=UTC),
    ]
    assert sync_jobs().schedules_created == []  # synced once; a second sync adds none
    assert JobSchedule.objects.filter(job__code__startswith="GL_").count() == len(GL_JOBS)


def test_fired_on_the_last_day_the_period_close_waits_for_that_days_daily_close(
    quiet_platform, company, chart, django_capture_on_commit_callbacks
):
    # Given the GL schedules' next fires computed at noon on the last day of November
    JobSchedule.objects.update(fingerprint="")  # as if their timing had just been edited
    with time_machine.travel(datetime.datetime(2026, 11, 30, 12, 0, tzinfo=UTC), tick=False):
        firing.refresh_schedules()
        post(company, sale(chart, "100.00", NOV_30))

    # When beat fires the 22:00 period close, then the 23:00 daily close
    with time_machine.travel(datetime.datetime(2026, 11, 30, 22, 0, 10, tzinfo=UTC), tick=False):
        firing.fire_due()
    period_close = JobRun.objects.get(job__code="GL_PERIOD_CLOSE")
    assert (period_close.run_key, period_close.company, period_close.status) == (
        "2026-11-30",
        company,
        RunStatus.WAITING,
    )
    with time_machine.travel(datetime.datetime(2026, 11, 30, 23, 0, 10, tzinfo=UTC), tick=False):
        firing.fire_due()
        daily = JobRun.objects.get(job__code="GL_DAILY_CLOSE")
        assert (daily.run_key, daily.status) == ("2026-11-30", RunStatus.QUEUED)
        with django_capture_on_commit_callbacks(execute=True):
            execute(daily)

        # Then the period close is released, and closes November
        period_close.refresh_from_db()
        assert period_close.status == RunStatus.QUEUED
        period_close = execute(period_close)
    assert period_close.status == RunStatus.SUCCEEDED
    assert period_close.result["closed"][-1] == "2026-11"
    assert Period.objects.get(company=company, start_date=datetime.date(2026, 11, 1)).status == PeriodStatus.CLOSED


# --- Each job's run -------------------------------------------------------------------------------


def test_the_daily_close_job_records_the_days_totals(month_end, company, chart):
    post(company, sale(chart, "120.00", NOV_30))

    run = run_job("GL_DAILY_CLOSE", NOV_30, company)

    assert run.result | {"debit": None, "credit": None} == {
        "date": "2026-11-30",
        "entries": 1,
        "lines": 2,
        "debit": None,
        "credit": None,
        "balanced": True,
        "drafts_posted": [],
        "drafts_flagged": [],
    }
    assert Decimal(run.result["debit"]) == Decimal(run.result["credit"]) == Decimal("120.00")
    assert DailyTotal.objects.filter(company=company, date=NOV_30, balanced=True).exists()


def test_the_daily_close_job_posts_stale_drafts_when_asked(company, chart):
    with time_machine.travel(datetime.datetime(2026, 11, 20, 9, 0, tzinfo=UTC), tick=False):
        draft = create_draft(company, sale(chart, "40.00", datetime.date(2026, 11, 20)))
    with time_machine.travel(datetime.datetime(2026, 11, 30, 23, 0, tzinfo=UTC), tick=False):
        run = run_job("GL_DAILY_CLOSE", NOV_30, company, params={"stale_drafts": "post", "stale_draft_days": 5})

    assert (run.result["drafts_posted"], run.result["drafts_flagged"], run.created) == ([draft.pk], [], 1)
    assert JournalEntry.objects.get(pk=draft.pk).status == EntryStatus.POSTED


def test_the_daily_close_job_fails_on_a_posted_entry_that_does_not_balance(month_end, company, chart):
    entry = post(company, sale(chart, "100.00", NOV_30)).entry
    JournalLine.objects.filter(entry=entry, amount__gt=0).update(debit="90.00", amount="90.00")  # a damaged row

    run = execute(request("GL_DAILY_CLOSE", NOV_30, company))

    assert (run.status, run.attempts) == (RunStatus.FAILED, 1)
    assert run.error == f"JobError: posted entries that do not balance on 2026-11-30: [{entry.pk}]"


def test_the_period_close_job_closes_every_ended_period(month_end, company, chart):
    post(company, sale(chart, "100.00", datetime.date(2026, 10, 3)))
    run_job("GL_DAILY_CLOSE", NOV_30, company)

    run = run_job("GL_PERIOD_CLOSE", NOV_30, company)

    assert run.result == {"closed": [f"2026-{month:02d}" for month in range(1, 12)]}
    assert run.processed == 11
    assert list(Period.objects.filter(company=company).open().values_list("number", flat=True)) == [12]


def test_the_period_close_job_fails_at_once_while_drafts_are_left(month_end, company, chart):
    draft = create_draft(company, sale(chart, "25.00", datetime.date(2026, 11, 12)))
    run_job("GL_DAILY_CLOSE", NOV_30, company)

    run = execute(request("GL_PERIOD_CLOSE", NOV_30, company))

    assert (run.status, run.attempts) == (RunStatus.FAILED, 1)  # no retry: drafts do not go away by waiting
    assert run.error == f"LedgerStateError: 2026-11 still has 1 draft entry (JE{draft.pk}); post or delete it first."
    # the job is atomic: the periods before November that it closed are open again
    assert not Period.objects.filter(company=company).exclude(status=PeriodStatus.OPEN).exists()


def test_the_year_end_close_job_closes_the_year_after_its_last_period_close(company, chart):
    post(company, sale(chart, "300.00", datetime.date(2026, 6, 1)))
    with time_machine.travel(datetime.datetime(2026, 12, 31, 23, 50, tzinfo=UTC), tick=False):
        run_job("GL_DAILY_CLOSE", DEC_31, company)
        run_job("GL_PERIOD_CLOSE", DEC_31, company)

        run = run_job("GL_YEAR_END_CLOSE", DEC_31, company)
        first = (run.result, run.processed, run.created)
        again = execute(runs.rerun(run))

    entry = JournalEntry.objects.get(company=company, is_closing=True)
    closed = first[0]["closed"]
    assert [(each["year"], each["entry"], Decimal(each["profit"])) for each in closed] == [("FY2026", entry.pk, 300)]
    assert first[1:] == (1, 1)
    assert again.status == RunStatus.SUCCEEDED
    assert again.result == {"closed": []}  # the year is locked: nothing left to close
    assert JournalEntry.objects.filter(company=company, is_closing=True).count() == 1


def test_the_trial_balance_job_stores_a_snapshot_of_the_year_to_date(month_end, company, chart):
    post(company, sale(chart, "100.00", datetime.date(2026, 3, 1)))
    run_job("GL_DAILY_CLOSE", NOV_30, company)
    run_job("GL_PERIOD_CLOSE", NOV_30, company)
    run_job("GL_YEAR_END_CLOSE", NOV_30, company)  # no year ends in November: nothing to do

    run = run_job("GL_TRIAL_BALANCE", NOV_30, company)

    snapshot = TrialBalanceSnapshot.objects.get(company=company)
    assert (snapshot.date_from, snapshot.date_to, snapshot.run_id, snapshot.balanced) == (
        datetime.date(2026, 1, 1),
        NOV_30,
        run.pk,
        True,
    )
    assert [row["code"] for row in snapshot.rows] == ["1100", "4100"]
    assert (run.result["snapshot"], run.result["from"], run.result["to"]) == (snapshot.pk, "2026-01-01", "2026-11-30")


def test_the_budget_variance_job_covers_the_year_to_date(month_end, company, chart):
    post(company, sale(chart, "100.00", datetime.date(2026, 3, 1)))
    march = Period.objects.get(company=company, start_date=datetime.date(2026, 3, 1))
    Budget.objects.create(company=company, account=chart["4100"], period=march, amount=Decimal("150.00"))
    run_job("GL_DAILY_CLOSE", NOV_30, company)
    run_job("GL_PERIOD_CLOSE", NOV_30, company)

    run = run_job("GL_BUDGET_VARIANCE", NOV_30, company)

    assert run.result == {
        "periods": [f"2026-{month:02d}" for month in range(1, 12)],
        "rows": 1,
        "unfavourable": 1,
    }
    assert BudgetVariance.objects.get(company=company).variance == Decimal("-50.00")


def test_the_reconciliation_job_reports_each_control_account(month_end, company, chart, nothing_registered):
    receivables = chart["1200"]
    post(company, Entry(NOV_30, [Line(receivables, debit="70.00"), Line(chart["4100"], credit="70.00")]))
    run_job("GL_DAILY_CLOSE", NOV_30, company)

    run = run_job("GL_ACCOUNT_RECONCILIATION", NOV_30, company)

    assert run.result == {
        "1200": {"difference": "70.00", "parties": 1},
        "2100": {"difference": "0.00", "parties": 0},
    }
    assert run.failed == 1  # the one account that does not reconcile


def test_the_gl_job_results_give_amounts_in_the_currencys_minor_units(company, chart):
    post(company, sale(chart, "300.00", DEC_31))
    with time_machine.travel(datetime.datetime(2026, 12, 31, 23, 50, tzinfo=UTC), tick=False):
        daily = run_job("GL_DAILY_CLOSE", DEC_31, company)
        run_job("GL_PERIOD_CLOSE", DEC_31, company)
        year_end = run_job("GL_YEAR_END_CLOSE", DEC_31, company)

    assert (daily.result["debit"], daily.result["credit"]) == ("300.00", "300.00")
    assert year_end.result["closed"][0]["profit"] == "300.00"


# --- Dependencies -----------------------------------------------------------------------------


def test_a_period_close_waits_for_the_daily_close_of_the_periods_last_day(
    month_end, company, chart, django_capture_on_commit_callbacks
):
    period_close = request("GL_PERIOD_CLOSE", NOV_30, company)
    assert period_close.status == RunStatus.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        run_job("GL_DAILY_CLOSE", datetime.date(2026, 11, 29), company)
    period_close.refresh_from_db()
    assert period_close.status == RunStatus.WAITING  # the day before the last does not count

    with django_capture_on_commit_callbacks(execute=True):
        run_job("GL_DAILY_CLOSE", NOV_30, company)
    period_close.refresh_from_db()
    assert period_close.status == RunStatus.QUEUED


def test_a_period_close_is_blocked_when_the_last_daily_close_failed(
    month_end, company, chart, django_capture_on_commit_callbacks
):
    entry = post(company, sale(chart, "100.00", NOV_30)).entry
    JournalLine.objects.filter(entry=entry, amount__gt=0).update(debit="90.00", amount="90.00")
    period_close = request("GL_PERIOD_CLOSE", NOV_30, company)

    with django_capture_on_commit_callbacks(execute=True):
        daily = execute(request("GL_DAILY_CLOSE", NOV_30, company))

    period_close.refresh_from_db()
    assert daily.status == RunStatus.FAILED
    assert period_close.status == RunStatus.BLOCKED
    assert Period.objects.get(company=company, start_date=datetime.date(2026, 11, 1)).status == PeriodStatus.OPEN


def test_the_year_end_close_waits_for_that_months_period_close(company, chart, django_capture_on_commit_callbacks):
    with time_machine.travel(datetime.datetime(2026, 12, 31, 23, 50, tzinfo=UTC), tick=False):
        year_end = request("GL_YEAR_END_CLOSE", DEC_31, company)
        assert year_end.status == RunStatus.WAITING
        assert year_end.logs.filter(message__contains="GL_PERIOD_CLOSE 2026-12").exists()
        run_job("GL_DAILY_CLOSE", DEC_31, company)

        with django_capture_on_commit_callbacks(execute=True):
            run_job("GL_PERIOD_CLOSE", DEC_31, company)

    year_end.refresh_from_db()
    assert year_end.status == RunStatus.QUEUED


def test_another_companys_daily_close_releases_nothing(
    month_end, company, chart, other_company, django_capture_on_commit_callbacks
):
    period_close = request("GL_PERIOD_CLOSE", NOV_30, company)

    with django_capture_on_commit_callbacks(execute=True):
        run_job("GL_DAILY_CLOSE", NOV_30, other_company)

    period_close.refresh_from_db()
    assert period_close.status == RunStatus.WAITING


# --- Budget against actual ------------------------------------------------------------------------


def variance_rows(rows) -> list[tuple]:
    return [(r.account.code, r.budget, r.actual, r.variance, r.percentage, r.favourable) for r in rows]


def test_budget_variance_reads_each_account_in_its_natural_direction(company, chart):
    march = periods.periods_for(company, [datetime.date(2026, 3, 1)])[datetime.date(2026, 3, 1)]
    for code, amount in {"4100": "1000.00", "4200": "0.00", "6100": "800.00", "6200": "500.00"}.items():
        Budget.objects.create(company=company, account=chart[code], period=march, amount=Decimal(amount))
    bank, day = chart["1100"], datetime.date(2026, 3, 15)
    post(
        company,
        Entry(
            day,
            [Line(bank, debit="1250.00"), Line(chart["4100"], credit="1200.00"), Line(chart["4200"], credit="50.00")],
        ),
    )
    post(
        company,
        Entry(
            day,
            [
                Line(chart["6100"], debit="700.00"),
                Line(chart["6200"], debit="600.00"),
                Line(chart["6300"], debit="30.00"),
                Line(bank, credit="1330.00"),
            ],
        ),
    )

    rows = reports.budget_variance(company, [march])

    assert variance_rows(rows) == [
        # more income than budgeted is favourable; a zero budget has no percentage
        ("4100", Decimal("1000.00"), Decimal("1200.00"), Decimal("200.00"), Decimal("20.00"), True),
        ("4200", 0, Decimal("50.00"), Decimal("50.00"), None, True),
        # less expense than budgeted is favourable, more is not; no budget reads as zero
        ("6100", Decimal("800.00"), Decimal("700.00"), Decimal("-100.00"), Decimal("-12.50"), True),
        ("6200", Decimal("500.00"), Decimal("600.00"), Decimal("100.00"), Decimal("20.00"), False),
        ("6300", 0, Decimal("30.00"), Decimal("30.00"), None, False),
    ]
    assert variance_rows(BudgetVariance.objects.order_by("account__code")) == variance_rows(rows)


def test_budget_variance_leaves_the_year_end_closing_entry_out_of_the_actuals(company, chart):
    december = datetime.date(2025, 12, 1)
    post(company, sale(chart, "400.00", datetime.date(2025, 12, 10)))
    closing.close_periods_through(company, datetime.date(2025, 12, 31))
    closing.close_year(periods.open_year(company, december))
    period = Period.objects.get(company=company, start_date=december)

    rows = reports.budget_variance(company, [period])

    assert variance_rows(rows) == [("4100", 0, Decimal("400.00"), Decimal("400.00"), None, True)]


def test_budget_variance_rerun_replaces_the_figures(company, chart):
    post(company, sale(chart, "100.00", datetime.date(2026, 3, 1)))
    march = Period.objects.get(company=company, start_date=datetime.date(2026, 3, 1))
    budget = Budget.objects.create(company=company, account=chart["4100"], period=march, amount=Decimal("80.00"))
    reports.budget_variance(company, [march])

    budget.amount = Decimal("125.00")
    budget.save()
    reports.budget_variance(company, [march])

    stored = BudgetVariance.objects.get()
    assert (stored.budget, stored.variance, stored.percentage, stored.favourable) == (
        Decimal("125.00"),
        Decimal("-25.00"),
        Decimal("-20.00"),
        False,
    )


def test_budget_variance_of_no_periods_is_empty(company):
    assert reports.budget_variance(company, []) == []


# --- Reconciliation ----------------------------------------------------------------------------


@contextmanager
def receivables_subledger(party_balances=None):
    """``party_balances`` as the receivables sub-ledger (None: none at all) for a test; what
    an installed app registered is back afterwards."""
    previous = subledgers.registered(AccountRole.RECEIVABLES)
    subledgers.unregister(AccountRole.RECEIVABLES)
    if party_balances is not None:
        subledgers.register(AccountRole.RECEIVABLES, "test items", party_balances)
    try:
        yield
    finally:
        subledgers.unregister(AccountRole.RECEIVABLES)
        if previous is not None:
            subledgers.register(previous.role, previous.name, previous.balances)


@pytest.fixture
def nothing_registered():
    with receivables_subledger(None):
        yield


@pytest.fixture
def registered_items():
    """A receivables sub-ledger for the test; records what it was asked."""
    asked = []
    items = {"customer:1": Decimal("100.00"), "customer:2": Decimal("50.00"), "customer:4": Decimal("0")}

    def open_items(company, as_of):
        asked.append((company.slug, as_of))
        return items

    with receivables_subledger(open_items):
        yield asked


def invoice(chart, amount: str, party: str, day: datetime.date = NOV_30) -> Entry:
    return Entry(day, [Line(chart["1200"], debit=amount, party=party), Line(chart["4100"], credit=amount)])


def differences(result: Reconciliation) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [
        (d["party"], Decimal(d["ledger"]), Decimal(d["subledger"]), Decimal(d["difference"]))
        for d in result.differences
    ]


def test_with_no_sub_ledger_the_difference_is_what_was_posted_without_a_party(company, chart, nothing_registered):
    post(company, invoice(chart, "100.00", "customer:1"))
    post(company, invoice(chart, "30.00", ""))
    post(
        company,
        Entry(NOV_30, [Line(chart["6200"], debit="40.00"), Line(chart["2100"], credit="40.00", party="supplier:9")]),
    )

    receivables, payables = subledgers.reconcile(company, NOV_30)

    assert (receivables.account.code, receivables.subledger) == ("1200", "ledger parties")
    assert (receivables.ledger_balance, receivables.subledger_balance, receivables.difference) == (
        Decimal("130.00"),
        Decimal("100.00"),
        Decimal("30.00"),
    )
    assert differences(receivables) == [("(no party)", Decimal("30.00"), 0, Decimal("30.00"))]
    assert not receivables.reconciled
    assert (payables.account.code, payables.difference, payables.differences, payables.reconciled) == (
        "2100",
        0,
        [],
        True,
    )


def test_a_registered_sub_ledger_lists_the_parties_that_differ(company, chart, registered_items):
    post(company, invoice(chart, "100.00", "customer:1"))
    post(company, invoice(chart, "20.00", "customer:3"))

    receivables, _payables = subledgers.reconcile(company, NOV_30)

    assert registered_items == [("acme", NOV_30)]
    assert receivables.subledger == "test items"
    assert (receivables.ledger_balance, receivables.subledger_balance, receivables.difference) == (
        Decimal("120.00"),
        Decimal("150.00"),
        Decimal("-30.00"),
    )
    assert differences(receivables) == [
        ("customer:2", 0, Decimal("50.00"), Decimal("-50.00")),
        ("customer:3", Decimal("20.00"), 0, Decimal("20.00")),
    ]


def test_a_reconciliation_for_the_same_day_replaces_the_last(company, chart, registered_items):
    post(company, invoice(chart, "100.00", "customer:1"))
    subledgers.reconcile(company, NOV_30)
    post(company, invoice(chart, "50.00", "customer:2"))

    subledgers.reconcile(company, NOV_30)

    stored = Reconciliation.objects.get(account=chart["1200"], as_of=NOV_30)
    assert (stored.difference, stored.differences) == (0, [])


def test_only_control_account_roles_take_a_sub_ledger():
    with pytest.raises(ValueError, match="not a control account role"):
        subledgers.register(AccountRole.BANK, "bank feed", lambda company, as_of: {})


def test_a_party_whose_lines_net_to_zero_is_not_a_difference(company, chart, nothing_registered):
    post(company, invoice(chart, "0.01", "customer:1"))
    post(company, invoice(chart, "18496.85", "customer:1"))
    post(
        company,
        Entry(
            NOV_30, [Line(chart["1100"], debit="18496.86"), Line(chart["1200"], credit="18496.86", party="customer:1")]
        ),
    )

    receivables, _payables = subledgers.reconcile(company, NOV_30)

    assert receivables.differences == []
    assert receivables.reconciled
