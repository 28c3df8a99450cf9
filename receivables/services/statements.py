"""Customer statements (SL_STATEMENT_GENERATION): each customer's open items and aging
summary as of a date, stored once, sent once, and rendered as HTML or PDF on demand.

A statement lists what is open at its date R by the aging rules: each invoice's total less
the allocations to it dated on or before R, and what each payment or credit note has not
allocated by R as a negative amount. Their sum is the customer's balance at R (invoices
less payments and credits dated on or before R), which is the statement's balance.

The company's documents are read once (five queries, whatever the number of customers)
and split by customer in memory; statements are written in batches, each one insert that
skips customers already given a statement of that date, and sent in the same batch's
transaction through one ``notify_many`` keyed per statement. A statement records when it
was handed over, so a run stopped between batches sends the rest on its re-run and
nothing twice.

A notification cannot carry an attachment, so the letter carries the statement itself
(the open items and the aging in its text and HTML parts) and the API paths of its HTML
and PDF renderings for a client app to link to. A customer without an email address still
gets a statement: notifications suppress the email delivery and keep the in-app one.
"""

from __future__ import annotations

import datetime
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from xml.sax.saxutils import escape

from django.db import transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.services.books import quantize
from billing.services.documents import GRID, MARGIN, SHADE, amount, pdf_styles
from billing.services.recipients import customer_recipients
from config import bulk
from ledger.models import Company
from notifications.services.sending import Message, notify_many
from receivables import engine
from receivables.kinds import STATEMENT
from receivables.models.statements import Statement
from receivables.sources import books

BATCH_SIZE = 1000  # customers whose statements one transaction writes and sends
MAX_BATCH_SIZE = 20_000
NOTICE_ITEMS = 50  # open items a letter lists; the HTML and PDF list them all
ZERO = Decimal(0)

Log = Callable[..., None]


@dataclass(frozen=True)
class Draft:
    """A statement before it is stored."""

    customer_id: int
    customer_name: str
    balance: Decimal
    items: list[dict]
    aging: list[dict]


@dataclass
class Outcome:
    customers: int = 0  # customers given a statement of the date (new or already there)
    created: int = 0
    existing: int = 0
    notified: int = 0
    balance: Decimal = ZERO
    skipped: list[str] = field(default_factory=list)  # customers left out, and why


def drafts(
    company: Company, as_of: datetime.date, *, only_with_balance: bool = True, skipped: list[str] | None = None
) -> list[Draft]:
    """Each customer's statement as of ``as_of``, by customer id: those with a balance,
    or (``only_with_balance`` off) with anything open, even when it nets to nothing.
    Customers left out for bad data are added to ``skipped`` with the reason."""
    docs, allocations = books.documents(company, as_of)
    by_customer: dict[str, list[engine.Doc]] = defaultdict(list)
    owner: dict[str, str] = {}
    for doc in docs:
        by_customer[doc.contact_id].append(doc)
        owner[doc.id] = doc.contact_id
    allocated: dict[str, list[engine.Alloc]] = defaultdict(list)
    for allocation in allocations:
        contact = owner.get(allocation.invoice)
        if contact is not None:
            allocated[contact].append(allocation)
    options = engine.Options(as_of)
    currency = company.base_currency
    found = []
    for contact in sorted(by_customer, key=int):
        customer_docs = by_customer[contact]
        report = engine.age(customer_docs, allocated.get(contact, ()), options)
        if not report.rows:
            continue
        # Billing keeps its books in the base currency, so a row in another is bad data: a
        # statement never adds two currencies, and one customer's does not stop the rest.
        others = sorted({row.currency for row in report.rows} - {currency})
        if others:
            if skipped is not None:
                skipped.append(f"customer {contact}: documents in {', '.join(others)}, not {currency}; no statement")
            continue
        (row,) = report.rows
        if only_with_balance and not row.total:
            continue
        totals = {doc.id: doc.total for doc in customer_docs}
        found.append(
            Draft(
                customer_id=int(contact),
                customer_name=row.contact,
                balance=quantize(row.total, currency),
                items=[
                    {
                        "kind": item.kind,
                        "id": item.id,
                        "number": item.number,
                        "date": item.date.isoformat(),
                        "due_date": item.due_date.isoformat() if item.due_date else None,
                        "total": _text(totals[item.id] if item.kind == engine.INVOICE else -totals[item.id], currency),
                        "amount": _text(item.amount, currency),
                        "bucket": report.labels[item.bucket],
                    }
                    # Oldest first, as a statement reads; the aging says which bucket holds what.
                    for item in sorted(row.items, key=lambda item: (item.date, item.number, item.id))
                ],
                aging=[
                    {"label": label, "amount": _text(value, currency)}
                    for label, value in zip(report.labels, row.buckets, strict=True)
                ],
            )
        )
    return found


