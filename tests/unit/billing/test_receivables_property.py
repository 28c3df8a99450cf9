"""The receivables control property: whatever mix of invoices, payments, credit notes,
allocations, voids and closed periods, the ledger's receivables control account equals the
billing sub-ledger's open items on every date, and, once everything is dated, the invoices'
amounts due less what payments and credit notes have left unallocated.

Amounts are any number of cents, tax 16 % rounded per line: the sums that must agree are
of amounts that do not add up exactly in binary floating point."""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db.models import Sum
from hypothesis import event, given
from hypothesis import strategies as st

from billing.errors import BillingError, BillingStateError
from billing.models import (
    CreditAllocation,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
)
from billing.models.customers import party_of
from billing.services import finalising, settlement
from billing.services.books import tax_on
from billing.services.subledger import open_items_by_party
from ledger.errors import PostingError
from ledger.services import balances, closing
from ledger.subledgers import reconcile_account
from tests.factories import CustomerFactory
from tests.properties import clean_slate, properties

pytestmark = pytest.mark.django_db

PROPERTY = properties(max_examples=30)

FIRST = datetime.date(2026, 1, 1)
LAST = datetime.date(2026, 3, 31)
LATER = datetime.date(2026, 12, 31)  # after every document: the stored amounts tell all
CUSTOMERS = 2

days = st.dates(FIRST, LAST)
STEP = Decimal("0.01")
TAXED = Decimal("0.01")
steps = st.integers(min_value=1, max_value=20_000)
who = st.integers(0, CUSTOMERS - 1)
pick = st.integers(0, 50)  # an earlier document, by position modulo how many there are

operations = st.one_of(
    st.tuples(st.just("invoice"), who, days, steps, st.booleans()),
    st.tuples(st.just("pay"), who, days, steps, st.sampled_from(["keep", "auto", "first"])),
    st.tuples(st.just("credit"), who, days, steps, st.booleans(), st.one_of(st.none(), pick), st.booleans()),
    st.tuples(st.just("allocate"), st.sampled_from(["payment", "credit"]), pick, pick, steps),
    st.tuples(st.just("unallocate"), st.sampled_from(["payment", "credit"]), pick),
    st.tuples(st.just("void"), pick, days),
    st.tuples(st.just("close"), days),
)


class Books:
    """The example's documents, made through the services; refusals are part of the mix."""

    def __init__(self, company, chart):
        self.company, self.chart = company, chart
        self.customers = [CustomerFactory(company=company) for _ in range(CUSTOMERS)]
        self.invoices: list[Invoice] = []
        self.payments: list[Payment] = []
        self.credits: list[CreditNote] = []
        self.days: set[datetime.date] = set()

    def run(self, operation: tuple) -> None:
        kind, *args = operation
        try:
            getattr(self, kind)(*args)
        except (BillingError, BillingStateError, PostingError) as refusal:
            # A refusal is part of the mix: the property says nothing of it was written.
            event(f"{kind} refused: {type(refusal).__name__}")
        else:
            event(f"{kind} done")

    def invoice(self, n: int, day: datetime.date, amount: int, taxed: bool) -> None:
        rate = Decimal(16 if taxed else 0)
        net = amount * (TAXED if taxed else STEP)
        tax = tax_on(net, rate, "GBP")
        invoice = Invoice.objects.create(
            company=self.company,
            customer=self.customers[n],
            issue_date=day,
            due_date=day + datetime.timedelta(days=14),
            currency="GBP",
            subtotal=net,
            tax=tax,
            total=net + tax,
            due=net + tax,
        )
        InvoiceLine.objects.create(
            invoice=invoice,
            description="Fees",
            amount=net,
            tax_rate=rate,
            tax=tax,
            total=net + tax,
            income_account=self.chart["4100"],
        )
        self.invoices.append(invoice)  # a draft until finalised; finalising may be refused
        self.days.add(day)
        finalising.finalise(self.company, [invoice.pk], notify=False)

    def pay(self, n: int, day: datetime.date, amount: int, how: str) -> None:
        customer = self.customers[n]
        allocations = settlement.AUTO if how == "auto" else ()
        if how == "first":
            first = Invoice.objects.filter(customer=customer, status=InvoiceStatus.OPEN).order_by("pk").first()
            allocations = [(first, min(amount * STEP, first.due))] if first else ()
        self.days.add(day)
        self.payments.append(
            settlement.record_payment(self.company, customer, date=day, amount=amount * STEP, allocations=allocations)
        )

    def credit(self, n: int, day: datetime.date, amount: int, taxed: bool, target: int | None, allocate: bool) -> None:
        invoice = self.invoices[target % len(self.invoices)] if target is not None and self.invoices else None
        customer = invoice.customer if invoice is not None else self.customers[n]
        self.days.add(day)
        self.credits.append(
            settlement.record_credit_note(
                self.company,
                customer,
                date=day,
                subtotal=amount * (TAXED if taxed else STEP),
                tax=tax_on(amount * TAXED, Decimal(16), "GBP") if taxed else Decimal(0),
                invoice=invoice,
                allocate=allocate,
            )
        )

    def allocate(self, side: str, document: int, invoice: int, amount: int) -> None:
        documents = self.payments if side == "payment" else self.credits
        if not documents or not self.invoices:
            return
        document = documents[document % len(documents)]
        target = self.invoices[invoice % len(self.invoices)]
        allocate = settlement.allocate_payment if side == "payment" else settlement.allocate_credit
        allocate(document, [(target, amount * STEP)])

    def unallocate(self, side: str, n: int) -> None:
        model = PaymentAllocation if side == "payment" else CreditAllocation
        allocations = list(model.objects.order_by("pk"))
        if allocations:
            settlement.unallocate(allocations[n % len(allocations)])

    def void(self, n: int, day: datetime.date) -> None:
        if self.invoices:
            self.days.add(day)
            settlement.void_invoice(self.invoices[n % len(self.invoices)], date=day)

    def close(self, day: datetime.date) -> None:
        closing.close_periods_through(self.company, day.replace(day=1) - datetime.timedelta(days=1))


