"""The overdue check (BILLING_OVERDUE_CHECK): days overdue, the level reached, one notice
per invoice per level, set-based batches."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
import time_machine

from billing.errors import BillingError
from billing.models import (
    DunningLevel,
    Invoice,
    InvoiceLine,
    InvoiceSource,
    InvoiceStatus,
    NoticeStatus,
    OverdueNotice,
)
from billing.services import overdue
from billing.services.finalising import finalise
from ledger.models import Account
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition
from scheduling.registry import ParamError
from scheduling.services import execution, runs
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

DUE = datetime.date(2026, 1, 15)


def day(n: int) -> datetime.date:
    """The business date ``n`` days after DUE."""
    return DUE + datetime.timedelta(days=n)


def issue(company, customer, amount: str = "1000.00", *, due: datetime.date = DUE, **fields) -> Invoice:
    """A finalised (numbered, posted) invoice of one line to sales, issued 14 days before it is due."""
    amount = Decimal(amount)
    invoice = Invoice.objects.create(
        company=company,
        customer=customer,
        issue_date=due - datetime.timedelta(days=14),
        due_date=due,
        currency=company.base_currency,
        subtotal=amount,
        total=amount,
        due=amount,
        **fields,
    )
    sales = Account.objects.get(company=company, code="4100")
    InvoiceLine.objects.create(
        invoice=invoice, description="Tuition", amount=amount, total=amount, income_account=sales
    )
    finalise(company, [invoice.pk], notify=False)
    invoice.refresh_from_db()
    return invoice


def pay(invoice: Invoice) -> None:
    """Settle the invoice in full, as the settlement service leaves it."""
    Invoice.objects.filter(pk=invoice.pk).update(paid=invoice.total, due=0, status=InvoiceStatus.PAID)


def levels(company, *days: int, **fields) -> list[DunningLevel]:
    return [
        DunningLevel.objects.create(company=company, days_overdue=d, name=f"{d}-day reminder", **fields) for d in days
    ]


def open_invoices(company, customer, count: int, *, due: datetime.date = DUE) -> None:
    """``count`` open invoices written directly (no postings): the check reads only the rows."""
    Invoice.objects.bulk_create(
        Invoice(
            company=company,
            customer=customer,
            number=f"BULK-{n:05d}",
            status=InvoiceStatus.OPEN,
            issue_date=due - datetime.timedelta(days=14),
            due_date=due - datetime.timedelta(days=n % 5),
            currency=company.base_currency,
            subtotal=Decimal("10.00"),
            total=Decimal("10.00"),
            due=Decimal("10.00"),
        )
        for n in range(count)
    )


def notices(invoice: Invoice) -> list[tuple[int, int]]:
    return list(invoice.overdue_notices.order_by("level_days").values_list("level_days", "days_overdue"))


# --- Days overdue and levels -----------------------------------------------------------------------


def test_a_company_without_levels_gets_one_default_notice_with_the_days_overdue(company, books, customer):
    invoice = issue(company, customer)

    checked = overdue.check(company, day(10))

    assert (checked.processed, checked.created, checked.skipped) == (1, 1, 0)
    notice = OverdueNotice.objects.get()
    assert (notice.invoice, notice.level, notice.level_days, notice.days_overdue) == (invoice, None, 1, 10)
    assert (notice.amount_due, notice.business_date, notice.status) == (Decimal("1000.00"), day(10), "pending")
    assert notice.company == company


def test_an_invoice_is_overdue_the_day_after_its_due_date(company, books, customer):
    issue(company, customer)

    on_the_day = overdue.check(company, DUE)
    next_day = overdue.check(company, day(1))

    assert (on_the_day.processed, on_the_day.created) == (0, 0)
    assert (next_day.processed, next_day.created) == (1, 1)
    assert OverdueNotice.objects.get().days_overdue == 1


def test_the_notice_records_what_is_still_due_after_a_part_payment(company, books, customer):
    invoice = issue(company, customer)
    Invoice.objects.filter(pk=invoice.pk).update(paid=Decimal("400.00"), due=Decimal("600.00"))

    overdue.check(company, day(3))

    assert OverdueNotice.objects.get().amount_due == Decimal("600.00")


def test_an_invoice_first_found_late_gets_only_the_highest_level_reached(company, books, customer):
    fourteen = levels(company, 1, 7, 14, 30)[2]
    invoice = issue(company, customer)

    overdue.check(company, day(20))

    assert notices(invoice) == [(14, 20)]
    assert OverdueNotice.objects.get().level == fourteen


def test_levels_progress_day_by_day_with_one_notice_each(company, books, customer):
    levels(company, 1, 7, 14, 30)
    invoice = issue(company, customer)

    created = [overdue.check(company, day(n)).created for n in range(0, 40)]

    assert notices(invoice) == [(1, 1), (7, 7), (14, 14), (30, 30)]
    assert sum(created) == 4
    assert [n for n, made in enumerate(created) if made] == [1, 7, 14, 30]


def test_without_levels_an_invoice_is_noticed_once_however_long_it_stays_overdue(company, books, customer):
    invoice = issue(company, customer)

    for n in range(1, 60):
        overdue.check(company, day(n))

    assert notices(invoice) == [(1, 1)]


def test_no_notice_before_the_first_level_is_reached(company, books, customer):
    levels(company, 7, 14)
    issue(company, customer)

    checked = overdue.check(company, day(6))

    assert (checked.processed, checked.created, checked.skipped) == (1, 0, 1)
    assert not OverdueNotice.objects.exists()


def test_inactive_levels_are_not_reached(company, books, customer):
    levels(company, 7)
    levels(company, 14, active=False)
    invoice = issue(company, customer)

    overdue.check(company, day(20))

    assert notices(invoice) == [(7, 20)]


def test_a_company_whose_levels_are_all_inactive_gets_the_default_notice(company, books, customer):
    levels(company, 7, active=False)
    invoice = issue(company, customer)

    overdue.check(company, day(3))

    assert notices(invoice) == [(1, 3)]


def test_a_level_at_or_below_one_already_noticed_is_never_added(company, books, customer):
    levels(company, 14)
    invoice = issue(company, customer)
    overdue.check(company, day(14))
    levels(company, 10)  # added later, below the notice the invoice has

    checked = overdue.check(company, day(20))

    assert checked.created == 0
    assert notices(invoice) == [(14, 14)]


def test_a_cancelled_notice_still_counts_as_noticed(company, books, customer):
    levels(company, 7, 14)
    invoice = issue(company, customer)
    overdue.check(company, day(7))
    OverdueNotice.objects.update(status=NoticeStatus.CANCELLED)

    overdue.check(company, day(8))
    overdue.check(company, day(14))

    assert notices(invoice) == [(7, 7), (14, 14)]


# --- Dedupe -------------------------------------------------------------------------------------------


def test_rerunning_the_check_creates_no_duplicate_notices(company, books, customer):
    levels(company, 1, 7)
    issue(company, customer)
    issue(company, customer, "250.00")
    first = overdue.check(company, day(3))

    same_day = overdue.check(company, day(3))
    next_day = overdue.check(company, day(4))

    assert (first.created, first.skipped) == (2, 0)
    assert (same_day.processed, same_day.created, same_day.skipped) == (2, 0, 2)
    assert (next_day.created, next_day.skipped) == (0, 2)
    assert OverdueNotice.objects.count() == 2


def test_a_notice_already_there_is_skipped_by_the_insert_itself(company, books, customer):
    # Two checks racing: the other one's notice lands between this one's read and its insert.
    levels(company, 1)
    invoice = issue(company, customer)
    rows = [(invoice.pk, invoice.due_date, invoice.due, None)]
    overdue.check(company, day(2))

    created = overdue._record(company, day(2), overdue.levels_of(company), rows)

    assert created == 0
    assert OverdueNotice.objects.count() == 1


# --- What is checked ------------------------------------------------------------------------------


def test_paid_void_draft_and_dunning_fee_invoices_are_not_checked(company, books, customer):
    paid = issue(company, customer)
    pay(paid)
    void = issue(company, customer)
    Invoice.objects.filter(pk=void.pk).update(status=InvoiceStatus.VOID)
    Invoice.objects.create(
        company=company, customer=customer, issue_date=DUE, due_date=DUE, currency="GBP", total=5, due=5, subtotal=5
    )
    issue(company, customer, "15.00", source=InvoiceSource.DUNNING)
    fully_credited = issue(company, customer)
    Invoice.objects.filter(pk=fully_credited.pk).update(credited=fully_credited.total, due=0)

    checked = overdue.check(company, day(10))

    assert (checked.processed, checked.created) == (0, 0)
    assert not OverdueNotice.objects.exists()


def test_another_companys_invoices_are_not_checked(company, other_company, books, customer):
    from ledger.services.chart import load_default_chart

    load_default_chart(other_company)
    theirs = issue(other_company, CustomerFactory(company=other_company))

    checked = overdue.check(company, day(10))

    assert checked.processed == 0
    assert not theirs.overdue_notices.exists()


def test_the_check_reads_keyset_batches_through_equal_due_dates(company, books, customer):
    open_invoices(company, customer, 23)  # five due dates, several invoices on each

    checked = overdue.check(company, day(1), batch_size=4)

    assert (checked.processed, checked.created, checked.batches) == (23, 23, 6)
    assert OverdueNotice.objects.values("invoice").distinct().count() == 23


def test_the_check_logs_and_reports_progress_per_batch(company, books, customer):
    open_invoices(company, customer, 5)
    lines, done = [], []

    overdue.check(company, day(1), batch_size=2, log=lines.append, progress=done.append)

    assert lines == [
        "batch 1: 2 overdue invoices, 2 new notices",
        "batch 2: 2 overdue invoices, 2 new notices",
        "batch 3: 1 overdue invoices, 1 new notices",
    ]
    assert done == [2, 4, 5]


@pytest.mark.parametrize("size", [0, -1, overdue.MAX_BATCH_SIZE + 1])
def test_a_batch_size_out_of_range_is_refused(company, size):
    with pytest.raises(BillingError) as refused:
        overdue.check(company, day(1), batch_size=size)

    assert "batch_size" in refused.value.message_dict


@pytest.mark.parametrize("count", [3, 300])
def test_the_check_takes_the_same_queries_for_3_invoices_as_for_300(
    company, books, customer, count, django_assert_num_queries
):
    # One for the levels, one for the batch with each invoice's highest notice, one insert:
    # a query per invoice would show here as hundreds.
    levels(company, 1, 7)
    open_invoices(company, customer, count)

    with django_assert_num_queries(3):
        checked = overdue.check(company, day(10))

    assert checked.created == count


# --- The job ----------------------------------------------------------------------------------------


def run_check(company, on: datetime.date, **params):
    definition = JobDefinition.objects.get(code="BILLING_OVERDUE_CHECK")
    run, _ = runs.request_run(definition, company=company, business_date=on, params=params or None)
    return execution.run_here(run)


def test_the_job_is_declared_daily_per_company_on_the_billing_queue():
    definition = JobDefinition.objects.get(code="BILLING_OVERDUE_CHECK")

    assert (definition.scope, definition.queue) == ("company", "billing")
    schedule = definition.schedules.select_related("periodic_task__crontab").get()
    crontab = schedule.periodic_task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month) == ("30", "0", "*")


@time_machine.travel(datetime.datetime(2026, 1, 25, 1, 0, tzinfo=datetime.UTC), tick=False)
def test_the_job_checks_the_business_date_and_counts(company, books, customer):
    levels(company, 1, 7)
    issue(company, customer)
    issue(company, customer, "20.00", due=day(12))  # not due yet on day 10

    run = run_check(company, day(10), batch_size=1)

    assert run.status == RunStatus.SUCCEEDED
    assert (run.processed, run.created, run.skipped) == (1, 1, 0)
    assert run.result == {"date": "2026-01-25", "overdue": 1, "notices": 1}
    assert run.params["batch_size"] == 1
    assert run.progress_done == 1
    assert OverdueNotice.objects.get().level_days == 7


def test_a_second_request_for_the_day_is_the_same_run_and_notices_nothing_twice(company, books, customer):
    issue(company, customer)
    first = run_check(company, day(10))

    definition = JobDefinition.objects.get(code="BILLING_OVERDUE_CHECK")
    again, created = runs.request_run(definition, company=company, business_date=day(10))
    rerun = execution.run_here(runs.rerun(first))

    assert not created and again.pk == first.pk
    assert rerun.status == RunStatus.SUCCEEDED
    assert (rerun.created, rerun.skipped) == (0, 1)
    assert OverdueNotice.objects.count() == 1


@pytest.mark.parametrize("size", [0, "many", overdue.MAX_BATCH_SIZE + 1])
def test_the_job_refuses_a_bad_batch_size(company, size):
    definition = JobDefinition.objects.get(code="BILLING_OVERDUE_CHECK")

    with pytest.raises(ParamError) as refused:
        runs.request_run(definition, company=company, business_date=day(1), params={"batch_size": size})

    assert "batch_size" in refused.value.errors
