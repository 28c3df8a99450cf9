"""Settlement: payments and credit notes posted and allocated, invoices voided, and every
refusal leaving the books as they were."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from billing.errors import BillingError, BillingStateError
from billing.models import (
    CreditNote,
    DocumentSequence,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    NoticeStatus,
    OverdueNotice,
    Payment,
    PaymentAllocation,
    Series,
)
from billing.services import finalising, invoicing, settlement
from billing.services.invoicing import RunSpec
from ledger.errors import PostingError
from ledger.models import EntryStatus, JournalEntry, JournalLine
from ledger.services import balances, closing
from tests.factories import CustomerFactory
from tests.unit.billing.conftest import JAN

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 2, 20, 12, 0, tzinfo=datetime.UTC)
FEB = datetime.date(2026, 2, 1)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def make_invoice(company, customer, books):
    """``make_invoice(amount, tax, *, issue=JAN, days=14, who=customer, draft=False)``: an invoice of
    one line to 4100, finalised (numbered and posted) unless ``draft``."""

    def make(amount="100.00", tax="0.00", *, issue=JAN, days=14, who=None, draft=False) -> Invoice:
        net, tax = Decimal(amount), Decimal(tax)
        invoice = Invoice.objects.create(
            company=company,
            customer=who or customer,
            issue_date=issue,
            due_date=issue + datetime.timedelta(days=days),
            currency=company.base_currency,
            subtotal=net,
            tax=tax,
            total=net + tax,
            due=net + tax,
        )
        InvoiceLine.objects.create(
            invoice=invoice, description="Tuition", amount=net, tax=tax, total=net + tax, income_account=books["4100"]
        )
        if not draft:
            finalising.finalise(company, [invoice.pk], notify=False)
        invoice.refresh_from_db()
        return invoice

    return make


def pay(company, customer, amount="100.00", day=FEB, **options) -> Payment:
    return settlement.record_payment(company, customer, date=day, amount=Decimal(amount), **options)


def posted(entry: JournalEntry) -> dict[tuple[str, str], Decimal]:
    return {(line.account.code, line.party): line.amount for line in JournalLine.objects.filter(entry=entry)}


def receivables(books, day=datetime.date(2026, 12, 31)) -> Decimal:
    return balances.balance(books["1200"], day)


def state(invoice: Invoice) -> tuple:
    invoice.refresh_from_db()
    return invoice.status, invoice.paid, invoice.credited, invoice.due


def notice(invoice: Invoice, days: int = 1, status=NoticeStatus.PENDING) -> OverdueNotice:
    return OverdueNotice.objects.create(
        company=invoice.company,
        invoice=invoice,
        level_days=days,
        days_overdue=days,
        amount_due=invoice.due,
        business_date=invoice.due_date + datetime.timedelta(days=days),
        status=status,
    )


# --- Payments -----------------------------------------------------------------------------


def test_a_payment_posts_its_whole_amount_to_the_bank_and_the_customers_receivables(company, customer, books):
    payment = pay(company, customer, "250.00", reference="BACS 991")

    assert payment.created
    assert (payment.amount, payment.allocated, payment.unallocated) == (Decimal("250.00"), 0, Decimal("250.00"))
    assert posted(payment.journal_entry) == {
        ("1100", ""): Decimal("250.00"),
        ("1200", f"customer:{customer.pk}"): Decimal("-250.00"),
    }
    assert payment.journal_entry.source_id == f"payment:{payment.pk}"
    assert payment.journal_entry.reference == "BACS 991"


def test_a_partial_payment_leaves_the_invoice_open_with_the_rest_due(company, customer, make_invoice):
    invoice = make_invoice("100.00", "16.00")

    payment = pay(company, customer, "50.00", allocations=[(invoice, Decimal("50.00"))])

    assert state(invoice) == (InvoiceStatus.OPEN, Decimal("50.00"), 0, Decimal("66.00"))
    assert (payment.allocated, payment.unallocated) == (Decimal("50.00"), 0)
    allocation = PaymentAllocation.objects.get()
    assert (allocation.invoice, allocation.amount, allocation.date) == (invoice, Decimal("50.00"), FEB)


def test_one_payment_settles_several_invoices_and_marks_the_settled_one_paid(company, customer, make_invoice):
    first, second = make_invoice("100.00"), make_invoice("80.00")
    payment = pay(company, customer, "150.00")

    made = settlement.allocate_payment(payment, [(first, "100.00"), (second.pk, Decimal("50.00"))])

    assert len(made) == 2
    assert state(first) == (InvoiceStatus.PAID, Decimal("100.00"), 0, 0)
    assert state(second) == (InvoiceStatus.OPEN, Decimal("50.00"), 0, Decimal("30.00"))
    assert (payment.allocated, payment.unallocated) == (Decimal("150.00"), 0)  # the caller's row is kept in step
    assert first.status == InvoiceStatus.PAID


def test_an_overpayment_leaves_unallocated_credit_on_the_customers_account(company, customer, make_invoice, books):
    invoice = make_invoice("100.00")

    payment = pay(company, customer, "130.00", allocations=settlement.AUTO)

    assert state(invoice) == (InvoiceStatus.PAID, Decimal("100.00"), 0, 0)
    assert (payment.allocated, payment.unallocated) == (Decimal("100.00"), Decimal("30.00"))
    assert receivables(books) == Decimal("-30.00")


def test_an_allocation_over_the_invoices_due_is_refused_and_writes_nothing(company, customer, make_invoice):
    invoice = make_invoice("100.00")
    payment = pay(company, customer, "500.00")

    with pytest.raises(BillingError) as refused:
        settlement.allocate_payment(payment, [(invoice, "60.00"), (invoice, "60.00")])

    assert refused.value.message_dict == {
        "allocations": [f"allocation 2: 60.00 is more than invoice {invoice.number}'s due of 40.00."]
    }
    assert not PaymentAllocation.objects.exists()
    assert state(invoice) == (InvoiceStatus.OPEN, 0, 0, Decimal("100.00"))
    payment.refresh_from_db()
    assert payment.unallocated == Decimal("500.00")


def test_allocations_over_what_the_payment_has_left_are_refused(company, customer, make_invoice):
    first, second = make_invoice("100.00"), make_invoice("100.00")
    payment = pay(company, customer, "150.00")

    with pytest.raises(BillingError) as refused:
        settlement.allocate_payment(payment, [(first, "100.00"), (second, "100.00")])

    assert "more than the 150.00 left unallocated" in refused.value.message_dict["allocations"][0]
    assert not PaymentAllocation.objects.exists()


def test_auto_allocation_settles_the_oldest_due_first(company, customer, make_invoice):
    later = make_invoice("100.00", days=30)
    sooner = make_invoice("100.00", days=7)
    same_day = make_invoice("100.00", days=7)
    payment = pay(company, customer, "150.00")

    made = settlement.auto_allocate(payment)

    assert [(a.invoice_id, a.amount) for a in made] == [(sooner.pk, Decimal("100.00")), (same_day.pk, Decimal("50.00"))]
    assert state(later)[3] == Decimal("100.00")
    assert settlement.auto_allocate(payment) == []  # nothing left to allocate


def test_only_open_invoices_are_settled(company, customer, make_invoice):
    draft = make_invoice("100.00", draft=True)
    void = settlement.void_invoice(make_invoice("100.00"), date=FEB)
    payment = pay(company, customer, "500.00")

    for invoice in (draft, void):
        with pytest.raises(BillingStateError, match="only open invoices are settled"):
            settlement.allocate_payment(payment, [(invoice, "10.00")])

    assert not PaymentAllocation.objects.exists()


def test_another_customers_or_companys_invoice_cannot_be_settled(company, customer, make_invoice, other_company):
    theirs = make_invoice("100.00", who=CustomerFactory(company=company))
    elsewhere = Invoice.objects.create(
        company=other_company,
        customer=CustomerFactory(company=other_company),
        issue_date=JAN,
        due_date=JAN,
        currency="GBP",
        total=Decimal("10.00"),
        due=Decimal("10.00"),
        status=InvoiceStatus.OPEN,
    )
    payment = pay(company, customer, "500.00")

    with pytest.raises(BillingError) as refused:
        settlement.allocate_payment(payment, [(theirs, "10.00"), (elsewhere, "10.00"), (10**12, "1.00")])

    assert refused.value.message_dict["allocations"] == [
        f"allocation 1: invoice {theirs.number} is another customer's.",
        f"allocation 2: invoice {elsewhere.pk} does not exist.",
        f"allocation 3: invoice {10**12} does not exist.",
    ]


def test_an_allocation_is_dated_no_earlier_than_the_payment_or_the_invoice(company, customer, make_invoice):
    later_invoice = make_invoice("100.00", issue=datetime.date(2026, 2, 10))
    earlier_invoice = make_invoice("100.00")
    payment = pay(company, customer, "300.00")

    made = settlement.allocate_payment(
        payment, [(later_invoice, "10.00"), (earlier_invoice, "10.00"), (earlier_invoice, "10.00", FEB.replace(day=9))]
    )

    assert [a.date for a in made] == [datetime.date(2026, 2, 10), FEB, datetime.date(2026, 2, 9)]
    with pytest.raises(BillingError, match="the earliest is 2026-02-10"):
        settlement.allocate_payment(payment, [(later_invoice, "10.00", FEB)])


YEARS = "(1900 to 2999)"
METHODS = "bank_transfer, card, cash, cheque, direct_debit, mobile_money, other"


@pytest.mark.parametrize(
    ("fields", "wrong"),
    [
        ({"amount": 12.5}, {"amount": ["The amount must be a decimal (or a string of one), not a float."]}),
        ({"amount": Decimal("-1")}, {"amount": ["The amount must be more than zero."]}),
        ({"amount": Decimal(0)}, {"amount": ["The amount must be more than zero."]}),
        ({"amount": Decimal("1.005")}, {"amount": ["The amount 1.005 has more decimal places than GBP allows (2)."]}),
        ({"amount": "NaN"}, {"amount": ["The amount 'NaN' is not a number."]}),
        ({"amount": Decimal("1E+16")}, {"amount": ["The amount 1E+16 is too large."]}),
        ({"currency": "EUR"}, {"currency": ["The company's books are kept in GBP; 'EUR' is not."]}),
        ({"date": datetime.date(1899, 12, 31)}, {"date": [f"1899-12-31 is outside the years the books keep {YEARS}."]}),
        ({"date": "2026-02-01"}, {"date": ["A date (YYYY-MM-DD) is required."]}),
        ({"method": "barter"}, {"method": [f"Unknown method 'barter'; choose from {METHODS}."]}),
        ({"reference": "x" * 101}, {"reference": ["At most 100 characters; this has 101."]}),
        ({"allocations": [(1, "1.00", "tomorrow")]}, {"allocations": ["A date (YYYY-MM-DD) is required."]}),
        ({"allocations": "all"}, {"allocations": ['Give a list of allocations or "auto".']}),
    ],
)  # fmt: skip
def test_bad_payment_input_is_refused_with_field_messages(company, customer, books, fields, wrong):
    given = {"date": FEB, "amount": Decimal("10.00"), **fields}

    with pytest.raises(BillingError) as refused:
        settlement.record_payment(company, customer, **given)

    assert refused.value.message_dict == wrong
    assert not Payment.objects.exists() and not JournalEntry.objects.exists()


def test_another_companys_customer_does_not_exist_here(company, other_company, books):
    stranger = CustomerFactory(company=other_company)

    with pytest.raises(BillingError) as refused:
        pay(company, stranger)

    assert refused.value.message_dict == {"customer": [f"Customer {stranger.pk} does not exist."]}


def test_a_repeated_external_id_returns_the_payment_already_recorded(company, customer, make_invoice):
    invoice = make_invoice("100.00")
    first = pay(company, customer, "60.00", external_id="stripe:pi_1", allocations=settlement.AUTO)

    again = pay(company, customer, "60.00", external_id="stripe:pi_1", allocations=settlement.AUTO)

    assert (again.pk, again.created) == (first.pk, False)
    assert Payment.objects.count() == 1
    assert state(invoice)[3] == Decimal("40.00")  # allocated once
    assert JournalEntry.objects.filter(source_id__startswith="payment:").count() == 1


def test_a_repeated_external_id_with_other_details_is_refused(company, customer, books):
    first = pay(company, customer, "60.00", external_id="stripe:pi_1")

    with pytest.raises(BillingStateError, match=f"already records payment {first.pk}, whose amount, date differ"):
        pay(company, customer, "61.00", day=FEB.replace(day=2), external_id="stripe:pi_1")

    assert Payment.objects.count() == 1


def test_a_payment_into_a_closed_period_is_refused_and_leaves_nothing_written(company, customer, make_invoice, books):
    invoice = make_invoice("100.00")
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    with pytest.raises(PostingError) as refused:
        pay(company, customer, "100.00", day=datetime.date(2026, 1, 20), allocations=[(invoice, "100.00")])

    assert "accepts no postings" in refused.value.message_dict["date"][0]
    assert not Payment.objects.exists() and not PaymentAllocation.objects.exists()
    assert state(invoice) == (InvoiceStatus.OPEN, 0, 0, Decimal("100.00"))


def test_settling_an_invoice_cancels_its_pending_notices_and_a_part_payment_does_not(company, customer, make_invoice):
    invoice = make_invoice("100.00")
    sent = notice(invoice, 1, NoticeStatus.SENT)
    pending = notice(invoice, 14)
    other = notice(make_invoice("100.00"), 14)

    pay(company, customer, "40.00", allocations=[(invoice, "40.00")])
    assert OverdueNotice.objects.get(pk=pending.pk).status == NoticeStatus.PENDING

    pay(company, customer, "60.00", allocations=[(invoice, "60.00")])
    assert dict(OverdueNotice.objects.values_list("pk", "status")) == {
        sent.pk: NoticeStatus.SENT,
        pending.pk: NoticeStatus.CANCELLED,
        other.pk: NoticeStatus.PENDING,
    }


def test_allocating_to_many_invoices_takes_the_same_queries_as_to_two(
    company, customer, make_invoice, django_assert_num_queries
):
    few = [make_invoice("10.00") for _ in range(2)]
    many = [make_invoice("10.00") for _ in range(12)]
    first, second = pay(company, customer, "20.00"), pay(company, customer, "120.00")

    # savepoint, invoices, payment, insert, invoices' update, payment's update, notices, release
    with django_assert_num_queries(8):
        settlement.allocate_payment(first, [(invoice, "10.00") for invoice in few])
    with django_assert_num_queries(8):
        settlement.allocate_payment(second, [(invoice, "10.00") for invoice in many])


def test_unallocating_reopens_the_invoice_and_frees_the_payment(company, customer, make_invoice):
    invoice = make_invoice("100.00")
    payment = pay(company, customer, "100.00", allocations=[(invoice, "100.00")])
    allocation = PaymentAllocation.objects.get()

    settlement.unallocate(allocation)
    settlement.unallocate(allocation)  # already gone: nothing more happens

    assert state(invoice) == (InvoiceStatus.OPEN, 0, 0, Decimal("100.00"))
    payment.refresh_from_db()
    assert (payment.allocated, payment.unallocated) == (0, Decimal("100.00"))
    assert settlement.void_invoice(invoice, date=FEB).status == InvoiceStatus.VOID


# The models' check constraints round their arithmetic to the stored places: SQLite
# compares decimals as binary floats, where 0.30 - 0.10 is not 0.20.
def test_an_allocation_whose_float_difference_is_inexact_settles(company, customer, make_invoice):
    invoice = make_invoice("0.30")

    pay(company, customer, "0.10", allocations=[(invoice, "0.10")])

    assert state(invoice) == (InvoiceStatus.OPEN, Decimal("0.10"), 0, Decimal("0.20"))


def test_a_credit_note_whose_float_sum_is_inexact_is_recorded(company, customer, books):
    note = settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("0.15"), tax=Decimal("0.02"))

    assert note.total == Decimal("0.17")


# --- Credit notes -------------------------------------------------------------------------


def test_a_credit_note_posts_income_and_tax_against_the_customers_receivables(company, customer, books):
    note = settlement.record_credit_note(
        company, customer, date=FEB, subtotal=Decimal("50.00"), tax=Decimal("8.00"), reason="Missed lessons"
    )

    assert (note.number, note.total, note.unallocated) == ("CN-000001", Decimal("58.00"), Decimal("58.00"))
    assert posted(note.journal_entry) == {
        ("4100", ""): Decimal("50.00"),
        ("2200", ""): Decimal("8.00"),
        ("1200", f"customer:{customer.pk}"): Decimal("-58.00"),
    }
    assert note.journal_entry.source_id == f"credit_note:{note.pk}"


def test_a_credit_note_may_reduce_another_income_account(company, customer, books):
    note = settlement.record_credit_note(
        company, customer, date=FEB, subtotal=Decimal("5.00"), income_account=books["4200"]
    )

    assert posted(note.journal_entry) == {("4200", ""): Decimal("5.00"), ("1200", f"customer:{customer.pk}"): -5}


def test_credit_notes_are_numbered_without_gaps_when_one_is_refused(company, customer, make_invoice, books):
    make_invoice("100.00")  # opens the year
    first = settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("5.00"))
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    with pytest.raises(PostingError):
        settlement.record_credit_note(company, customer, date=JAN, subtotal=Decimal("5.00"))
    second = settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("5.00"))

    assert (first.number, second.number) == ("CN-000001", "CN-000002")
    assert CreditNote.objects.count() == 2
    assert DocumentSequence.objects.get(company=company, series=Series.CREDIT_NOTE).next_number == 3


def test_a_credit_note_on_an_invoice_settles_what_it_can_and_keeps_the_rest_as_credit(
    company, customer, make_invoice, books
):
    invoice = make_invoice("100.00")
    pay(company, customer, "70.00", allocations=[(invoice, "70.00")])

    note = settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("50.00"), invoice=invoice)

    assert state(invoice) == (InvoiceStatus.PAID, Decimal("70.00"), Decimal("30.00"), 0)
    assert invoice.status == InvoiceStatus.PAID  # the caller's row too
    assert (note.invoice, note.allocated, note.unallocated) == (invoice, Decimal("30.00"), Decimal("20.00"))
    assert receivables(books) == Decimal("-20.00")


def test_a_credit_note_left_unallocated_can_be_allocated_later(company, customer, make_invoice):
    invoice = make_invoice("100.00")
    note = settlement.record_credit_note(
        company, customer, date=FEB, subtotal=Decimal("40.00"), invoice=invoice, allocate=False
    )
    assert state(invoice)[3] == Decimal("100.00")

    settlement.allocate_credit(note, [(invoice, "25.00")])
    settlement.auto_allocate(note)

    assert state(invoice) == (InvoiceStatus.OPEN, 0, Decimal("40.00"), Decimal("60.00"))
    assert [a.amount for a in note.allocations.all()] == [Decimal("25.00"), Decimal("15.00")]


def test_a_credit_note_on_a_draft_or_void_invoice_is_a_conflict(company, customer, make_invoice):
    draft = make_invoice("100.00", draft=True)
    void = settlement.void_invoice(make_invoice("100.00"), date=FEB)

    for invoice in (draft, void):
        with pytest.raises(BillingStateError, match="only a finalised invoice is credited"):
            settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("5.00"), invoice=invoice)

    assert not CreditNote.objects.exists()


def test_bad_credit_note_input_is_refused(company, customer, make_invoice, books, other_company):
    invoice = make_invoice("100.00", issue=FEB)
    stranger_invoice = make_invoice("100.00", who=CustomerFactory(company=company))

    def refused(**fields) -> dict:
        given = {"date": FEB, "subtotal": Decimal("10.00"), **fields}
        with pytest.raises(BillingError) as caught:
            settlement.record_credit_note(company, customer, **given)
        return caught.value.message_dict

    assert refused(subtotal=Decimal(0)) == {
        "subtotal": ["A credit note credits something: its total must be positive."]
    }
    assert refused(tax=Decimal("-1")) == {"tax": ["The tax must not be negative."]}
    assert refused(income_account=10**12) == {"income_account": [f"Account {10**12} does not exist in this company."]}
    assert refused(income_account=books["1100"]) == {
        "income_account": ["Account 1100 is an asset account; a credit note reduces an income account."]
    }
    assert refused(invoice=stranger_invoice) == {
        "invoice": [f"Invoice {stranger_invoice.number} is another customer's."]
    }
    assert refused(date=JAN, invoice=invoice) == {
        "date": ["A credit note cannot be dated before the invoice it credits (issued 2026-02-01)."]
    }
    assert not CreditNote.objects.exists()


# --- Voiding ------------------------------------------------------------------------------


def test_voiding_a_draft_posts_nothing(company, make_invoice):
    draft = make_invoice("100.00", draft=True)

    void = settlement.void_invoice(draft, reason="Entered twice")

    assert (void.status, void.void_date, void.void_reason, void.void_entry) == (
        InvoiceStatus.VOID,
        NOW.date(),
        "Entered twice",
        None,
    )
    assert not JournalEntry.objects.exists()


def test_voiding_an_open_invoice_reverses_its_entry_on_the_void_date(company, customer, make_invoice, books):
    invoice = make_invoice("100.00", "16.00")

    void = settlement.void_invoice(invoice, date=FEB, reason="Wrong customer")

    assert (void.status, void.void_date, void.void_reason) == (InvoiceStatus.VOID, FEB, "Wrong customer")
    assert void.void_entry.date == FEB and void.void_entry.reverses_id == invoice.journal_entry_id
    assert JournalEntry.objects.get(pk=invoice.journal_entry_id).status == EntryStatus.REVERSED
    assert posted(void.void_entry) == {
        ("1200", f"customer:{customer.pk}"): Decimal("-116.00"),
        ("4100", ""): Decimal("100.00"),
        ("2200", ""): Decimal("16.00"),
    }
    assert receivables(books, datetime.date(2026, 1, 31)) == Decimal("116.00")  # owed until voided
    assert receivables(books) == 0
    assert not InvoiceLine.objects.filter(invoice=invoice, billed=True).exists()


def test_a_voided_runs_invoice_lets_the_period_be_billed_again(company, fees, enrol, customer):
    enrol(customer, fees["english"])
    spec = RunSpec.for_period(company, "monthly", JAN)
    invoicing.generate(spec)

    settlement.void_invoice(Invoice.objects.get(), date=FEB)
    again = invoicing.generate(spec)

    assert again.created == 1
    assert sorted(Invoice.objects.values_list("status", flat=True)) == [InvoiceStatus.OPEN, InvoiceStatus.VOID]


def test_voiding_by_default_is_dated_today_and_never_before_the_issue_date(company, make_invoice):
    today = settlement.void_invoice(make_invoice("100.00"))
    future = settlement.void_invoice(make_invoice("100.00", issue=datetime.date(2026, 3, 1)))

    assert today.void_date == NOW.date()
    assert future.void_date == datetime.date(2026, 3, 1)
    with pytest.raises(BillingError, match="not voided before its issue date, 2026-01-01"):
        settlement.void_invoice(make_invoice("100.00"), date=datetime.date(2025, 12, 31))


@pytest.mark.parametrize("settle", ["paid", "part paid", "credited"])
def test_a_settled_invoice_is_not_voided(company, customer, make_invoice, settle):
    invoice = make_invoice("100.00")
    if settle == "credited":
        settlement.record_credit_note(company, customer, date=FEB, subtotal=Decimal("10.00"), invoice=invoice)
    else:
        pay(company, customer, "100.00" if settle == "paid" else "10.00", allocations=settlement.AUTO)

    with pytest.raises(BillingStateError, match="credit it or remove its allocations first"):
        settlement.void_invoice(invoice, date=FEB)

    assert Invoice.objects.get(pk=invoice.pk).status != InvoiceStatus.VOID
    assert not JournalEntry.objects.filter(reverses=invoice.journal_entry_id).exists()


def test_a_finalised_invoice_of_nothing_is_voided_with_nothing_to_reverse(company, make_invoice):
    nothing = make_invoice("0.00")
    assert (nothing.status, nothing.journal_entry) == (InvoiceStatus.PAID, None)

    void = settlement.void_invoice(nothing, date=FEB)

    assert (void.status, void.void_entry) == (InvoiceStatus.VOID, None)


def test_voiding_twice_returns_the_invoice_unchanged(company, make_invoice):
    first = settlement.void_invoice(make_invoice("100.00"), date=FEB, reason="first")

    again = settlement.void_invoice(first, date=datetime.date(2026, 2, 5), reason="second")

    assert (again.void_date, again.void_reason, again.void_entry_id) == (FEB, "first", first.void_entry_id)
    assert JournalEntry.objects.filter(reverses__isnull=False).count() == 1


def test_voiding_cancels_pending_notices(company, make_invoice):
    invoice = make_invoice("100.00")
    pending = notice(invoice)

    settlement.void_invoice(invoice, date=FEB)

    assert OverdueNotice.objects.get(pk=pending.pk).status == NoticeStatus.CANCELLED


def test_voiding_into_a_closed_period_is_refused_and_leaves_the_invoice_open(company, make_invoice):
    invoice = make_invoice("100.00")
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    with pytest.raises(PostingError):
        settlement.void_invoice(invoice, date=datetime.date(2026, 1, 15))

    assert state(invoice) == (InvoiceStatus.OPEN, 0, 0, Decimal("100.00"))
    assert InvoiceLine.objects.filter(invoice=invoice, billed=True).exists()
