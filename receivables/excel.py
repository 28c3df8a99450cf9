"""The aged receivables report as an Excel workbook.

Sheets:

- "Summary": a title block, then a row per company, contact and currency with a column per
  bucket, the total and the system comments; after each company's rows in a currency its
  total row and a percentage row; at the end a grand total (and percentage) row per
  currency, because a report never adds two currencies. A bar chart of each company's
  bucket totals sits to the right of the table.
- "Detail": every open item, one per row.
- "Reconciliation" and "Failures" when the run has any.
- "Chart data": the company totals the chart plots, in one contiguous block (the summary
  interleaves totals with contact rows, and a chart series needs a plain range).

The workbook is written in openpyxl's write-only mode, which fixes a sheet's columns and
panes when its first row is written, so column widths are measured from the in-memory
report before any row goes out. openpyxl writes each sheet's head (title block, header,
widths, panes, filter), the styles and the chart; the rows below the heads are streamed as
worksheet XML to temporary files and spliced in on saving (``excel_stream``), ten times
faster than openpyxl writes cells. A report of a million items never holds a million cells
in memory. ``build_workbook`` writes every row through openpyxl instead: the reference the
streamed rows are tested against.

Excel's own limits are kept: a sheet spills onto "Detail 2", "Detail 3", … past
``MAX_ROWS`` rows; a cell holds at most ``MAX_CELL_CHARS`` characters (long comments end
with "… (n more items)"); text is always written as text, so a contact called
"=HYPERLINK(…)" can never become a formula.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell.cell import ERROR_CODES, Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from ledger import currencies
from receivables import engine, excel_stream
from receivables.excel_stream import Cell as CellSpec

# Excel's hard limits.
MAX_ROWS = 1_048_576
MAX_CELL_CHARS = 32_767
MAX_TITLE_CHARS = 31

MIN_WIDTH = 8
MAX_WIDTH = 50
COMMENTS_WIDTH = 60
MAX_PLACES = 4
QUANTA = [Decimal(1).scaleb(-places) for places in range(MAX_PLACES + 1)]
DATE_FORMAT = "yyyy-mm-dd"
PERCENT_FORMAT = "0.00%"
PLAIN_MONEY_FORMAT = "#,##0.00;[Red]-#,##0.00"
# A cell starting with one of these reads as a formula when someone edits it in Excel.
FORMULA_STARTS = ("=", "+", "-", "@")
INVALID_TITLE_CHARS = re.compile(r"[\[\]:*?/\\]")

SUMMARY_LEAD = ("Business Unit", "Company", "Contact", "Currency")
DETAIL_COLUMNS = (
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
)
TOTAL = "Total"
PERCENT = "% of total"
ALL_COMPANIES = "All companies"
AMOUNT_KEYS = frozenset({"report_total", "control_balance", "difference", "amount", "total"})

Target = str | os.PathLike | BinaryIO


def workbook(
    report: engine.Report,
    *,
    business_units: Mapping[str, str] | None = None,
    reconciliation: Sequence[dict] = (),
    failures: Sequence[dict] = (),
    title: str = "Aged receivables",
) -> bytes:
    """The report as an .xlsx file's bytes."""
    out = io.BytesIO()
    write_workbook(
        report, out, business_units=business_units, reconciliation=reconciliation, failures=failures, title=title
    )
    return out.getvalue()


def write_workbook(
    report: engine.Report,
    out: Target,
    *,
    business_units: Mapping[str, str] | None = None,
    reconciliation: Sequence[dict] = (),
    failures: Sequence[dict] = (),
    title: str = "Aged receivables",
) -> None:
    """Write the report as .xlsx to ``out`` (a path or a binary file object), streaming:
    openpyxl writes each sheet's head, the rows are spliced in as XML."""
    book = Workbook(write_only=True)
    package = excel_stream.Package(book)
    try:
        _fill(book, report, business_units, reconciliation, failures, title, package)
        package.save(out)
    except BaseException:
        _discard(book)
        raise
    finally:
        package.close()


