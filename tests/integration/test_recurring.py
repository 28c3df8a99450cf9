"""Recurring generation under a real race: two processes' transactions on PostgreSQL, where
SQLite would let only one writer in at a time."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connections

from billing.models import Invoice, RecurringGeneration
from billing.services import recurring
from ledger.models import JournalEntry
from tests.factories import CustomerFactory, RecurringTemplateFactory

D = datetime.date


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_generate_each_occurrence_once(company, chart):
    customer = CustomerFactory(company=company, name="Amina Njoroge")
    RecurringTemplateFactory(company=company, customer=customer, start_date=D(2026, 1, 1))
    RecurringTemplateFactory(
        company=company,
        customer=None,
        generates="journal",
        frequency="daily",
        name="Office rent",
        amount=Decimal("1200.00"),
        debit_account=chart["6200"],
        credit_account=chart["1100"],
        start_date=D(2026, 1, 1),
    )
    start, outcomes, errors = threading.Barrier(2), [], []

    def worker():
        try:
            start.wait()
            outcomes.append(recurring.generate_due())
        except Exception as exc:  # reported below, with the other worker's outcome
            errors.append(exc)
        finally:
            connections.close_all()

    # Noon on 31 January: 32 occurrences are due (January's invoice and 31 daily journals), and
    # both workers reach for all of them at the same moment. The invoice posts an entry too.
    with time_machine.travel(datetime.datetime(2026, 1, 31, 12, tzinfo=datetime.UTC), tick=False):
        workers = [threading.Thread(target=worker) for _ in range(2)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

    assert errors == []
    assert sorted(o.created for o in outcomes) == [0, 32]
    assert Invoice.objects.count() == 1
    assert RecurringGeneration.objects.count() == JournalEntry.objects.count() == 32
