"""Notifications under volume, on PostgreSQL and Redis: notify_many's rate, and delivery by two workers.

Writing — 100,000 notifications of one company to 100,000 recipients (a party each, with an email
address and one of 100 portal users who sees it in the app), channels in-app and email, so 200,000
deliveries, written five ways into emptied tables with every index present, in one run on one
connection:

- naive:    ``notify``, one notification a call and transaction. A sample (the first 2,000); its rate
            is extrapolated, not measured on all 100,000.
- service:  ``notify_many``, 5,000 messages a call (one transaction each): the notifications, their
            deliveries, and the delivery tasks sent to the broker after each commit.
- INSERT:   the same notification rows by hand-written ``INSERT ... SELECT * FROM UNNEST(arrays)``,
            5,000 a transaction, no checks, no deliveries: the brief's floor.
- INSERT+:  the same, then the two deliveries of each by the same kind of statement (the notifications'
            ids by RETURNING): every row the service writes, without its Python or its broker.
- replay:   ``notify_many`` again over the same 100,000 dedupe keys, which must create nothing.

Delivering — the service's 200,000 queued deliveries, taken by two workers started after the writes
(``celery worker -Q notifications -c 1`` each; email to Django's in-memory backend, ``memorymail://``,
which builds every MIME message but sends it nowhere). Timed from the first delivery claimed to the
last one sent, both read from the rows; a notification counts as delivered when both its deliveries
are sent.

Each way of writing starts from emptied tables after a checkpoint (the first after an untimed warm-up
load); the tables are vacuumed and analysed before the workers start, as autovacuum would leave them.
The bench checks itself — row counts, deliveries per channel, nothing created by the replay, every
delivery sent once with its notification rendered and in its recipient's inbox — and exits 1 if a check
fails. No speed is pass or fail.

    .venv/bin/python bench/notifications.py [--recipients 100000] [--batch 5000] [--naive 2000]
    .venv/bin/python bench/notifications.py --smoke   # every phase and check in seconds

About 2 minutes on two cores; ``--recipients 10000 --naive 500`` for a quick check. ``--smoke``
(200 recipients in batches of 50, a naive sample of 20, the same two workers) runs every phase and
check in seconds and prints figures without meaning: the integration suite runs it to catch a bench
that no longer runs. It creates the database countinghouse_bench_notifications (``--smoke``:
countinghouse_bench_notifications_smoke), dropped at the end, and uses Redis database 12 as its
broker (``--smoke``: 5), emptied at the start and the end; the other benches use 3-8 and 11-13, the
integration tests 9, 14 and 15. PostgreSQL at 127.0.0.1:5432 with trust auth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SMOKE_HELP,
    Checks,
    SqlClock,
    Worker,
    batches,
    environment,
    own_database,
    redis_client,
    sql,
    truncate,
)

DATABASE = "countinghouse_bench_notifications"
REDIS = "redis://127.0.0.1:6379/12"
SMOKE_REDIS = "redis://127.0.0.1:6379/5"
SMOKE = {"recipients": 200, "batch": 50, "naive": 20}
KIND = "bench_invoice_due"  # a kind no code registers: the company's Template row is all it has
CHANNELS = ("in_app", "email")
USERS = 100  # portal users; each sees the notifications of 1 in USERS recipients
WORKERS = 2
POLL = 0.5  # seconds between looks at the counts; the end time itself is read from the rows
STALL = 120.0  # seconds without progress before the delivery phase gives up
NOTIFICATION_COLUMNS = (
    "company_id",
    "kind",
    "priority",
    "dedupe_key",
    "user_id",
    "party_type_id",
    "party_id",
    "recipient_key",
    "recipient_name",
    "recipient_email",
    "channels",
    "data",
    "subject",
    "body",
    "created_at",
)
DELIVERY_COLUMNS = (
    "notification_id",
    "company_id",
    "channel",
    "endpoint_id",
    "status",
    "attempts",
    "next_attempt_at",
    "claim",
    "claimed_at",
    "last_error",
    "provider_message_id",
    "sent_at",
    "created_at",
    "updated_at",
)


# --- Database and broker -----------------------------------------------------------------------


def tables() -> tuple[str, str]:
    from notifications.models import Delivery, Notification

    return Notification._meta.db_table, Delivery._meta.db_table


def broker() -> str:
    """This run's Redis database: a smoke run's is not a full run's."""
    from django.conf import settings

    return settings.CELERY_BROKER_URL


def fresh_tables() -> None:
    """Empty notification tables, an empty broker and a checkpoint, so no phase pays for the one before."""
    truncate(*tables())
    sql("CHECKPOINT")
    redis_client(broker()).flushdb()


def settle() -> None:
    for table in tables():
        sql(f"VACUUM (ANALYZE) {table}")
    sql("CHECKPOINT")


