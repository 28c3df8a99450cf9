"""Aged receivables reports: what a report covers, how it is built from its parts, cached,
rendered and stored.

A report is the union of parts aged on their own: one per company of billing's books, one
per Xero connection, one per imported file. Each part's rows are cached under a key that
names its data's version — a connection's ``data_version`` (raised by every sync that
changes it), a fingerprint of billing's tables, an immutable file's id — so a sync that
changes one tenant invalidates that tenant's rows and no other's, and a report across 76
tenants after one changed re-ages one. Cached rows live for a time set by the report date:
a future date an hour, the last seven days a day, older dates a week.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from ledger.models import Company
from receivables import engine, excel
from receivables.models import AgedReport, DocumentSet, ReportFormat, ReportSource, XeroConnection
from receivables.sources import books, files, stored

logger = logging.getLogger(__name__)

HOUR = 3600
CACHE_VERSION = 1
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ReportError(ValueError):
    """The report cannot be made as asked (one readable line)."""


def ttl(as_of: datetime.date, today: datetime.date) -> int:
    """How long a part's rows stay cached: a future report date may still gain documents
    dated on or before it, a recent one may still be corrected, an old one rarely is."""
    if as_of > today:
        return HOUR
    if (today - as_of).days <= 7:
        return 24 * HOUR
    return 7 * 24 * HOUR


@dataclass
class Part:
    """One unit aged and cached on its own."""

    key: str
    label: str
    load: Callable[[datetime.date], tuple[list[engine.Doc], list[engine.Alloc]]]
    company: Company | None = None
    connection: XeroConnection | None = None
    business_unit: str = ""


@dataclass
class Built:
    report: engine.Report
    reconciliation: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    business_units: dict[str, str] = field(default_factory=dict)
    cached: int = 0


def parts_for_books(companies: Sequence[Company]) -> list[Part]:
    found = []
    for company in companies:
        version = hashlib.sha256(repr(books.fingerprint(company)).encode()).hexdigest()[:16]
        found.append(
            Part(
                f"books:{company.pk}:{version}",
                company.name,
                lambda as_of, company=company: books.documents(company, as_of),
                company=company,
            )
        )
    return found


def parts_for_connections(connections: Sequence[XeroConnection]) -> list[Part]:
    return [
        Part(
            f"xero:{connection.pk}:{connection.data_version}",
            connection.label,
            lambda as_of, connection=connection: stored.documents(as_of, connection=connection),
            connection=connection,
            business_unit=connection.business_unit,
        )
        for connection in connections
    ]


def part_for_set(document_set: DocumentSet) -> list[Part]:
    return [
        Part(
            f"set:{document_set.pk}",
            document_set.name,
            lambda as_of: stored.documents(as_of, document_set=document_set),
        )
    ]


def part_for_file(parsed: files.Parsed, name: str) -> list[Part]:
    return [Part(f"file:{parsed.sha256}", name, lambda as_of: (parsed.docs, parsed.allocations))]


def _options_key(options: engine.Options) -> str:
    return (
        f"{options.as_of}:{options.periods}:{options.period_type}:{options.period_length}:"
        f"{options.age_by}:{options.credit_aging}"
    )


def build(
    parts: Sequence[Part],
    options: engine.Options,
    *,
    progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
    today: datetime.date | None = None,
) -> Built:
    """Age every part (from the cache where it can) and put the rows together."""
    today = today or timezone.localdate()
    rows: list[engine.Row] = []
    built = Built(engine.Report(options, options.labels, [], []))
    for done, part in enumerate(parts, start=1):
        key = f"receivables:v{CACHE_VERSION}:{part.key}:{_options_key(options)}"
        part_rows = _cached(key) if use_cache else None
        if part_rows is None:
            docs, allocations = part.load(options.as_of)
            part_rows = engine.age(docs, allocations, options).rows
            _keep(key, part_rows, ttl(options.as_of, today))
        else:
            built.cached += 1
        rows.extend(part_rows)
        if part.company is not None:
            total = sum((row.total for row in part_rows), engine.ZERO)
            built.reconciliation.append(books.reconciliation(part.company, options.as_of, total))
        if part.connection is not None and part.business_unit:
            built.business_units[part.label] = part.business_unit
        if progress is not None:
            progress(done, len(parts))
    rows.sort(key=lambda row: (row.company.casefold(), row.contact.casefold(), row.company, row.contact, row.currency))
    built.report = engine.Report(options, options.labels, rows, engine.totals_of(rows, len(options.labels)))
    return built


def _cached(key: str) -> list[engine.Row] | None:
    """A part's cached rows; a cache that is down costs the aging again, not the report."""
    try:
        return cache.get(key)
    except (RedisError, OSError) as exc:
        logger.warning("aged rows cache unavailable: %s", exc)
        return None


