"""The ``@job`` decorator: how an app declares a batch job, once, in its ``jobs.py``.

    @job(
        "GL_DAILY_CLOSE",
        title="Daily GL close",
        queue="ledger",
        params={"draft_age_days": Param(int, default=3, min=0)},
        schedule=Cron(minute="0", hour="23"),
        depends_on=["GL_POSTING_IMPORT"],
        scope=Scope.COMPANY,
    )
    def daily_close(ctx: JobContext) -> None: ...

The declaration is code; ``manage.py sync_jobs`` copies it into ``JobDefinition`` rows and
creates default schedules once. After that the database is the truth: an admin's edit
to a field wins over later declarations of that field.
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from config.env import FALSE_WORDS, TRUE_WORDS
from scheduling.calendar import CalendarRule, Cron, Every
from scheduling.choices import CatchUp, KeyBy, Offset, Overlap, Scope

JOB_CODE_PATTERN = r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$"
REQUIRED = object()


class JobError(Exception):
    """A job failed in a way that retrying cannot fix (bad data, a broken rule)."""


class ParamError(JobError):
    """Parameters did not validate: ``errors`` maps each parameter to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


class JobCancelled(Exception):
    """An operator cancelled the run; raised inside the job at its next log or progress call."""


@dataclass(frozen=True)
class Param:
    """One job parameter: its type, default and limits. Values arrive as JSON or as text."""

    type: type = str
    default: Any = REQUIRED
    choices: tuple = ()
    min: Any = None
    max: Any = None
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def coerce(self, value: Any) -> Any:
        try:
            value = self._convert(value)
        except (TypeError, ValueError, InvalidOperation) as exc:
            raise ValueError(f"expected {self.type_name}") from exc
        if self.choices and value not in self.choices:
            raise ValueError(f"choose from {', '.join(map(str, self.choices))}")
        if self.min is not None and value < self.min:
            raise ValueError(f"must be at least {self.min}")
        if self.max is not None and value > self.max:
            raise ValueError(f"must be at most {self.max}")
        return value

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE_WORDS | FALSE_WORDS:
                return word in TRUE_WORDS
            raise ValueError(value)
        if self.type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if self.type is Decimal:
            if isinstance(value, float | bool):
                raise ValueError(value)  # money never passes through a float
            return Decimal(str(value).strip())
        if self.type is datetime.date:
            return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value).strip())
        if self.type is list:
            if isinstance(value, str):
                return [part.strip() for part in value.split(",") if part.strip()]
            return list(value)
        if self.type is str:
            if not isinstance(value, str | int):
                raise ValueError(value)
            return str(value)
        return self.type(value)

    @property
    def type_name(self) -> str:
        return {datetime.date: "a date (YYYY-MM-DD)", Decimal: "a decimal number"}.get(self.type, self.type.__name__)

    def dump(self, value: Any) -> Any:
        """The JSON form of a coerced value."""
        if isinstance(value, datetime.date | Decimal):
            return str(value)
        return value


@dataclass(frozen=True)
class ParamSchema:
    params: Mapping[str, Param] = field(default_factory=dict)

    def clean(self, values: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Coerced values: ``values`` over ``defaults`` over each parameter's own default."""
        values = dict(values or {})
        errors = {name: "unknown parameter" for name in values if name not in self.params}
        merged = {**(defaults or {}), **values}
        cleaned = {}
        for name, param in self.params.items():
            if name in merged and merged[name] is not None:
                try:
                    cleaned[name] = param.coerce(merged[name])
                except ValueError as exc:
                    errors[name] = str(exc)
            elif param.required:
                errors[name] = "this parameter is required"
            else:
                cleaned[name] = param.default
        if errors:
            raise ParamError(errors)
        return cleaned

    def dump(self, cleaned: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self.params[name].dump(value) for name, value in cleaned.items()}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "type": param.type_name,
                "required": param.required,
                "default": None if param.required else param.dump(param.default),
                "choices": list(param.choices),
                "help": param.help,
            }
            for name, param in self.params.items()
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap; ``non_retryable`` errors fail at once."""

    max_retries: int = 3
    backoff_base: int = 30
    backoff_cap: int = 3600
    non_retryable: tuple[type[BaseException], ...] = ()

    def is_retryable(self, exc: BaseException) -> bool:
        return not isinstance(exc, (JobError, JobCancelled, *self.non_retryable))


def backoff(attempt: int, base: int, cap: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: capped exponential with "equal jitter".

    Half the delay is fixed and half random, so retries of many runs that failed together
    (a database restart) spread out instead of arriving as one wave, yet never retry at once.
    """
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


@dataclass(frozen=True)
class Dependency:
    """A link between this job's run and ``job``'s run of the same (or the previous)
    period: in ``depends_on`` this job waits for it, in ``before`` it waits for this job."""

    job: str
    offset: Offset = Offset.SAME

    def as_json(self) -> dict[str, str]:
        return {"job": self.job, "offset": str(self.offset)}