def build_workbook(
    report: engine.Report,
    *,
    business_units: Mapping[str, str] | None = None,
    reconciliation: Sequence[dict] = (),
    failures: Sequence[dict] = (),
    title: str = "Aged receivables",
) -> Workbook:
    """The write-only workbook with every sheet written cell by cell by openpyxl, not yet
    saved. Save it exactly once: its rows wait in temporary files until then. Slower than
    ``write_workbook`` (about 12 µs a cell), whose cells must equal these."""
    book = Workbook(write_only=True)
    try:
        _fill(book, report, business_units, reconciliation, failures, title, None)
    except BaseException:
        _discard(book)
        raise
    return book


def _fill(
    book: Workbook,
    report: engine.Report,
    business_units: Mapping[str, str] | None,
    reconciliation: Sequence[dict],
    failures: Sequence[dict],
    title: str,
    package: excel_stream.Package | None,
) -> None:
    """Every sheet into ``book``, the rows through ``package`` when given."""
    book.properties.title = _clean(title)[:255]
    book.properties.creator = "Countinghouse"
    styles = _Styles(book, _currency_places(report))
    summary, groups = _write_summary(book, report, styles, business_units or {}, title, package)
    _write_detail(book, report, styles, package)
    if reconciliation:
        _write_records(book, "Reconciliation", reconciliation, styles, package)
    if failures:
        _write_records(book, "Failures", failures, styles, package)
    if groups:
        _add_chart(book, report.labels, [total for _, total in groups.values()], styles, summary, package)


# Sheets


def _write_summary(
    book: Workbook,
    report: engine.Report,
    styles: _Styles,
    units: Mapping[str, str],
    title: str,
    package: excel_stream.Package | None,
) -> tuple[_Table, dict[tuple[str, str], tuple[list[engine.Row], engine.Total]]]:
    labels = report.labels
    header = [*SUMMARY_LEAD, *labels, TOTAL, "System Comments"]
    groups = _groups(report)
    grand = _grand_totals(report)
    many_currencies = len(grand) > 1
    comments_col = len(header)

    widths = _Widths(header)
    for (company, currency), (rows, total) in groups.items():
        widths.text(1, units.get(company, ""))
        widths.text(2, company)
        for row in rows:
            widths.text(3, row.contact)
            widths.amounts(5, [*row.buckets, row.total], styles.places(currency))
            # Comments are long: once one reaches the cap, the rest need not be made twice.
            if widths.chars[comments_col - 1] < COMMENTS_WIDTH:
                widths.lines(comments_col, _clip_comments(engine.comments(row, labels), labels))
        widths.text(3, TOTAL)
        widths.amounts(5, [*total.buckets, total.total], styles.places(currency))
        widths.text(4, currency)
    for currency, total in grand.items():
        widths.text(2, ALL_COMPANIES)
        widths.amounts(5, [*total.buckets, total.total], styles.places(currency))
    widths.text(3, PERCENT)

    table = _Table(
        book,
        "Summary",
        header,
        styles,
        widths.result(caps={comments_col: COMMENTS_WIDTH}),
        package,
        preamble=[
            [styles.text(title, styles.title)],
            [styles.text(_parameters(report.options, many_currencies), styles.plain)],
            [],
        ],
    )
    for (company, currency), (rows, total) in groups.items():
        unit = units.get(company, "")
        lead = [styles.text(unit, styles.top), styles.text(company, styles.top)]
        code = styles.text(currency, styles.top)
        for row in rows:
            table.append(
                [
                    *lead,
                    styles.text(row.contact, styles.top),
                    code,
                    *styles.amounts([*row.buckets, row.total], currency, "row"),
                    styles.text(_clip_comments(engine.comments(row, labels), labels), styles.wrap),
                ]
            )
        _append_total(table, styles, unit, company, currency, total.buckets)
    for currency, total in grand.items():
        _append_total(table, styles, "", ALL_COMPANIES, currency, total.buckets, grand=True)
    table.close()
    return table, groups


def _append_total(
    table: _Table,
    styles: _Styles,
    unit: str,
    company: str,
    currency: str,
    buckets: Sequence[Decimal],
    *,
    grand: bool = False,
) -> None:
    """A total row (bold) and below it each bucket's share of the total (blank when the total
    is nothing)."""
    total = sum(buckets, engine.ZERO)
    kind = "grand" if grand else "total"
    text = styles.grand_text if grand else styles.bold
    table.append(
        [
            styles.text(unit, text),
            styles.text(company, text),
            styles.text(TOTAL, text),
            styles.text(currency, text),
            *styles.amounts([*buckets, total], currency, kind),
        ]
    )
    # The engine's shares (per cent to two places), as fractions for Excel's percent format.
    shares = engine.percentages([*buckets, total], total)
    table.append(
        [
            styles.text(unit, styles.italic),
            styles.text(company, styles.italic),
            styles.text(PERCENT, styles.italic),
            styles.text(currency, styles.italic),
            *(None if share is None else (share / 100, styles.percent) for share in shares),
        ]
    )


