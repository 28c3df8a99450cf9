"""The ledger under volume, on PostgreSQL: posting rate and trial balance time.

Posting — the same 200,000 journal lines (two- and three-line entries dated over one year,
each with a source id), written four ways, each into empty journal tables with every index
present, in one run on one connection:

- naive:    ``posting.post``, one entry per call and transaction. A sample (the first 2,000
            entries); its rate is extrapolated, not measured on all 200,000 lines.
- service:  ``posting.post_many``, 1,000 entries per call (one transaction each).
- INSERT:   the same rows by hand-written ``INSERT ... SELECT * FROM UNNEST(arrays)`` (the shape
            Django's bulk_create sends), 1,000 entries per transaction, no checks: the service's
            inserts without its Python.
- COPY:     the same rows by ``COPY``, 1,000 entries per transaction: the database's floor.

Trial balance — ``balances.trial_balance`` for the year the lines fall in (median of repeats),
against the database's own aggregate over the same lines (one hand-written
``SELECT account_id, sum(...) ... GROUP BY account_id``):

- at 200,000 lines with every period open (a scan of the year's lines); after ``close_period``
  of the first eleven months (their balances stored), for the year and for the last month;
- at 2,000,000 lines: the year's periods reopened, older years of the same density loaded by
  COPY, the year again with no period closed (a scan from the first line), then every period
  up to the year's last month closed in order with ``close_period`` and the same reports again.

Each way of writing starts from emptied tables after a checkpoint (and the first after an
untimed warm-up load); the tables are vacuumed and analysed after each load, outside the
timings, as autovacuum would leave them. The bench checks itself — row counts, the same
per-account sums from every way of writing, balanced trial balances whose every figure equals
SQL sums over the lines, the stored path equal to the scan — and exits 1 if a check fails. No
speed is pass or fail.

    .venv/bin/python bench/ledger.py [--lines 200000] [--grown 2000000] [--batch 1000]
                                     [--naive 2000] [--repeats 5]
    .venv/bin/python bench/ledger.py --profile 10000   # cProfile of post_many on a sample, then stop
    .venv/bin/python bench/ledger.py --smoke           # every phase and check in seconds

About 3 minutes on two cores; ``--lines 20000 --grown 200000 --naive 500`` for a quick check.
``--smoke`` (5,000 lines grown to 10,000, a naive sample of 100, one repeat; three batches of
1,000 entries, so the INSERT's lines still split into statements) runs every phase and check in
seconds and prints the figures without meaning: the integration suite runs it to catch a bench
that no longer runs. It creates the database countinghouse_bench_ledger (``--smoke``:
countinghouse_bench_ledger_smoke), dropped at the end; PostgreSQL at 127.0.0.1:5432 with trust
auth. Redis is named (the settings' distributed mode, database 13; ``--smoke``: 6) but not used.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import pstats
import random
import statistics
import sys
import time
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SMOKE_HELP, Checks, SqlClock, batches, environment, own_database, sql, truncate

DATABASE = "countinghouse_bench_ledger"  # not jobs.py's database: the two may run side by side
REDIS = "redis://127.0.0.1:6379/13"
SMOKE_REDIS = "redis://127.0.0.1:6379/6"
SMOKE = {"lines": 5000, "grown": 10_000, "batch": 1000, "naive": 100, "repeats": 1}
YEAR = 2025  # the year posted through the service; older years are history loaded by COPY
SEED = 4
ZERO = Decimal(0)
CENT = Decimal("0.01")
DAY = datetime.timedelta(days=1)
CURRENCY = "GBP"
ENTRY_COLUMNS = (
    "id, company_id, date, period_id, reference, memo, source, source_id, status, is_closing, reverses_id, "
    "flagged_at, flag_reason, created_by_id, created_at, posted_by_id, posted_at"
)
LINE_COLUMNS = "entry_id, company_id, account_id, date, posted, description, debit, credit, currency, amount, party"
LINE_INSERT_BATCH = 2000  # lines per INSERT statement, as the service's bulk_create


# --- The rows ---------------------------------------------------------------------------------


class Planned(NamedTuple):
    """One entry to write, whichever way: lines are (account id, debit, credit, amount, party)."""

    date: datetime.date
    reference: str
    source: str
    source_id: str
    lines: list[tuple[int, Decimal, Decimal, Decimal, str]]


def line_counts(total: int, rng: random.Random) -> list[int]:
    """Entry sizes adding up to exactly ``total`` lines: about 30 % of the lines in three-line entries."""
    threes = total * 3 // 10 // 3
    if (total - 3 * threes) % 2:
        threes -= 1
    counts = [3] * threes + [2] * ((total - 3 * threes) // 2)
    rng.shuffle(counts)
    return counts


def money(rng: random.Random, low: int = 100, high: int = 500_000) -> Decimal:
    return Decimal(rng.randint(low, high)).scaleb(-2)


def plan_year(year: int, total: int, accounts: dict[str, int], rng: random.Random) -> list[Planned]:
    """A year of trading in date order: taxed sales (three lines), receipts, expenses, bills and
    supplier payments (two lines), each with a source id unique across years."""
    bank, receivables, payables, tax = accounts["1100"], accounts["1200"], accounts["2100"], accounts["2200"]
    sales, stock = accounts["4100"], accounts["1300"]
    overheads = [accounts[code] for code in ("6100", "6200", "6300", "6400", "6500", "6600")]
    first = datetime.date(year, 1, 1)
    days = (datetime.date(year + 1, 1, 1) - first).days
    counts = line_counts(total, rng)
    dates = sorted(first + datetime.timedelta(days=rng.randrange(days)) for _ in counts)
    planned = []
    for n, (count, day) in enumerate(zip(counts, dates, strict=True)):
        key = f"{year}:{n}"
        if count == 3:
            net = money(rng)
            vat = (net / 5).quantize(CENT, ROUND_HALF_UP)
            party = f"customer:{rng.randrange(5000)}"
            lines = [
                (receivables, net + vat, ZERO, net + vat, party),
                (sales, ZERO, net, -net, ""),
                (tax, ZERO, vat, -vat, ""),
            ]
            planned.append(Planned(day, f"INV-{key}", "billing", key, lines))
            continue
        amount, pick = money(rng), rng.random()
        if pick < 0.3:
            party = f"customer:{rng.randrange(5000)}"
            debit, credit, source, reference = (bank, ""), (receivables, party), "receivables", f"RCPT-{key}"
        elif pick < 0.6:
            debit, credit, source, reference = (rng.choice(overheads), ""), (bank, ""), "manual", f"EXP-{key}"
        elif pick < 0.8:
            party = f"supplier:{rng.randrange(500)}"
            debit, credit, source, reference = (stock, ""), (payables, party), "manual", f"BILL-{key}"
        else:
            party = f"supplier:{rng.randrange(500)}"
            debit, credit, source, reference = (payables, party), (bank, ""), "manual", f"PAY-{key}"
        lines = [(debit[0], amount, ZERO, amount, debit[1]), (credit[0], ZERO, amount, -amount, credit[1])]
        planned.append(Planned(day, reference, source, key, lines))
    return planned


def expected_sums(planned: list[Planned]) -> dict[int, Decimal]:
    sums: dict[int, Decimal] = defaultdict(Decimal)
    for entry in planned:
        for account, _debit, _credit, amount, _party in entry.lines:
            sums[account] += amount
    return dict(sums)


def service_entry(planned: Planned):
    from ledger.services.posting import Entry, Line

    return Entry(
        date=planned.date,
        lines=[Line(account=a, debit=d, credit=c, party=p) for a, d, c, _amount, p in planned.lines],
        reference=planned.reference,
        source=planned.source,
        source_id=planned.source_id,
    )


def line_total(planned: list[Planned]) -> int:
    return sum(len(entry.lines) for entry in planned)


# --- Database ---------------------------------------------------------------------------------


def tables() -> tuple[str, str]:
    from ledger.models import JournalEntry, JournalLine

    return JournalEntry._meta.db_table, JournalLine._meta.db_table


def fresh_journals() -> None:
    """Empty journal tables and a checkpoint, so no phase pays for the one before."""
    truncate(*tables())
    sql("CHECKPOINT")


def settle() -> None:
    """Vacuum and analyse the ledger's tables, as autovacuum would after a load."""
    from ledger.models import JournalEntry, JournalLine, Period, PeriodBalance

    for model in (JournalEntry, JournalLine, Period, PeriodBalance):
        sql(f"VACUUM (ANALYZE) {model._meta.db_table}")
    sql("CHECKPOINT")


