"""Payments, credit notes and voiding over /api/v1/billing/, and the admin pages that record
the same documents through the same services: scoped to the caller's companies, 400s that
name the fields, 409s for states that refuse, and nothing written by a refusal."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from billing.models import (
    CreditAllocation,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
)
from billing.services import finalising, settlement
from ledger.models import EntryStatus, JournalEntry
from ledger.services import closing
from ledger.services.chart import load_default_chart
from tests.factories import CustomerFactory, MembershipFactory
from tests.unit.billing.conftest import JAN
from tests.unit.billing.helpers import invalid

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 2, 20, 9, 0, tzinfo=datetime.UTC)
FEB = datetime.date(2026, 2, 1)
PAYMENTS = "/api/v1/billing/payments"
CREDIT_NOTES = "/api/v1/billing/credit-notes"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


@pytest.fixture
def issue(company, customer, books):
    """``issue(amount, who=customer, issue=JAN, days=14, draft=False)``: a finalised invoice."""

    def make(amount="100.00", *, who=None, issue=JAN, days=14, draft=False, where=None) -> Invoice:
        where = where or company
        total = Decimal(amount)
        invoice = Invoice.objects.create(
            company=where,
            customer=who or customer,
            issue_date=issue,
            due_date=issue + datetime.timedelta(days=days),
            currency=where.base_currency,
            subtotal=total,
            total=total,
            due=total,
        )
        sales = books["4100"] if where == company else where.accounts.get(code="4100")
        InvoiceLine.objects.create(invoice=invoice, description="Fees", amount=total, total=total, income_account=sales)
        if not draft:
            finalising.finalise(where, [invoice.pk], notify=False)
        invoice.refresh_from_db()
        return invoice

    return make


@pytest.fixture
def rival(other_company):
    """The other company, with its books and a customer."""
    load_default_chart(other_company)
    return CustomerFactory(company=other_company)


def conflict(response) -> str:
    assert response.status_code == 409, response.content
    return response.json()["error"]["message"]


def payment_body(company, customer, amount="100.00", **fields) -> dict:
    return {"company": company.pk, "customer": customer.pk, "date": "2026-02-01", "amount": amount, **fields}


def pay(company, customer, amount="100.00", **options) -> Payment:
    return settlement.record_payment(company, customer, date=FEB, amount=Decimal(amount), **options)


# --- Payments -----------------------------------------------------------------------------


def test_recording_a_payment_posts_it_and_answers_with_its_allocations(client, company, customer, issue):
    invoice = issue("100.00")

    response = client.post(
        PAYMENTS,
        payment_body(company, customer, "150", allocations=[{"invoice": invoice.pk, "amount": "100.00"}]),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    payment = Payment.objects.get()
    assert body["id"] == payment.pk
    assert (body["amount"], body["allocated"], body["unallocated"]) == ("150.00", "100.00", "50.00")
    assert (body["method"], body["currency"], body["created_by"]) == ("bank_transfer", "GBP", "owner")
    assert body["customer_name"] == customer.name
    assert body["allocations"] == [
        {
            "id": PaymentAllocation.objects.get().pk,
            "invoice": invoice.pk,
            "invoice_number": invoice.number,
            "amount": "100.00",
            "date": "2026-02-01",
            "created_at": body["allocations"][0]["created_at"],
        }
    ]
    assert body["journal_entry"] == payment.journal_entry_id
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID


def test_a_payment_with_allocate_auto_settles_the_oldest_due_first(client, company, customer, issue):
    later, sooner = issue("100.00", days=30), issue("100.00", days=7)

    response = client.post(PAYMENTS, payment_body(company, customer, "120.00", allocate="auto"), format="json")

    assert response.status_code == 201, response.content
    assert [(a["invoice"], a["amount"]) for a in response.json()["allocations"]] == [
        (sooner.pk, "100.00"),
        (later.pk, "20.00"),
    ]


def test_a_retried_payment_answers_200_with_the_payment_already_recorded(client, company, customer, books):
    body = payment_body(company, customer, external_id="mpesa:QK12")

    first = client.post(PAYMENTS, body, format="json")
    again = client.post(PAYMENTS, body, format="json")
    other = client.post(PAYMENTS, {**body, "amount": "99.00"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert "whose amount differ" in conflict(other)
    assert Payment.objects.count() == 1


NOT_AN_ID = "Incorrect type. Expected pk value, received str."
NO_SUCH = f'Invalid pk "{2**70}" - object does not exist.'
MISSING = {"invoice": ["This field is required."]}
GARBLED = {"invoice": [NOT_AN_ID], "amount": ["This field is required."]}
EITHER = 'Give "allocations" or "allocate": "auto", not both.'


@pytest.mark.parametrize(
    ("fields", "wrong"),
    [
        ({"amount": 12.5}, {"amount": ['Send amounts as strings ("12.30"): a number with a fraction loses cents.']}),
        ({"amount": "-5.00"}, {"amount": ["The amount must be more than zero."]}),
        ({"amount": "1.005"}, {"amount": ["The amount 1.005 has more decimal places than GBP allows (2)."]}),
        ({"amount": "lots"}, {"amount": ["A valid number is required."]}),
        ({"currency": "EUR"}, {"currency": ["The company's books are kept in GBP; 'EUR' is not."]}),
        ({"date": "1800-01-01"}, {"date": ["1800-01-01 is outside the years the books keep (1900 to 2999)."]}),
        ({"date": "2026-02-30"}, {"date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
        ({"method": "barter"}, {"method": ['"barter" is not a valid choice.']}),
        ({"customer": "x"}, {"customer": [NOT_AN_ID]}),
        ({"customer": 2**70}, {"customer": [NO_SUCH]}),
        ({"allocate": "all"}, {"allocate": ['"all" is not a valid choice.']}),
        ({"allocate": "auto", "allocations": []}, {"allocate": [EITHER]}),
        ({"allocations": [{"invoice": 2**70, "amount": "1.00"}]}, {"allocations": {"0": {"invoice": [NO_SUCH]}}}),
        ({"allocations": [{"amount": "1.00"}, {"invoice": "x"}]}, {"allocations": {"0": MISSING, "1": GARBLED}}),
        ({"reference": "r" * 101}, {"reference": ["Ensure this field has no more than 100 characters."]}),
    ],
)  # fmt: skip
def test_bad_payment_input_answers_400_with_field_messages(client, company, customer, books, fields, wrong):
    response = client.post(PAYMENTS, {**payment_body(company, customer), **fields}, format="json")

    assert invalid(response) == wrong
    assert not Payment.objects.exists() and not JournalEntry.objects.exists()


def test_a_payment_missing_its_fields_names_each(client):
    assert set(invalid(client.post(PAYMENTS, {}, format="json"))) == {"company", "customer", "date", "amount"}
    assert invalid(client.post(PAYMENTS, [], format="json")) == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


def test_allocations_the_service_refuses_answer_400_and_write_nothing(client, company, customer, issue):
    invoice, theirs = issue("100.00"), issue("100.00", who=CustomerFactory(company=company))
    body = payment_body(
        company,
        customer,
        "500.00",
        allocations=[
            {"invoice": invoice.pk, "amount": "150.00"},
            {"invoice": theirs.pk, "amount": "10.00"},
            {"invoice": invoice.pk, "amount": "1.00", "date": "2026-01-15"},
        ],
    )

    response = client.post(PAYMENTS, body, format="json")

    assert invalid(response) == {
        "allocations": [
            f"allocation 1: 150.00 is more than invoice {invoice.number}'s due of 100.00.",
            f"allocation 2: invoice {theirs.number} is another customer's.",
            "allocation 3: the date 2026-01-15 is before the payment (2026-02-01) or the invoice (2026-01-01); "
            "the earliest is 2026-02-01.",
        ]
    }
    assert not Payment.objects.exists() and not JournalEntry.objects.filter(source_id__startswith="payment").exists()


def test_settling_a_void_or_draft_invoice_answers_409(client, company, customer, issue):
    void = settlement.void_invoice(issue("100.00"), date=FEB)
    draft = issue("100.00", draft=True)

    for invoice in (void, draft):
        body = payment_body(company, customer, allocations=[{"invoice": invoice.pk, "amount": "10.00"}])
        assert "only open invoices are settled" in conflict(client.post(PAYMENTS, body, format="json"))

    assert not Payment.objects.exists()


def test_a_payment_into_a_closed_period_answers_400_and_writes_nothing(client, company, customer, issue):
    issue("100.00")
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    response = client.post(PAYMENTS, payment_body(company, customer, date="2026-01-20"), format="json")

    assert "accepts no postings" in invalid(response)["date"][0]
    assert not Payment.objects.exists()


def test_another_companys_customer_and_invoice_do_not_exist_for_the_caller(client, company, customer, rival, issue):
    theirs = issue("10.00", who=rival, where=rival.company)

    by_customer = client.post(PAYMENTS, payment_body(company, rival), format="json")
    by_invoice = client.post(
        PAYMENTS,
        payment_body(company, customer, allocations=[{"invoice": theirs.pk, "amount": "1.00"}]),
        format="json",
    )
    into_theirs = client.post(PAYMENTS, payment_body(rival.company, rival), format="json")

    assert invalid(by_customer) == {"customer": [f'Invalid pk "{rival.pk}" - object does not exist.']}
    assert invalid(by_invoice) == {
        "allocations": {"0": {"invoice": [f'Invalid pk "{theirs.pk}" - object does not exist.']}}
    }
    assert invalid(into_theirs) == {
        "company": [f'Invalid pk "{rival.company.pk}" - object does not exist.'],
        "customer": [f'Invalid pk "{rival.pk}" - object does not exist.'],
    }


def test_a_member_of_two_companies_is_told_which_company_a_customer_is_in(client, owner, company, rival, books):
    MembershipFactory(user=owner, company=rival.company)

    response = client.post(PAYMENTS, payment_body(company, rival), format="json")

    assert invalid(response) == {"customer": [f"{rival} is not acme's."]}


def test_payments_are_listed_newest_first_and_filtered(client, company, customer, issue, rival):
    other = CustomerFactory(company=company)
    invoice = issue("100.00")
    first = pay(company, customer, "100.00", allocations=[(invoice, "100.00")])
    second = settlement.record_payment(company, other, date=datetime.date(2026, 2, 5), amount=Decimal("5.00"))
    third = settlement.record_payment(company, customer, date=datetime.date(2026, 2, 9), amount=Decimal("7.00"))
    pay(rival.company, rival)  # another company's: never listed

    def ids(**query) -> list[int]:
        response = client.get(PAYMENTS, query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [third.pk, second.pk, first.pk]
    assert ids(customer=customer.pk) == [third.pk, first.pk]
    assert ids(date_from="2026-02-02", date_to="2026-02-05") == [second.pk]
    assert ids(unallocated="true") == [third.pk, second.pk]
    assert ids(unallocated="false") == [first.pk]
    assert ids(company="acme", method="cash") == []
    page = client.get(PAYMENTS, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert [row["id"] for row in client.get(page["next"]).json()["results"]] == [first.pk]
    assert invalid(client.get(PAYMENTS, {"customer": rival.pk})) == {
        "customer": ["Select a valid choice. That choice is not one of the available choices."]
    }
    assert set(invalid(client.get(PAYMENTS, {"date_from": "soon", "unallocated": "maybe"}))) == {"date_from"}


def test_listing_payments_takes_the_same_queries_however_many(
    client, company, customer, issue, django_assert_num_queries
):
    invoices = [issue("10.00") for _ in range(6)]
    pay(company, customer, "20.00", allocations=[(invoices[0], "10.00"), (invoices[1], "10.00")])
    client.get(PAYMENTS)  # the token and the session warmed

    # user by token, payments, their allocations with invoices
    with django_assert_num_queries(3):
        assert len(client.get(PAYMENTS).json()["results"]) == 1
    for invoice in invoices[2:]:
        pay(company, customer, "10.00", allocations=[(invoice, "10.00")])
    with django_assert_num_queries(3):
        assert len(client.get(PAYMENTS).json()["results"]) == 5


def test_a_payment_is_read_with_its_allocations_by_members_only(client, api, outsider, company, customer, issue):
    invoice = issue("100.00")
    payment = pay(company, customer, "40.00", allocations=[(invoice, "40.00")])

    mine = client.get(f"{PAYMENTS}/{payment.pk}")
    theirs = api.as_user(outsider).get(f"{PAYMENTS}/{payment.pk}")

    assert mine.status_code == 200
    assert [(a["invoice"], a["amount"]) for a in mine.json()["allocations"]] == [(invoice.pk, "40.00")]
    assert theirs.status_code == 404


def test_allocate_settles_invoices_with_what_is_left(client, company, customer, issue):
    first, second, third = issue("30.00"), issue("30.00"), issue("30.00")
    payment = pay(company, customer, "100.00")
    url = f"{PAYMENTS}/{payment.pk}/allocate"

    listed = client.post(url, {"allocations": [{"invoice": second.pk, "amount": "10.00"}]}, format="json")
    auto = client.post(url, {"allocate": "auto"}, format="json")
    nothing = client.post(url, {}, format="json")
    too_much = client.post(url, {"allocations": [{"invoice": second.pk, "amount": "1.00"}]}, format="json")

    assert listed.status_code == 200 and listed.json()["unallocated"] == "90.00"
    assert auto.status_code == 200
    assert [(a["invoice"], a["amount"]) for a in auto.json()["allocations"]] == [
        (second.pk, "10.00"),
        (first.pk, "30.00"),
        (second.pk, "20.00"),
        (third.pk, "30.00"),
    ]
    assert auto.json()["unallocated"] == "10.00"
    assert invalid(nothing) == {"allocations": ['Give at least one, or "allocate": "auto".']}
    assert "only open invoices are settled" in conflict(too_much)


def test_unallocate_takes_an_allocation_back(client, company, customer, issue):
    invoice = issue("100.00")
    payment = pay(company, customer, "100.00", allocations=[(invoice, "100.00")])
    other = pay(company, customer, "1.00")
    allocation = PaymentAllocation.objects.get()

    wrong_document = client.post(f"{PAYMENTS}/{other.pk}/unallocate", {"allocation": allocation.pk}, format="json")
    response = client.post(f"{PAYMENTS}/{payment.pk}/unallocate", {"allocation": allocation.pk}, format="json")

    assert invalid(wrong_document) == {"allocation": [f"Allocation {allocation.pk} is not this document's."]}
    assert response.status_code == 200
    assert (response.json()["unallocated"], response.json()["allocations"]) == ("100.00", [])
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.OPEN


def test_staff_read_every_company_but_change_only_their_own(api, staff, company, customer, issue):
    invoice = issue("100.00")
    payment = pay(company, customer)
    client = api.as_user(staff)

    listed = client.get(PAYMENTS)
    allocated = client.post(f"{PAYMENTS}/{payment.pk}/allocate", {"allocate": "auto"}, format="json")
    voided = client.post(f"/api/v1/billing/invoices/{invoice.pk}/void", {}, format="json")
    recorded = client.post(PAYMENTS, payment_body(company, customer), format="json")

    assert [row["id"] for row in listed.json()["results"]] == [payment.pk]
    assert (allocated.status_code, voided.status_code, recorded.status_code) == (403, 403, 403)
    assert not PaymentAllocation.objects.exists()


def test_anonymous_callers_are_refused(api, company, customer, books):
    payment = pay(company, customer)

    for url in (PAYMENTS, f"{PAYMENTS}/{payment.pk}", CREDIT_NOTES, f"{PAYMENTS}/{payment.pk}/allocate"):
        assert api.get(url).status_code == 401
        assert api.post(url, {}, format="json").status_code == 401


# --- Credit notes -------------------------------------------------------------------------


def credit_body(company, customer, subtotal="50.00", **fields) -> dict:
    return {"company": company.pk, "customer": customer.pk, "date": "2026-02-01", "subtotal": subtotal, **fields}


def test_a_credit_note_on_an_invoice_is_numbered_posted_and_allocated(client, company, customer, issue):
    invoice = issue("100.00")

    response = client.post(
        CREDIT_NOTES,
        credit_body(company, customer, "100.00", tax="16.00", invoice=invoice.pk, reason="Course cancelled"),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["number"], body["total"], body["allocated"], body["unallocated"]) == (
        "CN-000001",
        "116.00",
        "100.00",
        "16.00",
    )
    assert (body["invoice"], body["invoice_number"], body["reason"]) == (invoice.pk, invoice.number, "Course cancelled")
    assert [(a["invoice"], a["amount"]) for a in body["allocations"]] == [(invoice.pk, "100.00")]
    assert Invoice.objects.get(pk=invoice.pk).credited == Decimal("100.00")


def test_a_credit_note_left_unallocated_is_allocated_later(client, company, customer, issue):
    invoice = issue("100.00")
    created = client.post(
        CREDIT_NOTES, credit_body(company, customer, "40.00", invoice=invoice.pk, allocate=False), format="json"
    )
    url = f"{CREDIT_NOTES}/{created.json()['id']}"

    allocated = client.post(f"{url}/allocate", {"allocate": "auto"}, format="json")
    taken_back = client.post(f"{url}/unallocate", {"allocation": CreditAllocation.objects.get().pk}, format="json")

    assert created.json()["allocations"] == []
    assert allocated.json()["unallocated"] == "0.00"
    assert taken_back.json()["unallocated"] == "40.00"
    assert client.get(CREDIT_NOTES, {"invoice": invoice.pk}).json()["results"][0]["number"] == "CN-000001"


@pytest.mark.parametrize(
    ("fields", "wrong"),
    [
        ({"subtotal": "0.00"}, {"subtotal": ["A credit note credits something: its total must be positive."]}),
        ({"subtotal": 5.5}, {"subtotal": ['Send amounts as strings ("12.30"): a number with a fraction loses cents.']}),
        ({"tax": "-1.00"}, {"tax": ["The tax must not be negative."]}),
        ({"date": "3000-01-01"}, {"date": ["3000-01-01 is outside the years the books keep (1900 to 2999)."]}),
        ({"reason": "r" * 501}, {"reason": ["Ensure this field has no more than 500 characters."]}),
        ({"invoice": 2**62}, {"invoice": [f'Invalid pk "{2**62}" - object does not exist.']}),
    ],
)  # fmt: skip
def test_bad_credit_note_input_answers_400(client, company, customer, books, fields, wrong):
    assert invalid(client.post(CREDIT_NOTES, credit_body(company, customer, **fields), format="json")) == wrong
    assert not CreditNote.objects.exists()


def test_a_credit_note_reduces_an_income_account_of_the_company(client, company, customer, books, rival):
    bank = client.post(CREDIT_NOTES, credit_body(company, customer, income_account=books["1100"].pk), format="json")
    theirs = rival.company.accounts.get(code="4200")
    elsewhere = client.post(CREDIT_NOTES, credit_body(company, customer, income_account=theirs.pk), format="json")
    other = client.post(CREDIT_NOTES, credit_body(company, customer, income_account=books["4200"].pk), format="json")

    assert list(invalid(bank)) == ["income_account"]
    assert invalid(elsewhere) == {"income_account": [f'Invalid pk "{theirs.pk}" - object does not exist.']}
    assert other.status_code == 201 and other.json()["income_account"] == books["4200"].pk


def test_crediting_a_void_invoice_answers_409(client, company, customer, issue):
    void = settlement.void_invoice(issue("100.00"), date=FEB)

    response = client.post(CREDIT_NOTES, credit_body(company, customer, invoice=void.pk), format="json")

    assert "only a finalised invoice is credited" in conflict(response)
    assert not CreditNote.objects.exists()


def test_credit_notes_are_scoped_to_the_callers_companies(client, api, outsider, company, customer, books, rival):
    mine = settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("5.00"))
    settlement.record_credit_note(rival.company, rival, date=FEB, subtotal=Decimal("5.00"))

    listed = client.get(CREDIT_NOTES).json()["results"]
    opened = api.as_user(outsider).get(f"{CREDIT_NOTES}/{mine.pk}")

    assert [row["id"] for row in listed] == [mine.pk]
    assert listed[0]["subtotal"] == "5.00"
    assert opened.status_code == 404


# --- Voiding ------------------------------------------------------------------------------


def void_url(invoice) -> str:
    return f"/api/v1/billing/invoices/{invoice.pk}/void"


def test_voiding_an_invoice_reverses_it_and_answers_with_the_invoice(client, company, issue):
    invoice = issue("100.00")

    response = client.post(void_url(invoice), {"date": "2026-02-01", "reason": "Billed twice"}, format="json")
    again = client.post(void_url(invoice), {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["void_date"], body["void_reason"]) == ("void", "2026-02-01", "Billed twice")
    assert JournalEntry.objects.get(pk=body["void_entry"]).reverses_id == invoice.journal_entry_id
    assert JournalEntry.objects.get(pk=invoice.journal_entry_id).status == EntryStatus.REVERSED
    assert again.status_code == 200 and again.json() == body


def test_voiding_by_default_is_dated_the_companys_today(client, issue):
    response = client.post(void_url(issue("100.00")), {}, format="json")

    assert response.json()["void_date"] == "2026-02-20"


def test_voiding_a_settled_invoice_answers_409(client, company, customer, issue):
    invoice = issue("100.00")
    pay(company, customer, "10.00", allocations=[(invoice, "10.00")])

    response = client.post(void_url(invoice), {}, format="json")

    assert "credit it or remove its allocations first" in conflict(response)
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.OPEN


def test_bad_void_input_answers_400(client, issue):
    invoice = issue("100.00")

    early = client.post(void_url(invoice), {"date": "2025-12-31"}, format="json")
    garbled = client.post(void_url(invoice), {"date": "yesterday", "reason": "r" * 501}, format="json")

    assert invalid(early) == {"date": ["An invoice is not voided before its issue date, 2026-01-01."]}
    assert set(invalid(garbled)) == {"date", "reason"}
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.OPEN


def test_another_companys_invoice_cannot_be_voided(api, outsider, issue):
    invoice = issue("100.00")

    response = api.as_user(outsider).post(void_url(invoice), {}, format="json")

    assert response.status_code == 404
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.OPEN


# --- Admin --------------------------------------------------------------------------------


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:billing_{model._meta.model_name}_{view}", args=args)


def act(admin_client, model, action: str, *objects):
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    return admin_client.post(admin_url(model, "changelist"), data, follow=True)


def messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_admin_records_a_payment_through_the_service(admin_client, company, customer, books):
    form = {
        "company": company.pk,
        "customer": customer.pk,
        "date": "2026-02-01",
        "amount": "25.00",
        "method": "cash",
        "reference": "Desk",
        "external_id": "",
    }

    response = admin_client.post(admin_url(Payment, "add"), form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    payment = Payment.objects.get()
    assert (payment.amount, payment.unallocated, payment.method) == (Decimal("25.00"), Decimal("25.00"), "cash")
    assert payment.journal_entry is not None
    assert admin_client.get(admin_url(Payment, "change", payment.pk)).status_code == 200
    assert admin_client.get(admin_url(Payment, "changelist")).status_code == 200


def test_the_admin_shows_what_the_service_refuses_on_the_form(admin_client, company, books, rival):
    form = {"company": company.pk, "customer": rival.pk, "date": "2026-02-01", "amount": "25.005", "method": "cash"}

    response = admin_client.post(admin_url(Payment, "add"), form)

    errors = response.context["adminform"].form.errors
    assert errors["amount"] == ["The amount 25.005 has more decimal places than GBP allows (2)."]
    assert errors["customer"] == [f"Customer {rival.pk} does not exist."]
    assert not Payment.objects.exists() and not JournalEntry.objects.exists()


def test_the_admin_records_a_credit_note_on_an_invoice(admin_client, company, customer, issue):
    invoice = issue("100.00")
    form = {
        "company": company.pk,
        "customer": customer.pk,
        "date": "2026-02-01",
        "invoice": invoice.pk,
        "reason": "Goodwill",
        "subtotal": "30.00",
        "tax": "0",
        "allocate": "on",
    }

    response = admin_client.post(admin_url(CreditNote, "add"), form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    note = CreditNote.objects.get()
    assert (note.number, note.allocated) == ("CN-000001", Decimal("30.00"))
    assert admin_client.get(admin_url(CreditNote, "change", note.pk)).status_code == 200


def test_admin_actions_allocate_and_take_back_through_the_service(admin_client, company, customer, issue):
    invoice = issue("60.00")
    payment = pay(company, customer, "60.00")

    spare = pay(company, customer, "1.00")

    allocated = act(admin_client, Payment, "allocate_oldest_first", payment, spare)
    allocation = PaymentAllocation.objects.get()
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    taken = act(admin_client, PaymentAllocation, "take_back", allocation)

    assert messages(allocated) == ["Allocate: 1 done, 1 with nothing to do"]
    assert messages(taken) == ["Take back: 1 done"]
    assert not PaymentAllocation.objects.exists()
    assert Invoice.objects.get(pk=invoice.pk).due == Decimal("60.00")
    assert admin_client.get(admin_url(PaymentAllocation, "changelist")).status_code == 200
    assert admin_client.get(admin_url(CreditAllocation, "changelist")).status_code == 200