def generate(
    company: Company,
    as_of: datetime.date,
    *,
    only_with_balance: bool = True,
    batch_size: int = BATCH_SIZE,
    job_run: int | None = None,
    log: Log | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Store and send each customer's statement of ``as_of`` (see ``drafts``). Customers
    given one of that date before are neither written nor sent again."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch size must be from 1 to {MAX_BATCH_SIZE}, not {batch_size}")
    outcome = Outcome()
    found = drafts(company, as_of, only_with_balance=only_with_balance, skipped=outcome.skipped)
    outcome.customers = len(found)
    for start in range(0, len(found), batch_size):
        batch = found[start : start + batch_size]
        with transaction.atomic():
            created = _insert(company, as_of, batch, job_run)
            outcome.notified += _send(company, as_of, [draft.customer_id for draft in batch])
        outcome.created += created
        outcome.existing += len(batch) - created
        outcome.balance += sum((draft.balance for draft in batch), ZERO)
        if log:
            log(f"statements {start + 1}-{start + len(batch)} of {len(found)}: {created} new", created=created)
        if progress:
            progress(start + len(batch), len(found))
    return outcome


def _insert(company: Company, as_of: datetime.date, batch: Sequence[Draft], job_run: int | None) -> int:
    now = timezone.now()
    n = len(batch)
    rows = bulk.insert_columns(
        Statement,
        {
            "company": [company.pk] * n,
            "customer": [draft.customer_id for draft in batch],
            "statement_date": [as_of] * n,
            "customer_name": [draft.customer_name[:200] for draft in batch],
            "currency": [company.base_currency] * n,
            "balance": [draft.balance for draft in batch],
            "items": [draft.items for draft in batch],
            "aging": [draft.aging for draft in batch],
            "job_run": [job_run] * n,
            "notified_at": [None] * n,
            "created_at": [now] * n,
        },
        ignore_conflicts=True,
    )
    return len(rows)


def _send(company: Company, as_of: datetime.date, customer_ids: list[int]) -> int:
    """Hand the batch's statements not yet sent to notifications, and mark them sent."""
    unsent = list(
        Statement.objects.for_company(company)
        .unsent()
        .filter(statement_date=as_of, customer_id__in=customer_ids)
        .order_by("customer_id")
    )
    if not unsent:
        return 0
    recipients = customer_recipients(statement.customer_id for statement in unsent)
    outcome = notify_many(
        Message(
            recipients[statement.customer_id],
            STATEMENT,
            notice_context(company, statement),
            company=company.pk,
            dedupe_key=dedupe_key(statement),
        )
        for statement in unsent
    )
    Statement.objects.filter(pk__in=[statement.pk for statement in unsent]).update(notified_at=timezone.now())
    return outcome.notified


def dedupe_key(statement: Statement) -> str:
    return f"statement:{statement.customer_id}:{statement.statement_date.isoformat()}"


def links(statement_id: int) -> dict[str, str]:
    """The API paths of the statement's renderings (empty while the API is not mounted: a
    letter without links still tells the customer what they owe)."""
    try:
        document = reverse("receivables-statement-document", args=[statement_id])
    except NoReverseMatch:
        return {"html": "", "pdf": ""}
    return {"html": f"{document}?format=html", "pdf": f"{document}?format=pdf"}


def notice_context(company: Company, statement: Statement) -> dict:
    """What the ``statement`` letter renders with: amounts as text in the currency's places."""
    items = statement.items
    found = links(statement.pk)
    return {
        "company_name": company.name,
        "customer_name": statement.customer_name,
        "statement_id": statement.pk,
        "statement_number": statement.number,
        "statement_date": statement.statement_date.isoformat(),
        "currency": statement.currency,
        "balance": _text(statement.balance, statement.currency),
        "owing": statement.balance > 0,
        "in_credit": statement.balance < 0,
        "credit": _text(max(-statement.balance, ZERO), statement.currency),
        "items": [
            {
                "number": item["number"] or engine.KIND_NAMES[item["kind"]],
                "type": engine.KIND_NAMES[item["kind"]],
                "date": item["date"],
                "due_date": item["due_date"] or "",
                "amount": item["amount"],
                "bucket": item["bucket"],
            }
            for item in items[:NOTICE_ITEMS]
        ],
        "more_items": max(0, len(items) - NOTICE_ITEMS),
        "aging": list(statement.aging),
        "html_url": found["html"],
        "pdf_url": found["pdf"],
    }


def _text(value: Decimal, currency: str) -> str:
    return str(quantize(value, currency))


# --- Renderings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    date: str
    number: str
    type: str
    due_date: str
    total: str
    amount: str
    bucket: str


def _day(text: str | None) -> str:
    return f"{datetime.date.fromisoformat(text):%d %b %Y}" if text else ""


