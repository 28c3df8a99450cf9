"""Receivables under volume, on PostgreSQL and Redis: Xero organisations synced through a fake Xero
that enforces Xero's limits, then an aged report of them all with Excel, against their floors.

76 organisations of 5,000 documents each (about 60 % invoices, 25 % payments, the rest credit notes,
overpayments and prepayments, partly allocated; a quarter of the organisations in each of GBP, NZD,
AUD and USD) served by ``tests.fakes.xero_server.FakeXero`` on 127.0.0.1, which answers 429 when a
call would break Xero's limits (per organisation 60 calls in any minute, 5 at once, 5,000 a day; per
app 10,000 a minute). Each organisation is connected through its own grant of one app. Every record
was last changed in the past, a second apart (as Xero's UpdatedDateUTC, which If-Modified-Since reads
to the second). Measured in one run:

Sync
- platform:  XERO_SYNC asked for through ``runs.request_run`` and executed by two worker processes
             (``celery worker -Q receivables -c 1`` each, the governor in Redis): it asks Xero which
             organisations each grant reaches, then syncs one organisation per chunk. From the request
             to the run's success, both read from the run's row. Calls are the fake's own record.
- floor:     the least time Xero's limits allow for exactly the calls the run made to organisations:
             per organisation, n calls with at most 60 in any minute need ⌊(n-1)/60⌋ minutes (and
             ⌊(n-1)/5,000⌋ days), the app's N calls ⌊(N-1)/10,000⌋ minutes; the floor is the largest.
             With about ten calls an organisation the windows force nothing, so a latency-aware floor
             is printed beside it: each organisation's calls, with the service times the fake measured
             for them, run 5 at a time can take no less than max(longest call, sum ÷ 5); the largest of
             those over the organisations is what even unlimited workers could not beat.
- where the time goes: the run's phases from its row (queued; asking Xero which organisations
             the grants reach and fanning out; the chunks), and the CPU seconds the workers, this
             process (the fake's threads) and the rest of the machine (PostgreSQL, Redis) used, from
             /proc, with how busy the cores were.
- naive:     seed 003's way on ``--sample`` copies of the first organisations (same data, own tenants,
             own app, so neither Xero's windows nor the governor's are shared): one organisation after
             another in one process (a subprocess, not the one serving the fake), ``sync_connection``
             with Xero's default page size of 100. Its time is extrapolated to every organisation.
- incremental: a second XERO_SYNC run (its own run key) after ``--changed`` organisations each had an
             invoice's total changed, an invoice voided, a payment deleted and a new invoice part paid
             in the fake. Every document call must carry If-Modified-Since; an organisation must be
             sent only its changed records (and the last record of each kind the previous sync saw, as
             If-Modified-Since is inclusive and to the second); ``data_version`` must rise for the
             changed organisations and no other.

Report (as of a month end inside the data, four month buckets, due-date aging, xlsx)
- platform:  ``reports.create`` then RECEIVABLES_AGED_REPORT through ``request_run`` (run key
             ``report-{id}``) on the same workers; from the request to the run's success. The report
             cache is cold.
- aging:     ``reports.build`` over every connection in this process, the cache bypassed: loading the
             documents, the engine, and writing each organisation's rows to the cache; then the same
             steps again one by one (loading, the engine, pickling the rows as the cache does), to see
             where its time goes. Then Excel alone: ``reports.render`` of the built report as xlsx.
- floor:     one SQL statement over the same rows: documents dated ≤ R, allocations dated ≤ R between
             two of them, open amounts (credits negative, in Current) summed by organisation, contact,
             currency and bucket, all in PostgreSQL (best of three). The report's time is divided by it
             twice: aging alone, and the worker's aging + Excel.
- naive:     seed 003's per-invoice way on ``--sample`` organisations: each organisation's invoices
             and credits read, then a query per invoice for the allocations to it and a query per
             credit for the allocations from it, then the engine. Extrapolated to every organisation.
- make:      ``reports.make`` of one more report in this process once the workers are stopped and the
             cache emptied: the job's own work (aging, Excel, storing the output and the totals)
             without the job layer. ``--profile`` prints where its time goes (cProfile).
- cached:    the same report asked for again (a new report row): every organisation from the cache.
             After the incremental sync a third request re-ages only the organisations it changed.

The bench checks itself and exits 1 if a check fails: every organisation synced with no failure;
per organisation and kind the documents stored equal what the fake holds (invoices, credit notes,
overpayments, prepayments and received payments kept, each payment also an allocation), likewise the
allocations; no call broke Xero's limits (the fake's 429s) and any 429 was honoured; the incremental
sync as above; the report's totals per organisation, currency and bucket equal the SQL aggregate's,
and per organisation and currency equal the balance rule (invoices - credits dated ≤ R); the naive
report's rows equal the platform's; the workbook reopens with openpyxl (read-only) and its Summary
sheet's total rows equal the report's totals; the cached reports come from the cache as said.

    .venv/bin/python bench/receivables.py [--tenants 76] [--documents 5000] [--sample 4] [--changed 3]
                                          [--quick] [--profile]
    .venv/bin/python bench/receivables.py --smoke   # every phase and check in seconds

A few minutes on two cores; ``--quick`` (8 organisations of 1,000 documents) for a check. ``--smoke``
(4 organisations of 200 documents, one in each currency, samples of 2, 2 of the 4 changed before the
incremental sync, the same two workers) runs every phase and check in seconds and prints figures
without meaning: the integration suite runs it to catch a bench that no longer runs. It creates the
database countinghouse_bench_receivables (``--smoke``: countinghouse_bench_receivables_smoke),
dropped at the end, and uses Redis database 8 as broker, cache and governor (``--smoke``: 3), emptied
at the start and the end; the other benches use 4-6 and 11-13, the integration tests 9, 14 and 15.
PostgreSQL at 127.0.0.1:5432 with trust auth.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import pickle
import pstats
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SMOKE_HELP, Checks, Worker, environment, own_database, sql
from bench.common import finished as common_finished
from bench.common import start_workers as common_start_workers

DATABASE = "countinghouse_bench_receivables"
REDIS = "redis://127.0.0.1:6379/8"
SMOKE_REDIS = "redis://127.0.0.1:6379/3"
SMOKE = {"tenants": 4, "documents": 200, "sample": 2, "changed": 2}
SYNC_JOB = "XERO_SYNC"
REPORT_JOB = "RECEIVABLES_AGED_REPORT"
QUEUE = "receivables"
WORKERS = 2
START = datetime.date(2026, 3, 31)  # the newest documents; they go back 400 days
AS_OF = datetime.date(2026, 1, 31)  # the report date: inside the data, two months before its end
PERIODS = 4
CURRENCIES = ("GBP", "NZD", "AUD", "USD")
KEPT = ("AUTHORISED", "PAID")
POLL = 0.1  # seconds between looks at a run; its times themselves are read from its row
STALL = 300.0  # seconds without a chunk finishing before the bench gives up
# Xero's limits, as the fake enforces them and the governor keeps to them.
PER_MINUTE, CONCURRENT, PER_DAY, APP_PER_MINUTE = 60, 5, 5000, 10_000
MONEY_CENT = Decimal("0.01")
# The fake's endpoint for each kind the sync asks for, and the kind of record it lists.
ENDPOINT_KINDS = {
    "contacts": "contact",
    "invoices": "invoice",
    "creditnotes": "credit_note",
    "overpayments": "overpayment",
    "prepayments": "prepayment",
    "payments": "payment",
}

check = Checks()


# --- The fake Xero ------------------------------------------------------------------------------


class Clock:
    """The fake's clock. While organisations are populated it stands a month in the past and moves
    a second for every record stamped, so each record has an UpdatedDateUTC of its own second and
    is old by the time anyone syncs; afterwards it is the real time (tokens, limits, calls)."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        if self.fixed is None:
            return time.time()
        self.fixed += 1.0
        return self.fixed


