"""Invoices and invoice runs over /api/v1/billing/: lists and details scoped to the caller's
companies, manual drafts, finalising, deleting drafts, the HTML and PDF document, and
invoice runs asked for with a 202 and followed to what they created."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest

from billing.models import (
    CreditAllocation,
    CreditNote,
    Invoice,
    InvoiceRun,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
)
from billing.services import invoicing
from billing.services.invoicing import RunSpec
from ledger.models import JournalLine, Period, PeriodStatus
from ledger.services import periods as ledger_periods
from notifications.models import Notification
from scheduling.models import JobRun
from scheduling.services import execution
from tests.factories import CustomerFactory, MembershipFactory
from tests.unit.billing.conftest import JAN
from tests.unit.billing.helpers import invalid

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 2, 10, 9, 0, tzinfo=datetime.UTC)
INVOICES = "/api/v1/billing/invoices"
RUNS = "/api/v1/billing/invoice-runs"
REQUESTS = "/api/v1/billing/invoice-run-requests"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


def conflict(response) -> str:
    assert response.status_code == 409, response.content
    return response.json()["error"]["message"]


def run_january(company, **options) -> invoicing.Outcome:
    return invoicing.generate(RunSpec.for_period(company, "monthly", JAN, **options))


@pytest.fixture
def billed(company, fees, enrol, customer):
    """January billed: Amina's consolidated invoice (maths and English), INV-000001."""
    enrol(customer, fees["maths"])
    enrol(customer, fees["english"])
    run_january(company)
    return Invoice.objects.get()


def draft_body(company, customer, **fields) -> dict:
    return {
        "company": company.pk,
        "customer": customer.pk,
        "lines": [
            {"description": "Exam fee", "amount": "120.00", "tax_rate": "16"},
            {"description": "Trip", "amount": "45.55"},
        ],
        **fields,
    }


# --- Reading ---------------------------------------------------------------------------------


def test_an_invoice_reads_with_its_lines_enrolments_and_allocations(client, company, customer, billed, books):
    payment = Payment.objects.create(
        company=company,
        customer=customer,
        date=datetime.date(2026, 1, 20),
        amount=Decimal("1000.00"),
        currency="GBP",
        allocated=Decimal("1000.00"),
    )
    PaymentAllocation.objects.create(
        company=company, payment=payment, invoice=billed, amount=Decimal("1000.00"), date=payment.date
    )
    note = CreditNote.objects.create(
        company=company,
        customer=customer,
        number="CN-000001",
        date=datetime.date(2026, 1, 25),
        currency="GBP",
        subtotal=Decimal("20.00"),
        total=Decimal("20.00"),
        allocated=Decimal("20.00"),
    )
    CreditAllocation.objects.create(
        company=company, credit_note=note, invoice=billed, amount=Decimal("20.00"), date=note.date
    )
    Invoice.objects.filter(pk=billed.pk).update(paid=Decimal("1000"), credited=Decimal("20"), due=Decimal("2800"))

    body = client.get(f"{INVOICES}/{billed.pk}").json()

    assert {name: body[name] for name in ("number", "status", "period", "subtotal", "tax", "total", "paid", "due")} == {
        "number": "INV-000001",
        "status": "open",
        "period": "2026-01",
        "subtotal": "3500.00",
        "tax": "320.00",
        "total": "3820.00",
        "paid": "1000.00",
        "due": "2800.00",
    }
    assert body["journal_entry"] == billed.journal_entry_id is not None
    assert body["enrolments"] == sorted(set(billed.lines.values_list("enrolment", flat=True)))
    assert [(line["description"], line["amount"], line["tax"], line["total"]) for line in body["lines"]] == [
        ("Maths: Tuition", "1800.00", "288.00", "2088.00"),
        ("Maths: Materials", "200.00", "32.00", "232.00"),
        ("English", "1500.00", "0.00", "1500.00"),
    ]
    assert body["lines"][0]["income_account"] == books["4100"].pk
    assert body["allocations"] == {
        "payments": [{"payment": payment.pk, "amount": "1000.00", "date": "2026-01-20"}],
        "credit_notes": [{"credit_note": note.pk, "number": "CN-000001", "amount": "20.00", "date": "2026-01-25"}],
    }
    assert body["links"]["pdf"] == f"{INVOICES}/{billed.pk}/document?format=pdf"


