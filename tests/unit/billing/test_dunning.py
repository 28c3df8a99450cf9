"""Dunning (SL_OVERDUE_REMINDERS): each pending notice sent once, fees and interest charged
on a posted dunning invoice, payment stopping the sequence, failures leaving nothing half
done."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType

from billing.errors import BillingError
from billing.models import (
    Customer,
    DunningLevel,
    Invoice,
    InvoiceSource,
    InvoiceStatus,
    NoticeStatus,
    OverdueNotice,
)
from billing.services import dunning, overdue
from billing.services.subledger import open_items_by_party
from ledger.models import Account, JournalLine, Period
from ledger.services import periods
from ledger.subledgers import reconcile
from notifications.models import Notification
from notifications.services import rendering
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from tests.factories import CompanyFactory, CustomerFactory
from tests.unit.billing.test_overdue import day, issue, pay

pytestmark = pytest.mark.django_db


def remind(company, on: datetime.date, **options) -> dunning.Sent:
    """The day's check, then its reminders, as the two jobs run them."""
    overdue.check(company, on)
    return dunning.send_reminders(company, on, **options)


def level(company, days: int, fee: str = "0", rate: str = "0", **fields) -> DunningLevel:
    return DunningLevel.objects.create(
        company=company,
        days_overdue=days,
        name=fields.pop("name", f"{days}-day reminder"),
        fee=Decimal(fee),
        interest_rate=Decimal(rate),
        **fields,
    )


def posted(invoice: Invoice) -> dict[tuple[str, str], Decimal]:
    return {
        (line.account.code, line.party): line.amount for line in JournalLine.objects.filter(entry=invoice.journal_entry)
    }


# --- Sending ----------------------------------------------------------------------------------------


def test_each_pending_notice_is_sent_once_with_the_levels_letter(company, books, customer):
    level(company, 7, channels=["email"], kind="payment_reminder", name="First reminder")
    invoice = issue(company, customer)
    overdue.check(company, day(9))

    sent = dunning.send_reminders(company, day(9))
    again = dunning.send_reminders(company, day(9))

    assert (sent.processed, sent.sent, sent.notified, sent.charged) == (1, 1, 1, 0)
    assert (again.processed, again.sent, again.notified) == (0, 0, 0)
    notification = Notification.objects.get()
    assert (notification.kind, notification.channels) == ("payment_reminder", ["email"])
    assert notification.recipient_key == f"billing.customer:{customer.pk}"
    assert notification.recipient_email == "amina@example.com"
    assert notification.data == {
        "company_name": "Acme Books Ltd",
        "customer_name": "Amina Njoroge",
        "invoice_id": invoice.pk,
        "invoice_number": invoice.number,
        "due_date": "2026-01-15",
        "days_overdue": 9,
        "level": "First reminder",
        "currency": "GBP",
        "amount_due": "1000.00",
        "fee": "0.00",
        "interest": "0.00",
        "fee_charged": False,
        "interest_charged": False,
        "fee_invoice_number": "",
    }
    notice = OverdueNotice.objects.get()
    assert (notice.status, notice.notification_id, notice.fee_invoice) == ("sent", notification.pk, None)
    assert notice.sent_at is not None


def test_without_levels_the_overdue_letter_goes_on_the_kinds_channels(company, books, customer):
    issue(company, customer)

    sent = remind(company, day(3))

    assert sent.sent == 1
    notification = Notification.objects.get()
    assert (notification.kind, notification.channels) == ("payment_overdue", ["in_app", "email"])
    assert notification.data["level"] == "Overdue"
    assert not Invoice.objects.filter(source=InvoiceSource.DUNNING).exists()


def test_a_resent_notice_keeps_its_one_notification(company, books, customer):
    # A sender that notified and then died before marking the notice sent: the dedupe key
    # makes the retry's notification the same one.
    level(company, 1)
    issue(company, customer)
    overdue.check(company, day(2))
    dunning.send_reminders(company, day(2))
    notification = Notification.objects.get()
    OverdueNotice.objects.update(status=NoticeStatus.PENDING, notification_id=None)

    sent = dunning.send_reminders(company, day(2))

    assert (sent.sent, sent.notified) == (1, 0)
    assert Notification.objects.count() == 1
    assert OverdueNotice.objects.get().notification_id == notification.pk