def counts(company) -> tuple[int, int]:
    entry, line = tables()
    entries = sql(f"SELECT count(*) FROM {entry} WHERE company_id = %s", [company.pk])[0][0]
    lines = sql(f"SELECT count(*) FROM {line} WHERE company_id = %s", [company.pk])[0][0]
    return entries, lines


def sql_balances(company, as_of: datetime.date) -> dict[int, Decimal]:
    """Each account's balance from the first line: what a balance costs with nothing stored."""
    _, line = tables()
    rows = sql(
        f"SELECT account_id, sum(amount) FROM {line} WHERE company_id = %s AND posted AND date <= %s "
        "GROUP BY account_id",
        [company.pk, as_of],
    )
    return dict(rows)


def sql_movements(company, first: datetime.date, last: datetime.date) -> dict[int, tuple[Decimal, Decimal]]:
    """Debits and credits per account over the range: the database's own aggregate."""
    _, line = tables()
    rows = sql(
        f"SELECT account_id, coalesce(sum(amount) FILTER (WHERE amount > 0), 0), "
        f"coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) FROM {line} "
        "WHERE company_id = %s AND posted AND date BETWEEN %s AND %s GROUP BY account_id",
        [company.pk, first, last],
    )
    return {account: (debit, credit) for account, debit, credit in rows}


