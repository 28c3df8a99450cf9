"""Aged report runs over the API: 202 and a run, status and download, every source, the
400s, and no company seeing another's reports or files."""

from __future__ import annotations

import datetime
import io
import json
from decimal import Decimal

import openpyxl
import pytest

from receivables.models import AgedReport, Document, DocumentSet, XeroApp, XeroConnection
from scheduling.models import JobRun
from scheduling.services import execution
from tests.factories import MembershipFactory
from tests.unit.billing.helpers import invalid

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
REPORTS = "/api/v1/receivables/aged-reports"
SETS = "/api/v1/receivables/document-sets"
CONNECTIONS = "/api/v1/receivables/xero-connections"
LINES = [
    {
        "type": "invoice",
        "id": "i1",
        "company": "North",
        "contact": "Acme",
        "number": "INV-1",
        "date": "2026-01-05",
        "due_date": "2026-02-04",
        "total": "500.00",
        "currency": "GBP",
    },
    {
        "type": "credit_note",
        "id": "c1",
        "company": "North",
        "contact": "Acme",
        "date": "2026-01-20",
        "total": "50.00",
        "currency": "GBP",
    },
]


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


def run(body: dict) -> None:
    execution.run_here(JobRun.objects.get(pk=body["run"]["id"]))


def upload(client, lines=LINES, **fields):
    text = "\n".join(json.dumps(line) for line in lines).encode()
    return client.post(SETS, {"file": io.BytesIO(text), **fields}, format="multipart")


def test_asking_for_a_report_answers_202_and_the_run_makes_it(client, company, owed):
    asked = client.post(REPORTS, {"as_of": "2026-02-28", "companies": [company.pk]}, format="json")

    assert asked.status_code == 202, asked.json()
    body = asked.json()
    assert asked["Location"] == f"{REPORTS}/{body['id']}"
    assert (body["status"], body["links"]["download"], body["run"]["status"]) == ("queued", None, "queued")
    not_yet = client.get(f"{REPORTS}/{body['id']}/download")
    assert not_yet.status_code == 409

    run(body)
    done = client.get(f"{REPORTS}/{body['id']}").json()
    downloaded = client.get(done["links"]["download"])

    assert done["status"] == "succeeded"
    assert done["reconciliation"] == [
        {
            "company": company.name,
            "currency": company.base_currency,
            "report_total": "200.00",
            "control_balance": "200.00",
            "difference": "0.00",
            "reconciled": True,
        }
    ]
    assert downloaded.status_code == 200
    assert downloaded["Content-Disposition"] == f'attachment; filename="aged-receivables-2026-02-28-{body["id"]}.json"'
    report = json.loads(downloaded.content)
    assert report["buckets"] == ["Current", "< 1 Month", "1 Month", "2 Months", "3 Months", "Older"]
    (row,) = report["rows"]
    assert (row["contact"], row["buckets"]["1 Month"], row["total"]) == ("Amina Njoroge", "200.00", "200.00")


