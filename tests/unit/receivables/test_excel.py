"""The Excel export reopened with openpyxl and checked cell by cell: the summary's rows,
totals and shares per company and currency, formats, panes, filters, widths and chart; the
detail of every open item; text that stays text; Excel's limits; and streaming: the rows
written as XML equal what openpyxl writes cell by cell, read the same in read-only mode
and in LibreOffice, and stay on disk."""

from __future__ import annotations

import csv
import datetime
import io
import os
import re
import shutil
import subprocess
import tempfile
import tracemalloc
import zipfile
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet._writer import ALL_TEMP_FILES

from receivables import engine, excel, excel_stream
from receivables.engine import Alloc, Doc, Options

D = Decimal
JUNE_30 = datetime.date(2024, 6, 30)
LABELS = ["Current", "< 1 Month", "1 Month", "2 Months", "3 Months", "Older"]
SUMMARY_HEADER = ["Business Unit", "Company", "Contact", "Currency", *LABELS, "Total", "System Comments"]
GBP = '#,##0.00 "GBP";[Red]-#,##0.00 "GBP"'
EUR = '#,##0.00 "EUR";[Red]-#,##0.00 "EUR"'
EVIL = "=cmd|' /C calc'!A0"


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def invoice(id_, company, contact, currency, date, due, total, rate="1") -> Doc:
    return Doc(
        engine.INVOICE,
        id_,
        company,
        contact,
        day(date),
        D(total),
        currency,
        number=id_.upper(),
        due_date=day(due),
        rate=D(rate),
    )


def credit(kind, id_, company, contact, currency, date, total, rate="1") -> Doc:
    return Doc(kind, id_, company, contact, day(date), D(total), currency, number=id_.upper(), rate=D(rate))


@pytest.fixture
def report() -> engine.Report:
    """Two companies, two currencies, credits, several buckets; as of 30 June 2024 by due
    date in months. Acme's GBP: Alpha Stores has 700.00 open and a 200.00 payment on account
    (Current) and 1,234,567.89 one month overdue; a contact with a formula-like name owes
    250.00, Older. Acme's EUR: Beta Shop 400.00 (< 1 Month) less a 100.00 credit note.
    Zeta's EUR: Kunde's 800.00 two months overdue cancelled by an 800.00 credit: total nil."""
    docs = [
        invoice("i-1", "Acme Ltd", "Alpha Stores", "GBP", "2024-06-01", "2024-07-01", "1000.00"),
        credit(engine.PAYMENT, "p-1", "Acme Ltd", "Alpha Stores", "GBP", "2024-06-15", "500.00"),
        invoice("i-2", "Acme Ltd", "Alpha Stores", "GBP", "2024-04-10", "2024-05-10", "1234567.89"),
        invoice("i-3", "Acme Ltd", EVIL, "GBP", "2024-01-05", "2024-02-05", "250.00"),
        invoice("i-4", "Acme Ltd", "Beta Shop", "EUR", "2024-06-10", "2024-06-20", "400.00", rate="1.17"),
        credit(engine.CREDIT_NOTE, "c-1", "Acme Ltd", "Beta Shop", "EUR", "2024-06-12", "100.00", rate="1.17"),
        invoice("i-5", "Zeta GmbH", "Kunde", "EUR", "2024-03-01", "2024-03-31", "800.00"),
        credit(engine.CREDIT_NOTE, "c-2", "Zeta GmbH", "Kunde", "EUR", "2024-05-01", "800.00"),
    ]
    return engine.age(docs, [Alloc("p-1", "i-1", D("300.00"), day("2024-06-15"))], Options(JUNE_30))


def reopen(content: bytes):
    return load_workbook(io.BytesIO(content))


def values(sheet, row: int) -> list:
    return [cell.value for cell in sheet[row]]


def amounts(sheet, row: int, first: str = "E", last: str = "K") -> list[Decimal | None]:
    """Numbers as they were written: openpyxl reads them back as floats, which hold these
    cents exactly."""
    return [None if cell.value is None else D(str(cell.value)) for cell in sheet[f"{first}{row}:{last}{row}"][0]]


def money(*texts: str) -> list[Decimal]:
    return [D(text) for text in texts]


def sheet_xml(content: bytes, title: str, book) -> str:
    index = book.sheetnames.index(title) + 1
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return archive.read(f"xl/worksheets/sheet{index}.xml").decode()


# --- Summary ------------------------------------------------------------------------


def test_summary_has_title_parameters_and_the_seed_columns(report):
    book = reopen(excel.workbook(report, title="Aged receivables: June"))
    summary = book["Summary"]

    assert book.sheetnames == ["Summary", "Detail", "Chart data"]
    assert summary["A1"].value == "Aged receivables: June"
    assert summary["A1"].font.bold
    assert summary["A2"].value == (
        "As of 2024-06-30; 4 periods of 1 month; aged by due date; unallocated credits in Current; totals per currency"
    )
    assert values(summary, 4) == SUMMARY_HEADER
    assert all(cell.font.bold for cell in summary[4])


