"""``sync_jobs``: the code's declarations into ``JobDefinition`` rows, default schedules once.

An admin's edit wins. Each definition remembers what the code declared at the last sync;
a field still equal to that declaration takes the code's new value, a field that differs
was edited in the admin and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from scheduling import registry
from scheduling.models import JobDefinition, JobSchedule
from scheduling.registry import JobSpec
from scheduling.services import firing, schedules

_MISSING = object()


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)  # admin edits that won over the code
    schedules_created: list[str] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created {code}" for code in self.created]
        out += [f"updated {code}: {', '.join(fields)}" for code, fields in self.updated.items()]
        out += [f"kept admin edits of {code}: {', '.join(fields)}" for code, fields in self.kept.items()]
        out += [f"default schedule for {code}" for code in self.schedules_created]
        out += [f"no longer declared: {code}" for code in self.unregistered]
        return out


def declaration(spec: JobSpec) -> dict:
    """The definition fields as the code declares them, in their JSON form."""
    return {
        "title": spec.title,
        "description": spec.description,
        "queue": spec.queue,
        "priority": spec.priority,
        "default_params": {},
        "max_retries": spec.retry.max_retries,
        "backoff_base": spec.retry.backoff_base,
        "backoff_cap": spec.retry.backoff_cap,
        "time_limit": spec.time_limit,
        "overlap": str(spec.overlap),
        "max_concurrent": spec.max_concurrent,
        "runtime_threshold": spec.runtime_threshold,
        "failure_alert_after": spec.failure_alert_after,
        "depends_on": [dependency.as_json() for dependency in spec.depends_on],
        "before": [dependency.as_json() for dependency in spec.before],
        "backfill_notifies": spec.backfill_notifies,
        "catch_up": str(spec.catch_up),
        "catch_up_window": spec.catch_up_window,
        "key_by": str(spec.key_by),
        "scope": str(spec.scope),
    }


@transaction.atomic
def sync_jobs() -> SyncReport:
    report = SyncReport()
    specs = registry.registered()
    existing = {d.code: d for d in JobDefinition.objects.select_for_update().filter(code__in=list(specs))}
    for code, spec in sorted(specs.items()):
        declared = declaration(spec)
        definition = existing.get(code)
        if definition is None:
            definition = JobDefinition.objects.create(code=code, declared=declared, **declared)
            report.created.append(code)
            if spec.schedule is not None:
                create_default_schedule(definition, spec)
                report.schedules_created.append(code)
            continue
        updated, kept = [], []
        for name in JobDefinition.DECLARED_FIELDS:
            current, before, now = getattr(definition, name), definition.declared.get(name, _MISSING), declared[name]
            if current == now:
                continue
            if before is _MISSING or current == before:
                setattr(definition, name, now)
                updated.append(name)
            else:
                kept.append(name)
        if updated or definition.declared != declared or not definition.registered:
            definition.declared = declared
            definition.registered = True
            definition.save()
        if updated:
            report.updated[code] = updated
        if kept:
            report.kept[code] = kept
    gone = JobDefinition.objects.filter(registered=True).exclude(code__in=list(specs))
    report.unregistered = list(gone.values_list("code", flat=True))
    gone.update(registered=False)
    firing.refresh_schedules()
    return report


def create_default_schedule(definition: JobDefinition, spec: JobSpec) -> JobSchedule:
    task = schedules.new_task(definition, f"{definition.code} (default)")
    schedules.apply_timing(task, schedules.Timing.declared(spec.schedule))
    task.save()
    rule = spec.rule
    return JobSchedule.objects.create(
        job=definition,
        periodic_task=task,
        rule=str(rule.kind) if rule else "",
        rule_n=rule.n if rule else None,
        rule_month=rule.month if rule else None,
        shift=str(rule.shift) if rule else "none",
    )
