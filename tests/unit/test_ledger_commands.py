"""The ledger's commands: load_chart and trial_balance with good input, and one readable
line (a CommandError, never a traceback) for bad input."""

from __future__ import annotations

import csv
import datetime
import io
import json
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError
from openpyxl import load_workbook

from ledger import demo
from ledger.models import Account
from ledger.services import balances, posting
from ledger.services.posting import Entry, Line

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


def amounts(*texts: str) -> tuple[Decimal, ...]:
    # Compared as numbers: how many decimal places a sum prints with depends on the database.
    return tuple(Decimal(text) for text in texts)


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- load_chart ------------------------------------------------------------------------------


def test_load_chart_loads_each_named_company_once(company, other_company):
    first = run("load_chart", "--company", "acme", "--company", "rival")
    again = run("load_chart", "--company", "acme")

    assert first.splitlines() == [
        "acme: 31 accounts created, 0 already there",
        "rival: 31 accounts created, 0 already there",
    ]
    assert again.splitlines() == ["acme: 0 accounts created, 31 already there"]
    assert Account.objects.for_company(company).count() == 31


def test_load_chart_all_takes_every_company(company, other_company, chart):
    assert run("load_chart", "--all").splitlines() == [
        "acme: 0 accounts created, 31 already there",
        "rival: 31 accounts created, 0 already there",
    ]


def test_load_chart_refuses_unknown_companies_before_loading_any(company):
    with pytest.raises(CommandError, match=r"^no company 'nope', 'gone'$"):
        call_command("load_chart", "--company", "acme", "--company", "nope", "--company", "gone")

    assert not Account.objects.exists()


def test_load_chart_needs_companies_or_all(company):
    with pytest.raises(CommandError, match="one of the arguments --company --all is required"):
        call_command("load_chart")
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("load_chart", "--all", "--company", "acme")


def test_load_chart_on_an_unmigrated_database_says_so_in_one_line(company, monkeypatch):
    def missing_table(company):
        raise OperationalError("no such table: ledger_account")

    monkeypatch.setattr("ledger.management.commands.load_chart.load_default_chart", missing_table)

    with pytest.raises(CommandError) as caught:
        call_command("load_chart", "--all")

    assert str(caught.value) == "the database is not ready (no such table: ledger_account); run manage.py migrate"


def test_the_demo_company_gets_the_default_chart_once(db):
    first, again = list(demo.load()), list(demo.load())

    assert first == ["company 'demo' created", "chart of accounts for 'demo': 31 accounts created, 0 already there"]
    assert again[1] == "chart of accounts for 'demo': 0 accounts created, 31 already there"


# --- trial_balance ---------------------------------------------------------------------------


@pytest.fixture
def books(company, chart):
    """Last year's sale, then this year's sale and rent; the fiscal year is the calendar year."""

    def entry(day, debit, credit, amount):
        return Entry(day, [Line(chart[debit], debit=amount), Line(chart[credit], credit=amount)])

    posting.post_many(
        company,
        [
            entry(datetime.date(2025, 12, 10), "1100", "4100", "500.00"),
            entry(datetime.date(2026, 3, 1), "1100", "4100", "200.00"),
            entry(datetime.date(2026, 11, 20), "6200", "1100", "75.50"),
        ],
    )
    return chart


def test_trial_balance_defaults_to_the_fiscal_year_to_date_as_json(books):
    data = json.loads(run("trial_balance", "--company", "acme"))

    assert (data["from"], data["to"], data["balanced"], data["currency"]) == ("2026-01-01", "2026-11-21", True, "GBP")
    rows = {row["code"]: row for row in data["rows"]}
    assert {code: amounts(r["opening"], r["debit"], r["credit"], r["closing"]) for code, r in rows.items()} == {
        "1100": amounts("500", "200", "75.50", "624.50"),
        "4100": amounts("-500", "0", "200", "-700"),
        "6200": amounts("0", "75.50", "0", "75.50"),
    }


def test_trial_balance_from_defaults_to_the_start_of_the_year_containing_to(books):
    data = json.loads(run("trial_balance", "--company", "acme", "--to", "2025-12-31"))

    assert (data["from"], data["to"]) == ("2025-01-01", "2025-12-31")
    assert amounts(data["totals"]["debit"], data["totals"]["credit"]) == amounts("500", "500")