def column_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """Each column's SQL type as the catalog names it, for the UNNEST casts."""
    rows = dict(
        sql(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [table],
        )
    )
    return [rows[column] for column in columns]


def counts() -> tuple[int, int]:
    notification, delivery = tables()
    return sql(f"SELECT (SELECT count(*) FROM {notification}), (SELECT count(*) FROM {delivery})")[0]


def broker_messages() -> int:
    """Messages waiting in the notifications queue (kombu keeps a list per queue and priority step)."""
    client = redis_client(broker())
    return sum(
        client.llen(key)
        for key in client.scan_iter()
        if key.decode(errors="replace").split("\x06\x16")[0] == "notifications" and client.type(key) == b"list"
    )


# --- Checks ------------------------------------------------------------------------------------

check = Checks()


def check_written(label: str, notifications: int, deliveries: int) -> None:
    found = counts()
    check(found == (notifications, deliveries), f"{label}: {found} rows, expected {(notifications, deliveries)}")


# --- The rows ----------------------------------------------------------------------------------


class Setup(NamedTuple):
    company_id: int
    users: list[int]


def setup() -> Setup:
    from django.contrib.auth import get_user_model

    from ledger.models import Company
    from notifications.models import Template

    company = Company.objects.create(name="Bench School", slug="bench")
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"portal{i}", email=f"portal{i}@example.com", password="!") for i in range(USERS)]
    )
    Template.objects.create(
        company=company,
        kind=KIND,
        subject="Invoice {{ invoice }} is due on {{ due }}",
        body=(
            "Dear {{ recipient_name }},\n\n{{ company }} reminds you that invoice {{ invoice }} for "
            "{{ amount }} {{ currency }} is due on {{ due }}."
        ),
        html=(
            "<p>Dear {{ recipient_name }},</p><p>{{ company }} reminds you that invoice <b>{{ invoice }}</b> "
            "for {{ amount }} {{ currency }} is due on {{ due }}.</p>"
        ),
    )
    return Setup(company.pk, [user.pk for user in users])


def messages(n: int, books: Setup) -> list:
    """The caller's objects: built once, before any clock."""
    from notifications.services.recipients import Recipient
    from notifications.services.sending import Message

    return [
        Message(
            Recipient(
                f"bench.party:{i}",
                name=f"Recipient {i}",
                email=f"recipient{i}@example.com",
                user_id=books.users[i % len(books.users)],
            ),
            KIND,
            {"invoice": f"INV-{i:06d}", "amount": f"{100 + i % 900}.00", "currency": "GBP", "due": "2026-12-01"},
            company=books.company_id,
            dedupe_key=f"invoice_due:{i}",
            channels=CHANNELS,
        )
        for i in range(n)
    ]


# --- The ways of writing -----------------------------------------------------------------------


class Written(NamedTuple):
    name: str
    notifications: int
    seconds: float
    sql_seconds: float | None
    queries: int | None

    @property
    def rate(self) -> float:
        return self.notifications / self.seconds


def timed_writes(name: str, n: int, write, *, sample: bool = False) -> Written:
    from django.db import connection

    clock = SqlClock()
    began = time.perf_counter()
    with connection.execute_wrapper(clock):
        write()
    seconds = time.perf_counter() - began
    result = Written(name, n, seconds, clock.seconds, clock.queries)
    note = " (a sample)" if sample else ""
    print(f"  {name:8} {n:>9,} notifications in {seconds:7.2f} s: {result.rate:>9,.0f} /s{note}")
    return result


def unnest_insert(cursor, table: str, columns: tuple[str, ...], types: list[str], rows: list[tuple], tail: str = ""):
    arrays = ", ".join(f"%s::{kind}[]" for kind in types)
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM UNNEST({arrays}){tail}",
        [list(column) for column in zip(*rows, strict=True)],
    )


def raw_insert(batch: list, with_deliveries: bool, types: dict[str, list[str]]) -> None:
    """One transaction: the notification rows as notify_many would write them, and their deliveries."""
    from django.db import connection, transaction
    from django.utils import timezone

    notification, delivery = tables()
    now = timezone.now()
    rows = [
        (m.company, m.kind, m.priority, m.dedupe_key, m.recipient.user_id, None, "", m.recipient.key,
         m.recipient.name, m.recipient.email, json.dumps(list(m.channels)), json.dumps(m.context), "", "", now)
        for m in batch
    ]  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        tail = " RETURNING id" if with_deliveries else ""
        unnest_insert(cursor, notification, NOTIFICATION_COLUMNS, types["notification"], rows, tail)
        if not with_deliveries:
            return
        ids = [row[0] for row in cursor.fetchall()]
        company = batch[0].company
        deliveries = [
            (pk, company, channel, None, "queued", 0, now, "", None, "", "", None, now, now)
            for pk in ids
            for channel in CHANNELS
        ]
        unnest_insert(cursor, delivery, DELIVERY_COLUMNS, types["delivery"], deliveries)