class Written(NamedTuple):
    name: str
    entries: int
    lines: int
    seconds: float
    sql_seconds: float | None
    queries: int | None

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def timed_writes(name: str, planned: list[Planned], write, *, sample: bool = False) -> Written:
    from django.db import connection

    clock = SqlClock()
    began = time.perf_counter()
    with connection.execute_wrapper(clock):
        write()
    seconds = time.perf_counter() - began
    sql_seconds = None if name == "COPY" else clock.seconds
    result = Written(
        name, len(planned), line_total(planned), seconds, sql_seconds, None if name == "COPY" else clock.queries
    )
    note = " (a sample)" if sample else ""
    print(f"  {name:8} {result.lines:>9,} lines in {seconds:7.2f} s: {result.rate:>9,.0f} lines/s{note}")
    return result


# --- The ways of writing ----------------------------------------------------------------------


def entry_row(pk: int, company, planned: Planned, period: int, now: datetime.datetime) -> tuple:
    return (pk, company.pk, planned.date, period, planned.reference, "", planned.source, planned.source_id, "posted",
            False, None, None, "", None, now, None, now)  # fmt: skip


def line_rows(pk: int, company, planned: Planned):
    for account, debit, credit, amount, party in planned.lines:
        yield (pk, company.pk, account, planned.date, True, "", debit, credit, CURRENCY, amount, party)


def copy_batch(company, planned: list[Planned], periods: dict[datetime.date, int]) -> None:
    """One transaction: the entries' ids from their sequence, then a COPY of entries and one of lines."""
    from django.db import connection, transaction
    from django.utils import timezone

    entry, line = tables()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT nextval(pg_get_serial_sequence('{entry}', 'id')) FROM generate_series(1, %s)", [len(planned)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(f"COPY {entry} ({ENTRY_COLUMNS}) FROM STDIN") as copy:
            for pk, each in zip(ids, planned, strict=True):
                copy.write_row(entry_row(pk, company, each, periods[each.date], now))
        with cursor.copy(f"COPY {line} ({LINE_COLUMNS}) FROM STDIN") as copy:
            for pk, each in zip(ids, planned, strict=True):
                for row in line_rows(pk, company, each):
                    copy.write_row(row)


