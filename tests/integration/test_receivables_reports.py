"""Aged reports made on a real worker, with the cache in Redis shared across processes: the
first report ages every tenant, an identical second comes from the cache, and after a sync
changed one tenant the third ages that tenant alone. The workbook downloads through the API."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import openpyxl
import pytest
from django.core.cache import cache

from receivables import engine
from receivables.models import AgedReport, Document, XeroApp, XeroConnection
from receivables.services import reports
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.services import runs
from scheduling.services.sync import sync_jobs
from tests.factories import UserFactory
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

AS_OF = datetime.date(2026, 2, 28)


def tenant(app: XeroApp, name: str, invoices: int) -> XeroConnection:
    connection = XeroConnection.objects.create(app=app, tenant_id=name, tenant_name=name)
    Document.objects.bulk_create(
        Document(
            connection=connection,
            kind="invoice",
            external_id=f"{name}-{n}",
            company_label=name,
            contact_id=f"c{n % 3}",
            contact_name=f"Contact {n % 3}",
            number=f"INV-{n}",
            date=datetime.date(2026, 1, 1) + datetime.timedelta(days=n),
            due_date=datetime.date(2026, 1, 15) + datetime.timedelta(days=n),
            total=Decimal("10.00"),
            currency="GBP",
        )
        for n in range(invoices)
    )
    return connection


def made(connections: list[XeroConnection]) -> AgedReport:
    report = reports.create(options=engine.Options(AS_OF), source="xero", fmt="xlsx", connections=connections)
    run, _ = runs.request_run(
        JobDefinition.objects.get(code="RECEIVABLES_AGED_REPORT"),
        params={"report": report.pk},
        run_key=f"report-{report.pk}",
    )
    AgedReport.objects.filter(pk=report.pk).update(job_run=run)

    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=60, what=f"report run {run.pk}")
    assert run.status == RunStatus.SUCCEEDED, run.error
    report.refresh_from_db()
    return report


def test_reports_on_a_worker_share_the_cache_and_age_again_only_what_a_sync_changed(start_worker, client):
    cache.clear()
    sync_jobs()
    app = XeroApp.objects.create(name="App", client_id="id")
    connections = [tenant(app, name, 30) for name in ("Alpha", "Beta", "Gamma")]
    start_worker(queues="receivables")

    first = made(connections)
    second = made(connections)
    Document.objects.filter(connection=connections[1], external_id="Beta-0").update(total=Decimal("15.00"))
    XeroConnection.objects.filter(pk=connections[1].pk).update(data_version=1)  # what the sync does when it changes one
    third = made(list(XeroConnection.objects.filter(pk__in=[c.pk for c in connections]).order_by("tenant_name")))

    results = [JobRun.objects.get(pk=r.job_run_id).result["parts_from_cache"] for r in (first, second, third)]
    assert results == [0, 3, 2]
    assert (first.from_cache, second.from_cache, third.from_cache) == (False, True, False)
    assert [t["total"] for t in first.totals] == ["300.00", "300.00", "300.00"]
    assert [t["total"] for t in third.totals] == ["300.00", "305.00", "300.00"]

    client.force_login(UserFactory(is_staff=True))
    downloaded = client.get(f"/api/v1/receivables/aged-reports/{third.pk}/download")
    book = openpyxl.load_workbook(io.BytesIO(downloaded.content), read_only=True)
    assert downloaded.status_code == 200 and "Summary" in book.sheetnames