def test_summary_rows_are_contacts_then_a_total_and_a_percentage_row_per_company_and_currency(report):
    book = reopen(excel.workbook(report, business_units={"Acme Ltd": "North"}))
    summary = book["Summary"]

    # Acme's EUR before its GBP (currencies alphabetically within a company); contacts in
    # the report's order within each.
    assert [values(summary, row)[:4] for row in range(5, 19)] == [
        ["North", "Acme Ltd", "Beta Shop", "EUR"],
        ["North", "Acme Ltd", "Total", "EUR"],
        ["North", "Acme Ltd", "% of total", "EUR"],
        ["North", "Acme Ltd", EVIL, "GBP"],
        ["North", "Acme Ltd", "Alpha Stores", "GBP"],
        ["North", "Acme Ltd", "Total", "GBP"],
        ["North", "Acme Ltd", "% of total", "GBP"],
        [None, "Zeta GmbH", "Kunde", "EUR"],
        [None, "Zeta GmbH", "Total", "EUR"],
        [None, "Zeta GmbH", "% of total", "EUR"],
        [None, "All companies", "Total", "EUR"],
        [None, "All companies", "% of total", "EUR"],
        [None, "All companies", "Total", "GBP"],
        [None, "All companies", "% of total", "GBP"],
    ]
    assert summary.max_row == 18
    #                                     Current    < 1 Month  1 Month       2 Months 3 M   Older     Total
    assert amounts(summary, 5) == money("-100.00", "400.00", "0", "0", "0", "0", "300.00")
    assert amounts(summary, 6) == money("-100.00", "400.00", "0", "0", "0", "0", "300.00")
    assert amounts(summary, 8) == money("0", "0", "0", "0", "0", "250.00", "250.00")
    assert amounts(summary, 9) == money("500.00", "0", "1234567.89", "0", "0", "0", "1235067.89")
    assert amounts(summary, 10) == money("500.00", "0", "1234567.89", "0", "0", "250.00", "1235317.89")
    assert amounts(summary, 12) == money("-800.00", "0", "0", "800.00", "0", "0", "0")
    assert amounts(summary, 13) == money("-800.00", "0", "0", "800.00", "0", "0", "0")
    # Grand totals per currency: EUR is Acme's and Zeta's EUR, never GBP added in.
    assert amounts(summary, 15) == money("-900.00", "400.00", "0", "800.00", "0", "0", "300.00")
    assert amounts(summary, 17) == money("500.00", "0", "1234567.89", "0", "0", "250.00", "1235317.89")


def test_percentage_rows_are_each_buckets_share_of_the_total_and_blank_when_the_total_is_nil(report):
    summary = reopen(excel.workbook(report))["Summary"]

    # The engine's shares (-33.33 %, 133.33 %) as fractions.
    assert amounts(summary, 7) == money("-0.3333", "1.3333", "0", "0", "0", "0", "1")
    assert amounts(summary, 11) == money("0.0004", "0", "0.9994", "0", "0", "0.0002", "1")
    assert amounts(summary, 14) == [None] * 7  # Zeta's credits cancel its debts
    assert amounts(summary, 16) == money("-3", "1.3333", "0", "2.6667", "0", "0", "1")
    assert {cell.number_format for cell in summary["E7:K7"][0]} == {"0.00%"}
    assert summary["C7"].font.italic


def test_amounts_are_numbers_in_their_currencys_format_with_totals_bold(report):
    content = excel.workbook(report)
    book = reopen(content)
    summary = book["Summary"]

    assert {cell.number_format for cell in summary["E5:K6"][0] + summary["E5:K6"][1]} == {EUR}
    assert {cell.number_format for cell in summary["E9:K10"][0] + summary["E9:K10"][1]} == {GBP}
    assert all(cell.data_type == "n" for cell in summary["E9:K9"][0])
    assert all(cell.font.bold for cell in summary[10][:11])
    assert not summary["C9"].font.bold
    # What openpyxl stores for a Decimal: its digits, not a rounded float's.
    assert "<v>1234567.89</v>" in sheet_xml(content, "Summary", book)


def test_a_currency_without_minor_units_is_shown_without_decimals():
    docs = [Doc(engine.INVOICE, "j-1", "Tokyo KK", "Sato", day("2024-06-01"), D("150000"), "JPY", "J-1")]
    report = engine.age(docs, [], Options(JUNE_30))

    summary = reopen(excel.workbook(report))["Summary"]

    assert summary["E5"].number_format == '#,##0 "JPY";[Red]-#,##0 "JPY"'
    assert excel.money_format("KWD", 3) == '#,##0.000 "KWD";[Red]-#,##0.000 "KWD"'


def test_header_is_frozen_and_the_table_filtered(report):
    summary = reopen(excel.workbook(report))["Summary"]

    assert summary.freeze_panes == "A5"
    assert summary.auto_filter.ref == "A4:L18"


