"""The ledger under concurrency on PostgreSQL, and its GL jobs on a real worker."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from ledger.errors import PostingError
from ledger.models import JournalEntry, Period, PeriodBalance, PeriodStatus
from ledger.services import periods, posting
from ledger.services.chart import load_default_chart
from ledger.services.posting import Entry, Line
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.services import runs
from tests.factories import CompanyFactory, UserFactory
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NOV = datetime.date(2026, 11, 12)


@pytest.fixture
def books():
    company = CompanyFactory(slug="books", fiscal_year_start_month=1)
    load_default_chart(company)
    accounts = {a.code: a for a in company.accounts.all()}
    return company, accounts


def sale(accounts, amount: str, source_id: str = "", day: datetime.date = NOV) -> Entry:
    return Entry(
        day,
        [Line(accounts["1200"], debit=amount, party="customer:1"), Line(accounts["4100"], credit=amount)],
        source="billing" if source_id else "manual",
        source_id=source_id,
    )


class Held(threading.Thread):
    """Runs ``work`` in its own connection and transaction, and holds the transaction
    open until ``release`` is set, so another connection can collide with it."""

    def __init__(self, work) -> None:
        super().__init__(daemon=True)
        self.work, self.done, self.release = work, threading.Event(), threading.Event()
        self.result = self.error = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                self.result = self.work()
                self.done.set()
                assert self.release.wait(30)
        except Exception as exc:  # reported to the test thread
            self.error = exc
        finally:
            self.done.set()
            connection.close()


class Background(threading.Thread):
    def __init__(self, work) -> None:
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except Exception as exc:
            self.error = exc
        finally:
            connection.close()


def test_two_connections_posting_the_same_source_id_at_once_create_one_entry(books):
    company, accounts = books
    first = Held(lambda: posting.post(company, sale(accounts, "120.00", "invoice:7")))
    first.start()
    assert first.done.wait(30) and first.error is None

    # The second insert waits on the first's uncommitted row, then finds it committed.
    second = Background(lambda: posting.post(company, sale(accounts, "120.00", "invoice:7")))
    second.start()
    second.join(2)
    assert second.is_alive(), "the second posting should wait for the first transaction"
    first.release.set()
    first.join(30)
    second.join(30)

    assert second.error is None
    assert first.result.created and not second.result.created
    assert second.result.entry.pk == first.result.entry.pk
    assert JournalEntry.objects.filter(source_id="invoice:7").count() == 1
    assert JournalEntry.objects.get(source_id="invoice:7").lines.count() == 2


def test_a_period_close_waits_for_a_posting_in_flight_and_its_balances_include_it(books):
    company, accounts = books
    posting.post(company, sale(accounts, "10.00"))
    november = Period.objects.get(company=company, start_date=datetime.date(2026, 11, 1))
    for earlier in Period.objects.filter(company=company, start_date__lt=november.start_date).order_by("start_date"):
        periods.close_period(earlier)

    in_flight = Held(lambda: posting.post(company, sale(accounts, "5.00")))
    in_flight.start()
    assert in_flight.done.wait(30) and in_flight.error is None
    closer = Background(lambda: periods.close_period(november))
    closer.start()
    closer.join(2)
    assert closer.is_alive(), "the close should wait for the posting's share lock"
    in_flight.release.set()
    in_flight.join(30)
    closer.join(30)

    assert closer.error is None and closer.result is True
    stored = PeriodBalance.objects.get(period=november, account=accounts["1200"])
    assert stored.closing == Decimal("15.00")
    refused = Background(lambda: posting.post(company, sale(accounts, "1.00")))
    refused.start()
    refused.join(30)
    assert isinstance(refused.error, PostingError)


def test_period_close_on_a_worker_waits_for_the_daily_close_of_the_last_day(books, start_worker):
    company, accounts = books
    posting.post(company, sale(accounts, "250.00", "invoice:1"))
    last_day = datetime.date(2026, 11, 30)
    start_worker(concurrency=2)

    period_close, _ = runs.request_run(
        JobDefinition.objects.get(code="GL_PERIOD_CLOSE"), business_date=last_day, company=company
    )
    assert period_close.status == RunStatus.WAITING
    daily, _ = runs.request_run(
        JobDefinition.objects.get(code="GL_DAILY_CLOSE"), business_date=last_day, company=company
    )

    def finished(run: JobRun) -> bool:
        run.refresh_from_db()
        return run.is_finished

    wait_for(lambda: finished(daily) and finished(period_close), timeout=60, what="both GL runs to finish")
    assert daily.status == RunStatus.SUCCEEDED, daily.error
    assert period_close.status == RunStatus.SUCCEEDED, period_close.error
    assert period_close.started_at >= daily.finished_at
    assert period_close.result["closed"][-1] == "2026-11"
    assert not Period.objects.filter(company=company, end_date__lte=last_day, status=PeriodStatus.OPEN).exists()
    assert PeriodBalance.objects.get(
        period__start_date=datetime.date(2026, 11, 1), account=accounts["4100"]
    ).closing == Decimal("-250.00")


def test_a_batch_written_as_column_arrays_reads_back_field_for_field(books):
    company, accounts = books
    user = UserFactory(username="poster")
    entries = [
        sale(accounts, "120.00", "invoice:a"),
        Entry(
            NOV,
            [
                Line(accounts["6200"], debit="80.00", currency="USD", base_amount="63.41", description="rent"),
                Line(accounts["1100"], credit="63.41"),
            ],
            reference="R-1",
            memo="paid in dollars",
        ),
        sale(accounts, "9.99", "invoice:b", day=datetime.date(2026, 12, 1)),
    ]

    batch = posting.post_many(company, entries, user=user)

    assert len(batch.created) == 3 and not batch.existing
    posted = {entry.pk: entry for entry in JournalEntry.objects.filter(pk__in=batch.created)}
    for pk, given in zip(batch.created, entries, strict=True):
        entry = posted[pk]
        assert (entry.date, entry.reference, entry.memo, entry.source, entry.source_id) == (
            given.date,
            given.reference,
            given.memo,
            given.source,
            given.source_id,
        )
        assert entry.status == "posted" and entry.posted_by == user and entry.created_by == user
        assert entry.period.start_date <= entry.date <= entry.period.end_date
        lines = list(entry.lines.order_by("pk"))
        assert [(line.account_id, line.party, line.description) for line in lines] == [
            (line.account_id, line.party, line.description) for line in given.lines
        ]
        assert all(line.posted and line.date == given.date and line.company_id == company.pk for line in lines)
        assert sum(line.amount for line in lines) == 0
    dollars = JournalEntry.objects.get(pk=batch.created[1]).lines.order_by("pk").first()
    assert (dollars.currency, dollars.debit, dollars.amount) == ("USD", Decimal("80.00"), Decimal("63.41"))
    assert posting.post_many(company, entries[:1]).existing == batch.created[:1]