# --- Delivering --------------------------------------------------------------------------------


def sent_count() -> int:
    _, delivery = tables()
    return sql(f"SELECT count(*) FROM {delivery} WHERE status = 'sent'")[0][0]


def deliver_all(expected: int, variables: dict[str, str]) -> dict:
    """Start the workers, wait until every delivery is sent, read the window from the rows."""
    from django.db.models import Count

    from notifications.models import Delivery

    workers: list[Worker] = []
    began = time.perf_counter()
    try:
        # One by one into the list the finally stops: a bench terminated between two starts
        # must not leave the first worker running.
        workers.extend(Worker(f"bench{n}", "notifications", 1, variables) for n in range(WORKERS))
        last, moved = -1, time.perf_counter()
        while (done := sent_count()) < expected:
            now = time.perf_counter()
            if done != last:
                last, moved = done, now
            elif now - moved > STALL:
                stuck = dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("pk")))
                raise RuntimeError(
                    f"delivery stuck at {done:,}/{expected:,} for {STALL:.0f} s ({stuck}):\n{workers[0].output()}"
                )
            for worker in workers:
                worker.check()
            time.sleep(POLL)
        wall = time.perf_counter() - began
        for worker in workers:
            errors = [line for line in worker.output().splitlines() if "ERROR" in line or "Traceback" in line]
            check(not errors, f"worker output has errors: {errors[:3]}")
    finally:
        for worker in workers:
            worker.stop()
    _, delivery = tables()
    window = {}
    for channel in (None, *CHANNELS):
        where = "" if channel is None else f"WHERE channel = '{channel}'"
        first, last_sent, n = sql(f"SELECT min(claimed_at), max(sent_at), count(*) FROM {delivery} {where}")[0]
        window[channel or "all"] = ((last_sent - first).total_seconds(), n)
    return {"window": window, "wall": wall}


def check_delivered(n: int, books: Setup) -> None:
    from django.db.models import Count

    from notifications.models import Delivery, Notification

    notification, delivery = tables()
    states = dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("pk")))
    check(states == {"sent": 2 * n}, f"deliveries by status: {states}")
    attempts = sql(f"SELECT count(*) FROM {delivery} WHERE attempts <> 1")[0][0]
    check(attempts == 0, f"{attempts} deliveries took other than one attempt")
    missing = sql(f"SELECT count(*) FROM {notification} WHERE in_app_at IS NULL OR rendered_at IS NULL")[0][0]
    check(missing == 0, f"{missing} notifications not rendered or not in their inbox")
    inbox = Notification.objects.filter(user_id=books.users[0], in_app_at__isnull=False).count()
    check(inbox == len(range(0, n, USERS)), f"the first portal user's inbox holds {inbox}")
    sample = Notification.objects.get(dedupe_key="invoice_due:7")
    check(sample.subject == "Invoice INV-000007 is due on 2026-12-01", f"rendered subject: {sample.subject!r}")
    check("Bench School reminds you" in sample.body, f"rendered body: {sample.body!r}")


# --- Report ------------------------------------------------------------------------------------