def _write_detail(
    book: Workbook, report: engine.Report, styles: _Styles, package: excel_stream.Package | None
) -> _Table:
    labels = report.labels
    widths = _Widths(DETAIL_COLUMNS)
    for row in report.rows:
        widths.text(1, row.company)
        widths.text(2, row.contact)
        widths.text(3, row.currency)
        for item in row.items:
            widths.text(5, item.number)
            widths.text(6, item.id)
        if row.items:
            # A formatted amount is widest at the largest or the most negative amount.
            amounts = [item.amount for item in row.items]
            widths.amounts(10, [max(amounts), min(amounts)], styles.places(row.currency), columns=False)
            bases = [item.base for item in row.items]
            widths.amounts(11, [max(bases), min(bases)], 2, code=False, columns=False)
    for kind in {item.kind for row in report.rows for item in row.items}:
        widths.text(4, engine.KIND_NAMES[kind])
    widths.fixed(7, len("2000-01-01"))
    widths.fixed(8, len("2000-01-01"))
    for label in labels:
        widths.text(9, label)

    table = _Table(book, "Detail", DETAIL_COLUMNS, styles, widths.result(), package)
    # What many rows share (a contact's name, a type, a date) is made into a cell once.
    prepare = table.prepare
    kinds = {kind: prepare(styles.text(name)) for kind, name in engine.KIND_NAMES.items()}
    buckets = [prepare(styles.text(label)) for label in labels]
    dates: dict[datetime.date, CellSpec | str] = {}
    plain_money = styles.plain_money
    for row in report.rows:
        company, contact, currency = (prepare(styles.text(value)) for value in (row.company, row.contact, row.currency))
        money = styles.money(row.currency, "row")
        for item in row.items:
            date = dates.get(item.date) or dates.setdefault(item.date, prepare((item.date, styles.date)))
            due = item.due_date
            if due is not None:
                due = dates.get(due) or dates.setdefault(due, prepare((due, styles.date)))
            table.append(
                [
                    company,
                    contact,
                    currency,
                    kinds[item.kind],
                    styles.text(item.number),
                    styles.text(item.id),
                    date,
                    due,
                    buckets[item.bucket],
                    (item.amount, money),
                    (item.base, plain_money),
                ]
            )
    table.close()
    return table


def _write_records(
    book: Workbook, name: str, records: Sequence[dict], styles: _Styles, package: excel_stream.Package | None
) -> _Table:
    """Reconciliation lines or failures: a column per key, as given; amounts as numbers in
    the line's currency."""
    keys = list(dict.fromkeys(key for record in records for key in record))
    header = [str(key).replace("_", " ").capitalize() for key in keys]
    values = [[_record_value(key, record.get(key)) for key in keys] for record in records]
    widths = _Widths(header)
    for record, line in zip(records, values, strict=True):
        places = styles.places(str(record.get("currency") or ""))
        for col, value in enumerate(line, 1):
            if isinstance(value, bool):
                widths.fixed(col, 5)
            elif isinstance(value, Decimal | int | float):
                widths.amounts(col, [Decimal(str(value))], places)
            elif isinstance(value, datetime.date):
                widths.fixed(col, 19 if isinstance(value, datetime.datetime) else 10)
            elif value is not None:
                widths.lines(col, _clip(str(value)))
    table = _Table(
        book, name, header, styles, widths.result(caps=dict.fromkeys(range(1, len(header) + 1), 80)), package
    )
    for record, line in zip(records, values, strict=True):
        currency = str(record.get("currency") or "")
        cells: list[CellSpec] = []
        for key, value in zip(keys, line, strict=True):
            if value is None:
                cells.append(None)
            elif isinstance(value, bool):
                cells.append((value, None))
            elif isinstance(value, Decimal) or (key in AMOUNT_KEYS and isinstance(value, int | float)):
                cells.append((value, styles.money(currency, "row")))
            elif isinstance(value, int | float):
                cells.append((value, None))  # a count or an id, not money
            elif isinstance(value, datetime.datetime):
                cells.append((value, styles.datetime))
            elif isinstance(value, datetime.date):
                cells.append((value, styles.date))
            else:
                cells.append(styles.text(value, styles.wrap))
        table.append(cells)
    table.close()
    return table


