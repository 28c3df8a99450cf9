"""The job layer under load, on PostgreSQL and Redis: runs per second, and beat with 10,000 schedules.

Throughput — runs of a job that does nothing, one worker with two processes, measured in one run:

- raw:    N ``scheduling.probe`` tasks sent straight to Celery (result stored in the django-db
          backend, like every task); from the first send to the last result stored
- layer:  N SYS_PROBE runs asked for through ``runs.request_run`` (distinct business dates), queued
          and executed by the same worker; from the first request to the last run's success
- floor:  the layer's own database work per run, in this process, with no broker and no worker:
          ``request_run`` with its send switched off, then ``execution.execute_run`` inline

The goal is a layer that keeps at least half of raw Celery's rate; the script says whether it does
(a missed goal is reported, not failed).

Beat — K enabled job schedules of K jobs (bench-only definitions: run keys are unique per job, so K
schedules of one job would collapse into one run), fired by ``firing.fire_due`` on a simulated clock
with no worker running (the runs' messages are counted on the broker, then purged; sending them is
part of the tick):

- refresh:  ``refresh_schedules`` computing every schedule's first fire
- idle:     a tick with nothing due (median of repeats)
- burst:    all K due in the same minute: the ticks that create and queue K runs, back to back as
            beat runs them, from 0.5 s after the slot
- spread:   the next day, the K schedules spread over a few minutes; beat ticks, then sleeps until
            the next fire

A run's lateness is the simulated time at which the tick that queued it finished, minus its slot:
the clock advances by each tick's real duration and, between ticks, to the next fire (at most 5 s
ahead, beat's longest sleep). Crons are daily by default, the shape of a finance platform;
``--cron minutely`` makes them fire every minute, which costs far more per schedule.

The bench checks itself -- every run and probe succeeds, nothing is due before the burst, beat
fires each of the K runs in the burst and in the spread (within 30 simulated minutes: later is
lost, not late) with one message on the broker for each -- and exits 1 if a check fails.

    .venv/bin/python bench/jobs.py [--jobs 1000] [--floor-runs 300] [--schedules 10000]
                                   [--spread-minutes 5] [--cron daily|minutely]
    .venv/bin/python bench/jobs.py --smoke   # every part and check in seconds

About 4 minutes on two cores; ``--jobs 300 --floor-runs 100 --schedules 1000`` for a quick check.
``--smoke`` (20 runs and probes on the same worker, a floor of 10, 50 schedules spread over 2
minutes, 3 idle ticks) runs every part and check in seconds and prints the figures but judges no
goal: the integration suite runs it to catch a bench that no longer runs. It creates the database
countinghouse_bench (``--smoke``: countinghouse_bench_smoke), dropped at the end, and uses Redis
database 13 (``--smoke``: 6), emptied at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SMOKE_HELP, Checks, Worker, environment, own_database, redis_client

DATABASE = "countinghouse_bench"
REDIS = "redis://127.0.0.1:6379/13"
SMOKE_REDIS = "redis://127.0.0.1:6379/6"
SMOKE = {"jobs": 20, "floor_runs": 10, "schedules": 50, "spread_minutes": 2, "idle_ticks": 3}
QUEUES = "default,billing,receivables,ledger,notifications"
POLL = 0.5  # seconds between looks at the counts; the end time itself is read from the rows
STALL = 120.0  # seconds without progress before a phase gives up
WARMUP = 20
FIRST_DATE = datetime.date(2000, 1, 1)  # the layer's runs; slots one day apart
FLOOR_DATE = datetime.date(2100, 1, 1)
WARMUP_DATE = datetime.date(1990, 1, 1)
GOAL = 0.5
UNSUCCESSFUL = ("failed", "skipped", "cancelled", "blocked")
# Simulated time beat has to fire a phase's runs once the first is due: a run not fired by
# then is lost, not late (lateness is reported; a lost run fails the bench).
WINDOW = datetime.timedelta(minutes=30)

check = Checks()


# --- Database, broker and worker ----------------------------------------------------------


def broker_messages(purge: bool = False) -> int:
    """Messages waiting in the job queues (kombu keeps one list per queue and priority step)."""
    from django.conf import settings

    client = redis_client(settings.CELERY_BROKER_URL)
    count = 0
    for key in client.scan_iter():
        name = key.decode(errors="replace")
        if name.split("\x06\x16")[0] in QUEUES.split(",") and client.type(key) == b"list":
            count += client.llen(key)
            if purge:
                client.delete(key)
    return count


def wait_until(count, target: int, worker: Worker, what: str) -> None:
    """Look every POLL seconds until ``count()`` reaches ``target``; give up on a stall."""
    last, moved = -1, time.perf_counter()
    while (done := count()) < target:
        now = time.perf_counter()
        if done != last:
            last, moved = done, now
        elif now - moved > STALL:
            raise RuntimeError(f"{what}: stuck at {done}/{target} for {STALL:.0f}s\n{worker.output()}")
        worker.check()
        time.sleep(POLL)


# --- Throughput -----------------------------------------------------------------------------


def probe_definition():
    from scheduling.models import JobDefinition

    return JobDefinition.objects.get(code="SYS_PROBE")


def request_runs(first: datetime.date, n: int) -> None:
    from scheduling.choices import Trigger
    from scheduling.services import runs

    definition = probe_definition()
    for i in range(n):
        runs.request_run(definition, business_date=first + datetime.timedelta(days=i), trigger=Trigger.API)


def probe_runs(first: datetime.date):
    from scheduling.models import JobRun

    return JobRun.objects.filter(job__code="SYS_PROBE", business_date__gte=first)


def succeeded_runs(first: datetime.date):
    """Counts the succeeded runs from ``first`` on; a run that ended otherwise stops the bench."""
    from django.db.models import Count

    from scheduling.choices import RunStatus

    def count() -> int:
        states = dict(probe_runs(first).order_by().values_list("status").annotate(n=Count("pk")))
        ended = {status: n for status, n in states.items() if status in UNSUCCESSFUL}
        if ended:
            run = probe_runs(first).filter(status__in=list(ended)).first()
            raise RuntimeError(f"layer runs ended {ended}; e.g. {run}: {run.error}")
        return states.get(RunStatus.SUCCEEDED, 0)

    return count


def measure_floor(n: int) -> dict:
    """request_run + execute_run inline, the broker send switched off: the layer's DB work alone."""
    from django.db import connection

    from scheduling.models import JobDefinition
    from scheduling.services import execution, runs

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    def inline(first: datetime.date, count: int) -> None:
        definition = probe_definition()
        with mock.patch.object(runs, "send", lambda run, countdown=None: None):
            for i in range(count):
                run, _ = runs.request_run(definition, business_date=first + datetime.timedelta(days=i))
                outcome = execution.execute_run(run.pk, task_id=f"floor-{first}-{i}", worker="bench")
                if outcome != "succeeded":
                    raise RuntimeError(f"inline run {run} did not succeed: {outcome}")

    probe_runs(WARMUP_DATE).delete()
    inline(WARMUP_DATE, WARMUP)
    began = time.perf_counter()
    with connection.execute_wrapper(count):
        inline(FLOOR_DATE, n)
    seconds = time.perf_counter() - began
    # The layer's runs should meet the same table the floor met, not one twice as big.
    probe_runs(WARMUP_DATE).delete()
    return {"count": n, "seconds": seconds, "queries": queries / n, "definitions": JobDefinition.objects.count()}