def _keep(key: str, rows: list[engine.Row], timeout: int) -> None:
    try:
        cache.set(key, rows, timeout=timeout)
    except (RedisError, OSError) as exc:
        logger.warning("aged rows cache unavailable: %s", exc)


def stale_connections(connections: Sequence[XeroConnection]) -> list[dict]:
    """Tenants whose last sync failed (their last good data is reported) or that never
    synced (nothing is)."""
    found = []
    for connection in connections:
        if connection.failed_at is not None and (
            connection.last_synced_at is None or connection.failed_at > connection.last_synced_at
        ):
            found.append(
                {
                    "tenant": connection.label,
                    "connection": connection.pk,
                    "error": connection.last_error or "the last sync failed",
                    "last_synced_at": connection.last_synced_at.isoformat() if connection.last_synced_at else None,
                }
            )
        elif connection.last_synced_at is None:
            found.append(
                {
                    "tenant": connection.label,
                    "connection": connection.pk,
                    "error": "never synced",
                    "last_synced_at": None,
                }
            )
    return found


def render(built: Built, fmt: str) -> bytes:
    """The report as JSON, CSV or an Excel workbook."""
    if fmt == "json":
        body = engine.as_json(built.report, reconciliation=built.reconciliation, failures=built.failures)
        return json.dumps(body, indent=1).encode()
    if fmt == "csv":
        return _csv(built.report)
    if fmt == "xlsx":
        return excel.workbook(
            built.report,
            business_units=built.business_units,
            reconciliation=built.reconciliation,
            failures=built.failures,
        )
    raise ReportError(f"unknown format {fmt!r}; choose json, csv or xlsx")


def _csv(report: engine.Report) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["company", "contact", "currency", *report.labels, "total", "comments"])
    for row in report.rows:
        writer.writerow(
            [
                _cell(row.company),
                _cell(row.contact),
                row.currency,
                *row.buckets,
                row.total,
                _cell(engine.comments(row, report.labels)),
            ]
        )
    for total in report.totals:
        writer.writerow([_cell(total.company), "Total", total.currency, *total.buckets, total.total, ""])
    return out.getvalue().encode()


def _cell(text: str) -> str:
    """A label that a spreadsheet would take for a formula is written as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def options_of(report: AgedReport) -> engine.Options:
    return engine.Options(
        report.as_of,
        report.periods,
        report.period_type,
        report.period_length,
        report.age_by,
        report.credit_aging,
    )


def parts_of(report: AgedReport) -> tuple[list[Part], list[dict]]:
    """A stored report's parts, and the failures known before it is aged."""
    if report.source == ReportSource.DB:
        companies = list(report.companies.order_by("name", "pk"))
        return parts_for_books(companies), []
    if report.source == ReportSource.XERO:
        connections = connections_of(report)
        return parts_for_connections(connections), stale_connections(connections)
    if report.document_set is None:
        raise ReportError("the report's file was deleted")
    return part_for_set(report.document_set), []


def connections_of(report: AgedReport) -> list[XeroConnection]:
    chosen = report.connections.all()
    if not chosen.exists():
        chosen = XeroConnection.objects.active()
        if report.xero_app_id:
            chosen = chosen.filter(app_id=report.xero_app_id)
        companies = list(report.companies.all())
        if companies:
            chosen = chosen.filter(company__in=companies)
    return list(chosen.select_related("app").order_by("tenant_name", "pk"))


def make(report: AgedReport, *, progress: Callable[[int, int], None] | None = None) -> Built:
    """Build, render and keep a requested report's output."""
    parts, failures = parts_of(report)
    built = build(parts, options_of(report), progress=progress)
    built.failures = failures + built.failures
    output = render(built, report.format)
    AgedReport.objects.filter(pk=report.pk).update(
        output=output,
        output_name=f"aged-receivables-{report.as_of}-{report.pk}.{report.format}",
        totals=engine.totals_json(built.report),
        failures=built.failures,
        reconciliation=built.reconciliation,
        from_cache=bool(parts) and built.cached == len(parts),
        finished_at=timezone.now(),
    )
    return built


@transaction.atomic
def create(
    *,
    options: engine.Options,
    source: str,
    fmt: str = ReportFormat.JSON,
    companies: Sequence[Company] = (),
    connections: Sequence[XeroConnection] = (),
    xero_app=None,
    document_set: DocumentSet | None = None,
    user=None,
) -> AgedReport:
    """Record what a report is asked to cover; the job makes it."""
    report = AgedReport.objects.create(
        as_of=options.as_of,
        periods=options.periods,
        period_type=options.period_type,
        period_length=options.period_length,
        age_by=options.age_by,
        credit_aging=options.credit_aging,
        source=source,
        format=fmt,
        xero_app=xero_app,
        document_set=document_set,
        requested_by=user,
    )
    report.companies.set(companies)
    report.connections.set(connections)
    return report