def report(written: dict[str, Written], replay: float, batch: int, delivered: dict, n: int) -> None:
    service, naive = written["service"], written["naive"]
    insert, insert_all = written["INSERT"], written["INSERT+"]
    print(f"\nWriting {n:,} notifications ({2 * n:,} deliveries: in-app and email), PostgreSQL, one connection\n")
    print(f"{'':44} {'notifications':>13} {'seconds':>8} {'per s':>9} {'in SQL':>7} {'queries':>8}")
    rows = (
        ("naive: notify(), 1 a call *", naive),
        (f"service: notify_many, {batch:,} a call", service),
        ("raw INSERT ... UNNEST, notifications only", insert),
        ("raw INSERT ... UNNEST, + their deliveries", insert_all),
    )
    for label, r in rows:
        print(
            f"{label:44} {r.notifications:>13,} {r.seconds:>8.2f} {r.rate:>9,.0f} "
            f"{r.sql_seconds / r.seconds:>6.0%} {r.queries:>8,}"
        )
    print(f"* a sample of {naive.notifications:,}, its rate extrapolated")
    print("in SQL: the share of the time inside cursor.execute (not COMMIT; the service's broker sends are outside)")
    print(
        f"replaying notify_many over the same {n:,} dedupe keys: {replay:.2f} s ({n / replay:,.0f} /s), nothing created"
    )
    print()
    print(f"service / naive                       notifications/s: {service.rate / naive.rate:7.2f}x")
    print(f"service / raw INSERT (notifications)  notifications/s: {service.rate / insert.rate:7.2f}x")
    print(f"service / raw INSERT (+ deliveries)   notifications/s: {service.rate / insert_all.rate:7.2f}x")

    print(
        f"\nDelivering with {WORKERS} workers (celery worker -Q notifications -c 1 each), email to the in-memory "
        "backend\n"
    )
    print(f"{'':34} {'deliveries':>10} {'seconds':>8} {'per s':>9}")
    for key, label in (("all", "all, first claim to last sent"), ("in_app", "  in-app"), ("email", "  email")):
        seconds, count = delivered["window"][key]
        print(f"{label:34} {count:>10,} {seconds:>8.2f} {count / seconds:>9,.0f}")
    seconds = delivered["window"]["all"][0]
    print(f"{'notifications fully delivered':34} {n:>10,} {seconds:>8.2f} {n / seconds:>9,.0f}")
    print(f"(from starting the workers to the last delivery seen sent: {delivered['wall']:.1f} s)")


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000, help="notifications written, one per recipient")
    parser.add_argument("--batch", type=int, default=5000, help="messages per notify_many call and raw transaction")
    parser.add_argument("--naive", type=int, default=2000, help="notifications sent one notify() at a time")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if args.recipients < USERS or args.naive > args.recipients:
        parser.error(f"--recipients must be at least {USERS} and --naive at most --recipients")

    # A terminated bench still stops its workers (run's finally) and drops its database.
    # A smoke run (the integration suite's) must not drop or flush a full run's database under it.
    database, redis = (f"{DATABASE}_smoke", SMOKE_REDIS) if args.smoke else (DATABASE, REDIS)
    # EMAIL_URL: Django's locmem backend, each message built and kept in the worker's memory.
    variables = environment(database, redis, EMAIL_URL="memorymail://")
    with own_database("bench/notifications.py", database, variables, flush_redis=True):
        run(args, variables)
    check.exit_if_failed()


def run(args, variables: dict[str, str]) -> None:
    from notifications.services.sending import notify, notify_many

    books = setup()
    n = args.recipients
    notification, delivery = tables()
    types = {
        "notification": column_types(notification, NOTIFICATION_COLUMNS),
        "delivery": column_types(delivery, DELIVERY_COLUMNS),
    }
    planned = messages(n, books)

    print(f"\nWriting {n:,} notifications, {args.batch:,} a call, into emptied tables (after a warm-up):")
    for chunk in batches(planned, args.batch):  # untimed: the first writes to a new database also grow its files
        raw_insert(chunk, True, types)
    fresh_tables()
    written: dict[str, Written] = {}

    sample = planned[: args.naive]

    def naive() -> None:
        for m in sample:
            notify(m.recipient, m.kind, m.context, company=m.company, dedupe_key=m.dedupe_key, channels=m.channels)

    written["naive"] = timed_writes("naive", len(sample), naive, sample=True)
    check_written("naive", len(sample), 2 * len(sample))
    fresh_tables()

    written["INSERT"] = timed_writes(
        "INSERT", n, lambda: [raw_insert(chunk, False, types) for chunk in batches(planned, args.batch)]
    )
    check_written("INSERT", n, 0)
    fresh_tables()

    written["INSERT+"] = timed_writes(
        "INSERT+", n, lambda: [raw_insert(chunk, True, types) for chunk in batches(planned, args.batch)]
    )
    check_written("INSERT+", n, 2 * n)
    fresh_tables()

    created = queued = 0

    def service() -> None:
        nonlocal created, queued
        for chunk in batches(planned, args.batch):
            outcome = notify_many(chunk)
            created, queued = created + len(outcome.created), queued + outcome.queued

    written["service"] = timed_writes("service", n, service)
    check(created == n and queued == 2 * n, f"service: {created:,} created, {queued:,} deliveries queued")
    check_written("service", n, 2 * n)
    messages_sent = broker_messages()

    began, again = time.perf_counter(), 0
    for chunk in batches(planned, args.batch):
        outcome = notify_many(chunk)
        again += len(outcome.created) + outcome.queued
    replay = time.perf_counter() - began
    check(again == 0, f"replay: {again} notifications or deliveries created")
    check_written("service, after the replay", n, 2 * n)
    check(broker_messages() == messages_sent, "replay: delivery tasks were sent again")
    print(f"  replay   {n:>9,} notifications in {replay:7.2f} s, nothing created")
    print(f"  ({messages_sent:,} delivery tasks waiting on the broker)")
    settle()

    print(f"\nDelivering {2 * n:,} deliveries with {WORKERS} workers:")
    delivered = deliver_all(2 * n, variables)
    check_delivered(n, books)
    print(f"  all sent; {delivered['wall']:.1f} s from starting the workers")

    report(written, replay, args.batch, delivered, n)


if __name__ == "__main__":
    main()