def measure_raw(n: int, worker: Worker) -> dict:
    """From just before the first send to the last result stored (date_done)."""
    from django.db.models import Max
    from django.utils import timezone
    from django_celery_results.models import TaskResult

    from scheduling import tasks

    results = TaskResult.objects.filter(task_name="scheduling.probe", status="SUCCESS")
    for i in range(WARMUP):
        tasks.probe.apply_async(kwargs={"token": f"warmup-{i}"})
    wait_until(results.count, WARMUP, worker, "warm-up probes")
    TaskResult.objects.all().delete()

    started, began = timezone.now(), time.perf_counter()
    for i in range(n):
        tasks.probe.apply_async(kwargs={"token": f"raw-{i}"})
    sending = time.perf_counter() - began
    wait_until(results.count, n, worker, "raw probes")
    last = results.aggregate(at=Max("date_done"))["at"]
    return {"count": n, "seconds": (last - started).total_seconds(), "sending": sending}


def measure_layer(n: int, worker: Worker) -> dict:
    """From just before the first request to the last run's success (finished_at)."""
    from django.db.models import Max
    from django.utils import timezone

    request_runs(WARMUP_DATE, WARMUP)
    wait_until(succeeded_runs(WARMUP_DATE), WARMUP, worker, "warm-up runs")

    started, began = timezone.now(), time.perf_counter()
    request_runs(FIRST_DATE, n)
    requesting = time.perf_counter() - began
    wait_until(succeeded_runs(FIRST_DATE), n, worker, "layer runs")
    last = probe_runs(FIRST_DATE).aggregate(at=Max("finished_at"))["at"]
    return {"count": n, "seconds": (last - started).total_seconds(), "sending": requesting}