def test_column_widths_are_fitted_to_the_data_and_capped(report):
    summary = reopen(excel.workbook(report, business_units={"Acme Ltd": "North"}))["Summary"]
    widths = {letter: summary.column_dimensions[letter].width for letter in "ABCDEFGHIJKL"}

    assert widths["A"] == len("Business Unit") + 4  # the header is the widest
    assert widths["B"] == len("All companies") + 2
    assert widths["C"] == len(EVIL) + 2
    assert widths["G"] == len("1,234,567.89 GBP") + 2
    # Comments fit their longest line, within the cap, and wrap.
    longest = max(len(line) for row in report.rows for line in engine.comments(row, report.labels).split("\n"))
    assert widths["L"] == min(excel.COMMENTS_WIDTH, longest + 2)
    assert summary["L9"].alignment.wrap_text


def test_system_comments_list_each_rows_items_per_bucket(report):
    summary = reopen(excel.workbook(report))["Summary"]

    assert summary["L9"].value == (
        "Current:\n"
        "I-1 (Invoice, ID: i-1) = 700.00\n"
        "P-1 (Payment, ID: p-1) = -200.00\n"
        "\n"
        "1 Month:\n"
        "I-2 (Invoice, ID: i-2) = 1,234,567.89"
    )
    assert summary["L10"].value is None  # totals have no comments


def test_chart_plots_each_buckets_total_per_company_and_currency(report):
    book = reopen(excel.workbook(report))
    data = book["Chart data"]
    charts = book["Summary"]._charts

    assert values(data, 1) == ["Company", *LABELS]
    assert [values(data, row)[0] for row in (2, 3, 4)] == ["Acme Ltd (EUR)", "Acme Ltd (GBP)", "Zeta GmbH (EUR)"]
    assert amounts(data, 3, "B", "G") == money("500.00", "0", "1234567.89", "0", "0", "250.00")
    assert data["B3"].number_format == GBP
    assert len(charts) == 1
    chart = charts[0]
    assert chart.tagname == "barChart"
    assert len(chart.series) == len(LABELS)
    for series, column in zip(chart.series, "BCDEFG", strict=True):
        assert series.tx.strRef.f == f"'Chart data'!{column}1"
        assert series.val.numRef.f == f"'Chart data'!${column}$2:${column}$4"
        assert series.cat.strRef.f == "'Chart data'!$A$2:$A$4"
    assert chart.anchor._from.col == len(SUMMARY_HEADER) + 1  # right of the table (0-based)


def test_one_currency_needs_no_currency_in_the_chart_or_a_note():
    docs = [invoice("i-1", "Acme Ltd", "Alpha", "GBP", "2024-06-01", "2024-07-01", "10.00")]
    report = engine.age(docs, [], Options(JUNE_30))

    book = reopen(excel.workbook(report))

    assert book["Chart data"]["A2"].value == "Acme Ltd"
    assert "per currency" not in book["Summary"]["A2"].value
    assert amounts(book["Summary"], 8) == money("10.00", "0", "0", "0", "0", "0", "10.00")  # the grand total


# --- Detail -------------------------------------------------------------------------


def test_detail_lists_every_open_item_with_dates_and_base_amounts(report):
    detail = reopen(excel.workbook(report))["Detail"]

    assert values(detail, 1) == [
        "Company",
        "Contact",
        "Currency",
        "Type",
        "Number",
        "ID",
        "Date",
        "Due date",
        "Bucket",
        "Amount",
        "Base amount",
    ]
    rows = [values(detail, row) for row in range(2, detail.max_row + 1)]
    as_read = [
        [*row[:6], row[6].date(), row[7] and row[7].date(), row[8], D(str(row[9])), D(str(row[10]))] for row in rows
    ]
    assert as_read == [
        ["Acme Ltd", EVIL, "GBP", "Invoice", "I-3", "i-3", day("2024-01-05"), day("2024-02-05"), "Older", D("250"),
         D("250")],
        ["Acme Ltd", "Alpha Stores", "GBP", "Invoice", "I-1", "i-1", day("2024-06-01"), day("2024-07-01"), "Current",
         D("700"), D("700")],
        ["Acme Ltd", "Alpha Stores", "GBP", "Payment", "P-1", "p-1", day("2024-06-15"), None, "Current", D("-200"),
         D("-200")],
        ["Acme Ltd", "Alpha Stores", "GBP", "Invoice", "I-2", "i-2", day("2024-04-10"), day("2024-05-10"), "1 Month",
         D("1234567.89"), D("1234567.89")],
        ["Acme Ltd", "Beta Shop", "EUR", "Credit Note", "C-1", "c-1", day("2024-06-12"), None, "Current", D("-100"),
         D("-85.47")],
        ["Acme Ltd", "Beta Shop", "EUR", "Invoice", "I-4", "i-4", day("2024-06-10"), day("2024-06-20"), "< 1 Month",
         D("400"), D("341.88")],
        ["Zeta GmbH", "Kunde", "EUR", "Credit Note", "C-2", "c-2", day("2024-05-01"), None, "Current", D("-800"),
         D("-800")],
        ["Zeta GmbH", "Kunde", "EUR", "Invoice", "I-5", "i-5", day("2024-03-01"), day("2024-03-31"), "2 Months",
         D("800"), D("800")],
    ]  # fmt: skip
    assert detail["G2"].number_format == detail["H2"].number_format == "yyyy-mm-dd"
    assert detail["J6"].number_format == EUR
    assert detail["K6"].number_format == excel.PLAIN_MONEY_FORMAT
    assert detail.freeze_panes == "A2"
    assert detail.auto_filter.ref == "A1:K9"
    assert detail.column_dimensions["D"].width == len("Credit Note") + 2