ENTRY_TYPES = (
    "bigint date bigint text text text text text boolean bigint timestamptz text bigint timestamptz bigint timestamptz"
)
LINE_TYPES = "bigint bigint bigint date boolean text numeric numeric text numeric text"


def unnest_insert(cursor, table: str, columns: str, types: str, rows: list[tuple], returning: str = "") -> None:
    """INSERT ... SELECT * FROM UNNEST(column arrays): the shape Django's bulk_create sends to PostgreSQL."""
    arrays = ", ".join(f"%s::{kind}[]" for kind in types.split())
    cursor.execute(
        f"INSERT INTO {table} ({columns}) SELECT * FROM UNNEST({arrays}) {returning}",
        [list(c) for c in zip(*rows, strict=True)],
    )


def insert_batch(company, planned: list[Planned], periods: dict[datetime.date, int]) -> None:
    """One transaction: the entries inserted returning their ids, then the lines, by UNNEST."""
    from django.db import connection, transaction
    from django.utils import timezone

    entry, line = tables()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        rows = [entry_row(0, company, each, periods[each.date], now)[1:] for each in planned]
        unnest_insert(cursor, entry, ENTRY_COLUMNS.removeprefix("id, "), ENTRY_TYPES, rows, "RETURNING id")
        ids = [row[0] for row in cursor.fetchall()]
        rows = [row for pk, each in zip(ids, planned, strict=True) for row in line_rows(pk, company, each)]
        for chunk in batches(rows, LINE_INSERT_BATCH):
            unnest_insert(cursor, line, LINE_COLUMNS, LINE_TYPES, chunk)


# --- Checks -----------------------------------------------------------------------------------

check = Checks()


def check_written(company, label: str, planned: list[Planned], sums: dict[int, Decimal], last: datetime.date) -> None:
    """The rows are all there and every account sums as planned."""
    entries, lines = counts(company)
    check(entries == len(planned), f"{label}: {entries} entries, expected {len(planned)}")
    check(lines == line_total(planned), f"{label}: {lines} lines, expected {line_total(planned)}")
    check(sql_balances(company, last) == sums, f"{label}: per-account sums differ from the planned rows")


def check_trial_balance(company, tb, label: str) -> None:
    """Balanced, and every opening, debit, credit and closing equal to SQL sums over the lines."""
    check(tb.balanced, f"{label}: the trial balance does not balance: {tb.totals}")
    opening = sql_balances(company, tb.date_from - DAY)
    closing = sql_balances(company, tb.date_to)
    moved = sql_movements(company, tb.date_from, tb.date_to)
    rows = {row.account_id: row for row in tb.rows}
    wrong = []
    for account in set(rows) | set(opening) | set(closing) | set(moved):
        row = rows.get(account)
        got = (row.opening, row.debit, row.credit, row.closing) if row else (ZERO,) * 4
        debit, credit = moved.get(account, (ZERO, ZERO))
        want = (opening.get(account, ZERO), debit, credit, closing.get(account, ZERO))
        if got != want:
            wrong.append(f"account {account}: {got} != SQL {want}")
    check(not wrong, f"{label}: figures differ from SQL sums: {wrong[:3]}")


def check_same(a, b, label: str) -> None:
    """Row for row, by value (a sum read from a stored balance may carry another exponent)."""
    different = [(x, y) for x, y in zip(a.rows, b.rows, strict=False) if x != y]
    check(len(a.rows) == len(b.rows) and not different, f"{label}: the trial balances differ: {different[:2]}")


# --- Measuring --------------------------------------------------------------------------------


def median_time(func, repeats: int) -> tuple[object, float]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - began)
    return result, statistics.median(times)


