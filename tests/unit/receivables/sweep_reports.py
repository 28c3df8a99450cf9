"""The URL sweep's objects for aged reports, imported files and Xero connections
(tests/unit/test_url_sweep.py)."""

from __future__ import annotations

import datetime
import io


def aged_report(company) -> int:
    from receivables import engine
    from receivables.services import reports

    options = engine.Options(datetime.date(2026, 11, 21))
    return reports.create(options=options, source="db", companies=[company]).pk


def document_set(company) -> int:
    from receivables.sources import files

    line = (
        b'{"type": "credit_note", "id": "c1", "company": "North", "contact": "Acme", "date": "2026-11-01", '
        b'"total": "5.00", "currency": "GBP"}'
    )
    return files.import_file(io.BytesIO(line), name="sweep.jsonl", company=company).pk


def xero_connection(company) -> int:
    from receivables.models import XeroApp, XeroConnection

    app, _ = XeroApp.objects.get_or_create(name="Sweep app", defaults={"client_id": "id"})
    return XeroConnection.objects.create(app=app, tenant_id=f"tenant-{company.pk}", company=company).pk


OWNED = {
    "api/v1/receivables/aged-reports/<pk>": aged_report,
    "api/v1/receivables/aged-reports/<pk>/download": aged_report,
    "api/v1/receivables/document-sets/<pk>": document_set,
    "api/v1/receivables/xero-connections/<pk>": xero_connection,
}