def _record_value(key: object, value: object) -> object:
    if value is None or isinstance(value, bool | Decimal | int | float):
        return value
    if isinstance(value, datetime.datetime):
        # Excel has no time zones: an aware moment is shown in UTC, and says so.
        if value.tzinfo is not None:
            return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return value
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        if key in AMOUNT_KEYS:
            with suppress(InvalidOperation):
                amount = Decimal(value)
                if amount.is_finite():
                    return amount
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _add_chart(
    book: Workbook,
    labels: Sequence[str],
    totals: Sequence[engine.Total],
    styles: _Styles,
    summary: _Table,
    package: excel_stream.Package | None,
) -> None:
    """A clustered bar per bucket for each company (and currency), in the summary's order,
    plotted from "Chart data" and placed to the right of the summary table."""
    many_currencies = len({total.currency for total in totals}) > 1
    categories = [f"{total.company} ({total.currency})" if many_currencies else total.company for total in totals]
    widths = _Widths(["Company", *labels])
    for category, total in zip(categories, totals, strict=True):
        widths.text(1, category)
        widths.amounts(2, total.buckets, styles.places(total.currency))
    table = _Table(book, "Chart data", ["Company", *labels], styles, widths.result(), package, filtered=False)
    for category, total in zip(categories, totals, strict=True):
        table.append([styles.text(category), *styles.amounts(total.buckets, total.currency, "row")])
    table.close()

    data = table.sheets[0]
    last = table.last_rows[0]
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "clustered"
    chart.title = "Buckets per company"
    chart.y_axis.title = "Amount"
    chart.x_axis.title = "Company (currency)" if many_currencies else "Company"
    # openpyxl 3.1 leaves the axes' "delete" unset, which recent Excel reads as hidden axes.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.add_data(Reference(data, min_col=2, max_col=1 + len(labels), min_row=1, max_row=last), titles_from_data=True)
    # Company names are text: a string reference (openpyxl's set_categories makes a numeric one).
    categories_ref = Reference(data, min_col=1, min_row=2, max_row=last)
    for series in chart.series:
        series.cat = AxDataSource(strRef=StrRef(f=str(categories_ref)))
    chart.height = 10
    chart.width = min(80, max(18, 4 + (last - 1) * len(labels) * 0.6))
    sheet = summary.sheets[0]
    sheet.add_chart(chart, f"{get_column_letter(len(summary.header) + 2)}{summary.header_rows[0]}")


# Layout


