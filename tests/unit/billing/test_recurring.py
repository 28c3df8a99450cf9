"""Recurring templates (seed 001): the schedule's edge cases (the 31st, leap day), the
window, catch-up, maximum and end, pausing, the claim that makes generation happen once,
the invoices and journal entries generated, and RECURRING_GENERATE through the job layer."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.errors import BillingError, BillingStateError
from billing.models import (
    Frequency,
    Generates,
    Invoice,
    InvoiceStatus,
    RecurringGeneration,
    RecurringTemplate,
    TemplateStatus,
)
from billing.services import recurring
from billing.services.recurring import occurrence_date, occurrence_on_or_after
from ledger.models import Account, JournalEntry, JournalLine, Source
from notifications.models import Notification
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from tests.factories import CompanyFactory, CustomerFactory
from tests.factories import RecurringTemplateFactory as TemplateFactory

pytestmark = pytest.mark.django_db

D = datetime.date


def journal(company, chart, **fields) -> RecurringTemplate:
    """Rent: Dr 6200 rent, Cr 1100 bank."""
    fields = {
        "name": "Office rent",
        "amount": Decimal("1200.00"),
        "debit_account": chart["6200"],
        "credit_account": chart["1100"],
        **fields,
    }
    return TemplateFactory(company=company, generates=Generates.JOURNAL, customer=None, **fields)


def on(day: datetime.date):
    """Time frozen at noon UTC on ``day`` (the same date in London)."""
    return time_machine.travel(datetime.datetime(day.year, day.month, day.day, 12, tzinfo=datetime.UTC), tick=False)


def generated(template: RecurringTemplate) -> list[datetime.date]:
    return list(template.generations.order_by("occurrence_date").values_list("occurrence_date", flat=True))


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


# --- The schedule -------------------------------------------------------------------------------


def test_a_monthly_template_from_the_31st_falls_on_each_months_last_day_when_shorter():
    dates = [occurrence_date(D(2027, 10, 31), Frequency.MONTHLY, k) for k in range(6)]

    assert dates == [D(2027, 10, 31), D(2027, 11, 30), D(2027, 12, 31), D(2028, 1, 31), D(2028, 2, 29), D(2028, 3, 31)]


def test_the_31st_comes_back_after_february_because_dates_count_from_the_start():
    dates = [occurrence_date(D(2026, 1, 31), Frequency.MONTHLY, k) for k in range(4)]

    assert dates == [D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 31), D(2026, 4, 30)]


def test_an_annual_template_from_leap_day_is_on_the_28th_in_common_years():
    dates = [occurrence_date(D(2024, 2, 29), Frequency.ANNUAL, k) for k in range(5)]

    assert dates == [D(2024, 2, 29), D(2025, 2, 28), D(2026, 2, 28), D(2027, 2, 28), D(2028, 2, 29)]


@pytest.mark.parametrize(
    ("frequency", "second", "third"),
    [
        (Frequency.DAILY, D(2026, 2, 1), D(2026, 2, 2)),
        (Frequency.WEEKLY, D(2026, 2, 7), D(2026, 2, 14)),
        (Frequency.BIWEEKLY, D(2026, 2, 14), D(2026, 2, 28)),
        (Frequency.QUARTERLY, D(2026, 4, 30), D(2026, 7, 31)),
        (Frequency.ANNUAL, D(2027, 1, 31), D(2028, 1, 31)),
    ],
)
def test_each_frequency_steps_from_the_start(frequency, second, third):
    assert [occurrence_date(D(2026, 1, 31), frequency, k) for k in (1, 2)] == [second, third]


@pytest.mark.parametrize("frequency", Frequency.values)
@pytest.mark.parametrize("start", [D(2024, 2, 29), D(2026, 1, 31), D(2026, 3, 15)])
def test_the_first_occurrence_on_or_after_a_day_inverts_the_schedule(frequency, start):
    for k in range(40):
        day = occurrence_date(start, frequency, k)
        assert occurrence_on_or_after(start, frequency, day) == k
        assert occurrence_on_or_after(start, frequency, day + datetime.timedelta(days=1)) == k + 1
    assert occurrence_on_or_after(start, frequency, start - datetime.timedelta(days=400)) == 0


def test_no_occurrence_falls_past_the_years_the_books_keep():
    assert occurrence_date(D(2999, 6, 1), Frequency.ANNUAL, 1) is None
    assert occurrence_date(D(2999, 12, 31), Frequency.DAILY, 1) is None


# --- Generating on the right dates ------------------------------------------------------------


def test_a_template_on_the_31st_generates_on_february_28th_then_march_31st(company, books, customer):
    with on(D(2026, 1, 20)):
        template = TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 31))

    with on(D(2026, 2, 28)):
        outcome = recurring.generate_due()

    template.refresh_from_db()
    assert outcome.created == 2
    assert generated(template) == [D(2026, 1, 31), D(2026, 2, 28)]
    assert template.next_generation_date == D(2026, 3, 31)
    assert sorted(Invoice.objects.values_list("issue_date", flat=True)) == [D(2026, 1, 31), D(2026, 2, 28)]


def test_an_annual_template_from_leap_day_catches_up_on_the_28th(company, books):
    with on(D(2024, 2, 1)):
        template = journal(company, books, frequency=Frequency.ANNUAL, start_date=D(2024, 2, 29))

    with on(D(2027, 3, 1)):
        recurring.generate_due()

    template.refresh_from_db()
    assert generated(template) == [D(2024, 2, 29), D(2025, 2, 28), D(2026, 2, 28), D(2027, 2, 28)]
    assert template.next_generation_date == D(2028, 2, 29)
    assert list(template.generations.values_list("occurrence", flat=True)) == [1, 2, 3, 4]


def test_an_occurrence_is_generated_days_ahead_of_its_date_and_not_before(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=D(2026, 2, 1), days_ahead=7)

    with on(D(2026, 1, 24)):
        early = recurring.generate_due()
    with on(D(2026, 1, 25)):
        due = recurring.generate_due()

    assert (early.created, due.created) == (0, 1)
    invoice = Invoice.objects.get()
    assert (invoice.issue_date, invoice.due_date) == (D(2026, 2, 1), D(2026, 2, 15))
    template.refresh_from_db()
    assert template.next_generation_date == D(2026, 3, 1)


def test_missed_occurrences_are_caught_up_after_downtime_a_bounded_number_per_run(company, books):
    template = journal(company, books, frequency=Frequency.DAILY, start_date=D(2026, 1, 1))

    with on(D(2026, 1, 10)):
        first = recurring.generate_due(per_template=4)
        second = recurring.generate_due(per_template=4)
        third = recurring.generate_due(per_template=4)

    assert (first.created, second.created, third.created) == (4, 4, 2)
    template.refresh_from_db()
    assert template.total_generated == 10
    assert template.next_generation_date == D(2026, 1, 11)


# --- Maximum, end, pause, cancel ---------------------------------------------------------------


def test_a_template_completes_at_its_maximum_number_of_occurrences(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, max_occurrences=3)

    with on(D(2026, 12, 31)):
        outcome = recurring.generate_due()
        again = recurring.generate_due()

    template.refresh_from_db()
    assert (outcome.created, outcome.completed, again.created) == (3, 1, 0)
    assert generated(template) == [D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)]
    assert (template.status, template.next_generation_date, template.total_generated) == (
        TemplateStatus.COMPLETED,
        None,
        3,
    )


def test_no_occurrence_is_generated_after_the_end_date(company, books):
    template = journal(
        company, books, frequency=Frequency.WEEKLY, start_date=D(2026, 1, 5), end_date=D(2026, 1, 25), days_ahead=30
    )

    with on(D(2026, 1, 5)):
        recurring.generate_due()

    template.refresh_from_db()
    assert generated(template) == [D(2026, 1, 5), D(2026, 1, 12), D(2026, 1, 19)]
    assert (template.status, template.next_generation_date) == (TemplateStatus.COMPLETED, None)


def test_an_occurrence_on_the_end_date_is_generated(company, books):
    template = journal(company, books, frequency=Frequency.MONTHLY, start_date=D(2026, 1, 31), end_date=D(2026, 2, 28))

    with on(D(2026, 3, 1)):
        recurring.generate_due()

    template.refresh_from_db()
    assert generated(template) == [D(2026, 1, 31), D(2026, 2, 28)]
    assert template.status == TemplateStatus.COMPLETED


def test_paused_templates_are_skipped_and_resume_without_the_missed_occurrences(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 1))
    with on(D(2026, 1, 1)):
        recurring.generate_due()
    recurring.pause(template)

    with on(D(2026, 4, 15)):
        paused = recurring.generate_due()
        recurring.resume(template)
        resumed = recurring.generate_due()

    assert paused.created == 0
    assert resumed.created == 0  # February to April were missed while paused
    template.refresh_from_db()
    assert (template.status, template.next_generation_date) == (TemplateStatus.ACTIVE, D(2026, 5, 1))
    with on(D(2026, 5, 1)):
        recurring.generate_due()
    assert generated(template) == [D(2026, 1, 1), D(2026, 5, 1)]


def test_a_paused_plan_still_gets_its_maximum_after_resuming(company, books):
    template = journal(company, books, start_date=D(2026, 1, 1), max_occurrences=3)
    with on(D(2026, 1, 1)):
        recurring.generate_due()
        recurring.pause(template)
    with on(D(2026, 3, 10)):
        recurring.resume(template)

    with on(D(2026, 12, 1)):
        recurring.generate_due()

    assert generated(template) == [D(2026, 1, 1), D(2026, 4, 1), D(2026, 5, 1)]


def test_resuming_after_the_end_date_completes_the_template(company, books):
    template = journal(company, books, start_date=D(2026, 1, 1), end_date=D(2026, 3, 31))
    recurring.pause(template)

    with on(D(2026, 6, 1)):
        recurring.resume(template)

    assert (template.status, template.next_generation_date) == (TemplateStatus.COMPLETED, None)


def test_cancelled_completed_and_manual_templates_are_left_out_of_auto_generation(company, books, customer):
    cancelled = TemplateFactory(company=company, customer=customer)
    recurring.cancel(cancelled)
    completed = TemplateFactory(company=company, customer=customer, max_occurrences=1)
    manual = TemplateFactory(company=company, customer=customer, auto_generate=False)
    with on(D(2026, 1, 1)):
        recurring.generate_due()

    with on(D(2026, 3, 1)):
        outcome = recurring.generate_due()

    assert outcome.created == 0
    assert (generated(cancelled), generated(completed), generated(manual)) == ([], [D(2026, 1, 1)], [])
    cancelled.refresh_from_db()
    assert cancelled.next_generation_date is None


def test_generate_all_is_by_hand_and_includes_templates_without_auto_generation(company, books, customer):
    manual = TemplateFactory(company=company, customer=customer, auto_generate=False)
    other = TemplateFactory(company=CompanyFactory())

    with on(D(2026, 2, 1)):
        outcome = recurring.generate_all(company)

    assert outcome.created == 2
    assert list(manual.generations.values_list("occurrence_date", "manual")) == [
        (D(2026, 1, 1), True),
        (D(2026, 2, 1), True),
    ]
    assert generated(other) == []


@pytest.mark.parametrize(
    ("start", "action", "service"),
    [
        (TemplateStatus.CANCELLED, "resume", recurring.resume),
        (TemplateStatus.CANCELLED, "pause", recurring.pause),
        (TemplateStatus.COMPLETED, "resume", recurring.resume),
        (TemplateStatus.COMPLETED, "cancel", recurring.cancel),
    ],
)
def test_impossible_transitions_are_refused(company, books, customer, start, action, service):
    template = TemplateFactory(company=company, customer=customer)
    RecurringTemplate.objects.filter(pk=template.pk).update(status=start, next_generation_date=None)

    with pytest.raises(BillingStateError, match=f"is {start}"):
        service(template)


def test_repeating_a_transition_changes_nothing(company, books, customer):
    template = TemplateFactory(company=company, customer=customer)

    assert (recurring.pause(template), recurring.pause(template)) == (True, False)
    assert (recurring.resume(template), recurring.resume(template)) == (True, False)
    assert (recurring.cancel(template), recurring.cancel(template)) == (True, False)
    assert template.status == TemplateStatus.CANCELLED


def test_a_changed_schedule_goes_on_after_the_last_occurrence_generated(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 1))
    with on(D(2026, 1, 10)):
        recurring.generate_due()

    template.frequency = Frequency.WEEKLY
    recurring.save_template(template)

    template.refresh_from_db()
    assert template.next_generation_date == D(2026, 1, 8)
    assert template.total_generated == 1


def test_a_template_that_generated_is_not_deleted_but_a_fresh_one_is(company, books, customer):
    used = TemplateFactory(company=company, customer=customer)
    fresh = TemplateFactory(company=company, customer=customer, start_date=D(2027, 1, 1))
    with on(D(2026, 1, 1)):
        recurring.generate_due()

    with pytest.raises(BillingStateError, match="cancel it instead"):
        recurring.delete_template(used)
    recurring.delete_template(fresh)

    assert list(RecurringTemplate.objects.values_list("pk", flat=True)) == [used.pk]


def test_a_completed_template_no_longer_changes(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, max_occurrences=1)
    with on(D(2026, 1, 1)):
        recurring.generate_due()
    template.refresh_from_db()

    template.name = "Renamed"
    with pytest.raises(BillingStateError, match="completed"):
        recurring.save_template(template)


# --- Once, and only once ------------------------------------------------------------------------


def test_a_rerun_creates_nothing_twice(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, days_ahead=5)

    with on(D(2026, 1, 28)):
        first = recurring.generate_due()
        second = recurring.generate_due()
    with on(D(2026, 1, 29)):
        third = recurring.generate_due()

    assert (first.created, second.created, third.created) == (2, 0, 0)
    assert Invoice.objects.count() == 2
    assert Notification.objects.filter(kind="invoice_issued").count() == 2
    template.refresh_from_db()
    assert template.total_generated == 2


def test_an_occurrence_claimed_elsewhere_is_skipped_not_generated_again(company, books, customer):
    template = TemplateFactory(company=company, customer=customer)
    # A concurrent worker that claimed January's occurrence first, before this one read the template.
    RecurringGeneration.objects.create(
        company=company, template=template, occurrence=1, occurrence_date=D(2026, 1, 1), manual=False
    )

    with on(D(2026, 2, 1)):
        outcome = recurring.generate_due()

    assert (outcome.created, outcome.skipped) == (1, 1)
    assert list(Invoice.objects.values_list("issue_date", flat=True)) == [D(2026, 2, 1)]
    template.refresh_from_db()
    assert (template.total_generated, template.next_generation_date) == (1, D(2026, 3, 1))


# --- What is generated ------------------------------------------------------------------------------


def test_an_invoice_template_issues_numbered_posted_invoices_with_tax(company, books, customer):
    template = TemplateFactory(
        company=company,
        customer=customer,
        name="Retainer",
        description="Monthly retainer",
        amount=Decimal("250.00"),
        tax_rate=Decimal("16"),
    )

    with on(D(2026, 1, 1)):
        recurring.generate_due()

    invoice = Invoice.objects.get()
    assert (invoice.number, invoice.status, invoice.source, invoice.template) == (
        "INV-000001",
        InvoiceStatus.OPEN,
        "recurring",
        template,
    )
    assert invoice.billing_key == f"recurring:{template.pk}:2026-01-01"
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.due) == (
        Decimal("250.00"),
        Decimal("40.00"),
        Decimal("290.00"),
        Decimal("290.00"),
    )
    assert [(line.description, line.income_account.code) for line in invoice.lines.all()] == [
        ("Monthly retainer", "4100")
    ]
    lines = {
        (line.account.code, line.party): line.amount for line in JournalLine.objects.filter(entry=invoice.journal_entry)
    }
    assert lines == {
        ("1200", f"customer:{customer.pk}"): Decimal("290.00"),
        ("4100", ""): Decimal("-250.00"),
        ("2200", ""): Decimal("-40.00"),
    }
    assert template.generations.get().invoice == invoice
    assert Notification.objects.get(kind="invoice_issued").data["invoice_number"] == "INV-000001"


def test_an_invoice_template_uses_its_own_income_account(company, books, customer):
    TemplateFactory(company=company, customer=customer, income_account=books["4200"])

    with on(D(2026, 1, 1)):
        recurring.generate_due()

    assert Invoice.objects.get().lines.get().income_account == books["4200"]


def test_journal_templates_post_balanced_entries_keyed_by_occurrence(company, books):
    template = journal(company, books, start_date=D(2026, 1, 31))

    with on(D(2026, 2, 28)):
        outcome = recurring.generate_due()

    entries = JournalEntry.objects.filter(company=company).order_by("date")
    assert [(e.date, e.source, e.source_id) for e in entries] == [
        (D(2026, 1, 31), Source.BILLING, f"recurring:{template.pk}:2026-01-31"),
        (D(2026, 2, 28), Source.BILLING, f"recurring:{template.pk}:2026-02-28"),
    ]
    for entry in entries:
        amounts = {line.account.code: line.amount for line in entry.lines.all()}
        assert amounts == {"6200": Decimal("1200.00"), "1100": Decimal("-1200.00")}
    assert sorted(outcome.entries) == sorted(entries.values_list("pk", flat=True))
    assert set(template.generations.values_list("journal_entry", flat=True)) == set(outcome.entries)


def test_a_template_the_books_refuse_holds_up_no_other(company, books, customer):
    refused = TemplateFactory(company=company, customer=customer, income_account=books["4200"])
    fine = TemplateFactory(company=company, customer=customer)
    rent = journal(company, books)
    Account.objects.filter(pk=books["4200"].pk).update(is_active=False)

    with on(D(2026, 1, 1)):
        outcome = recurring.generate_due()

    assert (outcome.created, outcome.failed) == (2, 1)
    assert list(outcome.errors) == [refused.pk]
    assert "inactive" in " ".join(outcome.errors[refused.pk])
    assert (generated(refused), generated(fine), generated(rent)) == ([], [D(2026, 1, 1)], [D(2026, 1, 1)])
    assert list(Invoice.objects.values_list("number", flat=True)) == ["INV-000001"]  # no number lost


def test_every_company_generates_on_its_own_business_date(company, books, customer):
    tokyo = CompanyFactory(timezone="Asia/Tokyo")
    from ledger.services.chart import load_default_chart

    load_default_chart(tokyo)
    chart = {a.code: a for a in Account.objects.filter(company=tokyo)}
    TemplateFactory(company=company, customer=customer, start_date=D(2026, 2, 1))
    ahead = journal(tokyo, chart, start_date=D(2026, 2, 1))

    # 20:00 in London on 31 January is 05:00 on 1 February in Tokyo
    with time_machine.travel(datetime.datetime(2026, 1, 31, 20, tzinfo=datetime.UTC), tick=False):
        outcome = recurring.generate_due()

    assert outcome.created == 1
    assert generated(ahead) == [D(2026, 2, 1)]


def test_a_generation_batch_costs_the_same_number_of_queries_for_three_templates_or_twelve(company, books):
    def queries_to_generate(count: int, start: datetime.date) -> int:
        for n in range(count):
            if n % 2:
                journal(company, books, start_date=start, max_occurrences=1)
            else:
                customer = CustomerFactory(company=company)
                TemplateFactory(company=company, customer=customer, start_date=start, max_occurrences=1)
        with on(start), CaptureQueriesContext(connection) as captured:
            outcome = recurring.generate_due()
        assert outcome.created == count
        return len(captured)

    queries_to_generate(1, D(2026, 1, 1))  # creates the number sequence, caches content types
    assert queries_to_generate(3, D(2026, 2, 1)) == queries_to_generate(12, D(2026, 3, 1))


# --- Checking templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"customer": None}, "customer", "needs a customer"),
        ({"amount": Decimal("0")}, "amount", "more than zero"),
        ({"amount": Decimal("10.005")}, "amount", "2 decimal places"),
        ({"currency": "USD"}, "currency", "kept in GBP"),
        ({"end_date": D(2025, 12, 31)}, "end_date", "before the start"),
        ({"days_ahead": 400}, "days_ahead", "0 to 366"),
        ({"max_occurrences": 0}, "max_occurrences", "At least 1"),
        ({"tax_rate": Decimal("101")}, "tax_rate", "0 to 100"),
        ({"name": " "}, "name", "needs a name"),
    ],
)
def test_an_invoice_template_is_refused_with_the_field_at_fault(company, books, customer, fields, field, message):
    with pytest.raises(BillingError) as refused:
        TemplateFactory(company=company, **{"customer": customer, **fields})

    assert message in " ".join(refused.value.message_dict[field])
    assert not RecurringTemplate.objects.exists()


def test_an_invoice_template_needs_a_customer_of_its_own_company(company, books, other_company):
    stranger = CustomerFactory(company=other_company)

    with pytest.raises(BillingError) as refused:
        TemplateFactory(company=company, customer=stranger)

    assert refused.value.message_dict == {"customer": ["The customer belongs to another company."]}


def test_a_journal_template_needs_two_different_active_accounts_of_its_company(company, books, other_company):
    from ledger.services.chart import load_default_chart

    load_default_chart(other_company)
    foreign = Account.objects.get(company=other_company, code="1100")
    Account.objects.filter(pk=books["6300"].pk).update(is_active=False)

    cases = [
        ({"debit_account": books["1100"], "credit_account": books["1100"]}, "credit_account", "two different"),
        ({"debit_account": foreign}, "debit_account", "another company"),
        ({"debit_account": books["6300"]}, "debit_account", "inactive"),
        ({"credit_account": books["1200"]}, "credit_account", "control account"),
        ({"credit_account": None}, "credit_account", "needs a debit and a credit"),
    ]
    for fields, field, message in cases:
        with pytest.raises(BillingError) as refused:
            journal(company, books, **fields)
        assert message in " ".join(refused.value.message_dict[field]), fields


def test_a_new_template_is_active_and_starts_at_its_start_date_in_the_companys_currency(company, books, customer):
    template = TemplateFactory(company=company, customer=customer, start_date=D(2026, 3, 31))

    assert (template.status, template.next_generation_date, template.currency) == (
        TemplateStatus.ACTIVE,
        D(2026, 3, 31),
        "GBP",
    )


# --- What is coming -----------------------------------------------------------------------------------


def test_upcoming_lists_what_is_still_to_generate_by_date_and_writes_nothing(company, books, customer):
    rent = journal(company, books, frequency=Frequency.WEEKLY, start_date=D(2026, 1, 5), days_ahead=2)
    fee = TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 10), auto_generate=False)
    paused = TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 6))
    recurring.pause(paused)

    items, truncated = recurring.upcoming(company, 14, today=D(2026, 1, 5))

    assert [(i.template, i.occurrence, i.date, i.generate_on) for i in items] == [
        (rent, 1, D(2026, 1, 5), D(2026, 1, 3)),
        (fee, 1, D(2026, 1, 10), None),
        (rent, 2, D(2026, 1, 12), D(2026, 1, 10)),
        (rent, 3, D(2026, 1, 19), D(2026, 1, 17)),
    ]
    assert not truncated
    assert not RecurringGeneration.objects.exists()


def test_upcoming_respects_the_maximum_and_says_when_it_was_cut(company, books):
    journal(company, books, frequency=Frequency.DAILY, start_date=D(2026, 1, 1), max_occurrences=5)

    everything, cut = recurring.upcoming(company, 30, today=D(2026, 1, 1))
    first, more = recurring.upcoming(company, 30, today=D(2026, 1, 1), limit=3)

    assert (len(everything), cut) == (5, False)
    assert (len(first), more) == (3, True)


@pytest.mark.parametrize("days", [0, 367, "7"])
def test_upcoming_refuses_days_out_of_range(company, days):
    with pytest.raises(BillingError, match="From 1 to 366"):
        recurring.upcoming(company, days)


# --- RECURRING_GENERATE through the job layer ------------------------------------------------------


def request(day: datetime.date):
    return runs.request_run(JobDefinition.objects.get(code="RECURRING_GENERATE"), business_date=day)


def test_the_job_is_hourly_for_the_whole_platform_on_the_billing_queue():
    definition = JobDefinition.objects.get(code="RECURRING_GENERATE")

    assert (definition.scope, definition.queue, definition.key_by) == ("global", "billing", "hour")
    assert definition.schedules.get().periodic_task.crontab.minute == "0"


def test_the_job_generates_what_is_due_and_a_second_request_for_the_hour_is_the_same_run(company, books, customer):
    TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 1))
    journal(company, books, start_date=D(2026, 1, 15))

    with on(D(2026, 1, 20)):
        run, created = request(D(2026, 1, 20))
        run = execution.run_here(run)
        again, created_again = request(D(2026, 1, 20))

    assert (created, created_again, again.pk) == (True, False, run.pk)
    assert (run.status, run.processed, run.created, run.skipped, run.failed) == (RunStatus.SUCCEEDED, 2, 2, 0, 0)
    assert run.result["invoices"] == 1 and run.result["journal_entries"] == 1


def test_the_next_runs_generate_nothing_already_generated(company, books, customer):
    TemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 1))
    with on(D(2026, 1, 20)):
        execution.run_here(request(D(2026, 1, 19))[0])

        later = execution.run_here(request(D(2026, 1, 20))[0])

    assert (later.status, later.created) == (RunStatus.SUCCEEDED, 0)
    assert Invoice.objects.count() == 1


def test_the_job_fails_naming_refused_templates_after_generating_the_others(company, books, customer):
    refused = TemplateFactory(company=company, customer=customer, income_account=books["4200"])
    TemplateFactory(company=company, customer=customer)
    Account.objects.filter(pk=books["4200"].pk).update(is_active=False)

    with on(D(2026, 1, 1)):
        run = execution.run_here(request(D(2026, 1, 1))[0])

    assert (run.status, run.created, run.failed) == (RunStatus.FAILED, 1, 1)
    assert f"templates {refused.pk}" in run.error
    assert Invoice.objects.count() == 1
    assert run.logs.filter(message__startswith=f"template {refused.pk} refused").exists()


# --- The admin ------------------------------------------------------------------------------------------


def admin_url(view: str, *args) -> str:
    from django.urls import reverse

    return reverse(f"admin:billing_recurringtemplate_{view}", args=args)


def act(admin_client, action: str, *templates):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

    data = {"action": action, ACTION_CHECKBOX_NAME: [t.pk for t in templates]}
    return admin_client.post(admin_url("changelist"), data, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def admin_form(company, books, **fields) -> dict:
    return {
        "company": company.pk,
        "name": "Rent",
        "description": "",
        "generates": "journal",
        "amount": "1200.00",
        "currency": "GBP",
        "customer": "",
        "tax_rate": "0",
        "income_account": "",
        "debit_account": books["6200"].pk,
        "credit_account": books["1100"].pk,
        "frequency": "monthly",
        "start_date": "2026-01-31",
        "end_date": "",
        "max_occurrences": "",
        "auto_generate": "on",
        "days_ahead": "7",
        "generations-TOTAL_FORMS": "0",
        "generations-INITIAL_FORMS": "0",
        "generations-MIN_NUM_FORMS": "0",
        "generations-MAX_NUM_FORMS": "1000",
        **fields,
    }


def test_the_admin_pages_answer_with_the_history_inline(admin_client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer)
    done = journal(company, books, max_occurrences=1)
    with on(D(2026, 2, 1)):
        recurring.generate_due()

    assert admin_client.get(admin_url("changelist")).status_code == 200
    assert admin_client.get(admin_url("add")).status_code == 200
    page = admin_client.get(admin_url("change", template.pk))
    assert page.status_code == 200
    assert b"INV-000002" in page.content
    completed = admin_client.get(admin_url("change", done.pk))  # shown, no longer changed
    assert completed.status_code == 200
    assert admin_client.post(admin_url("change", done.pk), {}).status_code == 403


def test_a_template_added_in_the_admin_is_saved_through_the_service(admin_client, company, books):
    response = admin_client.post(admin_url("add"), admin_form(company, books))

    assert response.status_code == 302, response.context["adminform"].form.errors
    template = RecurringTemplate.objects.get()
    assert (template.status, template.next_generation_date) == (TemplateStatus.ACTIVE, D(2026, 1, 31))


def test_the_admin_form_shows_the_services_refusal_on_the_field(admin_client, company, books):
    response = admin_client.post(admin_url("add"), admin_form(company, books, credit_account=books["6200"].pk))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["credit_account"] == ["Debit and credit need two different accounts."]
    assert not RecurringTemplate.objects.exists()


def test_the_admin_actions_call_the_services_and_report_refusals(admin_client, company, books, customer):
    active = TemplateFactory(company=company, customer=customer, name="Active")
    cancelled = TemplateFactory(company=company, customer=customer, name="Gone")
    recurring.cancel(cancelled)

    paused = act(admin_client, "pause_templates", active, cancelled)
    resumed = act(admin_client, "resume_templates", active)

    assert texts(paused) == [
        f"Pause: 1 done, 1 refused: Gone: Template {cancelled.pk} is cancelled; only an active one is paused."
    ]
    assert texts(resumed) == ["Resume: 1 done"]
    active.refresh_from_db()
    assert active.status == TemplateStatus.ACTIVE


def test_the_admin_generates_now_by_hand(admin_client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer, auto_generate=False)

    with on(D(2026, 1, 1)):
        first = act(admin_client, "generate_now", template)
        second = act(admin_client, "generate_now", template)

    assert texts(first) == ["Generate: 1 done"]
    assert texts(second) == ["Generate: 0 done, 1 had nothing due"]
    assert list(template.generations.values_list("manual", flat=True)) == [True]


def test_a_template_that_generated_cannot_be_deleted_in_the_admin(admin_client, company, books, customer):
    template = TemplateFactory(company=company, customer=customer)
    with on(D(2026, 1, 1)):
        recurring.generate_due()

    changelist = admin_client.get(admin_url("changelist"))

    assert admin_client.get(admin_url("delete", template.pk)).status_code == 403
    assert "delete_selected" not in [
        name for name, _label in changelist.context["action_form"].fields["action"].choices
    ]