def test_levels_are_sent_one_by_one_as_the_invoice_reaches_them(company, books, customer):
    for days in (1, 7, 14, 30):
        level(company, days)
    issue(company, customer)

    sent = [remind(company, day(n)).sent for n in range(0, 40)]

    assert [n for n, count in enumerate(sent) if count] == [1, 7, 14, 30]
    assert Notification.objects.count() == 4
    assert list(OverdueNotice.objects.order_by("level_days").values_list("level_days", "status")) == [
        (1, "sent"),
        (7, "sent"),
        (14, "sent"),
        (30, "sent"),
    ]


def test_a_higher_pending_level_supersedes_a_lower_one(company, books, customer):
    # The reminders did not run between the two checks: one letter, the higher level's.
    level(company, 7, fee="5.00")
    level(company, 14, fee="10.00")
    issue(company, customer)
    overdue.check(company, day(7))
    overdue.check(company, day(14))

    sent = dunning.send_reminders(company, day(14))

    assert (sent.sent, sent.superseded, sent.cancelled, sent.fees) == (1, 1, 0, Decimal("10.00"))
    assert dict(OverdueNotice.objects.values_list("level_days", "status")) == {7: "superseded", 14: "sent"}
    assert Notification.objects.count() == 1


def test_notices_made_after_the_business_date_wait_for_theirs(company, books, customer):
    level(company, 1)
    issue(company, customer)
    overdue.check(company, day(5))

    earlier = dunning.send_reminders(company, day(4))

    assert earlier.processed == 0
    assert OverdueNotice.objects.get().status == NoticeStatus.PENDING


def test_another_companys_notices_are_not_sent(company, other_company, books, customer):
    from ledger.services.chart import load_default_chart

    load_default_chart(other_company)
    issue(other_company, CustomerFactory(company=other_company))
    overdue.check(other_company, day(3))

    sent = dunning.send_reminders(company, day(3))

    assert sent.processed == 0
    assert OverdueNotice.objects.get().status == NoticeStatus.PENDING


# --- Payment stops the sequence -----------------------------------------------------------------


def test_a_payment_before_the_reminders_cancels_the_pending_notice(company, books, customer):
    level(company, 7, fee="10.00")
    level(company, 14, fee="20.00")
    invoice = issue(company, customer)
    overdue.check(company, day(7))
    pay(invoice)

    sent = dunning.send_reminders(company, day(7))
    later = remind(company, day(14))

    assert (sent.sent, sent.cancelled, sent.charged) == (0, 1, 0)
    assert OverdueNotice.objects.get().status == NoticeStatus.CANCELLED
    assert (later.processed, later.sent) == (0, 0)
    assert not Notification.objects.exists()
    assert not Invoice.objects.filter(source=InvoiceSource.DUNNING).exists()


def test_a_voided_or_credited_invoices_notices_are_cancelled(company, books, customer):
    level(company, 1)
    void = issue(company, customer)
    credited = issue(company, customer)
    overdue.check(company, day(2))
    Invoice.objects.filter(pk=void.pk).update(status=InvoiceStatus.VOID)
    Invoice.objects.filter(pk=credited.pk).update(credited=credited.total, due=0)

    sent = dunning.send_reminders(company, day(2))

    assert (sent.sent, sent.cancelled) == (0, 2)
    assert not Notification.objects.exists()


def test_a_payment_after_a_level_stops_the_later_levels(company, books, customer):
    level(company, 1)
    level(company, 7)
    invoice = issue(company, customer)
    remind(company, day(1))
    pay(invoice)

    later = remind(company, day(7))

    assert later.processed == 0
    assert list(OverdueNotice.objects.values_list("level_days", "status")) == [(1, "sent")]


# --- Fees and interest ---------------------------------------------------------------------------------