# --- Reconciliation and failures ----------------------------------------------------


def test_reconciliation_and_failures_get_their_own_sheets_as_given(report):
    # As the books source gives them: amounts as decimal strings, no control balance when
    # the ledger has none.
    reconciliation = [
        {
            "company": "Acme Ltd",
            "currency": "GBP",
            "report_total": "1235317.89",
            "control_balance": "1235318.89",
            "difference": "-1.00",
            "reconciled": False,
        },
        {
            "company": "Zeta GmbH",
            "currency": "EUR",
            "report_total": D("0.00"),
            "control_balance": None,
            "difference": None,
            "reconciled": False,
        },
    ]
    failures = [
        {"tenant": "Globex (tenant 7f3a)", "connection": 7, "error": "401 Unauthorized", "last_synced_at": None},
        {"tenant": "Initech", "connection": 9, "error": "never synced", "last_synced_at": None},
    ]

    book = reopen(excel.workbook(report, reconciliation=reconciliation, failures=failures))

    assert book.sheetnames == ["Summary", "Detail", "Reconciliation", "Failures", "Chart data"]
    lines = book["Reconciliation"]
    assert values(lines, 1) == ["Company", "Currency", "Report total", "Control balance", "Difference", "Reconciled"]
    assert values(lines, 2)[:2] == ["Acme Ltd", "GBP"]
    assert amounts(lines, 2, "C", "E") == money("1235317.89", "1235318.89", "-1.00")
    assert lines["E2"].number_format == GBP
    assert lines["F2"].value is False
    assert values(lines, 3)[2:] == [0, None, None, False]
    assert lines["C3"].number_format == EUR
    failed = book["Failures"]
    assert values(failed, 1) == ["Tenant", "Connection", "Error", "Last synced at"]
    assert values(failed, 2) == ["Globex (tenant 7f3a)", 7, "401 Unauthorized", None]
    assert failed["B2"].number_format == "General"  # an id, not money
    assert failed.auto_filter.ref == "A1:D3"


def test_no_reconciliation_or_failures_means_no_such_sheets(report):
    assert "Reconciliation" not in reopen(excel.workbook(report)).sheetnames


# --- Text stays text; Excel's limits ------------------------------------------------


def test_a_formula_looking_contact_name_stays_text(report):
    content = excel.workbook(report)
    book = reopen(content)

    for sheet, cell in ((book["Summary"], "C8"), (book["Detail"], "B2")):
        assert sheet[cell].value == EVIL
        assert sheet[cell].data_type == "s"
        assert sheet[cell].quotePrefix  # and stays text when someone edits it
    for title in ("Summary", "Detail"):
        assert "<f>" not in sheet_xml(content, title, book)


@pytest.mark.parametrize("name", ["=1+1", "+SUM(A1:A9)", "-2+3", "@SUM(A1)", "#N/A", "#DIV/0!"])
def test_names_excel_would_evaluate_are_written_as_strings(name):
    docs = [invoice("i-1", "Acme Ltd", name, "GBP", "2024-06-01", "2024-07-01", "10.00")]
    book = reopen(excel.workbook(engine.age(docs, [], Options(JUNE_30))))

    cell = book["Detail"]["B2"]
    assert (cell.value, cell.data_type) == (name, "s")


def test_control_characters_a_worksheet_cannot_hold_are_dropped():
    docs = [invoice("i-1", "Acme Ltd", "Bell\x07 Co\x00", "GBP", "2024-06-01", "2024-07-01", "10.00")]

    book = reopen(excel.workbook(engine.age(docs, [], Options(JUNE_30))))

    assert book["Summary"]["C5"].value == "Bell Co"


def test_comments_longer_than_a_cell_holds_end_with_how_many_items_are_left_out():
    docs = [
        invoice(f"{n:08d}-aaaa-bbbb-cccc-{n:012d}", "Acme Ltd", "Big Buyer", "GBP", "2024-06-01", "2024-07-01", "1.00")
        for n in range(1000)
    ]
    report = engine.age(docs, [], Options(JUNE_30))
    full = engine.comments(report.rows[0], report.labels)
    assert len(full) > excel.MAX_CELL_CHARS

    summary = reopen(excel.workbook(report))["Summary"]

    text = summary["L5"].value
    assert len(text) <= excel.MAX_CELL_CHARS
    kept, tail = text.rsplit("\n", 1)
    assert full.startswith(kept + "\n")
    shown = len(kept.split("\n")) - 1  # less the "Current:" heading
    assert tail == f"… ({1000 - shown} more items)"
    assert summary.column_dimensions["L"].width == excel.COMMENTS_WIDTH