def total(queryset, field: str) -> Decimal:
    return queryset.aggregate(total=Sum(field))["total"] or Decimal(0)


@PROPERTY
@given(mix=st.lists(operations, min_size=1, max_size=14))
def test_the_receivables_control_account_equals_the_open_items_on_every_date(company, books, mix):
    receivables = books["1200"]
    with clean_slate():
        # Given any mix of documents, allocations, voids and closed periods
        example = Books(company, books)
        for operation in mix:
            example.run(operation)

        # Then on every date the control account is the sub-ledger's open items, party by party
        for day in sorted(example.days | {FIRST - datetime.timedelta(days=1), LAST, LATER}):
            ledger = balances.balance(receivables, day)
            assert ledger == sum(open_items_by_party(company, day).values(), Decimal(0)), day
            reconciled = reconcile_account(receivables, day)
            assert (reconciled.difference, reconciled.differences_count) == (0, 0), reconciled.differences

        # And, everything dated, it is what the invoices have due less what is unallocated
        posted = Invoice.objects.filter(company=company).posted()
        payments, credits = Payment.objects.filter(company=company), CreditNote.objects.filter(company=company)
        assert balances.balance(receivables, LATER) == (
            total(posted, "due") - total(payments, "unallocated") - total(credits, "unallocated")
        )
        by_party = defaultdict(Decimal)
        for customer_id, due in posted.values_list("customer_id", "due"):
            by_party[party_of(customer_id)] += due
        for model in (Payment, CreditNote):
            for customer_id, unallocated in model.objects.filter(company=company).values_list(
                "customer_id", "unallocated"
            ):
                by_party[party_of(customer_id)] -= unallocated
        assert open_items_by_party(company, LATER) == {party: due for party, due in by_party.items() if due}

        # And every stored amount is the sum of the allocations behind it
        for invoice in Invoice.objects.filter(company=company):
            assert invoice.paid == total(invoice.payment_allocations.all(), "amount")
            assert invoice.credited == total(invoice.credit_allocations.all(), "amount")
            assert invoice.status != InvoiceStatus.PAID or invoice.due == 0
            assert invoice.status != InvoiceStatus.OPEN or invoice.due > 0
            assert invoice.status != InvoiceStatus.VOID or not (invoice.paid or invoice.credited)
        for document in [*payments, *credits]:
            assert document.allocated == total(document.allocations.all(), "amount")