def close_periods(periods) -> list[float]:
    from ledger.services import periods as periods_service

    times = []
    for period in periods:
        began = time.perf_counter()
        closed = periods_service.close_period(period)
        times.append(time.perf_counter() - began)
        check(closed, f"close_period({period.label}) closed nothing")
    return times


def measure_reports(company, first: datetime.date, last: datetime.date, repeats: int, label: str) -> dict:
    """With the first eleven months closed: the year and its last month, against SQL."""
    from ledger.services import balances

    month = last.replace(day=1)
    year_tb, year = median_time(lambda: balances.trial_balance(company, first, last), repeats)
    check_trial_balance(company, year_tb, f"{label}, year, months closed")
    month_tb, month_time = median_time(lambda: balances.trial_balance(company, month, last), repeats)
    check_trial_balance(company, month_tb, f"{label}, last month")
    _, month_floor = median_time(lambda: sql_movements(company, month, last), repeats)
    return {"year_tb": year_tb, "year": year, "month": month_time, "month_floor": month_floor}


def measure_scan(company, first: datetime.date, last: datetime.date, repeats: int, label: str) -> dict:
    """Every period open: the service's trial balance and the database's aggregates."""
    from ledger.services import balances

    tb, scan = median_time(lambda: balances.trial_balance(company, first, last), repeats)
    check_trial_balance(company, tb, f"{label}, year, every period open")
    _, floor = median_time(lambda: sql_movements(company, first, last), repeats)
    _, from_first = median_time(lambda: sql_balances(company, last), repeats)
    return {"tb": tb, "scan": scan, "floor": floor, "from_first": from_first}


# --- Report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def report(written: dict[str, Written], replay: float, batch: int, small: dict, big: dict, n: int, grown: int) -> None:
    service, naive, insert, copy = written["service"], written["naive"], written["INSERT"], written["COPY"]
    print(f"\nPosting {n:,} lines ({service.entries:,} entries), PostgreSQL, one connection\n")
    print(f"{'':34} {'lines':>9} {'seconds':>8} {'lines/s':>9} {'in SQL':>7} {'queries':>8}")
    rows = (
        ("naive: post(), 1 entry a call *", naive),
        (f"service: post_many, {batch:,} a call", service),
        ("raw INSERT ... UNNEST", insert),
        ("raw COPY (floor)", copy),
    )
    for label, r in rows:
        in_sql = f"{r.sql_seconds / r.seconds:>6.0%}" if r.sql_seconds is not None else f"{'-':>6}"
        queries = f"{r.queries:>8,}" if r.queries is not None else f"{'-':>8}"
        print(f"{label:34} {r.lines:>9,} {r.seconds:>8.2f} {r.rate:>9,.0f} {in_sql:>7} {queries}")
    print(f"* a sample of {naive.entries:,} entries, its rate extrapolated")
    print("in SQL: the share of the time inside cursor.execute (not COMMIT, not COPY's rows)")
    print(f"replaying the first {batch:,} entries through post_many: {ms(replay)}, nothing created")
    print()
    print(f"service / naive   lines/s: {service.rate / naive.rate:6.2f}x")
    print(f"service / INSERT  lines/s: {service.rate / insert.rate:6.2f}x")
    print(f"service / COPY    lines/s: {service.rate / copy.rate:6.2f}x   (the database's floor)")

    print(f"\nTrial balance for {YEAR} ({YEAR}'s lines: {n:,}), median of repeats\n")
    print(f"{'lines in the company':58} {n:>13,} {grown:>13,}")
    table = (
        ("trial_balance, year, every period open", "scan", "scan"),
        ("  SQL: GROUP BY over the year's lines (floor)", "floor", "floor"),
        ("  SQL: balances from the first line to year end", "from_first", "from_first"),
        ("close_period, mean per month (Jan-Nov)", "close", "close"),
        ("trial_balance, year, Jan-Nov closed", "year", "year"),
        ("trial_balance, last month", "month", "month"),
        ("  SQL: GROUP BY over the last month's lines", "month_floor", "month_floor"),
    )
    for label, a, b in table:
        print(f"{label:58} {ms(small[a]):>13} {ms(big[b]):>13}")
    print(
        f"(at {grown:,}: {big['history_closes']} older months closed first, {ms(big['history_close'])} each on average)"
    )
    print(
        f"\ntrial_balance at {grown:,} / at {n:,} lines: year, Jan-Nov closed {big['year'] / small['year']:.2f}x; "
        f"last month {big['month'] / small['month']:.2f}x; year, every period open {big['scan'] / small['scan']:.2f}x"
    )
    print(f"\n{'ratios':58} {n:>13,} {grown:>13,}")
    ratios = (
        ("year, Jan-Nov closed / every period open", lambda r: r["year"] / r["scan"]),
        ("year, Jan-Nov closed / SQL GROUP BY over the year", lambda r: r["year"] / r["floor"]),
        ("year, every period open / SQL over every line to year end", lambda r: r["scan"] / r["from_first"]),
        ("last month / SQL GROUP BY over the month", lambda r: r["month"] / r["month_floor"]),
    )
    for label, ratio in ratios:
        print(f"{label:58} {ratio(small):>12.2f}x {ratio(big):>12.2f}x")