def test_detail_spills_onto_further_sheets_past_the_row_limit(report, monkeypatch):
    monkeypatch.setattr(excel, "MAX_ROWS", 4)  # a header and three items per sheet

    book = reopen(excel.workbook(report))

    details = [name for name in book.sheetnames if name.startswith("Detail")]
    assert details == ["Detail", "Detail 2", "Detail 3"]
    numbers = []
    for name in details:
        sheet = book[name]
        assert values(sheet, 1)[:3] == ["Company", "Contact", "Currency"]
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == f"A1:K{sheet.max_row}"
        numbers += [sheet.cell(row, 5).value for row in range(2, sheet.max_row + 1)]
    assert [book[name].max_row for name in details] == [4, 4, 3]
    assert numbers == ["I-3", "I-1", "P-1", "I-2", "C-1", "I-4", "C-2", "I-5"]
    # The summary spills too, keeping its title block on the first sheet only.
    assert book["Summary 2"]["C1"].value == "Contact"


def test_sheet_titles_keep_within_31_characters():
    assert excel.sheet_title("Detail", 2) == "Detail 2"
    assert excel.sheet_title("Reconciliation of control accounts", 12) == "Reconciliation of control ac 12"
    assert len(excel.sheet_title("x" * 40, 1000)) == 31
    assert excel.sheet_title("a/b:c") == "a b c"


def test_an_empty_report_has_headers_and_nothing_else():
    report = engine.age([], [], Options(JUNE_30))

    book = reopen(excel.workbook(report))

    assert book.sheetnames == ["Summary", "Detail"]
    summary, detail = book["Summary"], book["Detail"]
    assert values(summary, 4) == SUMMARY_HEADER
    assert summary.max_row == 4
    assert summary.auto_filter.ref == "A4:L4"
    assert summary._charts == []
    assert detail.max_row == 1
    assert detail["A1"].value == "Company"


def test_write_workbook_streams_to_a_path(report, tmp_path):
    path = tmp_path / "aged.xlsx"

    excel.write_workbook(report, path)

    assert load_workbook(path)["Summary"]["B5"].value == "Acme Ltd"