def test_fee_and_interest_are_charged_on_a_posted_dunning_invoice(company, books, customer):
    level(company, 7, fee="10.00", rate="8", name="First reminder")
    invoice = issue(company, customer)

    sent = remind(company, day(7))

    # 1000.00 x 8 % x 7 / 365 = 1.534... -> 1.53
    assert (sent.sent, sent.charged, sent.fees, sent.interest) == (1, 1, Decimal("10.00"), Decimal("1.53"))
    charge = Invoice.objects.get(source=InvoiceSource.DUNNING)
    assert (charge.customer, charge.charged_for, charge.billing_key) == (customer, invoice, f"dunning:{invoice.pk}:7")
    assert (charge.status, charge.number) == (InvoiceStatus.OPEN, "INV-000002")
    assert (charge.issue_date, charge.due_date) == (day(7), day(7))
    assert (charge.subtotal, charge.tax, charge.total, charge.due) == (
        Decimal("11.53"),
        Decimal("0.00"),
        Decimal("11.53"),
        Decimal("11.53"),
    )
    assert [(line.description, line.amount, line.income_account.code) for line in charge.lines.all()] == [
        ("Late fee (First reminder)", Decimal("10.00"), "4200"),
        ("Interest 7 days at 8%", Decimal("1.53"), "4200"),
    ]
    assert posted(charge) == {("1200", f"customer:{customer.pk}"): Decimal("11.53"), ("4200", ""): Decimal("-11.53")}
    notice = OverdueNotice.objects.get()
    assert (notice.fee, notice.interest, notice.fee_invoice) == (Decimal("10.00"), Decimal("1.53"), charge)
    data = Notification.objects.get().data
    assert (data["fee"], data["interest"], data["fee_charged"], data["interest_charged"]) == (
        "10.00",
        "1.53",
        True,
        True,
    )
    assert data["fee_invoice_number"] == "INV-000002"


def test_the_dunning_invoice_is_an_open_item_and_receivables_reconcile(company, books, customer):
    level(company, 7, fee="10.00", rate="8")
    issue(company, customer)

    remind(company, day(7))

    assert open_items_by_party(company, day(7)) == {f"customer:{customer.pk}": Decimal("1011.53")}
    assert all(result.reconciled for result in reconcile(company, day(7)))
    debits = sum(JournalLine.objects.filter(entry__company=company, amount__gt=0).values_list("amount", flat=True))
    credits = sum(JournalLine.objects.filter(entry__company=company, amount__lt=0).values_list("amount", flat=True))
    assert debits == -credits


def test_interest_runs_from_the_previous_notice_not_from_the_due_date_again(company, books, customer):
    level(company, 7, rate="10")
    level(company, 30, rate="10")
    issue(company, customer)

    remind(company, day(7))
    remind(company, day(30))

    # 1000 x 10 % x 7 / 365 = 1.92; then 23 more days: 6.30 (not 30 days' 8.22)
    assert list(OverdueNotice.objects.order_by("level_days").values_list("interest", "days_overdue")) == [
        (Decimal("1.92"), 7),
        (Decimal("6.30"), 30),
    ]
    lines = Invoice.objects.filter(source=InvoiceSource.DUNNING).order_by("pk").values_list("lines__description")
    assert [line for (line,) in lines] == ["Interest 7 days at 10%", "Interest 23 days at 10%"]


def test_interest_is_on_what_is_still_due_when_sent(company, books, customer):
    level(company, 10, rate="36.5")
    invoice = issue(company, customer)
    overdue.check(company, day(10))
    Invoice.objects.filter(pk=invoice.pk).update(paid=Decimal("500.00"), due=Decimal("500.00"))

    dunning.send_reminders(company, day(12))

    notice = OverdueNotice.objects.get()
    # 500 x 36.5 % x 12 / 365 = 6.00, as of the day it was sent
    assert (notice.amount_due, notice.days_overdue, notice.interest) == (Decimal("500.00"), 12, Decimal("6.00"))


def test_a_fee_without_interest_is_one_line_and_fees_go_to_sales_without_other_income(company, books, customer):
    level(company, 1, fee="2.50", name="Reminder")
    issue(company, customer)
    Account.objects.filter(company=company, code="4200").update(is_active=False)

    remind(company, day(1))

    charge = Invoice.objects.get(source=InvoiceSource.DUNNING)
    assert [(line.description, line.income_account.code) for line in charge.lines.all()] == [
        ("Late fee (Reminder)", "4100")
    ]


