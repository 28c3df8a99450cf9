"""Worksheet rows written as SpreadsheetML text and spliced into the package openpyxl saves.

openpyxl spends about 12 µs on every cell it writes, so a report of a few hundred thousand
open items took most of a minute. Here openpyxl still writes everything but the rows: each
sheet's head (title block, header row, column widths, frozen pane, auto filter), the
styles, the chart and the package around them. The rows below each head are written as
worksheet XML text, a few µs a row, into an anonymous temporary file per sheet; ``save``
then copies openpyxl's package to the output and puts each sheet's rows inside its
``<sheetData>`` on the way. Nothing holds a whole sheet in memory.

A cell is ``None`` or ``(value, style)``: ``value`` is a ``str`` (always text, never a
formula), a ``Decimal``, ``int`` or ``float``, a ``bool``, a ``date`` or naive
``datetime`` (given a date format by its style), or ``None`` (an empty cell that keeps its
style); ``style`` is an openpyxl ``StyleArray`` or ``None``. Cells come out as openpyxl
writes them (inline strings, dates as serial numbers), except that a ``Decimal`` keeps
every digit: openpyxl passes it through a float ("77603.42999999999").
"""

from __future__ import annotations

import datetime
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

Cell = tuple[object, StyleArray | None] | None
Target = str | os.PathLike | BinaryIO

# What XML 1.0 cannot hold: C0 controls but tab, line feed and carriage return; lone
# surrogates; U+FFFE and U+FFFF.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
ALLOWED_ASCII = b"\t\n\r" + bytes(range(0x20, 0x80))
CHUNK = 1 << 20
BATCH = 256  # rows joined into one write
# Deflate's quickest level for the streamed sheets: a third of the time of the default
# level (which openpyxl uses), for a file about a quarter larger. Compressing a large
# sheet otherwise takes as long as writing it.
COMPRESSION = 1
SHEET_DATA_END = b"</sheetData>"
SHEET_DATA_EMPTY = re.compile(rb"<sheetData\s*/>")
SHEET_VIEWS = b"<sheetViews"


class Package:
    """The rows streamed for the sheets of one write-only workbook, and the ids of the
    styles they use. Close it when done: that removes the temporary files."""

    def __init__(self, book: Workbook) -> None:
        self.book = book
        self.sheets: list[SheetRows] = []
        # id(style) -> ' s="n"'; the styles are kept so that no id is reused meanwhile.
        self._style_attrs: dict[int, str] = {id(None): ""}
        self._kept: list[StyleArray] = []
        self._serials: dict[datetime.date, str] = {}

    def rows(self, sheet: WriteOnlyWorksheet, first: int, width: int) -> SheetRows:
        """The rows of ``sheet`` from row ``first`` on, ``width`` columns wide."""
        rows = SheetRows(self, sheet, first, width)
        self.sheets.append(rows)
        return rows

    def fragment(self, cell: tuple[object, StyleArray | None]) -> str:
        """A cell's XML after its reference (``<c r="B7"`` + this), or "" when there is
        nothing to write (no value and no style). A cell written on many rows (a contact's
        name, a date) can be made once and given to ``SheetRows.append`` as this."""
        value, style = cell
        s = self._style_attrs.get(id(style))
        if s is None:
            s = self._style_attr(style)
        kind = type(value)
        if kind is str:
            return _text(value, s)
        if kind is Decimal:
            number = _decimal(value)
        elif kind is datetime.date:
            number = self._serials.get(value) or self.serial(value)
        elif value is None:
            number = None
        elif isinstance(value, bool):
            return f'{s} t="b"><v>{int(value)}</v></c>'
        elif isinstance(value, str):
            return _text(value, s)
        elif isinstance(value, Decimal):
            number = _decimal(value)
        elif isinstance(value, datetime.date):
            number = self.serial(value)
        elif isinstance(value, int | float):
            number = _float(value)
        else:
            raise TypeError(f"cannot write a {kind.__name__} to a cell")
        if number is not None:
            return f'{s} t="n"><v>{number}</v></c>'
        return f'{s} t="n"/>' if s else ""

    def _style_attr(self, style: StyleArray | None) -> str:
        # The workbook's own index of cell formats, as openpyxl's cell.style_id; a style of
        # all defaults is no style.
        attr = f' s="{self.book._cell_styles.add(style)}"' if any(style) else ""
        self._style_attrs[id(style)] = attr
        self._kept.append(style)
        return attr

    def serial(self, value: datetime.date) -> str:
        """A date or naive datetime as Excel's serial number, as openpyxl writes it."""
        if type(value) is datetime.date:
            found = self._serials.get(value)
            if found is None:
                found = self._serials[value] = f"{to_excel(value, self.book.epoch):.16g}"
            return found
        if getattr(value, "tzinfo", None) is not None:
            raise TypeError("Excel has no time zones: give a naive datetime")
        return f"{to_excel(value, self.book.epoch):.16g}"

    def save(self, out: Target) -> None:
        """Save the workbook to ``out`` (a path or a binary file), each sheet with its
        rows. The workbook is saved once; its rows stay in their files until ``close``."""
        with tempfile.SpooledTemporaryFile(max_size=16 * CHUNK) as head:
            self.book.save(head)
            # A sheet's path is known once openpyxl has numbered the sheets, on saving.
            by_path = {rows.sheet.path.lstrip("/"): rows for rows in self.sheets}
            head.seek(0)
            with zipfile.ZipFile(head) as source:
                missing = by_path.keys() - set(source.namelist())
                if missing:
                    raise RuntimeError(f"openpyxl saved no {', '.join(sorted(missing))}")
                with zipfile.ZipFile(
                    out, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=COMPRESSION
                ) as target:
                    for info in source.infolist():
                        rows = by_path.get(info.filename)
                        if rows is not None:
                            rows.splice(source.read(info), info.filename, target)
                            continue
                        entry = zipfile.ZipInfo(info.filename, info.date_time)
                        entry.compress_type = info.compress_type
                        entry.external_attr = info.external_attr
                        target.writestr(entry, source.read(info))

    def close(self) -> None:
        for rows in self.sheets:
            rows.close()