def document_context(statement: Statement) -> dict:
    """What both renderings show, as text. Pass a statement with ``company`` and
    ``customer`` selected to render it without further queries."""
    currency = statement.currency
    customer = statement.customer
    return {
        "statement": statement,
        "company": statement.company,
        "customer_name": statement.customer_name,
        "customer_email": customer.email,
        "customer_ref": customer.external_ref,
        "number": statement.number,
        "statement_date": f"{statement.statement_date:%d %b %Y}",
        "currency": currency,
        "lines": [
            Line(
                date=_day(item["date"]),
                number=item["number"] or engine.KIND_NAMES[item["kind"]],
                type=engine.KIND_NAMES[item["kind"]],
                due_date=_day(item["due_date"]),
                total=amount(Decimal(item["total"]), currency),
                amount=amount(Decimal(item["amount"]), currency),
                bucket=item["bucket"],
            )
            for item in statement.items
        ],
        "aging": [{"label": b["label"], "amount": amount(Decimal(b["amount"]), currency)} for b in statement.aging],
        "balance": amount(statement.balance, currency),
        "in_credit": statement.balance < 0,
    }


def render_html(statement: Statement) -> str:
    """The statement as a standalone HTML page; every value is escaped by the template."""
    return render_to_string("receivables/statement.html", document_context(statement))


def _p(value, style: ParagraphStyle) -> Paragraph:
    # Paragraphs read markup: a customer called "<b>" must print as such.
    return Paragraph(escape(str(value)), style)


def render_pdf(statement: Statement) -> bytes:
    """The statement on A4: the company and customer, the open items (continued on further
    pages with their heading repeated), the aging summary and the balance."""
    data = document_context(statement)
    styles = pdf_styles()
    width = A4[0] - 2 * MARGIN
    story: list = []

    heading = Table(
        [
            [_p(data["company"].name, styles["company"]), _p("Statement", styles["title"])],
            ["", _p(data["number"], styles["right"])],
        ],
        colWidths=[width * 0.55, width * 0.45],
    )
    heading.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    story += [heading, Spacer(1, 8 * mm)]

    to = [_p("To", styles["small"]), _p(data["customer_name"], styles["body"])]
    if data["customer_email"]:
        to.append(_p(data["customer_email"], styles["body"]))
    if data["customer_ref"]:
        to.append(_p(f"Ref. {data['customer_ref']}", styles["body"]))
    facts = [("Statement date", data["statement_date"]), ("Currency", data["currency"]), ("Balance", data["balance"])]
    dates = Table(
        [[_p(label, styles["small"]), _p(value, styles["right"])] for label, value in facts],
        colWidths=[width * 0.2, width * 0.25],
    )
    dates.setStyle(TableStyle([("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    parties = Table([[to, dates]], colWidths=[width * 0.55, width * 0.45])
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    story += [parties, Spacer(1, 8 * mm)]

    head = ["Date", "Number", "Type", "Due", "Amount", f"Open {data['currency']}"]
    rows = [
        [_p(text, styles["head"] if i < 4 else styles["head_right"]) for i, text in enumerate(head)],
    ]
    for line in data["lines"]:
        rows.append([line.date, _p(line.number, styles["cell"]), line.type, line.due_date, line.total, line.amount])
    if not data["lines"]:
        rows.append([_p("Nothing is open.", styles["cell"]), "", "", "", "", ""])
    shares = (0.14, 0.24, 0.14, 0.14, 0.17, 0.17)
    lines = Table(rows, colWidths=[width * share for share in shares], repeatRows=1)
    lines.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, GRID),
                ("ALIGN", (4, 0), (-1, -1), "RIGHT"),
                ("FONTNAME", (0, 1), (-1, -1), "Helvetica"),
                ("FONTSIZE", (0, 1), (-1, -1), 9),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [lines, Spacer(1, 6 * mm)]

    labels = [bucket["label"] for bucket in data["aging"]] + ["Balance"]
    figures = [bucket["amount"] for bucket in data["aging"]] + [data["balance"]]
    aging = Table(
        [[_p(label, styles["head_right"]) for label in labels], figures],
        colWidths=[width / len(labels)] * len(labels),
    )
    aging.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("GRID", (0, 0), (-1, -1), 0.4, GRID),
                ("ALIGN", (0, 0), (-1, -1), "RIGHT"),
                ("FONTNAME", (0, 1), (-1, -1), "Helvetica"),
                ("FONTNAME", (-1, 1), (-1, 1), "Helvetica-Bold"),
                ("FONTSIZE", (0, 1), (-1, -1), 9),
            ]
        )
    )
    story.append(KeepTogether([_p("Aging", styles["small"]), Spacer(1, 1.5 * mm), aging]))
    if data["in_credit"]:
        story += [Spacer(1, 5 * mm), _p("Your account is in credit: nothing is owed.", styles["body"])]

    def decorate(canvas, document) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#555b66"))
        canvas.drawString(MARGIN, MARGIN / 2, f"{data['company'].name} \N{EM DASH} {data['number']}")
        canvas.drawRightString(A4[0] - MARGIN, MARGIN / 2, f"Page {document.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"Statement {data['number']}",
        author=data["company"].name,
        invariant=True,  # the same statement gives the same bytes
    )
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()