# --- Beat -------------------------------------------------------------------------------------


def crontab(at: datetime.datetime, cron: str, every: int = 1):
    """A shared crontab row: daily at ``at``'s time, or every ``every`` minutes through ``at``."""
    from django_celery_beat.models import CrontabSchedule

    if cron == "daily":
        fields = {"minute": str(at.minute), "hour": str(at.hour)}
    else:
        fields = {"minute": "*" if every == 1 else ",".join(map(str, range(at.minute % every, 60, every))), "hour": "*"}
    row, _ = CrontabSchedule.objects.get_or_create(
        **fields, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    return row


def create_schedules(k: int, cron) -> list[int]:
    """K bench jobs with one schedule each; returns their periodic task ids. Other schedules are
    disabled so the figures are for the bench's K alone."""
    import json

    from django_celery_beat.models import PeriodicTask

    from scheduling.models import JobDefinition, JobSchedule
    from scheduling.services.schedules import FIRE_TASK

    PeriodicTask.objects.filter(job_schedule__isnull=False).update(enabled=False)
    definitions = JobDefinition.objects.bulk_create(
        [JobDefinition(code=f"BENCH_{i:05d}", title=f"Bench job {i}", registered=True) for i in range(k)],
        batch_size=1000,
    )
    tasks = PeriodicTask.objects.bulk_create(
        [
            PeriodicTask(name=f"{d.code} (bench)", task=FIRE_TASK, crontab=cron, kwargs=json.dumps({"job": d.code}))
            for d in definitions
        ],
        batch_size=1000,
    )
    JobSchedule.objects.bulk_create(
        [JobSchedule(job=d, periodic_task=t) for d, t in zip(definitions, tasks, strict=True)], batch_size=1000
    )
    return [task.pk for task in tasks]


def timed(func, *args, **kwargs) -> tuple[object, float]:
    began = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - began


def drive(start: datetime.datetime, until: datetime.datetime, expected: int) -> dict:
    """Tick like beat on a simulated clock until ``expected`` runs were fired (or ``until``)."""
    from django.db.models import Max, Min

    from scheduling.models import JobRun, JobSchedule
    from scheduling.services import firing

    clock = start
    last_pk = JobRun.objects.aggregate(pk=Max("pk"))["pk"] or 0
    lateness: list[float] = []
    ticks, busy = [], 0.0
    while len(lateness) < expected and clock <= until:
        (queued, _), spent = timed(firing.fire_due, now=clock)
        clock += datetime.timedelta(seconds=spent)
        busy += spent
        new = list(JobRun.objects.filter(pk__gt=last_pk).values_list("pk", "slot_at"))
        ticks.append((spent, queued))
        if new:
            last_pk = max(pk for pk, _ in new)
            lateness += [(clock - slot_at).total_seconds() for _, slot_at in new]
        schedules = JobSchedule.objects.firing()
        if schedules.filter(next_fire_at__lte=clock).exists():
            continue  # the batch was full: beat ticks again at once
        upcoming = schedules.aggregate(at=Min("next_fire_at"))["at"]
        if upcoming is None:
            break
        # fire_due's own wait is measured against the wall clock, not the `now` it was given.
        clock = max(clock, min(upcoming, clock + datetime.timedelta(seconds=firing.MAX_SLEEP)))
    return {"ticks": ticks, "busy": busy, "lateness": sorted(lateness), "fired": len(lateness)}


def measure_beat(k: int, spread: int, cron: str, idle_repeats: int) -> dict:
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from scheduling.services import firing

    base = timezone.now().replace(second=0, microsecond=0)
    burst_at = base + datetime.timedelta(minutes=2)
    task_ids = create_schedules(k, crontab(burst_at, cron))
    before = burst_at - datetime.timedelta(seconds=30)
    refreshed, refresh = timed(firing.refresh_schedules, now=before)
    # What beat pays every REFRESH_EVERY seconds, and after any periodic task is saved.
    _, unchanged = timed(firing.refresh_schedules, now=before)

    idle = []
    for _ in range(idle_repeats):
        (queued, _), spent = timed(firing.fire_due, now=before)
        check(queued == 0, f"an idle tick before the burst queued {queued} runs")
        idle.append(spent)

    burst = drive(burst_at + datetime.timedelta(seconds=0.5), burst_at + WINDOW, k)
    burst["messages"] = broker_messages(purge=True)

    # The next day, spread: schedule i fires at minute i % spread after the spread's start.
    spread_at = burst_at + datetime.timedelta(days=1)
    for offset in range(spread):
        at = spread_at + datetime.timedelta(minutes=offset)
        PeriodicTask.objects.filter(pk__in=task_ids[offset::spread]).update(crontab=crontab(at, cron, every=spread))
    repointed, re_refresh = timed(firing.refresh_schedules, now=spread_at - datetime.timedelta(seconds=1))
    spread_run = drive(spread_at, spread_at + WINDOW, k)
    spread_run["messages"] = broker_messages(purge=True)
    return {
        "refreshed": refreshed,
        "refresh": refresh,
        "repointed": repointed,
        "re_refresh": re_refresh,
        "unchanged": unchanged,
        "idle": idle,
        "burst": burst,
        "spread": spread_run,
    }


# --- Report -------------------------------------------------------------------------------------


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest rank: an observed value."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(min(rank, len(ordered))) - 1]


def rate(result: dict) -> float:
    return result["count"] / result["seconds"]


def report_throughput(floor: dict, raw: dict, layer: dict, judged: bool) -> list[str]:
    n = raw["count"]
    print("Throughput: runs of a job doing nothing, one worker with 2 processes, PostgreSQL + Redis\n")
    print(f"{'':8} {'runs':>6} {'seconds':>8} {'per s':>7} {'ms each':>8}")
    for name, r in (("raw", raw), ("layer", layer), ("floor", floor)):
        print(f"{name:8} {r['count']:>6} {r['seconds']:>8.2f} {rate(r):>7.0f} {1000 / rate(r):>8.1f}")
    print()
    print(f"raw: sending the {n} tasks took {raw['sending']:.2f}s of it")
    print(f"layer: requesting the {n} runs took {layer['sending']:.2f}s of it (while the worker ran them)")
    print(
        "floor: the layer's database work per run in this process: request_run (no send) + execute_run inline, "
        f"{floor['queries']:.0f} queries per run"
    )
    ratio = rate(layer) / rate(raw)
    # At smoke size the rates are start-up costs, not rates: a verdict on them would mean nothing.
    verdict = ("met" if ratio >= GOAL else "NOT met") if judged else "not judged (--smoke)"
    print()
    print(f"layer / raw runs/s:   {ratio:.2f}x  (goal: at least {GOAL:.2f}x, {verdict})")
    print(f"layer / floor runs/s: {rate(layer) / rate(floor):.2f}x")
    return [
        f"raw Celery:    {rate(raw):7.0f} tasks/s",
        f"layer:         {rate(layer):7.0f} runs/s   layer / raw {ratio:.2f}x (goal >= {GOAL:.2f}x: {verdict})",
        f"floor:         {rate(floor):7.0f} runs/s   layer / floor {rate(layer) / rate(floor):.2f}x",
    ]


def report_beat(beat: dict, k: int, spread: int, cron: str) -> list[str]:
    idle = statistics.median(beat["idle"]) * 1000
    print(f"\nBeat: {k} enabled job schedules ({cron} crons), fire_due on a simulated clock, no worker\n")
    print(f"refresh_schedules, {beat['refreshed']} new schedules:      {beat['refresh']:7.2f} s")
    print(f"refresh_schedules, {beat['repointed']} re-pointed schedules: {beat['re_refresh']:7.2f} s")
    print(f"refresh_schedules, nothing changed:        {beat['unchanged']:7.2f} s")
    most = max(beat["idle"]) * 1000
    print(f"idle tick (nothing due), median of {len(beat['idle'])}:     {idle:7.1f} ms (max {most:.1f} ms)")
    lines = [
        f"refresh:       {beat['refresh']:7.2f} s for {beat['refreshed']} schedules",
        f"idle tick:     {idle:7.1f} ms median",
    ]
    for name, label in (("burst", f"all {k} due at once"), ("spread", f"spread over {spread} minutes")):
        r = beat[name]
        late = r["lateness"]
        runs_per_s = r["fired"] / r["busy"] if r["busy"] else float("nan")
        busiest = max(r["ticks"], key=lambda tick: tick[0])
        print(f"\n{label}: {r['fired']} runs queued in {len(r['ticks'])} ticks, {r['busy']:.2f} s of ticking")
        print(f"  runs/s while ticking:  {runs_per_s:7.0f}   (slowest tick {busiest[0]:.2f} s for {busiest[1]} runs)")
        print(
            f"  lateness p50 / p99 / max: {percentile(late, 50):.2f} / {percentile(late, 99):.2f} / "
            f"{late[-1] if late else float('nan'):.2f} s"
        )
        print(f"  messages on the broker afterwards: {r['messages']} (purged)")
        check(r["fired"] == k, f"{name}: beat fired {r['fired']} of the {k} runs due")
        check(r["messages"] == r["fired"], f"{name}: {r['messages']} messages on the broker for {r['fired']} runs")
        lines.append(
            f"{name + ':':14} {r['busy']:7.2f} s, {runs_per_s:.0f} runs/s, lateness p50 {percentile(late, 50):.2f} s, "
            f"p99 {percentile(late, 99):.2f} s, max {late[-1] if late else float('nan'):.2f} s"
        )
    return lines


def report_crowded(floor: dict, crowded: dict) -> list[str]:
    """The floor again once the beat part has left its job definitions behind."""
    ratio = rate(crowded) / rate(floor)
    print(
        f"\nThe floor again with {crowded['definitions']} job definitions (the beat part's) instead of "
        f"{floor['definitions']}:"
    )
    print(f"  {rate(crowded):.1f} runs/s, {crowded['queries']:.0f} queries per run: {ratio:.2f}x the floor above")
    return [f"floor, {crowded['definitions']} job definitions: {rate(crowded):5.1f} runs/s ({ratio:.2f}x the floor)"]


# --- Main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="runs (and raw tasks) in the throughput part")
    parser.add_argument("--floor-runs", type=int, default=300, help="runs executed inline for the floor")
    parser.add_argument("--schedules", type=int, default=10000, help="enabled job schedules in the beat part")
    parser.add_argument("--spread-minutes", type=int, default=5, help="minutes the schedules spread over")
    parser.add_argument(
        "--cron",
        choices=["daily", "minutely"],
        default="daily",
        help="daily (a finance platform's shape) or every minute (slow: see the report)",
    )
    parser.add_argument("--idle-ticks", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if 60 % args.spread_minutes:
        parser.error("--spread-minutes must divide 60")

    # A smoke run (the integration suite's) must not drop or flush a full run's database under it.
    database, redis = (f"{DATABASE}_smoke", SMOKE_REDIS) if args.smoke else (DATABASE, REDIS)
    variables = environment(database, redis)
    # A terminated bench (make interrupted, a CI timeout) still stops its worker and drops its database.
    worker = None
    with own_database("bench/jobs.py", database, variables, flush_redis=True):
        try:
            print()
            floor = measure_floor(args.floor_runs)
            worker = Worker("bench", QUEUES, 2, variables)
            raw = measure_raw(args.jobs, worker)
            layer = measure_layer(args.jobs, worker)
            worker.stop(wait=15)
            worker = None
            summary = report_throughput(floor, raw, layer, judged=not args.smoke)

            beat = measure_beat(args.schedules, args.spread_minutes, args.cron, args.idle_ticks)
            summary += report_beat(beat, args.schedules, args.spread_minutes, args.cron)

            crowded = measure_floor(max(10, args.floor_runs // 10))
            summary += report_crowded(floor, crowded)

            print(f"\nSummary ({args.jobs} runs; {args.schedules} schedules, {args.cron} crons)")
            for line in summary:
                print(f"  {line}")
        finally:
            if worker is not None:
                worker.stop(wait=15)
    check.exit_if_failed()


if __name__ == "__main__":
    main()