class _Table:
    """A header and rows across as many sheets as Excel's row limit needs, each with its
    widths, frozen header and auto filter. openpyxl writes the preamble and the header;
    the rows go through ``package`` when there is one, else through openpyxl too."""

    def __init__(
        self,
        book: Workbook,
        name: str,
        header: Sequence[str],
        styles: _Styles,
        widths: Sequence[float],
        package: excel_stream.Package | None,
        *,
        preamble: Sequence[Sequence[CellSpec]] = (),
        filtered: bool = True,
    ) -> None:
        self.book = book
        self.name = name
        self.header = list(header)
        self.styles = styles
        self.widths = widths
        self.package = package
        self.preamble = preamble
        self.filtered = filtered
        self.sheets: list[WriteOnlyWorksheet] = []
        self.rows: list[excel_stream.SheetRows] = []
        self.header_rows: list[int] = []
        self.last_rows: list[int] = []
        self._open()

    def _open(self) -> None:
        ws = self.book.create_sheet(sheet_title(self.name, len(self.sheets) + 1))
        # Write-only sheets write their columns and panes with the first row: set them now.
        for col, width in enumerate(self.widths, 1):
            ws.column_dimensions[get_column_letter(col)].width = width
        lead = self.preamble if not self.sheets else []
        header_row = len(lead) + 1
        ws.freeze_panes = f"A{header_row + 1}"
        for row in [*lead, [self.styles.text(name, self.styles.header) for name in self.header]]:
            ws.append([_openpyxl_cell(ws, cell) for cell in row])
        self.sheets.append(ws)
        if self.package is not None:
            self.rows.append(self.package.rows(ws, header_row + 1, len(self.header)))
        self.header_rows.append(header_row)
        self.last_rows.append(header_row)

    def prepare(self, cell: CellSpec) -> CellSpec | str:
        """``cell`` made ready to be appended many times: its XML, when streaming."""
        if self.package is None or cell is None:
            return cell
        return self.package.fragment(cell)

    def sheet_for_next_row(self) -> WriteOnlyWorksheet:
        """The sheet the next row goes to, opening the next one when this one is full (but
        never leaving a sheet without a data row)."""
        if self.last_rows[-1] >= MAX_ROWS and self.last_rows[-1] > self.header_rows[-1]:
            self._finish()
            self._open()
        return self.sheets[-1]

    def append(self, cells: Sequence[CellSpec | str]) -> None:
        """A row of cells, or of cells from ``prepare``."""
        ws = self.sheet_for_next_row()
        if self.package is None:
            ws.append([_openpyxl_cell(ws, cell) for cell in cells])
        else:
            self.rows[-1].append(cells)
        self.last_rows[-1] += 1

    def _finish(self) -> None:
        if self.filtered:
            last_col = get_column_letter(len(self.header))
            self.sheets[-1].auto_filter.ref = f"A{self.header_rows[-1]}:{last_col}{self.last_rows[-1]}"

    def close(self) -> None:
        self._finish()


def sheet_title(name: str, number: int = 1) -> str:
    """``name`` for the first sheet, ``name 2`` … after it, within Excel's 31 characters and
    without the characters Excel forbids in sheet names."""
    name = INVALID_TITLE_CHARS.sub(" ", name).strip("' ") or "Sheet"
    suffix = "" if number == 1 else f" {number}"
    return name[: MAX_TITLE_CHARS - len(suffix)].rstrip() + suffix


class _Widths:
    """Column widths measured from the values (in characters, as Excel counts them), with a
    little padding, a floor and a cap."""

    def __init__(self, header: Sequence[str]) -> None:
        self.chars = [len(name) + 2 for name in header]  # bold, and the filter's arrow

    def text(self, col: int, value: str) -> None:
        self.lines(col, value)

    def lines(self, col: int, value: str) -> None:
        if "\n" in value:
            self.fixed(col, max(len(line) for line in value.split("\n")))
        elif len(value) > self.chars[col - 1]:
            self.chars[col - 1] = len(value)

    def fixed(self, col: int, chars: int) -> None:
        if chars > self.chars[col - 1]:
            self.chars[col - 1] = chars

    def amounts(
        self, first: int, amounts: Sequence[Decimal], places: int, *, code: bool = True, columns: bool = True
    ) -> None:
        """``amounts`` as the money format shows them, in the columns from ``first`` on (or
        all in column ``first`` when not ``columns``)."""
        for offset, amount in enumerate(amounts):
            shown = len(f"{amount:,.{places}f}") + (4 if code else 0)
            self.fixed(first + offset if columns else first, shown)

    def result(self, caps: Mapping[int, int] | None = None) -> list[float]:
        caps = caps or {}
        return [
            float(min(caps.get(col, MAX_WIDTH), max(MIN_WIDTH, chars + 2))) for col, chars in enumerate(self.chars, 1)
        ]