def test_an_excel_report_downloads_as_a_workbook(client, company, owed):
    body = client.post(REPORTS, {"as_of": "2026-02-28", "format": "xlsx"}, format="json").json()
    run(body)

    downloaded = client.get(f"{REPORTS}/{body['id']}/download")

    assert downloaded["Content-Type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(downloaded.content))
    assert "Summary" in book.sheetnames and "Detail" in book.sheetnames


def test_a_file_report_ages_an_uploaded_document_set(client, company):
    uploaded = upload(client, company=company.pk)
    assert uploaded.status_code == 201, uploaded.json()
    kept = uploaded.json()
    assert (kept["documents"], kept["allocations"], kept["company"]) == (2, 0, company.pk)

    body = client.post(
        REPORTS, {"as_of": "2026-02-28", "source": "file", "document_set": kept["id"]}, format="json"
    ).json()
    run(body)
    report = json.loads(client.get(f"{REPORTS}/{body['id']}/download").content)

    assert [(row["company"], row["contact"], row["total"]) for row in report["rows"]] == [("North", "Acme", "450.00")]


def test_a_bad_line_in_an_upload_is_a_400_naming_it_and_nothing_is_kept(client, company):
    bad = [LINES[0], {**LINES[1], "date": "20/01/2026"}]

    fields = invalid(upload(client, bad, company=company.pk))

    assert fields == {"file": ["line 2: 'date' must be a date YYYY-MM-DD, not '20/01/2026'"]}
    assert not DocumentSet.objects.exists() and not Document.objects.exists()


def test_a_xero_report_covers_the_callers_connections_and_lists_stale_tenants(client, company, owner):
    app = XeroApp.objects.create(name="App 1", client_id="id")
    synced = XeroConnection.objects.create(
        app=app, tenant_id="t1", tenant_name="Kiwi Ltd", company=company, last_synced_at=NOW
    )
    XeroConnection.objects.create(app=app, tenant_id="t2", tenant_name="Never Ltd", company=company)
    XeroConnection.objects.create(app=app, tenant_id="t3", tenant_name="Someone else's")
    Document.objects.create(
        connection=synced,
        kind="invoice",
        external_id="x1",
        company_label="Kiwi Ltd",
        contact_id="k1",
        contact_name="Tui",
        number="INV-9",
        date=datetime.date(2026, 1, 1),
        due_date=datetime.date(2026, 1, 31),
        total=Decimal("75.50"),
        currency="NZD",
    )

    body = client.post(REPORTS, {"as_of": "2026-02-28", "source": "xero"}, format="json").json()
    run(body)
    done = client.get(f"{REPORTS}/{body['id']}").json()
    report = json.loads(client.get(f"{REPORTS}/{body['id']}/download").content)

    assert sorted(done["connections"]) == sorted(
        XeroConnection.objects.filter(company=company).values_list("pk", flat=True)
    )
    assert done["failures"] == [
        {"tenant": "Never Ltd", "connection": done["connections"][1], "error": "never synced", "last_synced_at": None}
    ]
    assert [(row["company"], row["currency"], row["buckets"]["< 1 Month"]) for row in report["rows"]] == [
        ("Kiwi Ltd", "NZD", "75.50")
    ]
    assert [c["tenant_name"] for c in client.get(CONNECTIONS).json()["results"]] == ["Kiwi Ltd", "Never Ltd"]


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({}, "as_of"),
        ({"as_of": "2026-02-30"}, "as_of"),
        ({"as_of": "2026-02-28", "periods": 0}, "periods"),
        ({"as_of": "2026-02-28", "periods": 25}, "periods"),
        ({"as_of": "2026-02-28", "period_type": "year"}, "period_type"),
        ({"as_of": "2026-02-28", "period_type": "month", "period_length": 2}, "period_length"),
        ({"as_of": "2026-02-28", "period_type": "day", "period_length": 0}, "period_length"),
        ({"as_of": "2026-02-28", "age_by": "paid"}, "age_by"),
        ({"as_of": "2026-02-28", "format": "pdf"}, "format"),
        ({"as_of": "2026-02-28", "source": "file"}, "document_set"),
        ({"as_of": "2026-02-28", "source": "xero"}, "connections"),
        ({"as_of": "2026-02-28", "connections": [1]}, "connections"),
        ({"as_of": "2026-02-28", "companies": [999]}, "companies"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(client, company, given, field):
    fields = invalid(client.post(REPORTS, given, format="json"))

    assert field in fields
    assert not AgedReport.objects.exists()


def test_an_outsider_neither_reports_on_nor_sees_another_companys_books_and_files(api, client, company, outsider, owed):
    mine = client.post(REPORTS, {"as_of": "2026-02-28"}, format="json").json()
    kept = upload(client, company=company.pk).json()
    theirs = api.as_user(outsider)

    asked = theirs.post(REPORTS, {"as_of": "2026-02-28", "companies": [company.pk]}, format="json")
    file_asked = theirs.post(
        REPORTS, {"as_of": "2026-02-28", "source": "file", "document_set": kept["id"]}, format="json"
    )

    assert "companies" in invalid(asked)
    assert "document_set" in invalid(file_asked)
    assert theirs.get(f"{REPORTS}/{mine['id']}").status_code == 404
    assert theirs.get(f"{REPORTS}/{mine['id']}/download").status_code == 404
    assert theirs.get(f"{SETS}/{kept['id']}").status_code == 404
    assert theirs.get(REPORTS).json()["results"] == []


def test_a_report_over_two_companies_is_seen_only_by_members_of_both(
    api, client, company, other_company, owner, outsider
):
    MembershipFactory(company=other_company, user=owner)

    body = client.post(REPORTS, {"as_of": "2026-02-28"}, format="json").json()

    assert sorted(body["companies"]) == sorted([company.pk, other_company.pk])
    assert api.as_user(outsider).get(f"{REPORTS}/{body['id']}").status_code == 404


def test_a_staff_member_who_is_nobodys_member_must_name_companies(api, staff):
    assert "companies" in invalid(api.as_user(staff).post(REPORTS, {"as_of": "2026-02-28"}, format="json"))


def test_a_failed_run_makes_the_download_a_409_saying_so(client, company, owed):
    body = client.post(REPORTS, {"as_of": "2026-02-28"}, format="json").json()
    JobRun.objects.filter(pk=body["run"]["id"]).update(status="failed")

    refused = client.get(f"{REPORTS}/{body['id']}/download")

    assert refused.status_code == 409
    assert "failed" in refused.json()["error"]["message"]