def test_invoices_filter_by_customer_status_dates_and_overdue(client, company, fees, enrol, customer):
    late = CustomerFactory(company=company, name="Late payer", payment_terms_days=7)
    enrol(customer, fees["maths"])
    enrol(late, fees["english"])
    enrol(customer, fees["club"])
    run_january(company)
    invoicing.generate(RunSpec.for_period(company, "weekly", datetime.date(2026, 2, 2), finalise=False))
    amina = Invoice.objects.get(customer=customer, cadence="monthly")
    theirs = Invoice.objects.get(customer=late)
    club = Invoice.objects.get(cadence="weekly")

    def ids(**query) -> set[int]:
        response = client.get(INVOICES, query)
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {amina.pk, theirs.pk, club.pk}
    assert ids(customer=late.pk) == {theirs.pk}
    assert ids(status="draft") == {club.pk}
    assert ids(cadence="monthly", period_start="2026-01-01") == {amina.pk, theirs.pk}
    assert ids(issued_from="2026-02-01") == {club.pk}
    assert ids(due_to="2026-01-10") == {theirs.pk}
    assert ids(overdue="true", overdue_on="2026-01-12") == {theirs.pk}
    assert ids(overdue="true") == {amina.pk, theirs.pk}  # on the company's today, 10 February
    assert ids(overdue="false", overdue_on="2026-01-12") == {amina.pk, club.pk}
    assert list(invalid(client.get(INVOICES, {"status": "lost", "issued_from": "soon"}))) == ["status", "issued_from"]


def test_listing_invoices_costs_the_same_queries_for_three_or_thirty(
    client, company, fees, enrol, django_assert_num_queries
):
    def list_with(count: int) -> None:
        for _ in range(count - Invoice.objects.count()):
            enrol(CustomerFactory(company=company), fees["english"])
        Invoice.objects.all().delete()
        run_january(company, finalise=False)
        with django_assert_num_queries(2):  # the token with its user, the page with its customers
            response = client.get(INVOICES, {"page_size": 100})
        assert len(response.json()["results"]) == count

    list_with(3)
    list_with(30)


def test_an_outsider_sees_no_invoice_and_reaches_none(api, outsider, billed):
    client = api.as_user(outsider)

    listed = client.get(INVOICES).json()["results"]
    answers = [
        client.get(f"{INVOICES}/{billed.pk}"),
        client.get(f"{INVOICES}/{billed.pk}/document", {"format": "pdf"}),
        client.post(f"{INVOICES}/{billed.pk}/finalise"),
        client.delete(f"{INVOICES}/{billed.pk}"),
    ]

    assert listed == []
    assert [r.status_code for r in answers] == [404, 404, 404, 404]
    assert answers[1]["Content-Type"] == "application/json"


# --- Manual drafts ----------------------------------------------------------------------------