def test_trial_balance_as_csv_has_a_header_and_a_totals_row(books):
    rows = list(
        csv.reader(io.StringIO(run("trial_balance", "--company", "acme", "--from", "2026-03-01", "--format", "csv")))
    )

    assert rows[0] == ["code", "name", "type", "opening", "debit", "credit", "closing"]
    assert [row[0] for row in rows[1:-1]] == ["1100", "4100", "6200"]
    assert rows[-1][:3] == ["", "Total", ""]
    assert amounts(*rows[-1][3:]) == amounts("0", "275.50", "275.50", "0")


def test_trial_balance_writes_a_readable_workbook(books, tmp_path):
    path = tmp_path / "tb.xlsx"

    out = run("trial_balance", "--company", "acme", "--to", "2026-11-30", "--format", "xlsx", "--output", str(path))

    assert out == f"{path}: trial balance of acme from 2026-01-01 to 2026-11-30, 3 accounts, balanced\n"
    sheet = load_workbook(path).active
    assert sheet["A1"].value == "Acme Books Ltd: trial balance 2026-01-01 to 2026-11-30 (GBP)"
    assert [cell.value for cell in sheet[3]] == ["Code", "Name", "Type", "Opening", "Debit", "Credit", "Closing"]
    assert [sheet.cell(row=r, column=1).value for r in (4, 5, 6)] == ["1100", "4100", "6200"]
    assert sheet["E4"].value == 200 and sheet["F4"].value == 75.5
    assert [cell.value for cell in sheet[7]][1:] == [
        "Total",
        None,
        "=SUM(D4:D6)",
        "=SUM(E4:E6)",
        "=SUM(F4:F6)",
        "=SUM(G4:G6)",
    ]


def test_trial_balance_xlsx_goes_to_a_redirected_stdout(books):
    stdout = io.TextIOWrapper(io.BytesIO())

    call_command("trial_balance", "--company", "acme", "--format", "xlsx", stdout=stdout)

    stdout.flush()
    assert load_workbook(io.BytesIO(stdout.buffer.getvalue())).active["A3"].value == "Code"


def test_trial_balance_xlsx_needs_somewhere_binary_to_go(books):
    with pytest.raises(CommandError, match=r"^xlsx is a binary file: give --output FILE or redirect stdout to a file$"):
        call_command("trial_balance", "--company", "acme", "--format", "xlsx", stdout=io.StringIO())


def test_trial_balance_writes_csv_to_a_file(books, tmp_path):
    path = tmp_path / "tb.csv"

    run("trial_balance", "--company", "acme", "--format", "csv", "--output", str(path))

    assert path.read_text().splitlines()[0] == "code,name,type,opening,debit,credit,closing"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--company", "nope"], "no company 'nope'"),
        (["--company", "acme", "--from", "2026-13-01"], "--from '2026-13-01' must be YYYY-MM-DD"),
        (["--company", "acme", "--to", "yesterday"], "--to 'yesterday' must be YYYY-MM-DD"),
        (
            ["--company", "acme", "--from", "2026-11-02", "--to", "2026-11-01"],
            "--from 2026-11-02 is after --to 2026-11-01",
        ),
        (["--company", "acme", "--from", "2026-12-01"], "--from 2026-12-01 is after --to 2026-11-21"),
        (
            ["--company", "acme", "--output", "/no/such/dir/tb.json"],
            "cannot write /no/such/dir/tb.json: No such file or directory",
        ),
    ],
)
def test_trial_balance_refuses_bad_input_in_one_line(company, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("trial_balance", *args, stdout=io.StringIO())

    assert str(caught.value) == message


def test_trial_balance_refuses_an_unknown_format(company):
    with pytest.raises(CommandError, match="invalid choice: 'pdf'"):
        call_command("trial_balance", "--company", "acme", "--format", "pdf")


def test_trial_balance_on_an_unmigrated_database_says_so_in_one_line(company, monkeypatch):
    def missing_table(*args):
        raise OperationalError("no such table: ledger_journalline")

    monkeypatch.setattr(balances, "trial_balance", missing_table)

    with pytest.raises(CommandError) as caught:
        call_command("trial_balance", "--company", "acme")

    assert str(caught.value) == "the database is not ready (no such table: ledger_journalline); run manage.py migrate"
