"""Customers, fee structures and enrolments over /api/v1/billing/: written by members of
the company, read with balances, refused with field messages, and never across companies."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from billing.models import (
    CreditNote,
    Customer,
    Enrolment,
    FeeComponent,
    FeeStructure,
    Invoice,
    InvoiceStatus,
    Payment,
)
from billing.services import invoicing
from billing.services.invoicing import RunSpec
from ledger.models import Account
from ledger.services.chart import load_default_chart
from tests.factories import (
    CustomerFactory,
    EnrolmentFactory,
    FeeStructureFactory,
    MembershipFactory,
)
from tests.unit.billing.conftest import JAN
from tests.unit.billing.helpers import invalid

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 1, 10, 9, 0, tzinfo=datetime.UTC)
CUSTOMERS = "/api/v1/billing/customers"
FEES = "/api/v1/billing/fee-structures"
ENROLMENTS = "/api/v1/billing/enrolments"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


@pytest.fixture
def member_of_both(api, owner, other_company):
    """The owner, also a member of the rival company: one caller who can name both."""
    MembershipFactory(user=owner, company=other_company)
    return api.as_user(owner)


def conflict(response) -> str:
    assert response.status_code == 409, response.content
    return response.json()["error"]["message"]


def issued(customer, total: str, paid: str = "0", credited: str = "0", status=InvoiceStatus.OPEN, **fields) -> Invoice:
    total_, paid_, credited_ = Decimal(total), Decimal(paid), Decimal(credited)
    return Invoice.objects.create(
        company=customer.company,
        customer=customer,
        status=status,
        issue_date=fields.pop("issue_date", JAN),
        due_date=fields.pop("due_date", JAN + datetime.timedelta(days=14)),
        currency="GBP",
        subtotal=total_,
        total=total_,
        paid=paid_,
        credited=credited_,
        due=total_ - paid_ - credited_,
        **fields,
    )


# --- Customers -------------------------------------------------------------------------------


def test_a_member_adds_a_customer_and_reads_it_back(client, company):
    body = {
        "company": company.pk,
        "name": "Baraka Otieno",
        "email": "baraka@example.com",
        "external_ref": "S-1001",
        "credit_limit": "500.00",
        "payment_terms_days": 30,
    }

    created = client.post(CUSTOMERS, body, format="json")
    read = client.get(f"{CUSTOMERS}/{created.json()['id']}")

    assert created.status_code == 201, created.json()
    assert read.json() | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0,
        "company": company.pk,
        "name": "Baraka Otieno",
        "email": "baraka@example.com",
        "external_ref": "S-1001",
        "credit_limit": "500.00",
        "payment_terms_days": 30,
        "portal_user": None,
        "active": True,
        "balance": "0.00",
        "over_credit_limit": False,
        "created_at": "",
        "updated_at": "",
    }


def test_a_customers_balance_is_what_is_due_less_what_is_unallocated(client, company, customer):
    issued(customer, "300.00", paid="100.00")
    issued(customer, "50.00", paid="50.00", status=InvoiceStatus.PAID)
    issued(customer, "999.00", status=InvoiceStatus.DRAFT)
    issued(customer, "70.00", status=InvoiceStatus.VOID)
    Payment.objects.create(
        company=company,
        customer=customer,
        date=JAN,
        amount=Decimal("180.00"),
        currency="GBP",
        allocated=Decimal("150.00"),
        unallocated=Decimal("30.00"),
    )
    CreditNote.objects.create(
        company=company,
        customer=customer,
        date=JAN,
        currency="GBP",
        subtotal=Decimal("20.00"),
        total=Decimal("20.00"),
        unallocated=Decimal("20.00"),
    )
    Customer.objects.filter(pk=customer.pk).update(credit_limit=Decimal("100.00"))

    body = client.get(f"{CUSTOMERS}/{customer.pk}").json()

    assert (body["balance"], body["over_credit_limit"], body["credit_limit"]) == ("150.00", True, "100.00")


def test_the_customer_list_filters_by_search_activity_and_credit_limit(client, company, customer):
    CustomerFactory(company=company, name="Chidi Okafor", external_ref="S-7", active=False)
    over = CustomerFactory(company=company, name="Dana Scully", credit_limit=Decimal("10.00"))
    issued(over, "25.00")

    def names(**query) -> list[str]:
        return [row["name"] for row in client.get(CUSTOMERS, query).json()["results"]]

    assert names() == ["Amina Njoroge", "Chidi Okafor", "Dana Scully"]
    assert names(search="s-7") == ["Chidi Okafor"]
    assert names(search="amina example") == ["Amina Njoroge"]
    assert names(active="false") == ["Chidi Okafor"]
    assert names(over_credit_limit="true") == ["Dana Scully"]
    assert names(over_credit_limit="false", active="true") == ["Amina Njoroge"]


def test_listing_customers_costs_the_same_queries_for_three_or_thirty(client, company, django_assert_num_queries):
    def list_with(count: int) -> None:
        for _ in range(count - Customer.objects.count()):
            customer = CustomerFactory(company=company)
            issued(customer, "10.00")
        with django_assert_num_queries(2):  # the token with its user, the page with the balances
            response = client.get(CUSTOMERS, {"page_size": 100})
        assert len(response.json()["results"]) == count

    list_with(3)
    list_with(30)


def test_an_outsider_neither_sees_nor_changes_a_customer(api, outsider, customer, other_company):
    client = api.as_user(outsider)
    CustomerFactory(company=other_company, name="Their own")

    listed = [row["name"] for row in client.get(CUSTOMERS).json()["results"]]
    opened = client.get(f"{CUSTOMERS}/{customer.pk}")
    changed = client.patch(f"{CUSTOMERS}/{customer.pk}", {"name": "Mine"}, format="json")
    deleted = client.delete(f"{CUSTOMERS}/{customer.pk}")
    invoices = client.get(f"{CUSTOMERS}/{customer.pk}/invoices")

    assert listed == ["Their own"]
    assert [r.status_code for r in (opened, changed, deleted, invoices)] == [404, 404, 404, 404]


def test_a_customer_cannot_be_added_to_a_company_the_caller_is_not_in(client, other_company):
    response = client.post(CUSTOMERS, {"company": other_company.pk, "name": "Sneaky"}, format="json")

    assert invalid(response) == {"company": [f'Invalid pk "{other_company.pk}" - object does not exist.']}
    assert not Customer.objects.exists()


def test_staff_who_are_not_members_read_but_do_not_add(api, staff, company, customer):
    client = api.as_user(staff)

    read = client.get(f"{CUSTOMERS}/{customer.pk}")
    added = client.post(CUSTOMERS, {"company": company.pk, "name": "Staff's"}, format="json")
    changed = client.patch(f"{CUSTOMERS}/{customer.pk}", {"name": "Staff's"}, format="json")

    assert (read.status_code, added.status_code, changed.status_code) == (200, 403, 403)


def test_customer_fields_are_checked(client, company, customer):
    CustomerFactory(company=company, external_ref="S-1")

    floats = client.post(CUSTOMERS, {"company": company.pk, "name": "F", "credit_limit": 10.5}, format="json")
    cents = client.post(CUSTOMERS, {"company": company.pk, "name": "F", "credit_limit": "10.555"}, format="json")
    taken = client.patch(f"{CUSTOMERS}/{customer.pk}", {"external_ref": "S-1"}, format="json")
    terms = client.patch(f"{CUSTOMERS}/{customer.pk}", {"payment_terms_days": 400}, format="json")
    email = client.patch(f"{CUSTOMERS}/{customer.pk}", {"email": "not an address"}, format="json")

    assert list(invalid(floats)) == ["credit_limit"]
    assert invalid(cents) == {"credit_limit": ["GBP amounts have 2 decimal places at most."]}
    assert invalid(taken) == {"external_ref": ["Another customer of acme has it."]}
    assert list(invalid(terms)) == ["payment_terms_days"]
    assert list(invalid(email)) == ["email"]


def test_a_customer_stays_in_its_company(member_of_both, customer, other_company):
    response = member_of_both.patch(f"{CUSTOMERS}/{customer.pk}", {"company": other_company.pk}, format="json")

    assert invalid(response) == {"company": ["It cannot move to another company."]}


def test_a_customer_with_invoices_is_not_deleted(client, company, customer):
    issued(customer, "10.00")
    unused = CustomerFactory(company=company)

    refused = client.delete(f"{CUSTOMERS}/{customer.pk}")
    deleted = client.delete(f"{CUSTOMERS}/{unused.pk}")

    assert "deactivate it instead" in conflict(refused)
    assert "invoices" in conflict(refused)
    assert deleted.status_code == 204
    assert list(Customer.objects.all()) == [customer]


def test_a_customers_invoices_are_listed_newest_first_by_status(client, company, customer):
    older = issued(customer, "10.00", issue_date=JAN)
    newer = issued(customer, "20.00", issue_date=JAN + datetime.timedelta(days=3), status=InvoiceStatus.PAID, paid="20")
    issued(CustomerFactory(company=company), "30.00")

    everything = client.get(f"{CUSTOMERS}/{customer.pk}/invoices").json()
    paid = client.get(f"{CUSTOMERS}/{customer.pk}/invoices", {"status": "paid"}).json()
    bad = client.get(f"{CUSTOMERS}/{customer.pk}/invoices", {"status": "lost"})

    assert [row["id"] for row in everything["results"]] == [newer.pk, older.pk]
    assert everything["results"][0]["total"] == "20.00"
    assert [row["id"] for row in paid["results"]] == [newer.pk]
    assert list(invalid(bad)) == ["status"]


# --- Fee structures ----------------------------------------------------------------------------


def fee_body(company, **fields) -> dict:
    return {
        "company": company.pk,
        "code": "SCI",
        "name": "Science",
        "amount": "300.00",
        "cadence": "monthly",
        "tax_rate": "16",
        "components": [{"name": "Tuition", "amount": "250.00"}, {"name": "Lab", "amount": "50.00"}],
        **fields,
    }


def test_a_fee_structure_is_created_with_its_components(client, company, books):
    response = client.post(FEES, fee_body(company, income_account=books["4200"].pk), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["amount"], body["currency"], body["tax_rate"], body["income_account"]) == (
        "300.00",
        "GBP",
        "16.0000",
        books["4200"].pk,
    )
    assert [(c["position"], c["name"], c["amount"]) for c in body["components"]] == [
        (0, "Tuition", "250.00"),
        (1, "Lab", "50.00"),
    ]


def test_components_replace_the_fees_and_must_add_up(client, company, fees):
    maths = fees["maths"]

    replaced = client.patch(
        f"{FEES}/{maths.pk}",
        {"amount": "2100.00", "components": [{"name": "All in", "amount": "2100.00"}]},
        format="json",
    )
    short = client.patch(f"{FEES}/{maths.pk}", {"components": [{"name": "Half", "amount": "1000.00"}]}, format="json")
    amount_alone = client.patch(f"{FEES}/{maths.pk}", {"amount": "2200.00"}, format="json")

    assert replaced.status_code == 200, replaced.json()
    assert [c["name"] for c in replaced.json()["components"]] == ["All in"]
    assert list(FeeComponent.objects.filter(fee_structure=maths).values_list("name", "amount")) == [
        ("All in", Decimal("2100.000"))
    ]
    assert invalid(short) == {"components": ["They add up to 1000.00, not the amount 2100.00."]}
    assert invalid(amount_alone) == {"components": ["They add up to 2100.00, not the amount 2200.00."]}


def test_fee_structure_fields_are_checked(client, company, books, fees, other_company):
    load_default_chart(other_company)
    rival_sales = Account.objects.get(company=other_company, code="4100")

    cases = {
        "currency": fee_body(company, currency="EUR"),
        "tax_rate": fee_body(company, tax_rate="101"),
        "cadence": fee_body(company, cadence="daily"),
        "code": fee_body(company, code="MATH"),
        "components": fee_body(company, components=[{"name": "One", "amount": "1.00"}]),
        "amount": fee_body(company, amount=300.0),
    }
    for field, body in cases.items():
        assert field in invalid(client.post(FEES, body, format="json")), field

    float_rate = client.post(FEES, fee_body(company, tax_rate=16.5), format="json")
    bank = client.post(FEES, fee_body(company, income_account=books["1100"].pk), format="json")
    rival = client.post(FEES, fee_body(company, income_account=rival_sales.pk), format="json")

    assert invalid(float_rate) == {"tax_rate": ['Send rates as strings ("16.5"): a number with a fraction is a float.']}
    assert invalid(bank) == {"income_account": ["Account 1100 is an asset account; income posts to an income account."]}
    assert invalid(rival) == {"income_account": [f'Invalid pk "{rival_sales.pk}" - object does not exist.']}
    assert FeeStructure.objects.filter(code="SCI").count() == 0


def test_a_fee_structure_that_is_enrolled_on_is_not_deleted(client, company, fees, enrol, customer):
    enrol(customer, fees["maths"])

    refused = client.delete(f"{FEES}/{fees['maths'].pk}")
    deleted = client.delete(f"{FEES}/{fees['english'].pk}")

    assert "enrolments" in conflict(refused)
    assert deleted.status_code == 204


def test_fee_structures_filter_by_cadence_and_stay_in_their_company(client, api, outsider, fees):
    weekly = client.get(FEES, {"cadence": "weekly"}).json()["results"]
    theirs = api.as_user(outsider).get(FEES).json()["results"]

    assert [row["code"] for row in weekly] == ["CLUB"]
    assert theirs == []


# --- Enrolments ----------------------------------------------------------------------------------


def enrolment_body(company, customer, fee, **fields) -> dict:
    return {
        "company": company.pk,
        "customer": customer.pk,
        "fee_structure": fee.pk,
        "start_date": "2026-01-05",
        **fields,
    }


def test_an_enrolment_is_created_without_an_invoice(client, company, customer, fees):
    response = client.post(ENROLMENTS, enrolment_body(company, customer, fees["maths"]), format="json")

    assert response.status_code == 201, response.json()
    assert (response.json()["invoices"], response.json()["end_date"]) == ([], None)
    assert not Invoice.objects.exists()


def test_an_enrolment_invoiced_on_creation_answers_with_its_invoice(client, company, customer, fees):
    body = enrolment_body(company, customer, fees["english"], invoice_on_enrolment=True)

    response = client.post(ENROLMENTS, body, format="json")

    assert response.status_code == 201, response.json()
    invoice = Invoice.objects.get()
    assert response.json()["invoices"] == [invoice.pk]
    assert (invoice.source, invoice.status, invoice.issue_date, invoice.total) == (
        "enrolment",
        InvoiceStatus.OPEN,
        datetime.date(2026, 1, 10),
        Decimal("1500.00"),
    )


def test_an_enrolment_whose_invoice_is_refused_is_not_created(client, company, customer):
    # no chart: the company has no sales account to post the income to
    fee = FeeStructureFactory(company=company, amount="10.00")
    body = enrolment_body(company, customer, fee, invoice_on_enrolment=True)

    response = client.post(ENROLMENTS, body, format="json")

    assert "account" in invalid(response)
    assert not Enrolment.objects.exists()


def test_an_enrolment_ends_after_it_starts(client, company, customer, fees):
    body = enrolment_body(company, customer, fees["maths"], end_date="2026-01-01")

    assert invalid(client.post(ENROLMENTS, body, format="json")) == {
        "end_date": ["It is before the start (2026-01-05)."]
    }


def test_an_enrolment_names_nothing_of_a_company_the_caller_is_not_in(client, company, fees, other_company):
    theirs = CustomerFactory(company=other_company)

    response = client.post(ENROLMENTS, enrolment_body(company, theirs, fees["maths"]), format="json")

    assert invalid(response) == {"customer": [f'Invalid pk "{theirs.pk}" - object does not exist.']}


def test_an_enrolment_names_only_its_own_companys_customer_and_fee(member_of_both, company, other_company):
    theirs = CustomerFactory(company=other_company)
    stranger_fee = FeeStructureFactory(company=other_company)

    mixed = member_of_both.post(ENROLMENTS, enrolment_body(company, theirs, stranger_fee), format="json")

    assert invalid(mixed) == {
        "customer": [f"{theirs} is not acme's."],
        "fee_structure": [f"{stranger_fee} is not acme's."],
    }


def test_an_invoiced_enrolment_keeps_its_customer_and_is_not_deleted(client, company, customer, fees, enrol):
    billed = enrol(customer, fees["maths"])
    invoicing.generate(RunSpec.for_period(company, "monthly", JAN))
    unbilled = enrol(customer, fees["club"], start_date=datetime.date(2027, 1, 1))

    moved = client.patch(f"{ENROLMENTS}/{billed.pk}", {"customer": CustomerFactory(company=company).pk}, format="json")
    ended = client.patch(f"{ENROLMENTS}/{billed.pk}", {"end_date": "2026-06-30"}, format="json")
    refused = client.delete(f"{ENROLMENTS}/{billed.pk}")
    deleted = client.delete(f"{ENROLMENTS}/{unbilled.pk}")

    assert invalid(moved) == {"customer": ["It has been invoiced; end it and enrol anew."]}
    assert (ended.status_code, ended.json()["end_date"]) == (200, "2026-06-30")
    assert "set its end date instead" in conflict(refused)
    assert deleted.status_code == 204


def test_enrolments_filter_by_customer_cadence_and_day(client, company, customer, fees, enrol):
    maths = enrol(customer, fees["maths"], end_date=datetime.date(2025, 12, 31))
    club = enrol(customer, fees["club"])
    other = EnrolmentFactory(company=company, fee_structure=fees["english"])

    def ids(**query) -> list[int]:
        return [row["id"] for row in client.get(ENROLMENTS, query).json()["results"]]

    assert ids(customer=customer.pk) == [maths.pk, club.pk]
    assert ids(cadence="weekly") == [club.pk]
    assert ids(active_on="2026-01-10") == [club.pk, other.pk]


def test_a_component_in_more_places_than_the_currency_has_is_named(client, company):
    body = fee_body(company, components=[{"name": "Tuition", "amount": "299.995"}, {"name": "Lab", "amount": "0.005"}])

    assert invalid(client.post(FEES, body, format="json")) == {
        "components": {
            "0": {"amount": ["GBP amounts have 2 decimal places at most."]},
            "1": {"amount": ["GBP amounts have 2 decimal places at most."]},
        }
    }
