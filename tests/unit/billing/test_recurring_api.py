"""Recurring templates over the API: CRUD with the service's checks as 400s naming the
field, the actions (409 on an impossible move), generate-all, upcoming, history, and
every company's templates kept from every other company."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from billing.models import Generates, Invoice, RecurringTemplate, TemplateStatus
from billing.services import recurring
from tests.factories import CustomerFactory, MembershipFactory
from tests.unit.billing.test_recurring import TemplateFactory, journal

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 1, 20, 12, 0, tzinfo=datetime.UTC)
TEMPLATES = "/api/v1/billing/recurring-templates"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


def invoice_body(company, customer, **fields) -> dict:
    return {
        "company": company.pk,
        "name": "Retainer",
        "frequency": "monthly",
        "amount": "250.00",
        "generates": "invoice",
        "customer": customer.pk,
        "tax_rate": "16",
        "start_date": "2026-01-31",
        **fields,
    }


def fields_of(response) -> dict:
    return response.json()["error"]["fields"]


# --- Creating and changing --------------------------------------------------------------------


def test_a_member_creates_an_invoice_template_active_from_its_start(client, company, books, customer):
    response = client.post(TEMPLATES, invoice_body(company, customer), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["next_generation_date"], body["amount"], body["currency"]) == (
        "active",
        "2026-01-31",
        "250.00",
        "GBP",
    )
    assert (body["customer_name"], body["total_generated"]) == (customer.name, 0)
    assert RecurringTemplate.objects.get().amount == Decimal("250.00")


def test_a_member_creates_a_journal_template(client, company, books):
    body = {
        "company": company.pk,
        "name": "Rent",
        "frequency": "quarterly",
        "amount": "3000",
        "generates": "journal",
        "debit_account": books["6200"].pk,
        "credit_account": books["1100"].pk,
        "start_date": "2026-03-31",
        "max_occurrences": 4,
    }

    response = client.post(TEMPLATES, body, format="json")

    assert response.status_code == 201, response.json()
    assert (response.json()["generates"], response.json()["amount"]) == ("journal", "3000.00")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amount": 250.5}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"customer": None}, "customer"),
        ({"currency": "USD"}, "currency"),
        ({"end_date": "2026-01-01"}, "end_date"),
        ({"frequency": "hourly"}, "frequency"),
        ({"days_ahead": 367}, "days_ahead"),
        ({"max_occurrences": 0}, "max_occurrences"),
        ({"start_date": "31/01/2026"}, "start_date"),
        ({"debit_account": 1}, "debit_account"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, company, books, customer, fields, field):
    response = client.post(TEMPLATES, {**invoice_body(company, customer), **fields}, format="json")

    assert response.status_code == 400, response.json()
    assert field in fields_of(response)
    assert not RecurringTemplate.objects.exists()


def test_a_journal_template_with_one_account_twice_is_a_400(client, company, books):
    body = {
        "company": company.pk,
        "name": "Transfer",
        "frequency": "weekly",
        "amount": "10.00",
        "generates": "journal",
        "debit_account": books["1100"].pk,
        "credit_account": books["1100"].pk,
        "start_date": "2026-02-01",
    }

    response = client.post(TEMPLATES, body, format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"credit_account": ["Debit and credit need two different accounts."]}


def test_another_companys_customer_or_company_is_refused_as_unknown(client, company, other_company, books, customer):
    stranger = CustomerFactory(company=other_company)

    foreign_customer = client.post(TEMPLATES, invoice_body(company, stranger), format="json")
    foreign_company = client.post(TEMPLATES, invoice_body(other_company, stranger), format="json")

    assert foreign_customer.status_code == foreign_company.status_code == 400
    assert "customer" in fields_of(foreign_customer)
    assert "company" in fields_of(foreign_company)


def test_staff_who_are_not_members_read_but_do_not_write(api, staff, company, books, customer):
    template = TemplateFactory(company=company, customer=customer)
    client = api.as_user(staff)

    assert client.get(f"{TEMPLATES}/{template.pk}").status_code == 200
    assert client.post(TEMPLATES, invoice_body(company, customer), format="json").status_code == 403
    assert client.post(f"{TEMPLATES}/{template.pk}/pause").status_code == 403
    assert client.post(f"{TEMPLATES}/generate-all", {"company": company.pk}, format="json").status_code == 403


def test_a_change_keeps_the_schedule_and_state_the_services(client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=datetime.date(2026, 1, 1))
    recurring.generate_due()

    response = client.patch(
        f"{TEMPLATES}/{template.pk}",
        {"name": "Renamed", "frequency": "weekly", "status": "completed", "total_generated": 9},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["name"], body["status"], body["total_generated"], body["next_generation_date"]) == (
        "Renamed",
        "active",
        1,
        "2026-01-08",
    )


def test_a_template_does_not_move_to_another_company(member_of_both, company, other_company, books, customer):
    template = TemplateFactory(company=company, customer=customer)

    response = member_of_both.patch(f"{TEMPLATES}/{template.pk}", {"company": other_company.pk}, format="json")

    assert response.status_code == 400
    assert "company" in fields_of(response)


@pytest.fixture
def member_of_both(api, owner, other_company):
    MembershipFactory(user=owner, company=other_company)
    return api.as_user(owner)


def test_a_cancelled_template_no_longer_changes(client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer)
    recurring.cancel(template)

    response = client.patch(f"{TEMPLATES}/{template.pk}", {"name": "Again"}, format="json")

    assert response.status_code == 409


def test_only_a_template_that_generated_nothing_is_deleted(client, company, books, customer):
    used = TemplateFactory(company=company, customer=customer, start_date=datetime.date(2026, 1, 1))
    fresh = TemplateFactory(company=company, customer=customer, start_date=datetime.date(2026, 6, 1))
    recurring.generate_due()

    refused = client.delete(f"{TEMPLATES}/{used.pk}")
    deleted = client.delete(f"{TEMPLATES}/{fresh.pk}")

    assert (refused.status_code, deleted.status_code) == (409, 204)
    assert "cancel it instead" in refused.json()["error"]["message"]
    assert list(RecurringTemplate.objects.values_list("pk", flat=True)) == [used.pk]


# --- Reading -------------------------------------------------------------------------------------


def test_the_list_shows_the_callers_companies_only(api, client, outsider, company, other_company, books, customer):
    mine = TemplateFactory(company=company, customer=customer, name="Mine")
    theirs = TemplateFactory(company=other_company, name="Theirs")

    own = client.get(TEMPLATES).json()["results"]
    other = api.as_user(outsider).get(TEMPLATES).json()["results"]

    assert [t["id"] for t in own] == [mine.pk]
    assert [t["id"] for t in other] == [theirs.pk]
    assert api.as_user(outsider).get(f"{TEMPLATES}/{mine.pk}").status_code == 404


def test_the_list_filters_by_status_and_kind(client, company, books, customer):
    invoice = TemplateFactory(company=company, customer=customer)
    rent = journal(company, books)
    recurring.pause(rent)

    paused = client.get(TEMPLATES, {"status": "paused"}).json()["results"]
    invoices = client.get(TEMPLATES, {"generates": "invoice"}).json()["results"]

    assert [t["id"] for t in paused] == [rent.pk]
    assert [t["id"] for t in invoices] == [invoice.pk]


def test_anonymous_callers_are_refused(client, api):
    api.credentials()
    assert api.get(TEMPLATES).status_code == 401


# --- Actions -------------------------------------------------------------------------------------


def test_pause_resume_and_cancel_move_the_status(client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=datetime.date(2026, 1, 1))

    paused = client.post(f"{TEMPLATES}/{template.pk}/pause")
    resumed = client.post(f"{TEMPLATES}/{template.pk}/resume")
    cancelled = client.post(f"{TEMPLATES}/{template.pk}/cancel")

    assert [r.status_code for r in (paused, resumed, cancelled)] == [200, 200, 200]
    assert paused.json()["status"] == "paused"
    # resumed on 20 January: the 1 January occurrence missed while paused is skipped
    assert (resumed.json()["status"], resumed.json()["next_generation_date"]) == ("active", "2026-02-01")
    assert (cancelled.json()["status"], cancelled.json()["next_generation_date"]) == ("cancelled", None)


@pytest.mark.parametrize("action", ["resume", "pause"])
def test_moving_a_cancelled_template_is_a_409(client, company, books, customer, action):
    template = TemplateFactory(company=company, customer=customer)
    recurring.cancel(template)

    response = client.post(f"{TEMPLATES}/{template.pk}/{action}")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    template.refresh_from_db()
    assert template.status == TemplateStatus.CANCELLED


def test_generate_all_generates_the_companys_due_occurrences_by_hand(client, company, books, customer):
    TemplateFactory(company=company, customer=customer, start_date=datetime.date(2026, 1, 1), auto_generate=False)
    journal(company, books, start_date=datetime.date(2026, 1, 15))

    response = client.post(f"{TEMPLATES}/generate-all", {"company": company.pk}, format="json")
    again = client.post(f"{TEMPLATES}/generate-all", {"company": company.pk}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["failed"], len(body["invoices"]), len(body["journal_entries"])) == (2, 0, 1, 1)
    assert again.json()["created"] == 0
    assert Invoice.objects.count() == 1


def test_generate_all_reports_what_the_books_refused(client, company, books, customer):
    from ledger.models import Account

    refused = TemplateFactory(company=company, customer=customer, income_account=books["4200"])
    Account.objects.filter(pk=books["4200"].pk).update(is_active=False)

    response = client.post(f"{TEMPLATES}/generate-all", {"company": company.pk}, format="json")

    assert response.status_code == 200
    assert response.json()["failed"] == 1
    assert list(response.json()["errors"]) == [str(refused.pk)]


@pytest.mark.parametrize("body", [{}, {"company": 999999}, {"company": "nope"}])
def test_generate_all_needs_one_of_the_callers_companies(client, body):
    response = client.post(f"{TEMPLATES}/generate-all", body, format="json")

    assert response.status_code == 400
    assert "company" in fields_of(response)


def test_upcoming_lists_the_next_days_occurrences(client, company, books, customer):
    TemplateFactory(company=company, customer=customer, start_date=datetime.date(2026, 1, 25), amount=Decimal("99"))
    journal(company, books, frequency="weekly", start_date=datetime.date(2026, 1, 21), days_ahead=1)

    response = client.get(f"{TEMPLATES}/upcoming", {"days": 7, "company": company.slug})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["today"], body["until"], body["truncated"]) == ("2026-01-20", "2026-01-27", False)
    assert [(o["date"], o["generates"], o["amount"], o["generate_on"]) for o in body["occurrences"]] == [
        ("2026-01-21", Generates.JOURNAL, "1200.00", "2026-01-20"),
        ("2026-01-25", Generates.INVOICE, "99.00", "2026-01-25"),
    ]


@pytest.mark.parametrize("days", ["0", "367", "soon"])
def test_upcoming_refuses_days_outside_one_to_366(client, company, days):
    response = client.get(f"{TEMPLATES}/upcoming", {"days": days})

    assert response.status_code == 400
    assert "days" in fields_of(response)


def test_upcoming_of_another_company_is_refused(client, other_company):
    response = client.get(f"{TEMPLATES}/upcoming", {"company": other_company.pk})

    assert response.status_code == 400
    assert "company" in fields_of(response)


def test_history_lists_the_generations_with_invoice_numbers_newest_first(client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=datetime.date(2025, 12, 1))
    recurring.generate_due()

    response = client.get(f"{TEMPLATES}/{template.pk}/history")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["occurrence"], r["occurrence_date"], r["invoice_number"], r["manual"]) for r in rows] == [
        (2, "2026-01-01", "INV-000002", False),
        (1, "2025-12-01", "INV-000001", False),
    ]
    assert rows[0]["journal_entry"] is None


def test_history_of_another_companys_template_is_not_found(api, outsider, company, books, customer):
    template = TemplateFactory(company=company, customer=customer)

    assert api.as_user(outsider).get(f"{TEMPLATES}/{template.pk}/history").status_code == 404
