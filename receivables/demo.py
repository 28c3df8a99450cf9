"""Receivables' demo: an accounting export of three organisations in the interchange
format, imported for the demo company, and the school's aged debtors reconciled to its
control account. Loading again imports nothing twice."""

from __future__ import annotations

import datetime
import io
import json
import random
from collections.abc import Iterator
from decimal import Decimal

from django.utils import timezone

from ledger.models import Company
from receivables import engine
from receivables.models import DocumentSet
from receivables.services import reports
from receivables.sources import files

EXPORT = "Group export (demo)"
ORGANISATIONS = (
    ("Harbour Traders Ltd", "GBP", "1"),
    ("Kiwi Imports Ltd", "NZD", "2.05"),
    ("Alpine GmbH", "EUR", "1.17"),
)
CONTACTS = ("Atlas Freight", "Birch & Co", "Cobalt Retail", "Delta Foods", "Ember Studios", "Fjord Marine")


def export_lines(today: datetime.date) -> list[dict]:
    """Invoices over the last five months, some paid in part or in full, credit notes, an
    overpayment and a prepayment: every kind of line the format has."""
    rng = random.Random(2026)
    lines: list[dict] = []
    for org, currency, rate in ORGANISATIONS:
        prefix = org.split()[0][:3].upper()
        for n in range(1, 25):
            contact = CONTACTS[n % len(CONTACTS)]
            issued = today - datetime.timedelta(days=rng.randint(1, 150))
            total = Decimal(rng.randint(5_000, 250_000)) / 100
            invoice = {
                "type": "invoice",
                "id": f"{prefix}-I{n}",
                "company": org,
                "contact": contact,
                "number": f"{prefix}-INV-{n:04d}",
                "date": issued.isoformat(),
                "due_date": (issued + datetime.timedelta(days=30)).isoformat(),
                "total": str(total),
                "currency": currency,
                "rate": rate,
            }
            lines.append(invoice)
            paid_on = issued + datetime.timedelta(days=rng.randint(5, 60))
            if n % 3 and paid_on <= today:
                share = total if n % 3 == 1 else (total / 2).quantize(Decimal("0.01"))
                kind = "credit_note" if n % 7 == 0 else "payment"
                lines.append(
                    {"type": kind, "id": f"{prefix}-P{n}", "company": org, "contact": contact,
                     "number": f"{prefix}-RCPT-{n}", "date": paid_on.isoformat(), "total": str(share),
                     "currency": currency, "rate": rate}
                )  # fmt: skip
                lines.append(
                    {"type": "allocation", "id": f"{prefix}-A{n}", "from": f"{prefix}-P{n}", "to": f"{prefix}-I{n}",
                     "amount": str(share), "date": paid_on.isoformat()}
                )  # fmt: skip
        for kind, n in (("overpayment", 1), ("prepayment", 2)):
            lines.append(
                {"type": kind, "id": f"{prefix}-{kind[:2].upper()}{n}", "company": org, "contact": CONTACTS[n],
                 "date": (today - datetime.timedelta(days=10 * n)).isoformat(), "total": "120.00",
                 "currency": currency, "rate": rate}
            )  # fmt: skip
    return lines


def load() -> Iterator[str]:
    today = timezone.localdate()
    company = Company.objects.filter(slug="demo").first()
    document_set = DocumentSet.objects.filter(name=EXPORT).first()
    if document_set is None:
        text = "\n".join(json.dumps(line) for line in export_lines(today)).encode()
        document_set = files.import_file(io.BytesIO(text), name=EXPORT, company=company)
        yield f"{EXPORT!r}: {document_set.documents} documents and {document_set.allocations} allocations imported"
    else:
        yield f"{EXPORT!r} already there"
    school = Company.objects.filter(slug="school").first()
    if school is not None:
        built = reports.build(reports.parts_for_books([school]), engine.Options(today), use_cache=False)
        line = built.reconciliation[0]
        state = "reconciled" if line["reconciled"] else f"differs by {line['difference']}"
        yield (
            f"aged debtors of {school.slug!r} as of {today}: {line['report_total']} {line['currency']} "
            f"over {len(built.report.rows)} customers, control account {line['control_balance']} ({state})"
        )
