"""The URL sweep's objects for recurring templates: a template of the owner's company."""

from __future__ import annotations


def recurring_template(company) -> int:
    import datetime

    from billing.models import RecurringTemplate
    from billing.services import recurring
    from tests.factories import CustomerFactory

    template = RecurringTemplate(
        company=company,
        name="Swept retainer",
        frequency="monthly",
        amount="100.00",
        customer=CustomerFactory(company=company),
        start_date=datetime.date(2026, 1, 1),
    )
    return recurring.save_template(template).pk


OWNED = {
    "api/v1/billing/recurring-templates/<pk>": recurring_template,
    "api/v1/billing/recurring-templates/<pk>/pause": recurring_template,
    "api/v1/billing/recurring-templates/<pk>/resume": recurring_template,
    "api/v1/billing/recurring-templates/<pk>/cancel": recurring_template,
    "api/v1/billing/recurring-templates/<pk>/history": recurring_template,
}