def serve(tenants: int, documents: int, sample: int):
    """The fake with its limits on, ``tenants`` organisations and ``sample`` copies of the first
    (for the naive sync), each populated; the platform's app, grants and connections for the
    organisations, and an inactive app of its own for the copies. Returns (fake, organisations,
    copies, app, naive app)."""
    from receivables.models import XeroApp, XeroConnection
    from tests.fakes.xero_server import FakeXero, Limits, install

    clock = Clock()
    xero = FakeXero(clock=clock, limits=Limits(PER_MINUTE, CONCURRENT, PER_DAY, APP_PER_MINUTE)).start()
    clock.fixed = time.time() - 30 * 86_400
    organisations, copies = [], []
    for n in range(tenants):
        tenant = xero.add_tenant(f"Tenant {n + 1:02d}", base_currency=CURRENCIES[n % len(CURRENCIES)])
        tenant.populate(documents, seed=1000 + n, start=START)
        organisations.append(tenant)
    for n in range(sample):
        tenant = xero.add_tenant(f"Naive copy {n + 1:02d}", base_currency=CURRENCIES[n % len(CURRENCIES)])
        tenant.populate(documents, seed=1000 + n, start=START)
        copies.append(tenant)
    clock.fixed = None
    app = install(xero, organisations, app_name="Bench")
    naive_app = install(xero, copies, app_name="Naive")
    XeroApp.objects.filter(pk=naive_app.pk).update(active=False)
    check(XeroConnection.objects.filter(app=app).count() == tenants, "install made a connection per organisation")
    return xero, organisations, copies, app, naive_app


def held(tenant) -> tuple[Counter, int]:
    """What a sync must store of one organisation, as the sync normalises it: documents per
    kind, and allocations (a credit's own, and each received payment's to its invoice)."""
    kinds: Counter = Counter()
    allocations = 0
    for record in tenant.records["invoice"].values():
        if record.type == "ACCREC" and record.status in KEPT:
            kinds["invoice"] += 1
    for kind in ("credit_note", "overpayment", "prepayment"):
        for record in tenant.records[kind].values():
            if record.status in KEPT:
                kinds[kind] += 1
                allocations += sum(1 for allocation in record.allocations if allocation.amount > 0)
    for record in tenant.records["payment"].values():
        if record.status == "AUTHORISED":
            kinds["payment" if record.type == "ACCRECPAYMENT" else "invoice"] += 1
            allocations += 1
    return kinds, allocations


def stored(app) -> tuple[dict[str, Counter], dict[str, int]]:
    """Per organisation (tenant id): documents per kind, and allocations."""
    from django.db.models import Count

    from receivables.models import Allocation, Document

    documents: dict[str, Counter] = defaultdict(Counter)
    for tenant, kind, count in (
        Document.objects.filter(connection__app=app)
        .values_list("connection__tenant_id", "kind")
        .annotate(n=Count("id"))
        .values_list("connection__tenant_id", "kind", "n")
    ):
        documents[tenant][kind] = count
    allocations = dict(
        Allocation.objects.filter(connection__app=app)
        .values_list("connection__tenant_id")
        .annotate(n=Count("id"))
        .values_list("connection__tenant_id", "n")
    )
    return documents, allocations


def check_stored(label: str, organisations, app) -> int:
    """Every organisation's documents and allocations as the fake holds them; the total stored."""
    documents, allocations = stored(app)
    wrong = []
    for tenant in organisations:
        kinds, allocated = held(tenant)
        got = documents.get(tenant.tenant_id, Counter())
        if +got != +kinds or allocations.get(tenant.tenant_id, 0) != allocated:
            wrong.append(
                f"{tenant.name}: stored {dict(got)} + {allocations.get(tenant.tenant_id, 0)} allocations, "
                f"the fake holds {dict(kinds)} + {allocated}"
            )
    check(not wrong, f"{label}: {len(wrong)} organisations stored differently: {wrong[:3]}")
    return sum(sum(counter.values()) for counter in documents.values())


