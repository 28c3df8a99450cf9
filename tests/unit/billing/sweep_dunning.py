"""The URL sweep's objects for dunning's routes (see tests/unit/test_url_sweep.py)."""

from __future__ import annotations


def dunning_level(company):
    from billing.models import DunningLevel

    level, _ = DunningLevel.objects.get_or_create(company=company, days_overdue=7, defaults={"name": "Reminder"})
    return level.pk


def overdue_notice(company):
    import datetime

    from billing.models import Invoice, OverdueNotice
    from tests.factories import CustomerFactory

    invoice = Invoice.objects.create(
        company=company,
        customer=CustomerFactory(company=company),
        number="SWEEP-1",
        status="open",
        issue_date=datetime.date(2026, 1, 1),
        due_date=datetime.date(2026, 1, 15),
        currency=company.base_currency,
        subtotal=10,
        total=10,
        due=10,
    )
    return OverdueNotice.objects.create(
        company=company,
        invoice=invoice,
        level_days=1,
        days_overdue=3,
        amount_due=10,
        business_date=datetime.date(2026, 1, 18),
    ).pk


OWNED = {
    "api/v1/billing/dunning-levels/<pk>": dunning_level,
    "api/v1/billing/overdue-notices/<pk>": overdue_notice,
}