def test_a_manual_draft_adds_up_its_lines(client, company, customer, books):
    response = client.post(INVOICES, draft_body(company, customer, memo="Spring term extras"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {name: body[name] for name in ("status", "source", "number", "issue_date", "due_date", "memo")} == {
        "status": "draft",
        "source": "manual",
        "number": "",
        "issue_date": "2026-02-10",
        "due_date": "2026-02-24",
        "memo": "Spring term extras",
    }
    assert (body["subtotal"], body["tax"], body["total"], body["due"]) == ("165.55", "19.20", "184.75", "184.75")
    assert [(line["position"], line["tax_rate"], line["income_account"]) for line in body["lines"]] == [
        (0, "16.0000", books["4100"].pk),
        (1, "0.0000", books["4100"].pk),
    ]


def test_a_manual_line_posts_to_the_income_account_it_names(client, company, customer, books):
    body = draft_body(
        company,
        customer,
        issue_date="2026-01-31",
        due_date="2026-03-01",
        lines=[{"description": "Hall hire", "amount": "80", "income_account": books["4200"].pk}],
    )

    response = client.post(INVOICES, body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["lines"][0]["income_account"] == books["4200"].pk
    assert (response.json()["issue_date"], response.json()["due_date"]) == ("2026-01-31", "2026-03-01")


def test_manual_draft_fields_are_checked(client, company, customer, books, other_company):
    theirs = CustomerFactory(company=other_company)

    cases = [
        (draft_body(company, theirs), {"customer": [f'Invalid pk "{theirs.pk}" - object does not exist.']}),
        (draft_body(company, customer, lines=[]), {"lines": {"non_field_errors": ["This list may not be empty."]}}),
        (
            draft_body(company, customer, issue_date="2026-02-10", due_date="2026-02-01"),
            {"due_date": ["It is before the issue date (2026-02-10)."]},
        ),
        (
            draft_body(company, customer, lines=[{"description": "x", "amount": 12.5}]),
            {"lines": {"0": {"amount": ['Send amounts as strings ("12.30"): a number with a fraction loses cents.']}}},
        ),
        (
            draft_body(
                company, customer, lines=[{"description": "x", "amount": "1"}, {"description": "y", "amount": "1.005"}]
            ),
            {"lines": {"1": {"amount": ["GBP amounts have 2 decimal places at most."]}}},
        ),
        (
            draft_body(
                company, customer, lines=[{"description": "x", "amount": "1", "income_account": books["1100"].pk}]
            ),
            {
                "lines": {
                    "0": {"income_account": ["Account 1100 is an asset account; income posts to an income account."]}
                }
            },
        ),
        (
            draft_body(company, customer, lines=[{"description": "x", "amount": "-1"}]),
            {"lines": {"0": {"amount": ["Ensure this value is greater than or equal to 0."]}}},
        ),
    ]
    for body, fields in cases:
        assert invalid(client.post(INVOICES, body, format="json")) == fields

    assert not Invoice.objects.exists()


def test_a_manual_draft_without_a_sales_account_is_refused(client, company, customer):
    response = client.post(INVOICES, draft_body(company, customer), format="json")

    assert list(invalid(response)) == ["account"]


def test_an_outsider_cannot_invoice_in_another_company(api, outsider, company, customer):
    response = api.as_user(outsider).post(INVOICES, draft_body(company, customer), format="json")

    assert set(invalid(response)) == {"company", "customer"}
    assert not Invoice.objects.exists()


# --- Finalising and deleting -------------------------------------------------------------------


def test_finalising_a_draft_numbers_posts_and_notifies_once(client, company, customer, books):
    draft = client.post(INVOICES, draft_body(company, customer), format="json").json()

    finalised = client.post(f"{INVOICES}/{draft['id']}/finalise")
    again = client.post(f"{INVOICES}/{draft['id']}/finalise")

    assert finalised.status_code == 200, finalised.json()
    body = finalised.json()
    assert (body["number"], body["status"]) == ("INV-000001", "open")
    lines = JournalLine.objects.filter(entry_id=body["journal_entry"])
    assert {(line.account.code, line.amount) for line in lines} == {
        ("1200", Decimal("184.75")),
        ("4100", Decimal("-165.55")),
        ("2200", Decimal("-19.20")),
    }
    assert Notification.objects.filter(kind="invoice_issued").count() == 1
    assert conflict(again) == "Invoice INV-000001 is open; only drafts are finalised."


def test_finalising_into_a_closed_period_is_refused_and_leaves_the_draft(client, company, customer, books):
    draft = client.post(INVOICES, draft_body(company, customer, issue_date="2026-01-15"), format="json").json()
    ledger_periods.open_year(company, JAN)
    Period.objects.for_company(company).filter(end_date__lte=datetime.date(2026, 1, 31)).update(
        status=PeriodStatus.CLOSED
    )

    response = client.post(f"{INVOICES}/{draft['id']}/finalise")

    assert list(invalid(response)) == ["date"]
    invoice = Invoice.objects.get(pk=draft["id"])
    assert (invoice.status, invoice.number) == (InvoiceStatus.DRAFT, "")


def test_only_drafts_are_deleted(client, company, customer, books, billed):
    draft = client.post(INVOICES, draft_body(company, customer), format="json").json()

    deleted = client.delete(f"{INVOICES}/{draft['id']}")
    refused = client.delete(f"{INVOICES}/{billed.pk}")
    changed = client.patch(f"{INVOICES}/{billed.pk}", {"memo": "x"}, format="json")

    assert deleted.status_code == 204
    assert conflict(refused) == "Invoice INV-000001 is open; only drafts are deleted. Void it instead."
    assert changed.status_code == 405
    assert list(Invoice.objects.all()) == [billed]


def test_staff_who_are_not_members_read_but_do_not_finalise(api, staff, company, fees, enrol, customer):
    enrol(customer, fees["english"])
    run_january(company, finalise=False)
    draft = Invoice.objects.get()
    client = api.as_user(staff)

    read = client.get(f"{INVOICES}/{draft.pk}")
    finalised = client.post(f"{INVOICES}/{draft.pk}/finalise")

    assert (read.status_code, finalised.status_code) == (200, 403)


# --- The document ------------------------------------------------------------------------------


def test_the_document_is_html_or_pdf_by_format_or_accept(client, billed):
    url = f"{INVOICES}/{billed.pk}/document"

    html = client.get(url, {"format": "html"})
    pdf = client.get(url, {"format": "pdf"})
    accepted_html = client.get(url, HTTP_ACCEPT="text/html")
    accepted_pdf = client.get(url, HTTP_ACCEPT="application/pdf")
    anything = client.get(url)

    assert html.status_code == 200
    assert html["Content-Type"] == "text/html; charset=utf-8"
    page = html.content.decode()
    assert "INV-000001" in page and "Amina Njoroge" in page and "3,820.00" in page and "January 2026" in page
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"] == 'inline; filename="INV-000001.pdf"'
    assert accepted_html["Content-Type"].startswith("text/html")
    assert accepted_pdf.content.startswith(b"%PDF")
    assert anything.content.startswith(b"%PDF")


def test_a_document_format_that_is_not_offered_is_refused(client, billed):
    response = client.get(f"{INVOICES}/{billed.pk}/document", {"format": "docx"})

    assert invalid(response) == {"format": ["Choose from html, pdf."]}


def test_a_draft_document_says_draft_and_escapes_what_the_customer_typed(client, company, books):
    sly = CustomerFactory(company=company, name="<script>alert(1)</script> & Co")
    draft = client.post(INVOICES, draft_body(company, sly), format="json").json()

    page = client.get(f"{INVOICES}/{draft['id']}/document", {"format": "html"}).content.decode()
    pdf = client.get(f"{INVOICES}/{draft['id']}/document", {"format": "pdf"})

    assert "DRAFT" in page and f"Draft {draft['id']}" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
    assert pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"] == f'inline; filename="draft-{draft["id"]}.pdf"'


def test_an_invoice_with_many_lines_runs_over_several_pages(client, company, customer, books):
    lines = [{"description": f"Item {n}", "amount": "1.00"} for n in range(120)]
    draft = client.post(INVOICES, draft_body(company, customer, lines=lines), format="json").json()

    pdf = client.get(f"{INVOICES}/{draft['id']}/document", {"format": "pdf"}).content

    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) >= 3


# --- Invoice runs -------------------------------------------------------------------------------


def test_asking_for_a_run_answers_202_and_the_run_reports_what_it_made(client, company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    enrol(CustomerFactory(company=company), fees["english"])

    asked = client.post(RUNS, {"company": company.pk, "cadence": "monthly", "period": "2026-01"}, format="json")

    assert asked.status_code == 202, asked.json()
    body = asked.json()
    assert (body["created"], body["status"], body["run_key"], body["invoice_run"]) == (True, "queued", "2026-01", None)
    assert asked["Location"] == f"{REQUESTS}/{body['run']}"

    execution.run_here(JobRun.objects.get(pk=body["run"]))
    followed = client.get(f"{REQUESTS}/{body['run']}").json()
    record = InvoiceRun.objects.get()
    listed = client.get(RUNS).json()["results"]
    detail = client.get(f"{RUNS}/{record.pk}").json()

    assert (followed["status"], followed["invoice_run"], followed["counts"]["created"]) == ("succeeded", record.pk, 2)
    assert [row["id"] for row in listed] == [record.pk]
    assert {name: detail[name] for name in ("period", "created", "skipped", "notified", "total", "consolidate")} == {
        "period": "2026-01",
        "created": 2,
        "skipped": 0,
        "notified": 2,
        "total": "3820.00",
        "consolidate": True,
    }
    assert (detail["run"]["id"], detail["run"]["status"], detail["run"]["counts"]["created"]) == (
        body["run"],
        "succeeded",
        2,
    )
    assert Invoice.objects.filter(status=InvoiceStatus.OPEN).count() == 2


def test_asking_again_for_the_period_returns_the_same_run(client, company, fees, enrol, customer):
    enrol(customer, fees["english"])
    first = client.post(RUNS, {"company": company.pk, "cadence": "monthly", "period": "2026-01"}, format="json").json()
    execution.run_here(JobRun.objects.get(pk=first["run"]))

    again = client.post(
        RUNS, {"company": company.pk, "cadence": "monthly", "period": "2026-01", "consolidate": False}, format="json"
    )

    assert again.status_code == 200
    assert (again.json()["run"], again.json()["created"], again.json()["status"]) == (first["run"], False, "succeeded")
    assert again.json()["invoice_run"] == InvoiceRun.objects.get().pk
    assert Invoice.objects.count() == 1


def test_a_run_left_as_drafts_and_a_weekly_period(client, company, fees, enrol, customer):
    enrol(customer, fees["club"])

    asked = client.post(
        RUNS, {"company": company.pk, "cadence": "weekly", "period": "2026-W03", "finalise": False}, format="json"
    ).json()
    execution.run_here(JobRun.objects.get(pk=asked["run"]))

    assert asked["run_key"] == "2026-W03"
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.period_start) == (InvoiceStatus.DRAFT, datetime.date(2026, 1, 12))
    assert client.get(RUNS, {"cadence": "weekly"}).json()["results"][0]["notified"] == 0


def test_a_bad_cadence_or_period_is_a_field_error(client, company):
    cases = [
        ({"cadence": "daily", "period": "2026-01"}, ["cadence"]),
        ({"cadence": "monthly", "period": "2026-13"}, ["period"]),
        ({"cadence": "weekly", "period": "2026-01"}, ["period"]),
        ({"cadence": "quarterly", "period": "2026-Q5"}, ["period"]),
        ({"cadence": "annual", "period": "0999"}, ["period"]),
        ({"cadence": "monthly"}, ["period"]),
    ]
    for given, fields in cases:
        assert list(invalid(client.post(RUNS, {"company": company.pk, **given}, format="json"))) == fields, given

    message = invalid(
        client.post(RUNS, {"company": company.pk, "cadence": "weekly", "period": "2026-01"}, format="json")
    )
    assert message == {"period": ["'2026-01' is not a weekly period; write an ISO week YYYY-Www, like 2026-W03"]}
    assert not JobRun.objects.exists()


def test_an_outsider_neither_asks_for_nor_sees_another_companys_runs(
    api, outsider, client, company, customer, fees, enrol
):
    enrol(customer, fees["english"])
    mine = client.post(RUNS, {"company": company.pk, "cadence": "monthly", "period": "2026-01"}, format="json").json()
    execution.run_here(JobRun.objects.get(pk=mine["run"]))
    record = InvoiceRun.objects.get()
    theirs = api.as_user(outsider)

    asked = theirs.post(RUNS, {"company": company.pk, "cadence": "monthly", "period": "2026-02"}, format="json")
    listed = theirs.get(RUNS).json()["results"]

    assert list(invalid(asked)) == ["company"]
    assert listed == []
    assert theirs.get(f"{RUNS}/{record.pk}").status_code == 404
    assert theirs.get(f"{REQUESTS}/{mine['run']}").status_code == 404


def test_staff_who_are_not_members_cannot_ask_for_a_run(api, staff, company):
    response = api.as_user(staff).post(
        RUNS, {"company": company.pk, "cadence": "monthly", "period": "2026-01"}, format="json"
    )

    assert response.status_code == 403
    assert not JobRun.objects.exists()


def test_a_member_of_two_companies_sees_both_runs_and_filters_by_company(api, owner, company, other_company):
    from billing.models import Cadence

    MembershipFactory(user=owner, company=other_company)
    for books in (company, other_company):
        InvoiceRun.objects.create(
            company=books, cadence=Cadence.MONTHLY, period_start=JAN, period_end=JAN.replace(day=31), issue_date=JAN
        )
    client = api.as_user(owner)

    both = client.get(RUNS).json()["results"]
    rival = client.get(RUNS, {"company": "rival"}).json()["results"]

    assert {row["company"] for row in both} == {company.pk, other_company.pk}
    assert [row["company"] for row in rival] == [other_company.pk]
    assert rival[0]["run"] is None


def test_an_amount_beyond_what_a_document_may_hold_is_a_400_not_a_500(client, company, customer, books):
    line = {"description": "Typo", "amount": "90000000000000000", "tax_rate": "100"}

    response = client.post(INVOICES, {"company": company.pk, "customer": customer.pk, "lines": [line]}, format="json")

    assert "amount" in str(invalid(response)["lines"])
    assert not Invoice.objects.exists()