# --- Main -------------------------------------------------------------------------------------


def setup_company():
    from ledger.models import Account, Company
    from ledger.services import periods as periods_service
    from ledger.services.chart import load_default_chart

    company = Company.objects.create(name="Bench Trading Ltd", slug="bench", base_currency=CURRENCY)
    load_default_chart(company)
    periods_service.open_year(company, datetime.date(YEAR, 1, 1))
    accounts = dict(Account.objects.filter(company=company).values_list("code", "pk"))
    return company, accounts


def period_ids(company, planned: list[Planned]) -> dict[datetime.date, int]:
    from ledger.services import periods as periods_service

    return {day: period.pk for day, period in periods_service.periods_for(company, {e.date for e in planned}).items()}


def profile(company, planned: list[Planned], lines: int, batch: int) -> None:
    """cProfile of post_many over the first entries holding ``lines`` lines."""
    from ledger.services import posting

    sample, total = [], 0
    for each in planned:
        if total >= lines:
            break
        sample.append(service_entry(each))
        total += len(each.lines)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for chunk in batches(sample, batch):
        posting.post_many(company, chunk)
    profiler.disable()
    seconds = time.perf_counter() - began
    print(f"post_many: {total:,} lines in {len(sample):,} entries, {seconds:.2f} s under cProfile\n")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(25)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines posted through the service in one year")
    parser.add_argument("--grown", type=int, default=2_000_000, help="lines in the company for the second measure")
    parser.add_argument("--batch", type=int, default=1000, help="entries per post_many call and per raw transaction")
    parser.add_argument("--naive", type=int, default=2000, help="entries posted one at a time (the naive sample)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each read; the median is shown")
    parser.add_argument("--profile", type=int, metavar="LINES", help="only profile post_many on this many lines")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if args.lines < 100 or args.grown < 2 * args.lines:
        parser.error("--lines must be at least 100 and --grown at least twice --lines")

    # A smoke run (the integration suite's) must not drop a full run's database under it.
    database, redis = (f"{DATABASE}_smoke", SMOKE_REDIS) if args.smoke else (DATABASE, REDIS)
    with own_database("bench/ledger.py", database, environment(database, redis)):
        run(args)
    check.exit_if_failed()