@dataclass
class JobSpec:
    """A registered job as the code declares it."""

    code: str
    func: Callable
    title: str
    description: str = ""
    queue: str = "default"
    priority: int = 5  # 0 to 9, 9 the most urgent (scheduling/priorities.py)
    params: ParamSchema = field(default_factory=ParamSchema)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    time_limit: int = 3300
    overlap: Overlap = Overlap.SKIP
    max_concurrent: int = 1
    runtime_threshold: int | None = None
    failure_alert_after: int = 2
    depends_on: tuple[Dependency, ...] = ()
    before: tuple[Dependency, ...] = ()
    backfill_notifies: bool = False
    schedule: Cron | Every | None = None
    rule: CalendarRule | None = None
    catch_up: CatchUp = CatchUp.LATEST
    catch_up_window: int = 86400
    key_by: KeyBy = KeyBy.DAY
    scope: Scope = Scope.GLOBAL
    atomic: bool = True
    atomic_chunks: bool = True
    chunk_func: Callable | None = None

    def chunk(self, func: Callable) -> Callable:
        """Register the function that executes one fan-out chunk: ``func(ctx, chunk)``."""
        self.chunk_func = func
        return func

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)


_registry: dict[str, JobSpec] = {}


def job(
    code: str,
    *,
    title: str,
    queue: str = "default",
    priority: int = 5,
    params: Mapping[str, Param] | None = None,
    retry: RetryPolicy | None = None,
    time_limit: int = 3300,
    overlap: Overlap = Overlap.SKIP,
    max_concurrent: int = 1,
    runtime_threshold: int | None = None,
    failure_alert_after: int = 2,
    depends_on: Iterable[str | Dependency] = (),
    before: Iterable[str | Dependency] = (),
    backfill_notifies: bool = False,
    schedule: Cron | Every | None = None,
    rule: CalendarRule | None = None,
    catch_up: CatchUp = CatchUp.LATEST,
    catch_up_window: int = 86400,
    key_by: KeyBy = KeyBy.DAY,
    scope: Scope = Scope.GLOBAL,
    atomic: bool = True,
    atomic_chunks: bool = True,
) -> Callable[[Callable], JobSpec]:
    """Declare a batch job. See the module docstring; ``atomic`` runs the job body in one
    transaction that also records its success, so a worker killed mid-run leaves nothing
    half-written. Jobs longer than a few minutes should fan out instead.

    ``priority`` is 0 to 9, **9 the most urgent** and 5 normal: of the runs and chunks waiting
    on a queue, a worker takes the most urgent first, whatever the broker
    (scheduling/priorities.py maps it to each broker's own direction).

    A chunk likewise runs in the transaction that marks it done. ``atomic_chunks=False`` is
    for chunks that wait on the network (a remote API under a rate limit): they run outside
    any transaction, committing as they go, and are marked done afterwards. Such a chunk
    must be safe to run again, since a worker killed mid-chunk leaves it to run again from
    the start, and a redelivered message may run it twice.

    ``depends_on`` names the jobs whose run of the same period (or, with
    ``Dependency(code, Offset.PREVIOUS)``, the previous one) this job's run waits for.
    ``before`` is the same link seen from the other end: the named jobs' runs wait for this
    job's run of their period. A job on a higher floor uses it to go before a lower floor's
    job that cannot name it (accruals and commission before GL_PERIOD_CLOSE).

    ``backfill_notifies`` lets a backfilled run's notifications reach people; by default a
    backfill of last year's invoices emails nobody (its notifications are recorded as
    suppressed)."""

    if not re.match(JOB_CODE_PATTERN, code):
        raise ValueError(f"job code {code!r} must be upper case words joined by underscores, like GL_DAILY_CLOSE")
    if rule is not None and not isinstance(schedule, Cron):
        raise ValueError(f"{code}: a calendar rule needs a Cron schedule for its time of day")
    dependencies = tuple(d if isinstance(d, Dependency) else Dependency(d) for d in depends_on)
    goes_before = tuple(d if isinstance(d, Dependency) else Dependency(d) for d in before)

    def register(func: Callable) -> JobSpec:
        existing = _registry.get(code)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"job code {code} is declared twice: {existing.func.__module__} and {func.__module__}")
        spec = JobSpec(
            code=code,
            func=func,
            title=title,
            description=(func.__doc__ or "").strip(),
            queue=queue,
            priority=priority,
            params=ParamSchema(dict(params or {})),
            retry=retry or RetryPolicy(),
            time_limit=time_limit,
            overlap=overlap,
            max_concurrent=max_concurrent,
            runtime_threshold=runtime_threshold,
            failure_alert_after=failure_alert_after,
            depends_on=dependencies,
            before=goes_before,
            backfill_notifies=backfill_notifies,
            schedule=schedule,
            rule=rule,
            catch_up=catch_up,
            catch_up_window=catch_up_window,
            key_by=key_by,
            scope=scope,
            atomic=atomic,
            atomic_chunks=atomic_chunks,
        )
        _registry[code] = spec
        return spec

    return register


def get(code: str) -> JobSpec | None:
    return _registry.get(code)


def registered() -> dict[str, JobSpec]:
    return dict(_registry)
