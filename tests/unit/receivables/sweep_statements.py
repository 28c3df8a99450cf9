"""The URL sweep's objects for customer statements and credit limit breaches
(tests/unit/test_url_sweep.py): each makes one of the owner's company's and returns its id."""

from __future__ import annotations

import datetime

END = datetime.date(2026, 1, 31)


def statement(company) -> int:
    from django.utils import timezone

    from receivables.models import Statement
    from tests.factories import CustomerFactory

    customer = CustomerFactory(company=company)
    return Statement.objects.create(
        company=company,
        customer=customer,
        statement_date=END,
        customer_name=customer.name,
        currency=company.base_currency,
        balance="10.00",
        items=[],
        aging=[],
        created_at=timezone.now(),
    ).pk


def breach(company) -> int:
    from django.utils import timezone

    from receivables.models import CreditLimitBreach
    from tests.factories import CustomerFactory

    customer = CustomerFactory(company=company, credit_limit="5.00")
    return CreditLimitBreach.objects.create(
        company=company,
        customer=customer,
        since=END,
        credit_limit="5.00",
        balance="10.00",
        currency=company.base_currency,
        created_at=timezone.now(),
    ).pk


OWNED = {
    "api/v1/receivables/statements/<pk>": statement,
    "api/v1/receivables/statements/<pk>/document": statement,
    "api/v1/receivables/credit-limit-breaches/<pk>": breach,
}
