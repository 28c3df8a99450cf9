"""An invoice as a document: HTML (the Django template ``billing/invoice.html``) for a
client app to show, PDF (reportlab, A4) to send or download. Both show the same things:
the company, the customer, number, dates and period, the lines, the totals and what has
been paid, credited and is still due. A draft says DRAFT and a void invoice VOID, so
neither passes for an issued one.

The invoice is read as given: pass one with ``company`` and ``customer`` selected and
its ``lines`` prefetched to read it in one query.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape

from django.template.loader import render_to_string
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.models import Invoice, InvoiceStatus
from billing.services import periods
from ledger import currencies

MARGIN = 18 * mm
GRID = colors.HexColor("#c8ccd2")
SHADE = colors.HexColor("#eef0f3")
STAMP = colors.Color(0.85, 0.2, 0.2, alpha=0.18)


def amount(value: Decimal, currency: str) -> str:
    """``value`` in the currency's places with thousands separators: 1,234.50."""
    places = currencies.MINOR_UNITS.get(currency, 2)
    return f"{value.quantize(currencies.quantum(places)):,.{places}f}"


def rate(value: Decimal) -> str:
    """A percentage without trailing zeros: 16 %, 7.5 %."""
    text = f"{value.normalize():f}"
    return f"{text} %"


@dataclass(frozen=True)
class Line:
    description: str
    amount: str
    tax_rate: str
    tax: str
    total: str


def context(invoice: Invoice) -> dict:
    """What both renderings show, as text."""
    currency = invoice.currency
    period = ""
    if invoice.cadence and invoice.period_start:
        period = periods.label(invoice.cadence, invoice.period_start)
    elif invoice.period_start:
        period = f"{invoice.period_start:%d %b %Y} to {invoice.period_end:%d %b %Y}" if invoice.period_end else ""
    stamp = {InvoiceStatus.DRAFT: "DRAFT", InvoiceStatus.VOID: "VOID"}.get(invoice.status, "")
    return {
        "invoice": invoice,
        "company": invoice.company,
        "customer": invoice.customer,
        "title": "Invoice" if invoice.number else "Draft invoice",
        "number": invoice.number or f"Draft {invoice.pk}",
        "stamp": stamp,
        "status": invoice.get_status_display(),
        "issue_date": f"{invoice.issue_date:%d %b %Y}",
        "due_date": f"{invoice.due_date:%d %b %Y}",
        "period": period,
        "currency": currency,
        "lines": [
            Line(
                description=line.description,
                amount=amount(line.amount, currency),
                tax_rate=rate(line.tax_rate),
                tax=amount(line.tax, currency),
                total=amount(line.total, currency),
            )
            for line in invoice.lines.all()
        ],
        "subtotal": amount(invoice.subtotal, currency),
        "tax": amount(invoice.tax, currency),
        "total": amount(invoice.total, currency),
        "paid": amount(invoice.paid, currency),
        "credited": amount(invoice.credited, currency),
        "due": amount(invoice.due, currency),
        "settled": bool(invoice.paid or invoice.credited),
        "void_reason": invoice.void_reason if invoice.status == InvoiceStatus.VOID else "",
    }


def render_html(invoice: Invoice) -> str:
    """The invoice as a standalone HTML page; every value is escaped by the template."""
    return render_to_string("billing/invoice.html", context(invoice))


# --- PDF -------------------------------------------------------------------------------------


def pdf_styles() -> dict[str, ParagraphStyle]:
    """The house style of printed documents (invoices, statements): Helvetica on A4."""
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["Normal"], fontName="Helvetica", fontSize=9.5, leading=12.5)
    return {
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#555b66")),
        "title": ParagraphStyle(
            "title", parent=body, fontName="Helvetica-Bold", fontSize=20, leading=24, alignment=TA_RIGHT
        ),
        "company": ParagraphStyle("company", parent=body, fontName="Helvetica-Bold", fontSize=12, leading=15),
        "right": ParagraphStyle("right", parent=body, alignment=TA_RIGHT),
        "cell": ParagraphStyle("cell", parent=body, fontSize=9, leading=11.5),
        "head": ParagraphStyle("head", parent=body, fontName="Helvetica-Bold", fontSize=9, leading=11.5),
        "head_right": ParagraphStyle(
            "head_right", parent=body, fontName="Helvetica-Bold", fontSize=9, leading=11.5, alignment=TA_RIGHT
        ),
    }