def test_a_fee_invoice_is_not_itself_dunned(company, books, customer):
    level(company, 1, fee="5.00")
    issue(company, customer)
    remind(company, day(1))

    later = remind(company, day(20))

    assert OverdueNotice.objects.count() == 1
    assert later.processed == 0
    charge = Invoice.objects.get(source=InvoiceSource.DUNNING)
    assert not charge.overdue_notices.exists()


def test_a_zero_decimal_currency_charges_whole_amounts_and_the_letter_says_no_interest(db):
    from ledger.services.chart import load_default_chart

    company = CompanyFactory(base_currency="JPY")
    load_default_chart(company)
    customer = CustomerFactory(company=company)
    level(company, 7, fee="500", rate="0.001")
    issue(company, customer, "10000")

    remind(company, day(7))

    notification = Notification.objects.get()
    assert (notification.data["fee"], notification.data["interest"]) == ("500", "0")
    letter = rendering.render(
        rendering.sources({(company.pk, notification.kind)})[(company.pk, notification.kind)],
        rendering.context_of(notification),
    )
    assert "A late fee of JPY 500 has been charged." in letter.body
    assert "Interest" not in letter.body
    assert f"invoice {Invoice.objects.get(source=InvoiceSource.DUNNING).number}, due now" in letter.body


# --- Failures ------------------------------------------------------------------------------------------


def test_without_an_income_account_nothing_is_charged_sent_or_marked(company, books, customer):
    level(company, 1, fee="5.00")
    issue(company, customer)
    Account.objects.filter(company=company, code__in=["4100", "4200"]).update(is_active=False)
    overdue.check(company, day(1))

    with pytest.raises(BillingError) as refused:
        dunning.send_reminders(company, day(1))

    assert "account" in refused.value.message_dict
    assert OverdueNotice.objects.get().status == NoticeStatus.PENDING
    assert not Invoice.objects.filter(source=InvoiceSource.DUNNING).exists()
    assert not Notification.objects.exists()


def test_a_closed_period_refuses_the_charge_and_leaves_the_notice_pending(company, books, customer):
    level(company, 1, fee="5.00")
    issue(company, customer)
    overdue.check(company, day(1))
    for period in Period.objects.filter(company=company, start_date__lte=day(1)).order_by("start_date"):
        periods.close_period(period)

    with pytest.raises(Exception) as refused:  # the ledger's PostingError, a ValidationError
        dunning.send_reminders(company, day(1))

    assert "closed" in str(refused.value).lower()
    assert OverdueNotice.objects.get().status == NoticeStatus.PENDING
    assert not Invoice.objects.filter(source=InvoiceSource.DUNNING).exists()
    assert not Notification.objects.exists()


def test_a_failed_batch_keeps_the_batches_before_it(company, books, customer):
    level(company, 1, fee="5.00")
    first, second = issue(company, customer), issue(company, customer)
    overdue.check(company, day(1))
    Invoice.objects.filter(pk=second.pk).update(currency="EUR")  # finalising its fee refuses the currency

    with pytest.raises(BillingError):
        dunning.send_reminders(company, day(1), batch_size=1)

    assert dict(OverdueNotice.objects.values_list("invoice", "status")) == {first.pk: "sent", second.pk: "pending"}


@pytest.mark.parametrize("size", [0, dunning.MAX_BATCH_SIZE + 1])
def test_a_batch_size_out_of_range_is_refused(company, size):
    with pytest.raises(BillingError) as refused:
        dunning.send_reminders(company, day(1), batch_size=size)

    assert "batch_size" in refused.value.message_dict


# --- Batches and queries ------------------------------------------------------------------------------


def test_reminders_go_in_keyset_batches(company, books, customer):
    level(company, 1, fee="1.00")
    for _ in range(5):
        issue(company, customer)
    overdue.check(company, day(1))
    lines, done = [], []

    sent = dunning.send_reminders(company, day(1), batch_size=2, log=lines.append, progress=done.append)

    assert (sent.batches, sent.sent, sent.charged) == (3, 5, 5)
    assert done == [2, 4, 5]
    assert lines[0] == "batch 1: 2 sent, 0 cancelled"
    assert Invoice.objects.filter(source=InvoiceSource.DUNNING, status=InvoiceStatus.OPEN).count() == 5


