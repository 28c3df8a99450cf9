"""The interchange format: JSON Lines or CSV read whole and checked, a bad line named,
and nothing half-imported."""

from __future__ import annotations

import datetime
import io
import json
from decimal import Decimal

import pytest

from receivables import engine
from receivables.models import Allocation, Document, DocumentSet
from receivables.sources import files, stored

pytestmark = pytest.mark.django_db

INVOICE = {
    "type": "invoice",
    "id": "inv-1",
    "company": "North Ltd",
    "contact": "Acme",
    "number": "INV-1",
    "date": "2024-05-01",
    "due_date": "2024-05-31",
    "total": "1200.00",
    "currency": "EUR",
    "rate": "1.2",
}
PAYMENT = {
    "type": "payment",
    "id": "pay-1",
    "company": "North Ltd",
    "contact": "Acme",
    "date": "2024-06-10",
    "total": "200.00",
    "currency": "EUR",
    "rate": "1.25",
}
ALLOCATION = {
    "type": "allocation",
    "id": "a-1",
    "from": "pay-1",
    "to": "inv-1",
    "amount": "200.00",
    "date": "2024-06-10",
}


def jsonl(*records) -> io.BytesIO:
    return io.BytesIO("\n".join(json.dumps(record) for record in records).encode())


def test_a_json_lines_file_becomes_documents_and_allocations():
    parsed = files.read(jsonl(INVOICE, PAYMENT, ALLOCATION))

    invoice, payment = parsed.docs
    assert invoice == engine.Doc(
        "invoice",
        "inv-1",
        "North Ltd",
        "Acme",
        datetime.date(2024, 5, 1),
        Decimal("1200.00"),
        "EUR",
        number="INV-1",
        due_date=datetime.date(2024, 5, 31),
        rate=Decimal("1.2"),
        contact_id="Acme",
    )
    assert payment.kind == "payment" and payment.due_date is None and payment.number == ""
    assert parsed.allocations == [
        engine.Alloc("pay-1", "inv-1", Decimal("200.00"), datetime.date(2024, 6, 10), id="a-1")
    ]


def test_the_same_file_as_csv_reads_the_same():
    header = sorted(set(INVOICE) | set(PAYMENT) | set(ALLOCATION))
    lines = [",".join(header)]
    for record in (INVOICE, PAYMENT, ALLOCATION):
        lines.append(",".join(record.get(name, "") for name in header))

    parsed = files.read(io.BytesIO("\n".join(lines).encode()), name="export.csv")

    assert parsed.docs == files.read(jsonl(INVOICE, PAYMENT, ALLOCATION)).docs
    assert len(parsed.allocations) == 1


def test_amounts_never_pass_through_a_float():
    line = json.dumps(INVOICE).replace('"1200.00"', "0.1")

    parsed = files.read(io.BytesIO(line.encode()))

    assert parsed.docs[0].total == Decimal("0.1")