class _Styles:
    """Cell styles made once per workbook, and cells as ``(value, style)`` pairs (a style
    array is shared by every cell that has it; styling each cell would be much slower)."""

    def __init__(self, book: Workbook, places: Mapping[str, int]) -> None:
        self.book = book
        self._places = dict(places)
        self._scratch = WriteOnlyWorksheet(book, "styles")  # never added to the workbook
        thin = Side(style="thin", color="808080")
        header_fill = PatternFill("solid", fgColor="DDEBF7")
        grand_fill = PatternFill("solid", fgColor="F2F2F2")
        top = Alignment(vertical="top")
        self.plain = self._make()
        self.title = self._make(font=Font(bold=True, size=14))
        self.header = self._make(
            font=Font(bold=True),
            fill=header_fill,
            border=Border(bottom=thin),
            alignment=Alignment(vertical="center", wrap_text=True),
        )
        self.top = self._make(alignment=top)
        self.wrap = self._make(alignment=Alignment(vertical="top", wrap_text=True))
        self.bold = self._make(font=Font(bold=True), border=Border(top=thin))
        self.grand_text = self._make(font=Font(bold=True), fill=grand_fill, border=Border(top=thin))
        self.italic = self._make(font=Font(italic=True))
        self.percent = self._make(font=Font(italic=True), number_format=PERCENT_FORMAT)
        self.date = self._make(number_format=DATE_FORMAT)
        self.datetime = self._make(number_format="yyyy-mm-dd hh:mm:ss")
        self.plain_money = self._make(number_format=PLAIN_MONEY_FORMAT)
        self._money: dict[tuple[str, str], StyleArray] = {}
        self._kinds = {
            "row": {"alignment": top},
            "total": {"font": Font(bold=True), "border": Border(top=thin)},
            "grand": {"font": Font(bold=True), "fill": grand_fill, "border": Border(top=thin)},
        }
        self._quoted: dict[int, StyleArray] = {}

    def _make(self, **attributes: object) -> StyleArray:
        cell = Cell(self._scratch, row=1, column=1)
        for name, value in attributes.items():
            setattr(cell, name, value)
        return StyleArray(cell._style or StyleArray())

    def places(self, currency: str) -> int:
        return self._places.get(currency, currencies.MINOR_UNITS.get(currency, 2))

    def money(self, currency: str, kind: str) -> StyleArray:
        style = self._money.get((currency, kind))
        if style is None:
            style = self._money[(currency, kind)] = self._make(
                number_format=money_format(currency, self.places(currency)), **self._kinds[kind]
            )
        return style

    def amounts(self, amounts: Iterable[Decimal], currency: str, kind: str) -> list[CellSpec]:
        style = self.money(currency, kind)
        return [(amount, style) for amount in amounts]

    def text(self, value: object, style: StyleArray | None = None) -> CellSpec:
        """A text cell that stays text (a cell's text is never a formula): a value Excel
        would read as a formula or an error code when someone edits it is quote-prefixed."""
        value = _clean(str(value))
        if len(value) > MAX_CELL_CHARS:
            value = _clip(value)
        if not value:
            return None if style is None else (None, style)
        if value.startswith(FORMULA_STARTS) or value in ERROR_CODES:
            key = id(style)
            quoted = self._quoted.get(key)
            if quoted is None:
                quoted = StyleArray(style) if style is not None else StyleArray()
                quoted.quotePrefix = 1
                self._quoted[key] = quoted
            style = quoted
        return (value, style)


def money_format(currency: str, places: int = 2) -> str:
    """``#,##0.00 "EUR";[Red]-#,##0.00 "EUR"``: thousands, ``places`` decimals, the code,
    negatives red."""
    number = "#,##0" + ("." + "0" * places if places else "")
    code = re.sub(r"[^A-Za-z0-9]", "", currency)
    suffix = f' "{code}"' if code else ""
    return f"{number}{suffix};[Red]-{number}{suffix}"


def _currency_places(report: engine.Report) -> dict[str, int]:
    """Decimal places per currency: ISO's minor units (two when unknown), or more when the
    amounts carry more (up to ``MAX_PLACES``)."""
    places: dict[str, int] = {}
    for row in report.rows:
        needed = places.get(row.currency, currencies.MINOR_UNITS.get(row.currency, 2))
        for amount in (*row.buckets, *(item.amount for item in row.items)):
            # Most amounts have no more places than already needed: a quick test first.
            try:
                if needed >= MAX_PLACES or amount == amount.quantize(QUANTA[needed]):
                    continue
            except InvalidOperation:
                pass  # too many digits to quantize, or not a number: counted below
            needed = max(needed, _places(amount))
        places[row.currency] = needed
    return places


def _places(amount: Decimal) -> int:
    if not amount.is_finite():
        return 0
    exponent = amount.normalize().as_tuple().exponent
    return min(MAX_PLACES, max(0, -exponent)) if isinstance(exponent, int) else 0


