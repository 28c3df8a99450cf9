"""``manage.py aged_receivables``: every source and format, and one readable line for bad
input."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from receivables.models import XeroApp, XeroConnection

pytestmark = pytest.mark.django_db

LINES = [
    {
        "type": "invoice",
        "id": "i1",
        "company": "North",
        "contact": "=HYPERLINK(1)",
        "number": "INV-1",
        "date": "2026-01-05",
        "due_date": "2026-01-20",
        "total": "500.00",
        "currency": "USD",
        "rate": "1.25",
    },
    {
        "type": "prepayment",
        "id": "p1",
        "company": "North",
        "contact": "Bolt",
        "date": "2026-02-01",
        "total": "80",
        "currency": "USD",
    },
]


@pytest.fixture
def exported(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in LINES))
    return path


def aged(*args: str) -> str:
    out = io.StringIO()
    call_command("aged_receivables", *args, stdout=out)
    return out.getvalue()


def test_the_books_as_json_with_the_reconciliation(company, owed, tmp_path):
    out = tmp_path / "aged.json"

    said = aged("--as-of", "2026-02-28", "--company", company.slug, "--format", "json", "--out", str(out))

    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["contact"], row["buckets"]["1 Month"], row["total"]) == ("Amina Njoroge", "200.00", "200.00")
    assert report["reconciliation"][0]["reconciled"] is True
    assert f"control account of {company.name}: 200.00 (reconciled)" in said
    assert f"written to {out}" in said


def test_a_file_aged_by_invoice_date_in_day_periods_as_csv(exported, tmp_path):
    out = tmp_path / "aged.csv"

    aged(
        "--as-of", "2026-02-28", "--source", f"file:{exported}", "--period-type", "day", "--periods", "3",
        "--age-by", "invoice", "--format", "csv", "--out", str(out),
    )  # fmt: skip

    rows = list(csv.reader(out.open()))
    assert rows[0] == [
        "company",
        "contact",
        "currency",
        "Current",
        "1-30 Days",
        "31-60 Days",
        "61-90 Days",
        "Older",
        "total",
        "comments",
    ]
    assert rows[1][:9] == ["North", "'=HYPERLINK(1)", "USD", "0", "0", "500.00", "0", "0", "500.00"]
    assert rows[2][:9] == ["North", "Bolt", "USD", "-80", "0", "0", "0", "0", "-80"]
    assert rows[3][:3] == ["North", "Total", "USD"]


def test_an_excel_report_of_xero_connections(company, tmp_path):
    app = XeroApp.objects.create(name="App 1", client_id="id")
    XeroConnection.objects.create(app=app, tenant_id="t1", tenant_name="Kiwi Ltd", company=company)
    out = tmp_path / "aged.xlsx"

    said = aged("--as-of", "2026-02-28", "--source", "xero", "--app", "App 1", "--format", "xlsx", "--out", str(out))

    assert "Summary" in openpyxl.load_workbook(out).sheetnames
    assert "left out or stale: Kiwi Ltd: never synced" in said


def test_json_to_standard_output(exported):
    said = aged("--as-of", "2026-02-28", "--source", f"file:{exported}", "--out", "-")

    assert json.loads(said)["totals"][0]["total"] == "420.00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-02-30"], "--as-of must be a date YYYY-MM-DD, not '2026-02-30'"),
        (["--as-of", "2026-02-28", "--periods", "0"], "--periods must be a whole number from 1 to 24"),
        (["--as-of", "2026-02-28", "--period-length", "3"], "--period-length does not apply to months"),
        (["--as-of", "2026-02-28", "--period-type", "day", "--period-length", "0"], "--period-length must be"),
        (["--as-of", "2026-02-28", "--source", "ftp"], "--source must be db, xero or file:PATH, not 'ftp'"),
        (["--as-of", "2026-02-28", "--company", "nobody"], "no company 'nobody'"),
        (["--as-of", "2026-02-28", "--source", "xero"], "no active Xero connection to report on"),
        (["--as-of", "2026-02-28", "--source", "xero", "--app", "Nope"], "no Xero app 'Nope'"),
        (["--as-of", "2026-02-28", "--source", "file:/no/such.jsonl"], "cannot read /no/such.jsonl"),
        (["--as-of", "2026-02-28", "--format", "xlsx", "--out", "-"], "an Excel report needs --out PATH"),
        (["--as-of", "2026-02-28", "--out", "/no/such/dir/aged.json"], "cannot write /no/such/dir/aged.json"),
    ],
)
def test_bad_input_is_one_readable_line(company, args, message):
    full = [*args] if "--out" in args else [*args, "--out", "-"]

    with pytest.raises(CommandError) as caught:
        aged(*full)

    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_bad_line_in_the_file_names_it(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(LINES[0]) + "\n" + json.dumps({**LINES[1], "total": "eighty"}))

    with pytest.raises(CommandError, match=r"bad.jsonl: line 2: 'total' must be a decimal string, not 'eighty'"):
        aged("--as-of", "2026-02-28", "--source", f"file:{path}", "--out", "-")