@pytest.mark.parametrize("count", [3, 30])
def test_a_batch_takes_the_same_queries_for_3_notices_as_for_30(
    company, books, customer, count, django_assert_num_queries
):
    level(company, 1, fee="1.00", rate="10")
    customers = [CustomerFactory(company=company) for _ in range(count)]
    for each in customers:
        issue(company, each)
    overdue.check(company, day(3))
    ContentType.objects.get_for_model(Customer)  # cached per process after its first use

    # Read, lock, re-read the batch; charge (insert invoices and lines, finalise: number,
    # post); notify (insert notifications and deliveries); mark sent: about 38 statements
    # and savepoints a batch, whatever its size.
    with django_assert_num_queries(38):
        sent = dunning.send_reminders(company, day(3))

    assert (sent.sent, sent.charged, sent.notified) == (count, count, count)


# --- The job ---------------------------------------------------------------------------------------------


def request(code: str, company, on: datetime.date, **params):
    definition = JobDefinition.objects.get(code=code)
    run, _ = runs.request_run(definition, company=company, business_date=on, params=params or None)
    return run


def test_the_reminders_job_is_daily_after_the_check_on_the_billing_queue():
    definition = JobDefinition.objects.get(code="SL_OVERDUE_REMINDERS")

    assert (definition.scope, definition.queue) == ("company", "billing")
    assert [code for code, _offset in definition.dependencies()] == ["BILLING_OVERDUE_CHECK"]
    crontab = definition.schedules.select_related("periodic_task__crontab").get().periodic_task.crontab
    assert (crontab.minute, crontab.hour) == ("0", "9")


@time_machine.travel(datetime.datetime(2026, 1, 22, 9, 0, tzinfo=datetime.UTC), tick=False)
def test_the_reminders_wait_for_the_days_check_then_send(company, books, customer, django_capture_on_commit_callbacks):
    level(company, 7, fee="10.00")
    issue(company, customer)
    reminders = request("SL_OVERDUE_REMINDERS", company, day(7))
    assert reminders.status == RunStatus.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        check = execution.run_here(request("BILLING_OVERDUE_CHECK", company, day(7)))
    reminders = execution.run_here(reminders)

    assert check.status == RunStatus.SUCCEEDED
    assert reminders.status == RunStatus.SUCCEEDED
    assert (reminders.processed, reminders.created, reminders.skipped) == (1, 1, 0)
    assert reminders.result == {
        "date": "2026-01-22",
        "sent": 1,
        "cancelled": 0,
        "superseded": 0,
        "fee_invoices": 1,
        "fees": "10.00",
        "interest": "0.00",
        "notified": 1,
    }


def test_a_failed_check_blocks_the_days_reminders(company, monkeypatch, django_capture_on_commit_callbacks):
    def refuse(*args, **kwargs):
        raise BillingError({"account": ["No receivables account."]})

    monkeypatch.setattr(overdue, "check", refuse)
    reminders = request("SL_OVERDUE_REMINDERS", company, day(7))

    with django_capture_on_commit_callbacks(execute=True):
        check = execution.run_here(request("BILLING_OVERDUE_CHECK", company, day(7)))

    reminders.refresh_from_db()
    assert (check.status, check.attempts) == (RunStatus.FAILED, 1)  # bad data is not retried
    assert reminders.status == RunStatus.BLOCKED


def test_a_refused_charge_fails_the_run_without_retrying(company, books, customer):
    level(company, 1, fee="5.00")
    issue(company, customer)
    Account.objects.filter(company=company, code__in=["4100", "4200"]).update(is_active=False)
    overdue.check(company, day(1))
    execution.run_here(request("BILLING_OVERDUE_CHECK", company, day(1)))

    run = execution.run_here(request("SL_OVERDUE_REMINDERS", company, day(1)))

    assert run.status == RunStatus.FAILED
    assert run.attempts == 1
    assert "BillingError" in run.error
    assert OverdueNotice.objects.get().status == NoticeStatus.PENDING
