"""A trial balance as JSON, CSV or an Excel workbook, for the API and the command alike."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.styles import Font

from ledger.services.balances import TrialBalance

FORMATS = ("json", "csv", "xlsx")
COLUMNS = ("code", "name", "type", "opening", "debit", "credit", "closing")
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Rendered:
    content: bytes
    content_type: str
    filename: str


def render(tb: TrialBalance, fmt: str) -> Rendered:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    filename = f"trial-balance-{tb.company.slug}-{tb.date_from}-{tb.date_to}.{fmt}"
    content = {"json": _json, "csv": _csv, "xlsx": _xlsx}[fmt](tb)
    return Rendered(content, CONTENT_TYPES[fmt], filename)


def _json(tb: TrialBalance) -> bytes:
    return json.dumps(tb.as_dict(), indent=2).encode()


def _csv(tb: TrialBalance) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in tb.rows:
        writer.writerow([_text(row.code), _text(row.name), row.type, row.opening, row.debit, row.credit, row.closing])
    totals = tb.totals
    writer.writerow(["", "Total", "", totals["opening"], totals["debit"], totals["credit"], totals["closing"]])
    return out.getvalue().encode()


def _xlsx(tb: TrialBalance) -> bytes:
    """One sheet with a title, the rows, and totals as SUM formulas so the workbook checks
    itself; amounts are numbers (not text) with a money format."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Trial balance"
    sheet.append([f"{tb.company.name}: trial balance {tb.date_from} to {tb.date_to} ({tb.currency})"])
    sheet["A1"].font = Font(bold=True)
    sheet.append([])
    sheet.append([name.capitalize() for name in COLUMNS])
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    first = 4
    for row in tb.rows:
        sheet.append([row.code, row.name, row.type, row.opening, row.debit, row.credit, row.closing])
        for cell in sheet[sheet.max_row][:2]:
            cell.data_type = "s"  # an account named "=..." is text, never a formula
    last = sheet.max_row
    total_row = last + 1
    sheet.append(["", "Total", ""] + [f"=SUM({col}{first}:{col}{last})" if tb.rows else 0 for col in "DEFG"])
    for cell in sheet[total_row]:
        cell.font = Font(bold=True)
    places = "0" * tb.company.minor_units
    money_format = f"#,##0.{places};-#,##0.{places}" if places else "#,##0;-#,##0"
    for row in sheet.iter_rows(min_row=first, max_row=total_row, min_col=4, max_col=7):
        for cell in row:
            cell.number_format = money_format
    for col, width in zip("ABCDEFG", (10, 36, 10, 16, 16, 16, 16), strict=True):
        sheet.column_dimensions[col].width = width
    sheet.freeze_panes = "A4"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _text(value: str) -> str:
    """A name a spreadsheet would read as a formula gets a leading quote."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value