def change(organisations, count: int) -> tuple[dict[str, set[str]], int]:
    """In ``count`` organisations: an invoice's total raised, an invoice voided, a payment deleted,
    a new invoice half paid; all dated on or before the report date. Returns the ids of the records
    each organisation changed (stamped by the change, so including an invoice a deleted payment
    re-opened), and the moment the changes began (ms)."""
    changed_from = int(time.time() * 1000)
    for tenant in organisations[:count]:
        untouched = [
            record
            for record in tenant.records["invoice"].values()
            if record.status == "AUTHORISED" and not tenant.applied_to.get(record.id) and record.date <= AS_OF
        ]
        raised, voided = untouched[0], untouched[1]
        tenant.update(raised.id, total=raised.total + 10)
        tenant.void(voided.id)
        payment = next(
            record
            for record in tenant.records["payment"].values()
            if record.status == "AUTHORISED" and record.date <= AS_OF
        )
        tenant.void(payment.id)
        fresh = tenant.add_invoice(
            raised.contact,
            "250.00",
            AS_OF - datetime.timedelta(days=20),
            due_date=AS_OF - datetime.timedelta(days=5),
        )
        tenant.add_payment(fresh, "100.00", AS_OF - datetime.timedelta(days=3))
    changed = {
        tenant.tenant_id: {record.id for record in tenant.by_id.values() if record.updated >= changed_from}
        for tenant in organisations[:count]
    }
    return changed, changed_from


def since_of(value: str) -> int:
    """If-Modified-Since as the SDK sends it (ISO 8601, UTC), in the fake's milliseconds."""
    moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return round(moment.timestamp() * 1000)


# --- Floors of a sync ------------------------------------------------------------------------------


def windows_needed(calls: int, limit: int, window: float) -> float:
    """The least time ``calls`` calls take when at most ``limit`` may start in any ``window``."""
    return ((calls - 1) // limit) * window if calls > 0 else 0.0


class SyncFloor(NamedTuple):
    windows: float  # what Xero's windows alone force
    latency: float  # each organisation's measured calls, 5 at a time, the slowest organisation
    busiest: int  # most calls to one organisation
    served: float  # the fake's service time of every call, summed


def sync_floor(calls) -> SyncFloor:
    per_tenant: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        per_tenant[call.tenant].append(max(0.0, call.finished - call.started))
    windows = windows_needed(len(calls), APP_PER_MINUTE, 60.0)
    latency = 0.0
    for times in per_tenant.values():
        windows = max(
            windows, windows_needed(len(times), PER_MINUTE, 60.0), windows_needed(len(times), PER_DAY, 86_400)
        )
        latency = max(latency, max(times), sum(times) / CONCURRENT)
    busiest = max((len(times) for times in per_tenant.values()), default=0)
    return SyncFloor(windows, latency, busiest, sum(sum(times) for times in per_tenant.values()))


def check_limits(label: str, xero, calls) -> int:
    """No call broke Xero's limits as the fake counts them; a 429 from any cause was honoured
    (the organisation's next call at least a second later: Retry-After is never less)."""
    check(
        not xero.limit_hits, f"{label}: Xero's limits were broken {len(xero.limit_hits)} times: {xero.limit_hits[:5]}"
    )
    limited = [call for call in calls if call.status == 429]
    by_tenant: dict[str, list] = defaultdict(list)
    for call in calls:
        by_tenant[call.tenant].append(call)
    for call in limited:
        following = [other.started for other in by_tenant[call.tenant] if other.started > call.started]
        check(
            not following or min(following) >= call.finished + 1.0 - 0.05,
            f"{label}: a 429 for {call.tenant} was followed by a call {min(following) - call.finished:.2f} s later",
        )
    busiest = max((xero.max_in_flight(tenant) for tenant in by_tenant), default=0)
    check(busiest <= CONCURRENT, f"{label}: {busiest} calls at once to one organisation")
    return len(limited)


# --- The machine ---------------------------------------------------------------------------------


def settle() -> None:
    """Statistics current and dead rows gone, as autovacuum would leave them after a sync, and a
    checkpoint, so the next phase pays for neither (without statistics PostgreSQL plans the
    aggregate's joins as nested loops over a few hundred thousand rows)."""
    from receivables.models import Allocation, Document, XeroConnection, XeroContact

    for model in (Document, Allocation, XeroContact, XeroConnection):
        sql(f"VACUUM (ANALYZE) {model._meta.db_table}")
    sql("CHECKPOINT")


TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every core), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


class Process(NamedTuple):
    command: str
    session: int
    cpu: float  # seconds: its own, and its reaped children's (a postmaster's exited backends)