def run(args) -> None:
    from ledger.models import Period
    from ledger.services import periods as periods_service
    from ledger.services import posting

    company, accounts = setup_company()
    first, last = datetime.date(YEAR, 1, 1), datetime.date(YEAR, 12, 31)
    rng = random.Random(SEED)
    planned = plan_year(YEAR, args.lines, accounts, rng)
    periods = period_ids(company, planned)
    sums = expected_sums(planned)
    if args.profile:
        profile(company, planned, args.profile, args.batch)
        return

    print(f"\nWriting {args.lines:,} lines ({len(planned):,} entries) into empty journal tables (after a warm-up):")
    # Warm-up, untimed: the first writes to a new cluster also create its WAL files.
    for chunk in batches(planned, args.batch):
        copy_batch(company, chunk, periods)
    fresh_journals()
    written: dict[str, Written] = {}
    sample = planned[: args.naive]

    def naive() -> None:
        for each in sample:
            posting.post(company, service_entry(each))

    written["naive"] = timed_writes("naive", sample, naive, sample=True)
    check_written(company, "naive", sample, expected_sums(sample), last)
    fresh_journals()

    written["COPY"] = timed_writes(
        "COPY", planned, lambda: [copy_batch(company, chunk, periods) for chunk in batches(planned, args.batch)]
    )
    check_written(company, "COPY", planned, sums, last)
    fresh_journals()

    written["INSERT"] = timed_writes(
        "INSERT", planned, lambda: [insert_batch(company, chunk, periods) for chunk in batches(planned, args.batch)]
    )
    check_written(company, "INSERT", planned, sums, last)
    fresh_journals()

    entries = [service_entry(each) for each in planned]  # the caller's objects, built before the clock
    created = 0

    def service() -> None:
        nonlocal created
        for chunk in batches(entries, args.batch):
            created += len(posting.post_many(company, chunk).created)

    written["service"] = timed_writes("service", planned, service)
    check(created == len(entries), f"service: post_many created {created} of {len(entries)} entries")
    check_written(company, "service", planned, sums, last)
    again = entries[: args.batch]
    began = time.perf_counter()
    replayed = posting.post_many(company, again)
    replay = time.perf_counter() - began
    check(not replayed.created and len(replayed.existing) == len(again), "replay: post_many created entries again")
    check_written(company, "service, after the replay", planned, sums, last)
    settle()

    print(f"\nTrial balance for {YEAR} at {args.lines:,} lines")
    small = measure_scan(company, first, last, args.repeats, f"{args.lines:,} lines")
    months = list(Period.objects.for_company(company).filter(start_date__lt=last.replace(day=1)).order_by("start_date"))
    small["close"] = statistics.mean(close_periods(months))
    settle()
    small |= measure_reports(company, first, last, args.repeats, f"{args.lines:,} lines")
    check_same(small["year_tb"], small["tb"], f"{args.lines:,} lines: stored path against the scan")

    history = args.grown - args.lines
    years = -(-history // args.lines)
    print(f"\nGrowing to {args.grown:,} lines: {YEAR}'s months reopened, {years} older years loaded by COPY")
    for period in reversed(months):
        periods_service.reopen_period(period)
    began = time.perf_counter()
    loaded = []
    for n in range(years):
        year = YEAR - years + n
        total = history // years + (1 if n < history % years else 0)
        older = plan_year(year, total, accounts, rng)
        periods_service.open_year(company, datetime.date(year, 1, 1))
        older_periods = period_ids(company, older)
        for chunk in batches(older, args.batch):
            copy_batch(company, chunk, older_periods)
        loaded.extend(older)
        for account, amount in expected_sums(older).items():
            sums[account] = sums.get(account, ZERO) + amount
    print(f"  {line_total(loaded):,} lines ({len(loaded):,} entries) loaded in {time.perf_counter() - began:.1f} s")
    check_written(company, f"{args.grown:,} lines", planned + loaded, sums, last)
    settle()
    big = measure_scan(company, first, last, args.repeats, f"{args.grown:,} lines")
    older_months = list(Period.objects.for_company(company).filter(start_date__lt=first).order_by("start_date"))
    close_times = close_periods(older_months)
    big["history_closes"], big["history_close"] = len(older_months), statistics.mean(close_times)
    big["close"] = statistics.mean(close_periods(months))
    settle()
    big |= measure_reports(company, first, last, args.repeats, f"{args.grown:,} lines")
    check_same(big["year_tb"], big["tb"], f"{args.grown:,} lines: stored path against the scan")

    report(written, replay, args.batch, small, big, args.lines, args.grown)


if __name__ == "__main__":
    main()
