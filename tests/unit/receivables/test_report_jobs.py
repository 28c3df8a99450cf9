"""The report jobs and the report cache: SL_AGED_DEBTORS stores the week's report once, the
cache lives by report date and is invalidated by a tenant's data version alone, and a
cache that is down costs the aging, not the report."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError

from receivables import engine
from receivables.models import AgedReport, Document, ReportFormat, XeroApp, XeroConnection
from receivables.services import reports
from scheduling.models import JobDefinition, JobSchedule
from scheduling.services import execution, runs
from tests.unit.receivables.conftest import JAN

pytestmark = pytest.mark.django_db

SUNDAY = datetime.date(2026, 3, 1)
TODAY = datetime.date(2026, 3, 10)


def test_aged_debtors_is_weekly_per_company_on_the_receivables_queue():
    definition = JobDefinition.objects.get(code="SL_AGED_DEBTORS")
    crontab = JobSchedule.objects.select_related("periodic_task__crontab").get(job=definition).periodic_task.crontab

    assert (definition.scope, definition.queue) == ("company", "receivables")
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("0", "8", "0")


def test_aged_debtors_stores_the_weeks_report_reconciled_and_a_rerun_keeps_it(company, owed):
    run, _ = runs.request_run(JobDefinition.objects.get(code="SL_AGED_DEBTORS"), company=company, business_date=SUNDAY)

    run = execution.run_here(run)
    again = execution.run_here(runs.rerun(run))

    report = AgedReport.objects.get()
    assert (run.status, again.status) == ("succeeded", "succeeded")
    assert (report.as_of, report.format, report.source, report.job_run_id) == (SUNDAY, ReportFormat.XLSX, "db", run.pk)
    assert list(report.companies.all()) == [company]
    assert bytes(report.output[:2]) == b"PK"  # a workbook
    assert report.reconciliation[0]["reconciled"] is True
    assert run.result["reconciliation"]["report_total"] == "200.00"


@pytest.mark.parametrize(
    ("as_of", "seconds"),
    [
        (TODAY + datetime.timedelta(days=1), 3600),
        (TODAY, 86400),
        (TODAY - datetime.timedelta(days=7), 86400),
        (TODAY - datetime.timedelta(days=8), 604800),
    ],
)
def test_cached_rows_live_for_a_time_set_by_the_report_date(as_of, seconds):
    assert reports.ttl(as_of, TODAY) == seconds


def xero_tenant(app, name: str, amount: str) -> XeroConnection:
    connection = XeroConnection.objects.create(app=app, tenant_id=name, tenant_name=name)
    Document.objects.create(
        connection=connection,
        kind="invoice",
        external_id=f"{name}-1",
        company_label=name,
        contact_id="c1",
        contact_name="Tui",
        number="INV-1",
        date=JAN,
        due_date=JAN,
        total=Decimal(amount),
        currency="NZD",
    )
    return connection


def test_a_changed_tenant_is_aged_again_and_the_others_come_from_the_cache():
    app = XeroApp.objects.create(name="App", client_id="id")
    first, second = xero_tenant(app, "Alpha", "10.00"), xero_tenant(app, "Beta", "20.00")
    options = engine.Options(datetime.date(2026, 2, 28))

    cold = reports.build(reports.parts_for_connections([first, second]), options, today=TODAY)
    Document.objects.filter(connection=second).update(total=Decimal("25.00"))
    XeroConnection.objects.filter(pk=second.pk).update(data_version=1)  # what a sync that changed it does
    second.refresh_from_db()
    warm = reports.build(reports.parts_for_connections([first, second]), options, today=TODAY)

    assert (cold.cached, warm.cached) == (0, 1)
    assert [(t.company, t.total) for t in warm.report.totals] == [
        ("Alpha", Decimal("10.00")),
        ("Beta", Decimal("25.00")),
    ]


def test_a_cache_that_is_down_costs_the_aging_not_the_report(monkeypatch):
    app = XeroApp.objects.create(name="App", client_id="id")
    tenant = xero_tenant(app, "Alpha", "10.00")

    def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)

    built = reports.build(reports.parts_for_connections([tenant]), engine.Options(datetime.date(2026, 2, 28)))

    assert [row.total for row in built.report.rows] == [Decimal("10.00")]


def test_a_report_job_for_a_report_that_is_gone_fails_without_retrying():
    definition = JobDefinition.objects.get(code="RECEIVABLES_AGED_REPORT")
    run, _ = runs.request_run(definition, params={"report": 999}, run_key="report-999")

    run = execution.run_here(run)

    assert run.status == "failed"
    assert "aged report 999 does not exist" in run.error
    assert run.attempts == 1


def test_a_second_report_asked_for_while_one_is_made_waits_for_a_slot_instead_of_being_skipped():
    definition = JobDefinition.objects.get(code="RECEIVABLES_AGED_REPORT")

    assert (definition.overlap, definition.max_concurrent) == ("queue", 2)