def processes() -> dict[int, Process]:
    """Every live process's CPU seconds so far, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            arguments = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        command = arguments or text[text.index("(") + 1 : text.rindex(")")]
        found[int(entry.name)] = Process(command, int(fields[3]), sum(int(value) for value in fields[11:15]) / TICK)
    return found


class Cpu(NamedTuple):
    machine: float  # every core's busy seconds
    workers: float  # the worker processes
    fake: float  # this process: the fake Xero's threads (and the bench's polling)
    services: float  # PostgreSQL and Redis
    others: list[tuple[float, str]]  # anything else that used a second or more, busiest first

    @property
    def other(self) -> float:
        return max(0.0, self.machine - self.workers - self.fake - self.services)


class CpuMark(NamedTuple):
    machine: float
    fake: float
    processes: dict[int, Process]


def cpu_mark() -> CpuMark:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuMark(machine_busy(), usage.ru_utime + usage.ru_stime, processes())


def cpu_since(before: CpuMark, workers: list[Worker]) -> Cpu:
    """The CPU used since ``before``, by whom."""
    after = cpu_mark()
    sessions = {worker.process.pid for worker in workers}
    workers_cpu = services = 0.0
    others = []
    for pid, process in after.processes.items():
        used = process.cpu - (before.processes[pid].cpu if pid in before.processes else 0.0)
        if pid == os.getpid():
            continue
        if process.session in sessions:
            workers_cpu += used
        elif "postgres" in process.command.split(" ", 1)[0] or "redis" in process.command.split(" ", 1)[0]:
            services += used
        elif used >= 1.0:
            others.append((used, process.command[:80]))
    return Cpu(after.machine - before.machine, workers_cpu, after.fake - before.fake, services, sorted(others)[::-1])


# --- Workers and runs ------------------------------------------------------------------------------


def start_workers(variables: dict[str, str]) -> list[Worker]:
    return common_start_workers("bench-receivables", QUEUE, WORKERS, variables)


def finished(run_id: int, workers: list[Worker], what: str):
    return common_finished(run_id, workers, what, poll=POLL, stall=STALL)


class Timed(NamedTuple):
    seconds: float  # from the request (the run's created_at) to its finished_at
    wall: float  # as this process saw it: from asking to success seen
    run: object


def request(code: str, workers: list[Worker], *, params: dict, run_key: str) -> Timed:
    from scheduling.models import JobDefinition
    from scheduling.services import runs

    began = time.perf_counter()
    run, created = runs.request_run(JobDefinition.objects.get(code=code), params=params, run_key=run_key)
    check(created, f"{code} {run_key}: the run existed before the bench asked for it")
    run = finished(run.pk, workers, f"{code} {run_key}")
    return Timed((run.finished_at - run.created_at).total_seconds(), time.perf_counter() - began, run)


def sync(workers: list[Worker], xero, app, run_key: str) -> tuple[Timed, list, Cpu]:
    """XERO_SYNC on the workers; the run, the calls it made to organisations, the CPU it took."""
    from receivables.models import XeroConnection

    xero.reset_calls()
    before = cpu_mark()
    timed = request(SYNC_JOB, workers, params={}, run_key=run_key)
    cpu = cpu_since(before, workers)
    run = timed.run
    check(run.failed == 0, f"{run_key}: {run.failed} organisations failed")
    failing = list(
        XeroConnection.objects.filter(app=app).exclude(last_error="").values_list("tenant_name", "last_error")
    )
    check(not failing, f"{run_key}: organisations with an error: {failing[:3]}")
    unsynced = XeroConnection.objects.filter(app=app, last_synced_at__isnull=True).count()
    check(unsynced == 0, f"{run_key}: {unsynced} organisations never synced")
    calls = xero.calls_to("/api.xro")
    settle()
    return timed, calls, cpu


def fetched_per_tenant(run) -> dict[str, int]:
    """What each organisation's sync was sent, from the run's log."""
    from scheduling.models import JobLog

    found = {}
    for data in JobLog.objects.filter(run=run).values_list("data", flat=True):
        if isinstance(data, dict) and "fetched" in data:
            found[data["tenant"]] = sum(data["fetched"].values())
    return found


def check_incremental(calls, run, organisations, changed: dict[str, set[str]], changed_from: int) -> tuple[int, int]:
    """Every document call carried If-Modified-Since; each organisation was sent exactly the
    records changed since then (the changed ones, and at most the last record of each kind the
    first sync saw). Returns (changed records sent, unchanged records re-sent)."""
    by_id = {tenant.tenant_id: tenant for tenant in organisations}
    since: dict[tuple[str, str], int] = {}
    missing = 0
    for call in calls:
        endpoint = call.path.rstrip("/").rsplit("/", 1)[-1].lower()
        if endpoint not in ENDPOINT_KINDS:
            continue
        value = call.headers.get("if-modified-since")
        if not value:
            missing += 1
            continue
        since[(call.tenant, endpoint)] = since_of(value)
    check(missing == 0, f"incremental: {missing} document calls without If-Modified-Since")
    fetched = fetched_per_tenant(run)
    sent_changed = sent_again = 0
    wrong = []
    for tenant_id, tenant in by_id.items():
        expected_changed = expected_again = 0
        for endpoint, kind in ENDPOINT_KINDS.items():
            start = since.get((tenant_id, endpoint))
            if start is None:
                wrong.append(f"{tenant.name}: no call for {endpoint}")
                continue
            for record in tenant.records[kind].values():
                if record.updated >= start:
                    if record.updated >= changed_from:
                        expected_changed += 1
                    else:
                        expected_again += 1
        mine = changed.get(tenant_id, set())
        if expected_changed != len(mine) or expected_again > len(ENDPOINT_KINDS):
            wrong.append(f"{tenant.name}: {expected_changed} changed sent of {len(mine)}, {expected_again} again")
        if fetched.get(tenant_id) != expected_changed + expected_again:
            wrong.append(
                f"{tenant.name}: fetched {fetched.get(tenant_id)}, changed since {expected_changed + expected_again}"
            )
        sent_changed += expected_changed
        sent_again += expected_again
    check(not wrong, f"incremental: {len(wrong)} organisations fetched more or less than their changes: {wrong[:3]}")
    return sent_changed, sent_again


# --- The naive sync (a subprocess) ----------------------------------------------------------------


def naive_sync(connections: list[int], variables: dict[str, str]) -> float:
    """seed 003's way in its own process: one organisation after another, pages of 100."""
    from receivables.models import XeroApp, XeroConnection

    app = XeroConnection.objects.get(pk=connections[0]).app
    XeroApp.objects.filter(pk=app.pk).update(active=True)
    try:
        process = subprocess.run(
            [sys.executable, __file__, "--naive-sync", ",".join(map(str, connections))],
            cwd=ROOT,
            env={**os.environ, **variables},
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        XeroApp.objects.filter(pk=app.pk).update(active=False)
    if process.returncode != 0:
        raise RuntimeError(f"the naive sync failed:\n{process.stdout[-2000:]}\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])["seconds"]


def naive_sync_here(connections: list[int]) -> None:
    """The subprocess: sync each connection in turn, print the seconds as JSON."""
    import django

    django.setup()
    from receivables.models import XeroConnection
    from receivables.xero.client import Tuning
    from receivables.xero.sync import sync_connection

    chosen = list(XeroConnection.objects.filter(pk__in=connections).select_related("app", "grant").order_by("pk"))
    began = time.perf_counter()
    for connection in chosen:
        sync_connection(connection, tuning=Tuning(page_size=100))
    print(json.dumps({"seconds": time.perf_counter() - began}))


# --- The report ----------------------------------------------------------------------------------


def options():
    from receivables import engine

    return engine.Options(AS_OF, PERIODS, "month")


def ask_report(workers: list[Worker]) -> tuple[Timed, object]:
    from receivables.models import AgedReport, ReportFormat, ReportSource
    from receivables.services import reports

    report = reports.create(options=options(), source=ReportSource.XERO, fmt=ReportFormat.XLSX)
    timed = request(REPORT_JOB, workers, params={"report": report.pk}, run_key=f"report-{report.pk}")
    return timed, AgedReport.objects.get(pk=report.pk)


def aggregate_sql() -> str:
    """The report's figures in one statement: each document's open amount at R (its total less
    the allocations dated ≤ R between two documents dated ≤ R; credits negative, in Current),
    summed by organisation, contact, currency and bucket."""
    from receivables.models import Allocation, Document

    documents, allocations = Document._meta.db_table, Allocation._meta.db_table
    return f"""
        WITH d AS (
          SELECT connection_id, external_id, kind, contact_name, currency, total,
                 CASE WHEN kind = 'invoice' THEN coalesce(due_date, date) END AS anchor
          FROM {documents}
          WHERE connection_id = ANY(%(connections)s) AND date <= %(as_of)s
        ), a AS (
          SELECT a.connection_id, a.source_id, a.invoice_id, a.amount
          FROM {allocations} a
          JOIN d s ON s.connection_id = a.connection_id AND s.external_id = a.source_id
          JOIN d i ON i.connection_id = a.connection_id AND i.external_id = a.invoice_id
          WHERE a.connection_id = ANY(%(connections)s) AND a.date <= %(as_of)s
        ), applied AS (
          SELECT connection_id, id, sum(amount) AS amount
          FROM (SELECT connection_id, source_id AS id, amount FROM a
                UNION ALL SELECT connection_id, invoice_id, amount FROM a) ends
          GROUP BY connection_id, id
        ), open AS (
          SELECT d.connection_id, d.contact_name, d.currency,
                 CASE WHEN d.kind = 'invoice' THEN 1 ELSE -1 END * (d.total - coalesce(p.amount, 0)) AS amount,
                 CASE WHEN d.kind <> 'invoice' OR d.anchor >= %(as_of)s THEN 0
                      ELSE least(%(periods)s + 1, 1
                        + (%(year)s - extract(year FROM d.anchor)::int) * 12
                        + %(month)s - extract(month FROM d.anchor)::int
                        - CASE WHEN %(day)s < extract(day FROM d.anchor)::int THEN 1 ELSE 0 END)
                 END AS bucket
          FROM d LEFT JOIN applied p ON p.connection_id = d.connection_id AND p.id = d.external_id
        )
        SELECT connection_id, contact_name, currency, bucket, sum(amount)
        FROM open WHERE amount <> 0
        GROUP BY connection_id, contact_name, currency, bucket
    """


def aggregate(connections: list[int]) -> tuple[float, list[tuple]]:
    """The floor: the report's figures in one statement; best of three."""
    statement = aggregate_sql()
    params = {
        "connections": connections,
        "as_of": AS_OF,
        "periods": PERIODS,
        "year": AS_OF.year,
        "month": AS_OF.month,
        "day": AS_OF.day,
    }
    best, rows = float("inf"), []
    for _ in range(3):
        began = time.perf_counter()
        rows = sql(statement, params)
        best = min(best, time.perf_counter() - began)
    return best, rows


def balances(connections: list[int]) -> dict[tuple[int, str], Decimal]:
    """The balance rule straight from the rows: invoices - credits dated ≤ R, per organisation
    and currency."""
    from receivables.models import Document

    rows = sql(
        f"SELECT connection_id, currency, sum(CASE WHEN kind = 'invoice' THEN total ELSE -total END) "
        f"FROM {Document._meta.db_table} WHERE connection_id = ANY(%s) AND date <= %s GROUP BY 1, 2",
        [connections, AS_OF],
    )
    return {(connection, currency): amount for connection, currency, amount in rows}


def check_totals(label: str, report, connections, aggregated: list[tuple]) -> None:
    """The report's totals per organisation, currency and bucket equal the aggregate's, and per
    organisation and currency the balance rule's."""
    labels = options().labels
    names = {connection.pk: connection.label for connection in connections}
    pks = list(names)
    expected: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(labels))
    for connection, _contact, currency, bucket, amount in aggregated:
        expected[(names[connection], currency)][bucket] += amount
    got = {
        (total["company"], total["currency"]): [Decimal(total["buckets"][name]) for name in labels]
        for total in report.totals
    }
    expected = {key: value for key, value in expected.items() if any(value)}
    got_nonzero = {key: value for key, value in got.items() if any(value)}
    differ = [key for key in expected.keys() | got_nonzero.keys() if expected.get(key) != got_nonzero.get(key)]
    check(
        not differ, f"{label}: totals differ from the SQL aggregate for {len(differ)} of {len(expected)}: {differ[:3]}"
    )
    rule = balances(pks)
    off = [
        (names[connection], currency)
        for (connection, currency), amount in rule.items()
        if sum(got.get((names[connection], currency), []), Decimal(0)) != amount
    ]
    check(not off, f"{label}: totals differ from the balance rule for {off[:3]}")
    strays = set(got) - {(names[connection], currency) for connection, currency in rule}
    check(not strays, f"{label}: totals for organisations and currencies with no documents: {sorted(strays)[:3]}")


def check_workbook(report) -> int:
    """The workbook reopens (read-only); each total row of its Summary sheet equals the report's."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(bytes(report.output)), read_only=True)
    try:
        sheet = book["Summary"]
        labels = options().labels
        header, totals = None, {}
        for values in sheet.iter_rows(values_only=True):
            if header is None:
                if values[:4] == ("Business Unit", "Company", "Contact", "Currency"):
                    header = {name: index for index, name in enumerate(values) if name}
                continue
            if len(values) > header["Contact"] and values[header["Contact"]] == "Total":
                company, currency = values[header["Company"]], values[header["Currency"]]
                if company == "All companies":
                    continue
                totals[(company, currency)] = [values[header[name]] for name in (*labels, "Total")]
        sheets = book.sheetnames
    finally:
        book.close()
    check(header is not None, f"the workbook's Summary sheet has no header row (sheets {sheets})")
    wanted = {
        (total["company"], total["currency"]): [Decimal(total["buckets"][name]) for name in labels]
        + [Decimal(total["total"])]
        for total in report.totals
    }
    differ = [
        key
        for key in wanted.keys() | totals.keys()
        if key not in wanted
        or key not in totals
        or any(
            abs(Decimal(str(cell or 0)) - amount) >= MONEY_CENT / 2
            for cell, amount in zip(totals[key], wanted[key], strict=True)
        )
    ]
    check(not differ, f"the workbook's Summary totals differ from the report's for {len(differ)}: {differ[:3]}")
    return len(totals)


def in_process(connections) -> dict:
    """The report's steps timed in this process: ``reports.build`` (the cache bypassed); then its
    steps again one by one (loading, the engine, pickling the rows as the cache does); then
    Excel alone."""
    from receivables import engine
    from receivables.services import reports
    from receivables.sources import stored as stored_source

    chosen = options()
    parts = reports.parts_for_connections(connections)
    began = time.perf_counter()
    built = reports.build(parts, chosen, use_cache=False)
    build = time.perf_counter() - began

    load = age = pickling = 0.0
    for connection in connections:
        began = time.perf_counter()
        docs, allocations = stored_source.documents(AS_OF, connection=connection)
        loaded = time.perf_counter()
        rows = engine.age(docs, allocations, chosen).rows
        aged = time.perf_counter()
        pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)
        done = time.perf_counter()
        load, age, pickling = load + loaded - began, age + aged - loaded, pickling + done - aged

    began = time.perf_counter()
    output = reports.render(built, "xlsx")
    excel = time.perf_counter() - began
    items = sum(len(row.items) for row in built.report.rows)
    return {
        "build": build,
        "load": load,
        "age": age,
        "pickle": pickling,
        "excel": excel,
        "rows": len(built.report.rows),
        "items": items,
        "bytes": len(output),
        "built": built,
    }


def make_here(*, profile: bool = False) -> float:
    """``reports.make`` of a new report in this process with the cache empty: what the job does
    (aging, Excel, the stored output and totals) without the job layer. Run once the workers
    are stopped, as emptying the cache empties their broker too."""
    from django.core.cache import cache

    from receivables.models import ReportFormat, ReportSource
    from receivables.services import reports

    cache.clear()
    report = reports.create(options=options(), source=ReportSource.XERO, fmt=ReportFormat.XLSX)
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    reports.make(report)
    if profiler is not None:
        profiler.disable()
    took = time.perf_counter() - began
    if profiler is not None:
        for order, count in (("cumulative", 30), ("tottime", 20)):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(count)
            lines = [line for line in out.getvalue().splitlines() if line.strip()]
            print(f"\nProfile of reports.make in this process, cache empty, by {order} time:")
            print("\n".join(lines[2:]))
    return took


def naive_report(connections) -> tuple[float, list]:
    """seed 003's per-invoice way: per organisation its invoices and credits, then a query per
    invoice for the allocations to it and per credit for those from it; then the engine."""
    from receivables import engine
    from receivables.models import Allocation, Document

    chosen = options()
    fields = ("kind", "external_id", "company_label", "contact_name", "date", "total", "currency", "number")
    fields += ("due_date", "rate", "contact_id")
    rows = []
    began = time.perf_counter()
    for connection in connections:
        mine = Document.objects.filter(connection=connection, date__lte=AS_OF)
        invoices = [engine.Doc(*row) for row in mine.filter(kind="invoice").values_list(*fields)]
        credits = [engine.Doc(*row) for row in mine.exclude(kind="invoice").values_list(*fields)]
        invoice_ids, credit_ids = {doc.id for doc in invoices}, {doc.id for doc in credits}
        allocations = {}
        for invoice in invoices:
            for row in Allocation.objects.filter(
                connection=connection, invoice_id=invoice.id, date__lte=AS_OF
            ).values_list("source_id", "invoice_id", "amount", "date", "external_id"):
                if row[0] in credit_ids:
                    allocations[row[4]] = engine.Alloc(*row)
        for credit in credits:
            for row in Allocation.objects.filter(
                connection=connection, source_id=credit.id, date__lte=AS_OF
            ).values_list("source_id", "invoice_id", "amount", "date", "external_id"):
                if row[1] in invoice_ids:
                    allocations[row[4]] = engine.Alloc(*row)
        rows.extend(engine.age(invoices + credits, list(allocations.values()), chosen).rows)
    return time.perf_counter() - began, rows


def check_naive_rows(naive_rows: list, built, connections) -> None:
    labels = {connection.label for connection in connections}
    mine = {(row.company, row.contact, row.currency): row.buckets for row in built.report.rows if row.company in labels}
    theirs = {(row.company, row.contact, row.currency): row.buckets for row in naive_rows}
    check(mine == theirs, f"the naive report's {len(theirs)} rows differ from the platform's {len(mine)}")


# --- Report ------------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def print_table(lines: list[tuple[str, float, float | None, str]]) -> None:
    print(f"\n{'':66} {'seconds':>9} {'ratio':>9}")
    for label, value, ratio, note in lines:
        shown = "" if ratio is None else f"{ratio:>8.1f}x"
        print(f"{label:66} {value:>9.2f} {shown:>9}  {note}")


# --- Main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=76, help="Xero organisations synced")
    parser.add_argument("--documents", type=int, default=5000, help="documents per organisation")
    parser.add_argument("--sample", type=int, default=4, help="organisations the naive sync and report do")
    parser.add_argument("--changed", type=int, default=3, help="organisations changed before the incremental sync")
    parser.add_argument("--quick", action="store_true", help="8 organisations of 1,000 documents, samples of 2")
    parser.add_argument("--profile", action="store_true", help="print where the report's time goes")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--naive-sync", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_sync:
        naive_sync_here([int(pk) for pk in args.naive_sync.split(",")])
        return
    if args.quick:
        args.tenants, args.documents, args.sample, args.changed = 8, 1000, 2, 2
    if args.smoke:
        vars(args).update(SMOKE)
    if not 1 <= args.sample <= args.tenants or not 1 <= args.changed <= args.tenants or args.documents < 100:
        parser.error("--sample and --changed must be between 1 and --tenants, --documents at least 100")

    # A terminated bench still stops its workers (run's finally) and drops its database.
    # A smoke run (the integration suite's) must not drop or flush a full run's database under it.
    database, redis = (f"{DATABASE}_smoke", SMOKE_REDIS) if args.smoke else (DATABASE, REDIS)
    variables = environment(database, redis)
    with own_database("bench/receivables.py", database, variables, flush_redis=True):
        run(args, variables)
    check.exit_if_failed()


def run(args, variables: dict[str, str]) -> None:
    from receivables.models import XeroConnection

    n = args.tenants
    began = time.perf_counter()
    xero, organisations, copies, app, naive_app = serve(n, args.documents, args.sample)
    print(
        f"\nThe fake Xero holds {n} organisations x {args.documents:,} documents (+ {args.sample} copies for the "
        f"naive sync), enforcing Xero's limits; set up in {time.perf_counter() - began:.1f} s"
    )
    workers: list[Worker] = []
    try:
        # --- Naive sync, in a process of its own, before anything else runs.
        xero.reset_calls()
        naive_connections = list(
            XeroConnection.objects.filter(app=naive_app).order_by("pk").values_list("pk", flat=True)
        )
        naive_seconds = naive_sync(naive_connections, variables)
        naive_calls = xero.calls_to("/api.xro")
        check_limits("naive sync", xero, naive_calls)
        check_stored("naive sync", copies, naive_app)
        naive_per_tenant = naive_seconds / args.sample
        print(
            f"  naive sync      {args.sample} organisations in {naive_seconds:6.2f} s "
            f"({len(naive_calls)} calls, pages of 100, one at a time)"
        )

        workers = start_workers(variables)

        # --- Sync.
        first, calls, sync_cpu = sync(workers, xero, app, "bench-sync")
        connection_calls = len(xero.calls_to("/connections"))
        token_calls = len(xero.calls_to("/connect/token"))
        limited = check_limits("sync", xero, calls)
        documents = check_stored("sync", organisations, app)
        floor = sync_floor(calls)
        print(
            f"  sync            {n} organisations in {first.seconds:6.2f} s: {len(calls)} calls to organisations "
            f"+ {connection_calls} to /connections + {token_calls} token refreshes, {limited} answered 429, "
            f"{documents:,} documents stored"
        )

        # --- Report, cold.
        connections = list(XeroConnection.objects.active().select_related("app").order_by("tenant_name", "pk"))
        pks = [connection.pk for connection in connections]
        check(len(connections) == n, f"the report covers {len(connections)} organisations of {n}")
        cold, report = ask_report(workers)
        check(cold.run.result.get("parts_from_cache") == 0, f"the first report took {cold.run.result} from the cache")
        check(not report.from_cache and not report.failures, f"the first report: failures {report.failures}")
        summary_totals = check_workbook(report)
        aggregate_seconds, aggregated = aggregate(pks)
        check_totals("report", report, connections, aggregated)
        print(
            f"  report          {n} organisations in {cold.seconds:6.2f} s ({cold.run.result.get('rows'):,} rows, "
            f"xlsx of {len(bytes(report.output)):,} bytes, {summary_totals} total rows on its Summary sheet)"
        )
        steps = in_process(connections)
        print(
            f"  in this process reports.build {seconds(steps['build'])} (load {seconds(steps['load'])}, engine "
            f"{seconds(steps['age'])}, pickling {seconds(steps['pickle'])}), Excel {seconds(steps['excel'])}; "
            f"{steps['items']:,} open items"
        )
        print(f"  SQL aggregate   {seconds(aggregate_seconds)} ({len(aggregated):,} groups)")
        sample = connections[: args.sample]
        naive_report_seconds, naive_rows = naive_report(sample)
        check_naive_rows(naive_rows, steps["built"], sample)
        print(f"  naive report    {args.sample} organisations in {naive_report_seconds:6.2f} s")

        # --- Report again: every organisation from the cache.
        cached, cached_report = ask_report(workers)
        check(cached.run.result.get("parts_from_cache") == n, f"the second report: {cached.run.result}")
        check(cached_report.from_cache, "the second report is not marked from the cache")
        check(cached_report.totals == report.totals, "the cached report's totals differ from the first's")
        print(f"  report, cached  {n} organisations in {cached.seconds:6.2f} s")

        # --- Incremental sync after a few organisations changed.
        versions = dict(XeroConnection.objects.filter(app=app).values_list("tenant_id", "data_version"))
        changed, changed_from = change(organisations, args.changed)
        second, calls2, _ = sync(workers, xero, app, "bench-sync-again")
        limited2 = check_limits("incremental sync", xero, calls2)
        sent_changed, sent_again = check_incremental(calls2, second.run, organisations, changed, changed_from)
        after = dict(XeroConnection.objects.filter(app=app).values_list("tenant_id", "data_version"))
        rose = {tenant for tenant, version in after.items() if version != versions[tenant]}
        check(
            rose == set(changed) and all(after[t] == versions[t] + 1 for t in rose),
            f"data_version rose for {len(rose)} organisations, {len(changed)} changed",
        )
        documents2 = check_stored("incremental sync", organisations, app)
        print(
            f"  incremental     {n} organisations in {second.seconds:6.2f} s: {len(calls2)} calls, {limited2} "
            f"answered 429; {sent_changed} changed records sent (+ {sent_again} re-sent at the watermarks), "
            f"data_version up for {len(rose)}"
        )

        # --- Report after the incremental sync: only the changed organisations re-aged.
        partly, partly_report = ask_report(workers)
        from_cache = partly.run.result.get("parts_from_cache")
        check(from_cache == n - args.changed, f"the third report took {from_cache} parts from the cache")
        check_totals("report after the incremental sync", partly_report, connections, aggregate(pks)[1])
        print(
            f"  report, {args.changed} changed {n} organisations in {partly.seconds:6.2f} s "
            f"({from_cache} from the cache)"
        )

        for worker in workers:
            errors = [line for line in worker.output().splitlines() if "ERROR" in line or "Traceback" in line]
            check(not errors, f"worker output has errors: {errors[:3]}")
    finally:
        for worker in workers:
            worker.stop()
        xero.stop()

    make_seconds = make_here()

    # --- Figures.
    naive_all = naive_per_tenant * n
    run_row = first.run
    queued = (run_row.started_at - run_row.created_at).total_seconds()
    body = (run_row.body_finished_at - run_row.started_at).total_seconds() if run_row.body_finished_at else 0.0
    chunks = first.seconds - queued - body
    busy = sync_cpu.machine / (first.seconds * os.cpu_count())
    print(
        f"\nSync of {n} organisations x {args.documents:,} documents ({documents:,} stored after the first sync, "
        f"{documents2:,} after the second), {WORKERS} workers:"
    )
    print(
        f"  {len(calls)} calls to organisations, at most {floor.busiest} to one; Xero's windows (60 a minute, "
        f"5,000 a day per organisation, 10,000 a minute per app) force {seconds(floor.windows)} for them"
        + (": the limits are not what bounds this sync." if floor.windows == 0 else ".")
    )
    print(
        f"  the fake spent {floor.served:.2f} s answering them "
        f"({floor.served / max(1, len(calls)) * 1000:.0f} ms a call); the slowest organisation's calls, "
        f"5 at a time, need {seconds(floor.latency)}: the latency-aware floor"
    )
    print(
        f"  the run: {seconds(queued)} queued, {seconds(body)} asking which organisations {n} grants reach and "
        f"fanning out, {seconds(chunks)} syncing them"
    )
    print(
        f"  CPU during the sync: the workers {sync_cpu.workers:.1f} s, the fake {sync_cpu.fake:.1f} s, PostgreSQL "
        f"and Redis {sync_cpu.services:.1f} s, anything else {sync_cpu.other:.1f} s; the machine's "
        f"{os.cpu_count()} cores {busy:.0%} busy"
    )
    for used, command in sync_cpu.others[:3]:
        print(f"  NOTE: another process used {used:.1f} s of CPU during the sync, so the figures are slower: {command}")
    print_table(
        [
            (f"sync: {SYNC_JOB}, {WORKERS} workers", first.seconds, None, f"{len(calls)} calls, {limited} x 429"),
            (
                "floor: what Xero's limits force for those calls",
                floor.windows,
                None,
                "nothing to divide by" if floor.windows == 0 else f"sync / floor {first.seconds / floor.windows:.1f}x",
            ),
            (
                "floor, latency-aware: each organisation's calls 5 at a time",
                floor.latency,
                first.seconds / floor.latency if floor.latency else None,
                "sync / floor",
            ),
            (
                "naive: one organisation at a time, pages of 100 *",
                naive_all,
                naive_all / first.seconds,
                "naive / sync (speedup)",
            ),
            ("incremental sync", second.seconds, None, f"{len(calls2)} calls, {args.changed} organisations changed"),
        ]
    )
    print(f"* {args.sample} organisations in {naive_seconds:.2f} s ({len(naive_calls)} calls), extrapolated to {n}")

    aging, excel = steps["build"], steps["excel"]
    naive_report_all = naive_report_seconds / args.sample * n
    print(
        f"\nAged report as of {AS_OF} over {n} organisations ({PERIODS} month buckets, xlsx): "
        f"{steps['rows']:,} rows, {steps['items']:,} open items, {steps['bytes']:,} bytes"
    )
    print_table(
        [
            ("floor: one SQL aggregate (best of three)", aggregate_seconds, None, ""),
            (
                f"report: {REPORT_JOB} on a worker, request to success",
                cold.seconds,
                cold.seconds / aggregate_seconds,
                "report / floor (aging + Excel)",
            ),
            (
                "aging: reports.build in this process (cache bypassed)",
                aging,
                aging / aggregate_seconds,
                "aging / floor",
            ),
            ("  step by step: loading the rows (sources.stored)", steps["load"], None, ""),
            ("  step by step: the engine", steps["age"], None, ""),
            ("  step by step: pickling the rows for the cache", steps["pickle"], None, ""),
            ("Excel: reports.render as xlsx", excel, None, ""),
            ("aging + Excel in this process", aging + excel, (aging + excel) / aggregate_seconds, "/ floor"),
            (
                "reports.make in this process (the job without the job layer)",
                make_seconds,
                make_seconds / aggregate_seconds,
                "/ floor",
            ),
            (
                "naive: per-invoice queries, then the engine *",
                naive_report_all,
                naive_report_all / aging,
                "naive / aging (speedup)",
            ),
            ("cached: the same report again", cached.seconds, cold.seconds / cached.seconds, "cold / cached"),
            (
                f"after {args.changed} organisations changed: {n - args.changed} from the cache",
                partly.seconds,
                cold.seconds / partly.seconds,
                "cold / this",
            ),
        ]
    )
    print(f"* {args.sample} organisations in {naive_report_seconds:.2f} s, extrapolated to {n}")
    if args.profile:
        make_here(profile=True)


if __name__ == "__main__":
    main()