def test_a_missing_rate_is_one():
    record = {key: value for key, value in INVOICE.items() if key != "rate"}

    assert files.read(jsonl(record)).docs[0].rate == 1


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        ({"type": "bill"}, 2, "'type' must be one of"),
        ({"date": "01/05/2024"}, 2, "'date' must be a date YYYY-MM-DD"),
        ({"date": "20240501"}, 2, "'date' must be a date"),
        ({"due_date": None}, 2, "'due_date' is required"),
        ({"total": "12,00"}, 2, "'total' must be a decimal string"),
        ({"total": "-5"}, 2, "'total' must be at least 0"),
        ({"total": "NaN"}, 2, "finite"),
        ({"total": "1.0001"}, 2, "more than 3 decimal places"),
        ({"total": "1e20"}, 2, "too large"),
        ({"total": True}, 2, "decimal string"),
        ({"currency": "euro"}, 2, "three-letter code"),
        ({"rate": "0"}, 2, "'rate' must be more than 0"),
        ({"contact": ""}, 2, "'contact' is required"),
        ({"contact": "x" * 501}, 2, "longer than 500"),
        ({"colour": "red"}, 2, "unknown field 'colour'"),
        ({"id": "pay-1"}, 2, "also on line 1"),
    ],
)
def test_a_bad_line_fails_the_import_with_its_number_and_reason(change, line, reason):
    bad = {**INVOICE, **change}
    bad = {key: value for key, value in bad.items() if value is not None}

    with pytest.raises(files.FileError) as caught:
        files.read(jsonl(PAYMENT, bad))

    assert str(caught.value).startswith(f"line {line}: ")
    assert reason in str(caught.value)
    assert caught.value.line == line


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"from": "nope"}, "'from' 'nope' is not a credit note or payment"),
        ({"from": "inv-1"}, "is not a credit note or payment"),
        ({"to": "pay-1"}, "'to' 'pay-1' is not an invoice"),
        ({"date": "2024-06-09"}, "no earlier than both its documents"),
        ({"amount": "200.01"}, "exceed its total of 200.00"),
        ({"amount": "0"}, "'amount' must be more than 0"),
    ],
)
def test_an_allocation_must_join_a_credit_to_an_invoice_within_their_totals(change, reason):
    with pytest.raises(files.FileError) as caught:
        files.read(jsonl(INVOICE, PAYMENT, {**ALLOCATION, **change}))

    assert str(caught.value).startswith("line 3: ")
    assert reason in str(caught.value)


def test_an_allocation_across_contacts_is_refused():
    other = {**PAYMENT, "contact": "Bolt"}

    with pytest.raises(files.FileError, match="line 3: an allocation joins documents of one company, contact"):
        files.read(jsonl(INVOICE, other, ALLOCATION))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"{not json\n", "line 1: not a JSON object"),
        (b"[1, 2]\n", "line 1: not a JSON object"),
        (b"\xff\xfe", "the file is not UTF-8"),
        (b"id,total\n1,2\n", "line 1: a CSV file needs a header row with a 'type' column"),
        (b"type,id,colour\ninvoice,1,red\n", "line 1: unknown column 'colour'"),
    ],
)
def test_a_file_that_is_not_the_format_is_refused_in_one_line(text, reason):
    with pytest.raises(files.FileError) as caught:
        files.read(io.BytesIO(text), name="x.csv" if text.startswith(b"id") or text.startswith(b"type") else "x")

    assert str(caught.value).startswith(reason)


def test_an_import_keeps_everything_or_nothing(company):
    with pytest.raises(files.FileError):
        files.import_file(jsonl(INVOICE, PAYMENT, {**ALLOCATION, "amount": "9999"}), name="bad.jsonl")

    assert not DocumentSet.objects.exists() and not Document.objects.exists() and not Allocation.objects.exists()

    kept = files.import_file(jsonl(INVOICE, PAYMENT, ALLOCATION), name="good.jsonl", company=company)

    assert (kept.documents, kept.allocations, kept.company) == (2, 1, company)
    docs, allocations = stored.documents(datetime.date(2024, 12, 31), document_set=kept)
    assert docs == files.read(jsonl(INVOICE, PAYMENT, ALLOCATION)).docs
    assert len(allocations) == 1


def test_an_imported_file_ages_with_base_currency_beside_the_documents_own():
    kept = files.import_file(jsonl(INVOICE, PAYMENT, ALLOCATION), name="good.jsonl")
    docs, allocations = stored.documents(datetime.date(2024, 6, 30), document_set=kept)

    report = engine.age(docs, allocations, engine.Options(datetime.date(2024, 6, 30)))

    (row,) = report.rows
    assert (row.company, row.contact, row.currency, row.total) == ("North Ltd", "Acme", "EUR", Decimal("1000.00"))
    assert row.base_total == Decimal("833.33")  # 1000 ÷ 1.2: the invoice's rate, not the payment's
