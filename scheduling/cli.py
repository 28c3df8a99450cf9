"""What any app's job commands share (``run_job``, ``backfill``, billing's
``backfill_invoices``): reading a company and job parameters from the command line, saying
what an unfinished run waits for, following runs to their end (on workers, or executed
here) with a progress bar, and a backfill's options and report."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from config.commands import ProgressBar
from config.companies import company_lookup, company_model
from scheduling.choices import FINISHED, RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.registry import ParamError
from scheduling.services import backfill, execution, runs

POLL_SECONDS = 0.5


def parse_param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CommandError(f"--param {text!r} must be KEY=VALUE")
    return key.strip(), value


def find_company(text: str | None):
    """The company named by slug or id, or None when none is named."""
    if not text:
        return None
    found = company_model()._default_manager.filter(**company_lookup(text)).first()
    if found is None:
        raise CommandError(f"no company {text!r}")
    return found


def waiting_for(run: JobRun) -> str:
    """A sentence on what an unfinished run waits for."""
    match run.status:
        case RunStatus.WAITING | RunStatus.BLOCKED:
            return runs.dependency_status(run)[1]
        case RunStatus.QUEUED | RunStatus.PENDING:
            return f"is queued on {run.job.queue}, waiting for a worker that consumes it"
        case RunStatus.RETRYING:
            at = f" at {run.due_at:%H:%M:%S} UTC" if run.due_at else ""
            return f"failed attempt {run.attempts} ({run.error[:200]}); retrying{at}"
        case RunStatus.RUNNING:
            done, total = execution.live_progress(run)
            return f"is running on {run.worker}" + (f" ({done}/{total})" if total else "")
    return run.status


def why_stopped(run: JobRun) -> str:
    """On one line, why a run did not succeed: its error, or what a held run waits for (a
    held run has no error; its upstream, and the root run, are the reason)."""
    why = run.error or (waiting_for(run) if run.status in (RunStatus.WAITING, RunStatus.BLOCKED) else "")
    return " ".join(why.split())  # a database error's DETAIL comes on a line of its own


def wait_for_run(command: BaseCommand, run: JobRun, deadline: float, timeout: float, name: str = "") -> JobRun:
    """Wait for the run to finish or be blocked, saying on stderr what it waits for whenever
    that changes: its upstream runs, a worker, a retry's delay."""
    told = ""
    while run.status not in FINISHED | {RunStatus.BLOCKED}:
        what = waiting_for(run)
        if what != told:
            command.stderr.write(f"run {run.pk}{name} {what}")
            told = what
        if time.monotonic() > deadline:
            raise CommandError(f"run {run.pk} still {run.status} after {timeout:.0f}s: {what}")
        time.sleep(POLL_SECONDS)
        run.refresh_from_db()
    return run


def follow(command: BaseCommand, pending: list[JobRun], *, inline: bool, timeout: float, label: str) -> list[JobRun]:
    """Wait for ``pending`` to finish in order, or execute each here (``inline``), with a
    progress bar; says on stderr what the run in front waits for whenever that changes.
    Stops at a blocked run: what comes after it cannot go on until it is re-run."""
    bar = ProgressBar(command.stderr, label)
    deadline = time.monotonic() + timeout
    finished: list[JobRun] = []
    for run in pending:
        run.refresh_from_db()
        if inline and run.status not in FINISHED:
            run = execution.run_here(run)
            if run.status not in FINISHED | {RunStatus.BLOCKED}:
                # Waiting for a run that is not ours to execute: here nothing else would run it.
                bar.done()
                raise CommandError(f"run {run.pk} {run.job.code} {run.run_key} {waiting_for(run)}")
            # What waits for it moves on now, not when an enclosing transaction commits.
            runs.release_dependents(run)
        if run.status not in FINISHED | {RunStatus.BLOCKED}:
            if bar.tty and finished:
                command.stderr.write("")  # off the progress bar's line
            try:
                run = wait_for_run(command, run, deadline, timeout, name=f" {run.job.code} {run.run_key}")
            except CommandError:
                bar.done()
                raise
        finished.append(run)
        bar(len(finished), len(pending))
        if run.status == RunStatus.BLOCKED:
            break
    bar.done()
    return finished


def add_backfill_arguments(parser, *, dates: bool = True) -> None:
    """A backfill's options; without ``dates`` the command reads --from and --to its own way."""
    if dates:
        parser.add_argument("--from", dest="first", required=True, help="the first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="last", required=True, help="the last day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--dry-run", action="store_true", help="print the slots and what would be done; make nothing")
    parser.add_argument("--rerun-failed", action="store_true", help="re-run slots whose run failed or was cancelled")
    parser.add_argument("--force", action="store_true", help="allow more runs than JOB_BACKFILL_MAX_RUNS")
    parser.add_argument("--wait", action="store_true", help="follow the runs until they finish")
    parser.add_argument("--inline", action="store_true", help="execute the runs here, in order (implies --wait)")
    parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds --wait waits (default a day)")


def run_backfill(
    command: BaseCommand,
    definition: JobDefinition,
    options: dict,
    *,
    company=None,
    params: dict | None = None,
    first=None,
    last=None,
) -> list[JobRun]:
    """Plan or make the backfill the options ask for, print its summary (and, for a dry run,
    each slot), follow it when asked; returns the runs made, finished if followed."""
    try:
        if first is None:
            first, last = backfill.parse_range(options["first"], options["last"])
        made = backfill.backfill(
            definition,
            first,
            last,
            company=company,
            params=params,
            rerun_failed=options["rerun_failed"],
            dry_run=options["dry_run"],
            force=options["force"],
        )
    except backfill.BackfillError as exc:
        raise CommandError(str(exc)) from None
    except ParamError as exc:
        raise CommandError(f"invalid parameters: {exc}") from None
    command.stderr.write(made.summary())
    if options["dry_run"]:
        for slot in made.slots:
            command.stdout.write(f"{slot.describe()}: {slot.action}")
        return []
    if not (options["wait"] or options["inline"]):
        return made.runs
    return follow(
        command,
        made.runs,
        inline=options["inline"],
        timeout=options["timeout"],
        label=f"{definition.code} backfill",
    )


def describe(run: JobRun) -> str:
    counts = f"processed {run.processed}, created {run.created}, skipped {run.skipped}, failed {run.failed}"
    line = f"run {run.pk} {run.job.code} {run.run_key}: {run.status} ({counts})"
    why = why_stopped(run) if run.status != RunStatus.SUCCEEDED else ""
    return f"{line}: {why}" if why else line


def finish(made: list[JobRun], options: dict) -> None:
    """A followed backfill that did not all succeed ends non-zero, naming what stopped it."""
    if not (options["wait"] or options["inline"]) or options["dry_run"]:
        return
    stopped = [run for run in made if run.status != RunStatus.SUCCEEDED]
    if stopped:
        run = stopped[0]
        raise CommandError(f"run {run.pk} {run.job.code} {run.run_key} {run.status}: {why_stopped(run)}")