class SheetRows:
    """A sheet's rows below its head, as ``<row>`` elements in a temporary file."""

    def __init__(self, package: Package, sheet: WriteOnlyWorksheet, first: int, width: int) -> None:
        self.package = package
        self.sheet = sheet
        self.first = first
        self.last = first - 1
        self.width = width
        self._letters = [get_column_letter(col) for col in range(1, width + 1)]
        self._pending: list[str] = []
        self._raw = tempfile.TemporaryFile()  # noqa: SIM115 -- open until close(), after saving
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8", newline="")

    def append(self, cells: Sequence[Cell | str]) -> None:
        """The next row: one cell per column from A (``None`` for an empty one, a ``str``
        for a cell made by ``Package.fragment``)."""
        if len(cells) > self.width:
            raise ValueError(f"{len(cells)} cells in a sheet {self.width} columns wide")
        self.last += 1
        number = str(self.last)
        fragment = self.package.fragment
        parts = [f'<row r="{number}">']
        for letter, cell in zip(self._letters, cells, strict=False):  # a row may end early
            if cell is not None:
                xml = cell if type(cell) is str else fragment(cell)
                if xml:
                    parts.append(f'<c r="{letter}{number}"{xml}')
        parts.append("</row>")
        pending = self._pending
        pending.append("".join(parts))
        if len(pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        self._text.write("".join(self._pending))
        self._pending.clear()

    def splice(self, xml: bytes, name: str, target: zipfile.ZipFile) -> None:
        """Write the sheet openpyxl saved (``xml``, its head and no body rows) to
        ``target`` with these rows inside its ``<sheetData>`` and a ``<dimension>``."""
        self._flush()
        self._text.flush()
        size = self._raw.tell()
        head, tail = split_sheet(xml)
        views = head.find(SHEET_VIEWS)
        if views >= 0 and b"<dimension " not in head[:views]:
            # openpyxl's write-only sheets have none; readers that trust it size the sheet.
            ref = f'<dimension ref="A1:{self._letters[-1]}{max(self.last, 1)}"/>'.encode()
            head = head[:views] + ref + head[views:]
        # ZIP64 only when the sheet needs it (past 2 GiB for Python's zipfile): Excel is
        # strict about the ZIP64 records Python writes for small members.
        size += len(head) + len(tail)
        with target.open(name, "w", force_zip64=size * 1.05 > zipfile.ZIP64_LIMIT) as sink:
            sink.write(head)
            self._raw.seek(0)
            shutil.copyfileobj(self._raw, sink, CHUNK)
            sink.write(tail)

    def close(self) -> None:
        self._text.close()


def split_sheet(xml: bytes) -> tuple[bytes, bytes]:
    """A worksheet's XML before and after where more rows go: the end of its sheetData."""
    end = xml.rfind(SHEET_DATA_END)
    if end >= 0:
        return xml[:end], xml[end:]
    empty = SHEET_DATA_EMPTY.search(xml)  # no rows, written as an empty element
    if empty is None:
        raise ValueError("the worksheet has no sheetData")
    return xml[: empty.start()] + b"<sheetData>", SHEET_DATA_END + xml[empty.end() :]


def clean(value: str) -> str:
    """``value`` without the characters XML cannot carry."""
    if value.isascii():
        # Deleting every allowed byte leaves the forbidden ones: much quicker than a
        # regular expression over a long text.
        if value.isprintable() or not value.encode().translate(None, ALLOWED_ASCII):
            return value
    elif not FORBIDDEN.search(value):
        return value
    return FORBIDDEN.sub("", value)


def _text(value: str, s: str) -> str:
    """A text cell's XML after its reference: an inline string, escaped, its spaces kept
    where openpyxl keeps them (when strip() would change the value)."""
    value = clean(value)
    if not value:
        return f'{s} t="n"/>' if s else ""
    space = ' xml:space="preserve"' if value != value.strip() else ""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")  # a parser would read a raw one as a line feed
    return f'{s} t="inlineStr"><is><t{space}>{value}</t></is></c>'


def _decimal(value: Decimal) -> str | None:
    """Every digit, without an exponent (xsd:double reads either, people read this)."""
    text = str(value)
    if "E" in text or "N" in text or "n" in text:  # an exponent, NaN or Infinity
        return f"{value:f}" if value.is_finite() else None
    return text


def _float(value: float) -> str | None:
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return f"{value:.16g}"
