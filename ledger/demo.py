"""Demo data for the ledger: one company with the default chart of accounts, to find in
the admin and the API."""

from __future__ import annotations

from collections.abc import Iterator

from ledger.models import Company
from ledger.services.chart import load_default_chart

DEMO_COMPANY = {
    "name": "Demo Trading Ltd",
    "base_currency": "GBP",
    "timezone": "Europe/London",
    "fiscal_year_start_month": 4,
    "fiscal_year_start_day": 1,
}


def load() -> Iterator[str]:
    company, created = Company.objects.get_or_create(slug="demo", defaults=DEMO_COMPANY)
    yield f"company {company.slug!r} {'created' if created else 'already there'}"
    loaded = load_default_chart(company)
    yield f"chart of accounts for {company.slug!r}: {loaded.created} accounts created, {loaded.existing} already there"