def _text(value) -> str:
    """Paragraphs read markup: a customer called "<b>" must print as such."""
    return escape(str(value))


def render_pdf(invoice: Invoice) -> bytes:
    """The invoice on A4: a header, the customer and the dates, the lines (continued on
    further pages with their heading repeated when there are many), then the totals."""
    data = context(invoice)
    styles = pdf_styles()
    width = A4[0] - 2 * MARGIN
    story = []

    heading = Table(
        [
            [
                Paragraph(_text(data["company"].name), styles["company"]),
                Paragraph(_text(data["title"]), styles["title"]),
            ],
            ["", Paragraph(_text(data["number"]), styles["right"])],
        ],
        colWidths=[width * 0.55, width * 0.45],
    )
    heading.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    story += [heading, Spacer(1, 8 * mm)]

    customer = data["customer"]
    bill_to = [Paragraph("Bill to", styles["small"]), Paragraph(_text(customer.name), styles["body"])]
    if customer.email:
        bill_to.append(Paragraph(_text(customer.email), styles["body"]))
    if customer.external_ref:
        bill_to.append(Paragraph(f"Ref. {_text(customer.external_ref)}", styles["body"]))
    facts = [("Issued", data["issue_date"]), ("Due", data["due_date"])]
    if data["period"]:
        facts.append(("Period", data["period"]))
    facts.append(("Status", data["status"]))
    dates = Table(
        [[Paragraph(label, styles["small"]), Paragraph(_text(value), styles["right"])] for label, value in facts],
        colWidths=[width * 0.15, width * 0.3],
    )
    dates.setStyle(TableStyle([("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    parties = Table([[bill_to, dates]], colWidths=[width * 0.55, width * 0.45])
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    story += [parties, Spacer(1, 8 * mm)]

    head = ["Description", "Amount", "Tax rate", "Tax", f"Total {data['currency']}"]
    rows = [[Paragraph(text, styles["head"] if i == 0 else styles["head_right"]) for i, text in enumerate(head)]]
    for line in data["lines"]:
        rows.append(
            [
                Paragraph(_text(line.description), styles["cell"]),
                line.amount,
                line.tax_rate,
                line.tax,
                line.total,
            ]
        )
    lines = Table(rows, colWidths=[width * 0.46, width * 0.15, width * 0.11, width * 0.13, width * 0.15], repeatRows=1)
    lines.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, GRID),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("FONTNAME", (1, 1), (-1, -1), "Helvetica"),
                ("FONTSIZE", (1, 1), (-1, -1), 9),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [lines, Spacer(1, 5 * mm)]

    sums = [("Subtotal", data["subtotal"]), ("Tax", data["tax"]), (f"Total {data['currency']}", data["total"])]
    if data["settled"]:
        sums += [("Paid", data["paid"]), ("Credited", data["credited"])]
    sums.append((f"Due {data['currency']}", data["due"]))
    totals = Table(sums, colWidths=[width * 0.2, width * 0.15], hAlign="RIGHT")
    totals.setStyle(
        TableStyle(
            [
                ("ALIGN", (0, 0), (-1, -1), "RIGHT"),
                ("FONTNAME", (0, 0), (-1, -1), "Helvetica"),
                ("FONTSIZE", (0, 0), (-1, -1), 9.5),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
            ]
        )
    )
    story.append(totals)
    if data["void_reason"]:
        story += [Spacer(1, 5 * mm), Paragraph(f"Voided: {_text(data['void_reason'])}", styles["body"])]
    if invoice.memo:
        story += [Spacer(1, 5 * mm), Paragraph(_text(invoice.memo), styles["body"])]

    def decorate(canvas, document) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#555b66"))
        canvas.drawString(MARGIN, MARGIN / 2, f"{data['company'].name} \N{EM DASH} {data['number']}")
        canvas.drawRightString(A4[0] - MARGIN, MARGIN / 2, f"Page {document.page}")
        if data["stamp"]:
            canvas.setFont("Helvetica-Bold", 96)
            canvas.setFillColor(STAMP)
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, data["stamp"])
        canvas.restoreState()

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{data['title']} {data['number']}",
        author=data["company"].name,
        invariant=True,  # the same invoice gives the same bytes: no timestamp or random id inside
    )
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()