def _groups(report: engine.Report) -> dict[tuple[str, str], tuple[list[engine.Row], engine.Total]]:
    """Rows per company and currency, companies in the report's order and currencies
    alphabetically within a company, each with its total."""
    rows: dict[tuple[str, str], list[engine.Row]] = defaultdict(list)
    companies: dict[str, None] = {}
    for row in report.rows:
        companies.setdefault(row.company)
        rows[(row.company, row.currency)].append(row)
    totals = {(total.company, total.currency): total for total in report.totals}
    width = len(report.labels)
    groups = {}
    order = {company: index for index, company in enumerate(companies)}
    for key in sorted(rows, key=lambda key: (order[key[0]], key[1])):
        total = totals.get(key) or engine.totals_of(rows[key], width)[0]
        groups[key] = (rows[key], total)
    return groups


def _grand_totals(report: engine.Report) -> dict[str, engine.Total]:
    """One grand total per currency, currencies alphabetically."""
    width = len(report.labels)
    grand: dict[str, engine.Total] = {}
    for total in sorted(report.totals, key=lambda total: total.currency):
        found = grand.get(total.currency)
        if found is None:
            found = grand[total.currency] = engine.Total(
                ALL_COMPANIES, total.currency, [engine.ZERO] * width, [engine.ZERO] * width
            )
        for index in range(width):
            found.buckets[index] += total.buckets[index]
            found.base[index] += total.base[index]
    return grand


def _parameters(options: engine.Options, many_currencies: bool) -> str:
    length = options.period_length
    unit = options.period_type + ("" if length == 1 else "s")
    parts = [
        f"As of {options.as_of.isoformat()}",
        f"{options.periods} periods of {length} {unit}",
        "aged by due date" if options.age_by == "due" else "aged by invoice date",
        "unallocated credits in Current" if options.credit_aging == "current" else "credits aged by their date",
    ]
    if many_currencies:
        parts.append("totals per currency")
    return "; ".join(parts)


# Text


def _clean(value: str) -> str:
    """Without the characters a worksheet cannot hold (control characters, which openpyxl
    refuses, and what else XML cannot carry)."""
    return excel_stream.clean(value)


def _clip(value: str, limit: int | None = None) -> str:
    limit = MAX_CELL_CHARS if limit is None else limit
    if len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def _clip_comments(text: str, labels: Sequence[str]) -> str:
    """The comments within a cell: whole lines kept while they fit, then "… (n more items)"
    counting the items left out."""
    limit = MAX_CELL_CHARS
    if len(text) <= limit:
        return text
    headings = {f"{label}:" for label in labels}
    lines = text.split("\n")
    items = sum(1 for line in lines if line and line not in headings)
    room = limit - len(f"\n… ({items} more items)")
    kept, size = [], 0
    for line in lines:
        if size + len(line) + (1 if kept else 0) > room:
            break
        size += len(line) + (1 if kept else 0)
        kept.append(line)
    while kept and (not kept[-1] or kept[-1] in headings):
        kept.pop()  # a heading without its items, or a blank line, says nothing
    shown = sum(1 for line in kept if line not in headings and line)
    tail = f"… ({items - shown} more items)"
    if not kept:
        return text[: limit - len(tail) - 1] + "\n" + tail
    return "\n".join(kept) + "\n" + tail


def _openpyxl_cell(ws: WriteOnlyWorksheet, cell: CellSpec) -> object:
    """A cell as openpyxl appends it: a plain value, or a cell for a styled value or text."""
    if cell is None:
        return None
    value, style = cell
    if style is None and not isinstance(value, str | datetime.date):
        return value  # openpyxl reuses one cell for plain values
    # A coordinate is needed even though the sheet places the cell: openpyxl prints it when
    # it meets a cell among plain values.
    made = Cell(ws, row=1, column=1, value=value, style_array=style)
    if isinstance(value, str):
        made.data_type = "s"  # never a formula or an error code
    return made


def _discard(book: Workbook) -> None:
    """Remove the temporary files of a write-only workbook that will not be saved."""
    for ws in book.worksheets:
        writer = getattr(ws, "_writer", None)
        if writer is None:
            continue
        rows = getattr(ws, "_rows", None)
        if rows is not None:
            with suppress(Exception):
                rows.close()  # ends the sheet's XML while its file is still open
        with suppress(Exception):
            writer.close()
        with suppress(Exception):
            writer.cleanup()