def test_a_failed_export_leaves_no_temporary_files(report, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(excel, "_write_detail", broken)
    before = list(ALL_TEMP_FILES)

    with pytest.raises(OSError, match="disk full"):
        excel.workbook(report)

    assert before == ALL_TEMP_FILES  # the summary's rows were spooled, then removed


# --- Large reports stream ------------------------------------------------------------


def test_a_large_report_is_written_row_by_row_in_write_only_mode():
    # 10,000 open items for 1,000 contacts of 7 companies in two currencies (20,000 take
    # twice as long; this keeps the suite quick).
    docs = [
        invoice(
            f"i-{n}",
            f"Company {n % 1000 % 7}",
            f"Contact {n % 1000}",
            "EUR" if n % 1000 % 3 == 0 else "GBP",
            "2024-01-01",
            (day("2024-02-01") + datetime.timedelta(days=n % 170)).isoformat(),
            f"{n % 997}.01",
        )
        for n in range(10_000)
    ]
    report = engine.age(docs, [], Options(JUNE_30))

    book = excel.build_workbook(report)

    # Every sheet is a streaming one whose rows already sit in its temporary file: no
    # sheet holds cells in memory.
    assert book.write_only
    assert all(isinstance(sheet, WriteOnlyWorksheet) for sheet in book.worksheets)
    assert all(sheet._cells == {} for sheet in book.worksheets)
    detail = book["Detail"]
    assert os.path.getsize(detail._writer.out) > 10_000 * 100
    out = io.BytesIO()
    book.save(out)
    with zipfile.ZipFile(out) as archive:
        xml = archive.read("xl/worksheets/sheet2.xml").decode()
    assert len(re.findall(r"<row ", xml)) == 10_001


# --- Streamed rows equal openpyxl's -------------------------------------------------

AWKWARD_CONTACTS = [
    'O\'Brien "Bob" & <Co>',
    "Café 🍰 Ünïcödé",
    '=HYPERLINK("http://evil.example","click")',
    "+44 20 7946 0000",
    "@mention",
    "#N/A",
    "  padded  ",
    "Bell\x07 \x00Co\r\nsecond line",
    "tab\there",
    "lone\ud800 surrogate\ufffe",
]


def awkward_report() -> engine.Report:
    """Text that needs escaping, formula look-alikes, control characters, emoji, leading and
    trailing spaces; amounts with many places, past a float's 15 digits, negative; dates
    before Excel's 1900 leap-year bug and on a leap day; items without a due date."""
    company = "Smith & Sons <Ltd>"
    docs = []
    for n, contact in enumerate(AWKWARD_CONTACTS):
        docs.append(
            Doc(engine.INVOICE, f"i-{n}&<>", company, contact, day("2024-02-29"), D("1234.56789"), "GBP",
                number=f"=A{n}+1", due_date=day("2024-03-31"), rate=D("1.1"))
        )  # fmt: skip
        docs.append(
            Doc(engine.CREDIT_NOTE, f"c-{n}", company, contact, day("1900-01-15"), D("0.0001"), "GBP",
                number="  spaced & \"quoted\"  ")
        )  # fmt: skip
    docs += [
        Doc(engine.INVOICE, "big", company, "Whale", day("2024-06-01"), D("12345678901234.5678"), "GBP", number="B-1"),
        Doc(engine.INVOICE, "no-due", company, "Whale", day("2024-05-01"), D("77603.43"), "GBP", number="B-2"),
        Doc(engine.INVOICE, "yen", "Tokyo KK", "Sato 様", day("2024-06-01"), D("150000.5"), "JPY", number="J-1",
            due_date=day("2024-06-30")),
        Doc(engine.PAYMENT, "pay", "Tokyo KK", "Sato 様", day("2024-06-02"), D("0.5"), "JPY", number=""),
    ]  # fmt: skip
    return engine.age(docs, [], Options(JUNE_30))


AWKWARD_RECONCILIATION = [
    {"company": "Smith & Sons <Ltd>", "currency": "GBP", "report_total": "12.3456789", "control_balance": 12.5,
     "difference": D("-0.1543211"), "reconciled": False, "checked_at": datetime.datetime(2024, 6, 30, 23, 59, 1),
     "on": JUNE_30, "notes": {"why": "a <b> & c"}},
    {"company": "Tokyo KK", "currency": "JPY", "report_total": "not a number", "control_balance": None,
     "difference": None, "reconciled": True, "checked_at": datetime.datetime(2024, 6, 30, tzinfo=datetime.UTC)},
]  # fmt: skip
AWKWARD_FAILURES = [{"tenant": "=cmd|' /C calc'!A0", "connection": 12345678901234567, "error": "timeout\x0b after 30s"}]


def reference(report: engine.Report, **options) -> bytes:
    """The workbook with every cell written by openpyxl: what the streamed rows must equal."""
    out = io.BytesIO()
    excel.build_workbook(report, **options).save(out)
    return out.getvalue()


def seen(cell) -> tuple:
    """A cell as a reader sees it: value (numbers to Excel's 15 digits, which is all a
    float holds and all openpyxl's float-formatted decimals keep), type, format and style."""
    value = cell.value
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = float(f"{value:.15g}")
    return (
        cell.coordinate,
        value,
        cell.data_type,
        cell.number_format,
        cell.quotePrefix,
        # Style proxies compare by identity; their text lists every attribute.
        repr(cell.font),
        repr(cell.fill),
        repr(cell.border),
        repr(cell.alignment),
        repr(cell.protection),
    )


def sheet_layout(sheet) -> tuple:
    widths = {letter: dimension.width for letter, dimension in sheet.column_dimensions.items()}
    return sheet.title, sheet.freeze_panes, sheet.auto_filter.ref, widths, len(sheet._charts)


def assert_same_workbook(streamed: bytes, expected: bytes) -> None:
    got, want = reopen(streamed), reopen(expected)
    assert got.sheetnames == want.sheetnames
    for name in want.sheetnames:
        assert sheet_layout(got[name]) == sheet_layout(want[name])
        assert [[seen(cell) for cell in row] for row in got[name].iter_rows()] == [
            [seen(cell) for cell in row] for row in want[name].iter_rows()
        ], name


def test_streamed_cells_equal_what_openpyxl_writes_for_awkward_values():
    report = awkward_report()
    options = {
        "business_units": {"Smith & Sons <Ltd>": "North & <South>"},
        "reconciliation": AWKWARD_RECONCILIATION,
        "failures": AWKWARD_FAILURES,
        "title": 'Aged <receivables> & "more"\x01',
    }

    assert_same_workbook(excel.workbook(report, **options), reference(report, **options))


def test_streamed_text_is_escaped_kept_exactly_and_never_a_formula():
    content = excel.workbook(awkward_report())
    book = reopen(content)
    detail = book["Detail"]

    contacts = {detail.cell(row, 2).value for row in range(2, detail.max_row + 1)}
    assert contacts == {
        'O\'Brien "Bob" & <Co>',
        "Café 🍰 Ünïcödé",
        '=HYPERLINK("http://evil.example","click")',
        "+44 20 7946 0000",
        "@mention",
        "#N/A",
        "  padded  ",  # its spaces kept
        "Bell Co\r\nsecond line",  # the carriage return kept, the bell and NUL dropped
        "tab\there",
        "lone surrogate",  # what XML cannot carry at all is dropped
        "Whale",
        "Sato 様",
    }
    texts = [detail.cell(row, col) for row in range(2, detail.max_row + 1) for col in (1, 2, 5, 6)]
    for cell in texts:
        if cell.value is not None:  # the payment has no number
            assert cell.data_type == "s"
            assert cell.quotePrefix == cell.value.startswith(("=", "+", "-", "@", "#N/A"))
    xml = sheet_xml(content, "Detail", book)
    assert "<f>" not in xml
    assert "Smith &amp; Sons &lt;Ltd&gt;" in xml
    assert '<t xml:space="preserve">  padded  </t>' in xml
    assert "Bell Co&#13;\nsecond line" in xml


def test_streamed_amounts_keep_every_digit_and_dates_are_serial_numbers_with_their_format():
    content = excel.workbook(awkward_report())
    book = reopen(content)
    detail = book["Detail"]
    xml = sheet_xml(content, "Detail", book)

    # Decimals as written, not through a float (openpyxl would write 12345678901234.57 and
    # 77603.42999999999).
    for text in ("12345678901234.5678", "77603.43", "1234.56789", "-0.0001", "150000.5", "-0.5"):
        assert f"<v>{text}</v>" in xml
    assert "77603.42999999999" not in xml
    by_id = {detail.cell(row, 6).value: row for row in range(2, detail.max_row + 1)}
    credit = by_id["c-0"]
    assert detail.cell(credit, 7).value == datetime.datetime(1900, 1, 15)  # before the leap-year bug
    assert detail.cell(credit, 7).number_format == "yyyy-mm-dd"
    assert detail.cell(credit, 8).value is None  # a credit has no due date
    invoice = by_id["i-0&<>"]
    assert detail.cell(invoice, 7).value == datetime.datetime(2024, 2, 29)
    assert detail.cell(invoice, 10).number_format == '#,##0.0000 "GBP";[Red]-#,##0.0000 "GBP"'
    assert detail.cell(by_id["no-due"], 8).value is None
    assert detail.cell(by_id["yen"], 10).number_format == '#,##0.0 "JPY";[Red]-#,##0.0 "JPY"'


def test_streamed_detail_spills_like_openpyxls(report, monkeypatch):
    monkeypatch.setattr(excel, "MAX_ROWS", 4)

    content = excel.workbook(report)

    assert_same_workbook(content, reference(report))
    book = reopen(content)
    assert [name for name in book.sheetnames if name.startswith("Detail")] == ["Detail", "Detail 2", "Detail 3"]
    # Each sheet's dimension covers its rows, so readers that trust it see them all.
    for name, last in (("Detail", 4), ("Detail 2", 4), ("Detail 3", 3)):
        assert f'<dimension ref="A1:K{last}"/>' in sheet_xml(content, name, book)
        assert book[name].auto_filter.ref == f"A1:K{last}"


def test_streamed_workbook_reads_the_same_in_read_only_mode():
    content = excel.workbook(awkward_report(), reconciliation=AWKWARD_RECONCILIATION, failures=AWKWARD_FAILURES)
    normal = reopen(content)
    lean = load_workbook(io.BytesIO(content), read_only=True)

    assert lean.sheetnames == normal.sheetnames
    for name in normal.sheetnames:
        assert lean[name].max_row == normal[name].max_row
        assert lean[name].max_column == normal[name].max_column
        assert list(lean[name].values) == list(normal[name].values), name
    lean.close()


def test_an_empty_streamed_report_matches_openpyxls():
    report = engine.age([], [], Options(JUNE_30))

    assert_same_workbook(excel.workbook(report), reference(report))


@pytest.mark.skipif(not (shutil.which("soffice") or shutil.which("libreoffice")), reason="LibreOffice not installed")
def test_libreoffice_reads_every_streamed_sheet(tmp_path):
    path = tmp_path / "aged.xlsx"
    excel.write_workbook(awkward_report(), path, reconciliation=AWKWARD_RECONCILIATION)
    office = shutil.which("soffice") or shutil.which("libreoffice")

    # Every sheet to its own UTF-8 CSV ("-1"), cells as shown.
    subprocess.run(
        [office, "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
         "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1", "--outdir", str(tmp_path),
         str(path)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip

    detail = list(csv.reader((tmp_path / "aged-Detail.csv").open(encoding="utf-8", newline="")))
    assert detail[0] == list(excel.DETAIL_COLUMNS)
    assert len(detail) == 1 + sum(len(row.items) for row in awkward_report().rows)
    rows = {line[5]: line for line in detail[1:]}
    assert rows["i-0&<>"][:2] == ["Smith & Sons <Ltd>", 'O\'Brien "Bob" & <Co>']
    assert rows["i-0&<>"][6:8] == ["2024-02-29", "2024-03-31"]
    assert rows["big"][9].startswith("12,345,678,901,234.")  # a double, in Calc as in Excel
    assert rows["no-due"][6:8] == ["2024-05-01", ""]
    assert {line[1] for line in detail[1:]} >= {'=HYPERLINK("http://evil.example","click")', "Café 🍰 Ünïcödé"}
    summary = list(csv.reader((tmp_path / "aged-Summary.csv").open(encoding="utf-8", newline="")))
    assert summary[3][:4] == ["Business Unit", "Company", "Contact", "Currency"]
    assert (tmp_path / "aged-Reconciliation.csv").exists()


# --- The streamed rows stay on disk -------------------------------------------------


def many_items(count: int) -> engine.Report:
    docs = [
        invoice(
            f"{n:08d}-aaaa-bbbb-cccc-{n:012d}",
            f"Company {n % 7}",
            f"Contact & Co {n % 1000}",
            "EUR" if n % 3 == 0 else "GBP",
            "2024-01-01",
            (day("2024-02-01") + datetime.timedelta(days=n % 170)).isoformat(),
            f"{n % 997}.01",
        )
        for n in range(count)
    ]
    return engine.age(docs, [], Options(JUNE_30))


def test_a_large_report_streams_its_rows_without_holding_them_in_memory(tmp_path):
    report = many_items(20_000)
    path = tmp_path / "aged.xlsx"
    tracemalloc.start()

    try:
        excel.write_workbook(report, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    with zipfile.ZipFile(path) as archive:
        sheets = sum(info.file_size for info in archive.infolist() if info.filename.startswith("xl/worksheets/"))
        assert archive.read("xl/worksheets/sheet2.xml").count(b"<row ") == 20_001
    assert sheets > 20 * 2**20
    assert peak < sheets / 4  # rows are joined a few hundred at a time, never a whole sheet


def test_a_failed_streamed_export_closes_its_row_files(report, monkeypatch):
    made = []
    temporary_file = tempfile.TemporaryFile

    def tracked(*args, **kwargs):
        made.append(temporary_file(*args, **kwargs))
        return made[-1]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tempfile, "TemporaryFile", tracked)
    monkeypatch.setattr(excel_stream.SheetRows, "splice", broken)
    before = list(ALL_TEMP_FILES)

    with pytest.raises(OSError, match="disk full"):
        excel.workbook(report)

    assert len(made) >= 3  # the summary's, the detail's and the chart data's rows
    assert all(file.closed for file in made)
    assert before == ALL_TEMP_FILES


# --- Cells as XML -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "xml"),
    [
        (True, ' t="b"><v>1</v></c>'),
        (7, ' t="n"><v>7</v></c>'),
        (0.1, ' t="n"><v>0.1</v></c>'),
        (D("1E+3"), ' t="n"><v>1000</v></c>'),
        (D("-0.00"), ' t="n"><v>-0.00</v></c>'),
        (D("NaN"), ""),
        (float("inf"), ""),
        (datetime.datetime(2024, 6, 30, 12), ' t="n"><v>45473.5</v></c>'),
        ("a\x00b", ' t="inlineStr"><is><t>ab</t></is></c>'),
        ("\x01", ""),
        (None, ""),
    ],
)
def test_a_cell_is_written_as_openpyxl_reads_it(value, xml):
    package = excel_stream.Package(Workbook(write_only=True))

    assert package.fragment((value, None)) == xml


def test_a_cell_of_an_unknown_type_or_with_a_time_zone_is_refused():
    package = excel_stream.Package(Workbook(write_only=True))

    with pytest.raises(TypeError, match="cannot write a object"):
        package.fragment((object(), None))
    with pytest.raises(TypeError, match="time zones"):
        package.fragment((datetime.datetime(2024, 6, 30, tzinfo=datetime.UTC), None))


def test_rows_can_be_streamed_into_a_sheet_openpyxl_wrote_no_row_of():
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Raw")
    package = excel_stream.Package(book)
    rows = package.rows(sheet, first=1, width=3)
    rows.append([("a & b", None), None, (D("1.50"), None)])
    rows.append([(JUNE_30, excel._Styles(book, {}).date)])
    out = io.BytesIO()

    try:
        package.save(out)
    finally:
        package.close()

    assert '<dimension ref="A1:C2"/>' in zipfile.ZipFile(out).read("xl/worksheets/sheet1.xml").decode()
    raw = load_workbook(out)["Raw"]
    assert [[cell.value for cell in row] for row in raw.iter_rows()] == [
        ["a & b", None, 1.5],
        [datetime.datetime(2024, 6, 30), None, None],
    ]
    with pytest.raises(ValueError, match="4 cells in a sheet 3 columns wide"):
        rows.append([None] * 4)


@pytest.mark.parametrize("rows", ["<sheetData></sheetData>", "<sheetData/>", "<sheetData />"])
def test_rows_go_at_the_end_of_the_sheet_data_however_it_is_written(rows):
    xml = f'<worksheet><sheetViews/>{rows}<autoFilter ref="A1:B2"/></worksheet>'.encode()

    head, tail = excel_stream.split_sheet(xml)

    assert head.decode() + '<row r="1"/>' + tail.decode() == (
        '<worksheet><sheetViews/><sheetData><row r="1"/></sheetData><autoFilter ref="A1:B2"/></worksheet>'
    )
    with pytest.raises(ValueError, match="no sheetData"):
        excel_stream.split_sheet(b"<worksheet/>")
