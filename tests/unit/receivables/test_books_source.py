"""Billing's books as a source: what counts at R, and the report's total reconciling to the
receivables control account on every date."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from billing.services import settlement
from receivables import engine
from receivables.services import reports
from receivables.sources import books as source
from tests.factories import CustomerFactory
from tests.unit.receivables.conftest import JAN

pytestmark = pytest.mark.django_db

D = Decimal


def day(n: int) -> datetime.date:
    return JAN + datetime.timedelta(days=n)


@pytest.fixture
def history(company, customer, make_invoice):
    """Two customers: invoices, a part payment, a credit note, an unallocated payment, an
    allocation after the first, and a void."""
    other = CustomerFactory(company=company, name="Baraka Otieno")
    first = make_invoice("100.00", issue=day(0))
    second = make_invoice("250.00", issue=day(10), days=30)
    third = make_invoice("80.00", issue=day(5), who=other)
    voided = make_invoice("40.00", issue=day(2), who=other)
    settlement.void_invoice(voided, date=day(20))
    payment = settlement.record_payment(company, customer, date=day(12), amount=D("60.00"))
    settlement.allocate_payment(payment, [(first, D("60.00"), day(15))])
    settlement.record_credit_note(company, other, date=day(8), subtotal=D("30.00"), invoice=third)
    settlement.record_payment(company, other, date=day(25), amount=D("15.00"))
    return {"first": first, "second": second, "third": third, "voided": voided, "other": other}


def aged(company, as_of: datetime.date) -> engine.Report:
    docs, allocations = source.documents(company, as_of)
    return engine.age(docs, allocations, engine.Options(as_of))


@pytest.mark.parametrize("offset", [0, 2, 5, 8, 11, 12, 14, 15, 19, 20, 25, 40])
def test_the_report_total_equals_the_control_account_on_every_date(company, history, offset):
    as_of = day(offset)

    report = aged(company, as_of)

    total = sum((row.total for row in report.rows), D(0))
    line = source.reconciliation(company, as_of, total)
    assert line["reconciled"], line
    assert D(line["control_balance"]) == total


def test_an_allocation_after_r_leaves_the_payment_as_a_credit_and_the_invoice_open(company, customer, history):
    report = aged(company, day(13))

    row = next(row for row in report.rows if row.contact == customer.name)
    amounts = {item.id: item.amount for item in row.items}
    assert amounts[f"invoice:{history['first'].pk}"] == D("100.00")
    assert amounts[f"payment:{history['first'].payment_allocations.get().payment_id}"] == D("-60.00")


def test_a_voided_invoice_counts_until_its_void_date(company, history):
    voided = f"invoice:{history['voided'].pk}"

    before = {item.id for row in aged(company, day(19)).rows for item in row.items}
    after = {item.id for row in aged(company, day(20)).rows for item in row.items}

    assert voided in before and voided not in after


def test_a_credit_note_allocated_on_its_date_settles_its_invoice(company, history):
    report = aged(company, day(8))

    row = next(row for row in report.rows if row.contact == "Baraka Otieno")
    assert {item.id: item.amount for item in row.items}[f"invoice:{history['third'].pk}"] == D("50.00")


def test_loading_a_companys_books_takes_a_fixed_number_of_queries(
    company, history, make_invoice, django_assert_num_queries
):
    with django_assert_num_queries(5):
        source.documents(company, day(40))
    for n in range(10):
        make_invoice("1.00", issue=day(n))
    with django_assert_num_queries(5):
        source.documents(company, day(40))


def test_the_fingerprint_changes_when_anything_that_ages_changes(company, customer, history):
    before = source.fingerprint(company)
    allocation = settlement.allocate_payment(
        settlement.record_payment(company, customer, date=day(30), amount=D("5.00")), [(history["second"], D("5.00"))]
    )[0]
    added = source.fingerprint(company)
    settlement.unallocate(allocation)
    taken_back = source.fingerprint(company)

    assert len({before, added, taken_back}) == 3


def test_a_report_over_the_books_is_cached_until_they_change(company, customer, history, django_assert_max_num_queries):
    options = engine.Options(day(40))
    first = reports.build(reports.parts_for_books([company]), options)
    again = reports.build(reports.parts_for_books([company]), options)
    settlement.record_payment(company, customer, date=day(30), amount=D("1.00"))
    changed = reports.build(reports.parts_for_books([company]), options)

    assert (first.cached, again.cached, changed.cached) == (0, 1, 0)
    assert [row.total for row in again.report.rows] == [row.total for row in first.report.rows]
    assert sum(row.total for row in changed.report.rows) == sum(row.total for row in first.report.rows) - 1
    assert changed.reconciliation[0]["reconciled"]
