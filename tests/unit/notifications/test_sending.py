"""Notifications on SQLite, the sending side: notify and notify_many with dedupe, the
deliveries each creates (recipients, preferences, quiet hours, webhook endpoints), the
chunks queued for the workers, job alerts to staff and company scoping. Templates and the
in-app and email channels are in test_delivery.py, webhooks and their secrets in
test_webhooks.py; the helpers they share are in helpers.py, the fixtures in conftest.py.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail

from notifications import alerts
from notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    Preference,
    Priority,
    QuietHours,
    WebhookEndpoint,
)
from notifications.services import delivery, sending
from notifications.services.sending import Message, NotifyError, notify, notify_many
from tests.factories import UserFactory
from tests.unit.notifications.helpers import (
    KIND,
    UTC,
    make_endpoint,
    party,
    statuses,
    the_delivery,
    work,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notice")]

LONDON = zoneinfo.ZoneInfo("Europe/London")
User = get_user_model()


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


# --- notify and dedupe ------------------------------------------------------------------------


def test_notify_creates_one_notification_and_a_delivery_per_channel(
    company, user, calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notification = notify(user, KIND, {"topic": "rent"}, company=company, dedupe_key="rent:1")

    assert (notification.company, notification.user, notification.recipient_key) == (company, user, f"user:{user.pk}")
    assert notification.recipient_email == user.email
    assert notification.channels == [Channel.IN_APP, Channel.EMAIL]
    assert notification.data == {"topic": "rent"}
    assert statuses(notification) == {Channel.IN_APP: DeliveryStatus.QUEUED, Channel.EMAIL: DeliveryStatus.QUEUED}
    assert sorted(calls.delayed) == sorted(
        [
            (Channel.IN_APP, [the_delivery(notification, Channel.IN_APP).pk]),
            (Channel.EMAIL, [the_delivery(notification, Channel.EMAIL).pk]),
        ]
    )


def test_notify_again_with_the_same_dedupe_key_returns_the_same_notification_and_creates_nothing(
    company, user, calls, django_capture_on_commit_callbacks
):
    first = notify(user, KIND, {"topic": "rent"}, company=company, dedupe_key="rent:1")
    deliveries = Delivery.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        again = notify(user, KIND, {"topic": "other"}, company=company, dedupe_key="rent:1")

    assert again.pk == first.pk
    assert again.data == {"topic": "rent"}
    assert (Notification.objects.count(), Delivery.objects.count()) == (1, deliveries)
    assert calls.delayed == []


def test_dedupe_keys_are_per_company(company, other_company, user):
    a = notify(user, KIND, company=company, dedupe_key="same")
    b = notify(user, KIND, company=other_company, dedupe_key="same")

    assert a.pk != b.pk
    assert Notification.objects.filter(dedupe_key="same").count() == 2


def test_platform_notifications_dedupe_too(staff):
    first = notify(staff, KIND, dedupe_key="platform:1")
    again = notify(staff, KIND, dedupe_key="platform:1")

    assert first.pk == again.pk
    assert first.company is None
    assert Notification.objects.filter(company=None).count() == 1


def test_a_company_given_by_id_dedupes_with_the_same_company_given_as_a_row(company, user):
    first = notify(user, KIND, company=company, dedupe_key="k")
    again = notify(user, KIND, company=company.pk, dedupe_key="k")

    assert first.pk == again.pk


def test_without_a_dedupe_key_each_call_creates_a_notification(company, user):
    notify(user, KIND, company=company)
    notify(user, KIND, company=company)

    assert Notification.objects.count() == 2
    assert all(key.startswith("auto:") for key in Notification.objects.values_list("dedupe_key", flat=True))


def test_notify_many_writes_a_thousand_in_a_bounded_number_of_queries(
    company, user, calls, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    # Every rule the call reads is present: a preference, quiet hours (outside the window)
    # and a webhook endpoint, so the pin covers the whole path.
    Preference.objects.create(company=company, recipient_key="billing.customer:7", channel=Channel.EMAIL, enabled=False)
    QuietHours.objects.create(company=company, start=datetime.time(3), end=datetime.time(4), timezone="UTC")
    make_endpoint(company)
    messages = [
        Message(
            party(f"billing.customer:{n}", email=f"c{n}@example.com"),
            KIND,
            {"topic": f"invoice {n}"},
            company=company,
            dedupe_key=f"invoice:{n}",
            channels=[Channel.EMAIL, Channel.WEBHOOK],
        )
        for n in range(1000)
    ]

    with (
        time_machine.travel(datetime.datetime(2026, 11, 2, 12, tzinfo=UTC), tick=False),
        django_assert_max_num_queries(7),  # savepoint, insert, preferences, quiet hours, endpoints, insert, release
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcome = notify_many(messages)

    assert (len(outcome.created), outcome.skipped) == (1000, 0)
    assert (outcome.queued, outcome.waiting, outcome.suppressed) == (1999, 0, 1)
    assert Notification.objects.count() == 1000
    assert Delivery.objects.count() == 2000
    assert len(calls.ids()) == 1999


def test_notify_many_takes_a_duplicate_key_within_one_call_once(company, user):
    outcome = notify_many(
        [
            Message(user, KIND, {"topic": "a"}, company=company, dedupe_key="twice"),
            Message(user, KIND, {"topic": "b"}, company=company, dedupe_key="twice"),
            Message(user, KIND, {"topic": "c"}, company=company.pk, dedupe_key="twice"),
        ]
    )

    assert (len(outcome.created), outcome.skipped) == (1, 0)
    assert Notification.objects.get().data == {"topic": "a"}


def test_rerunning_a_batch_creates_nothing_and_queues_nothing(company, calls, django_capture_on_commit_callbacks):
    batch = [Message(party(f"billing.customer:{n}"), KIND, company=company, dedupe_key=f"k{n}") for n in range(20)]
    with django_capture_on_commit_callbacks(execute=True):
        notify_many(batch)
    before = (Notification.objects.count(), Delivery.objects.count(), len(calls.delayed))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcome = notify_many(batch)

    assert (outcome.created, outcome.skipped, outcome.queued) == ([], 20, 0)
    assert (Notification.objects.count(), Delivery.objects.count(), len(calls.delayed)) == before
    assert callbacks == []


def test_a_rerun_with_some_new_keys_creates_only_those(company):
    notify_many([Message(party(), KIND, company=company, dedupe_key=f"k{n}") for n in range(3)])

    outcome = notify_many([Message(party(), KIND, company=company, dedupe_key=f"k{n}") for n in range(5)])

    assert (len(outcome.created), outcome.skipped) == (2, 3)
    assert set(Notification.objects.filter(pk__in=outcome.created).values_list("dedupe_key", flat=True)) == {"k3", "k4"}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"channels": ["sms"]}, "unknown channels"),
        ({"priority": "very"}, "priority must be one of"),
        ({"dedupe_key": "x" * 201}, "at most 200"),
        ({"context": ["not", "a", "dict"]}, "mapping"),
    ],
)
def test_a_bad_call_is_refused_with_a_notify_error(company, user, change, error):
    with pytest.raises(NotifyError, match=error):
        notify_many([Message(**{"recipient": user, "kind": KIND, "company": company, **change})])
    assert not Notification.objects.exists()


def test_context_values_are_stored_as_json_text(company, user):
    notification = notify(user, KIND, {"topic": "due", "on": datetime.date(2026, 11, 30), "amount": Decimal("12.50")})

    assert notification.data == {"topic": "due", "on": "2026-11-30", "amount": "12.50"}


# --- Queued in chunks -------------------------------------------------------------------------


def test_queued_deliveries_go_to_the_tasks_in_chunks_of_notify_delivery_chunk(
    settings, company, calls, django_capture_on_commit_callbacks
):
    settings.NOTIFY_DELIVERY_CHUNK = 2
    users = [UserFactory(username=f"u{n}") for n in range(5)]

    with django_capture_on_commit_callbacks(execute=True):
        notify_many(Message(u, KIND, company=company, dedupe_key=f"k{u.pk}") for u in users)

    sizes = Counter()
    for channel, ids in calls.delayed:
        sizes[channel] += 1
        assert 1 <= len(ids) <= 2
    assert sizes == {Channel.IN_APP: 3, Channel.EMAIL: 3}
    assert calls.ids() == sorted(Delivery.objects.values_list("pk", flat=True))


def test_webhook_deliveries_are_queued_per_endpoint_in_webhook_chunks(
    company, calls, django_capture_on_commit_callbacks
):
    first = make_endpoint(company, "https://one.example.com/in")
    second = make_endpoint(company, "https://two.example.com/in", kinds=[KIND])
    make_endpoint(company, "https://other.example.com/in", kinds=["invoice_issued"])  # receives other kinds only
    make_endpoint(company, "https://off.example.com/in", active=False)
    count = sending.WEBHOOK_CHUNK + 5

    with django_capture_on_commit_callbacks(execute=True):
        notify_many(
            Message(party(f"billing.customer:{n}"), KIND, company=company, dedupe_key=f"k{n}", channels=["webhook"])
            for n in range(count)
        )

    by_endpoint: dict[int, list[int]] = {}
    for channel, ids in calls.delayed:
        assert channel == Channel.WEBHOOK
        endpoints = set(Delivery.objects.filter(pk__in=ids).values_list("endpoint", flat=True))
        assert len(endpoints) == 1  # a task posts to one endpoint only
        by_endpoint.setdefault(endpoints.pop(), []).append(len(ids))
    assert by_endpoint == {first.pk: [sending.WEBHOOK_CHUNK, 5], second.pk: [sending.WEBHOOK_CHUNK, 5]}


def test_no_active_endpoint_means_no_webhook_delivery(company, calls):
    make_endpoint(company, active=False)

    notification = notify(party(), KIND, company=company, channels=["webhook", "email"])

    assert statuses(notification) == {Channel.EMAIL: DeliveryStatus.QUEUED}


def test_a_company_endpoint_does_not_receive_another_company_notifications(company, other_company):
    make_endpoint(other_company)

    notification = notify(party(), KIND, company=company, channels=["webhook"])

    assert not notification.deliveries.exists()


# --- Recipients -------------------------------------------------------------------------------


def test_a_user_recipient_is_keyed_by_id_and_named_by_full_name(company, user):
    notification = notify(user, KIND, company=company)

    assert (notification.recipient_key, notification.recipient_name) == (f"user:{user.pk}", "Rita")
    assert notification.recipient_email == "reader@example.com"


def test_a_party_without_an_email_has_its_email_suppressed_and_no_inbox(company, other_company):
    # Any model with a name stands for a party; a company has a name and no email.
    notification = notify(other_company, KIND, company=company, dedupe_key="party")

    assert notification.recipient_key == f"ledger.company:{other_company.pk}"
    assert notification.recipient_name == "Rival Ledgers plc"
    assert (notification.party_type.model, notification.party_id) == ("company", str(other_company.pk))
    assert notification.party == other_company
    assert notification.user is None
    email, in_app = the_delivery(notification, Channel.EMAIL), the_delivery(notification, Channel.IN_APP)
    assert (email.status, email.last_error) == (DeliveryStatus.SUPPRESSED, "no email address")
    assert (in_app.status, in_app.last_error) == (DeliveryStatus.SUPPRESSED, "no user to show it to")


def test_a_party_notification_attributes_win_over_name_and_email(company, other_company, user):
    other_company.notification_name = "Accounts payable"
    other_company.notification_email = "ap@rival.example.com"
    other_company.notification_user = user  # its portal user sees it in the app

    notification = notify(other_company, KIND, company=company)

    assert (notification.recipient_name, notification.recipient_email) == ("Accounts payable", "ap@rival.example.com")
    assert notification.user == user
    assert statuses(notification) == {Channel.IN_APP: DeliveryStatus.QUEUED, Channel.EMAIL: DeliveryStatus.QUEUED}


def test_a_party_preferred_channels_restrict_the_channels(company, other_company):
    other_company.notification_email = "ap@rival.example.com"
    other_company.notification_channels = ["email"]

    notification = notify(other_company, KIND, company=company, channels=["in_app", "email", "webhook"])

    assert notification.channels == ["email"]
    assert statuses(notification) == {Channel.EMAIL: DeliveryStatus.QUEUED}


def test_a_recipient_dataclass_with_preferred_channels_restricts_them_too(company):
    notification = notify(party(channels=("webhook",)), KIND, company=company)

    assert notification.channels == []
    assert not notification.deliveries.exists()


def test_in_app_without_a_user_is_suppressed(company):
    notification = notify(party(), KIND, company=company, channels=["in_app"])

    assert the_delivery(notification, Channel.IN_APP).last_error == "no user to show it to"
    assert the_delivery(notification, Channel.IN_APP).status == DeliveryStatus.SUPPRESSED


def test_an_unsaved_recipient_is_refused(company):
    with pytest.raises(ValueError, match="saved user or party"):
        notify(User(username="ghost"), KIND, company=company)


# --- Preferences ------------------------------------------------------------------------------


def prefer(company, user, channel: str, enabled: bool, kind: str = "") -> Preference:
    return Preference.objects.create(
        company=company, recipient_key=f"user:{user.pk}", kind=kind, channel=channel, enabled=enabled
    )


def test_a_channel_turned_off_is_suppressed_with_the_reason_and_the_others_still_go(company, user):
    prefer(company, user, Channel.EMAIL, False)

    notification = notify(user, KIND, company=company)

    email = the_delivery(notification, Channel.EMAIL)
    assert (email.status, email.last_error) == (
        DeliveryStatus.SUPPRESSED,
        f"user:{user.pk} turned email off for {KIND}",
    )
    assert the_delivery(notification, Channel.IN_APP).status == DeliveryStatus.QUEUED


def test_a_kind_specific_preference_beats_the_all_kinds_one(company, user):
    prefer(company, user, Channel.EMAIL, False)
    prefer(company, user, Channel.EMAIL, True, kind=KIND)

    assert statuses(notify(user, KIND, company=company))[Channel.EMAIL] == DeliveryStatus.QUEUED
    assert statuses(notify(user, "job_alert", company=company))[Channel.EMAIL] == DeliveryStatus.SUPPRESSED


def test_a_kind_specific_off_beats_all_kinds_on(company, user):
    prefer(company, user, Channel.EMAIL, True)
    prefer(company, user, Channel.EMAIL, False, kind=KIND)

    assert statuses(notify(user, KIND, company=company))[Channel.EMAIL] == DeliveryStatus.SUPPRESSED


def test_a_company_preference_beats_the_platform_preference(company, other_company, user):
    prefer(None, user, Channel.EMAIL, False)
    prefer(company, user, Channel.EMAIL, True)

    assert statuses(notify(user, KIND, company=company))[Channel.EMAIL] == DeliveryStatus.QUEUED
    # Elsewhere the platform's preference holds.
    assert statuses(notify(user, KIND, company=other_company))[Channel.EMAIL] == DeliveryStatus.SUPPRESSED
    assert statuses(notify(user, KIND))[Channel.EMAIL] == DeliveryStatus.SUPPRESSED


def test_another_company_preference_does_not_apply(company, other_company, user):
    prefer(other_company, user, Channel.EMAIL, False)

    assert statuses(notify(user, KIND, company=company))[Channel.EMAIL] == DeliveryStatus.QUEUED


def test_a_preference_can_turn_webhooks_off_for_a_party(company):
    make_endpoint(company)
    Preference.objects.create(company=company, recipient_key="billing.customer:1", channel="webhook", enabled=False)

    notification = notify(party(), KIND, company=company, channels=["webhook", "email"])

    assert statuses(notification) == {Channel.WEBHOOK: DeliveryStatus.SUPPRESSED, Channel.EMAIL: DeliveryStatus.QUEUED}


# --- Quiet hours ------------------------------------------------------------------------------


def london(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=LONDON)


def quiet(company, start=(22, 0), end=(7, 0), *, recipient_key: str = "", tz: str = "Europe/London") -> QuietHours:
    return QuietHours.objects.create(
        company=company,
        recipient_key=recipient_key,
        start=datetime.time(*start),
        end=datetime.time(*end),
        timezone=tz,
    )


def test_in_quiet_hours_email_waits_for_the_window_end_and_in_app_goes_at_once(
    company, user, calls, django_capture_on_commit_callbacks
):
    quiet(company)
    make_endpoint(company)

    with time_machine.travel(london(2026, 7, 1, 23, 30), tick=False), django_capture_on_commit_callbacks(execute=True):
        outcome = notify_many([Message(user, KIND, company=company, channels=["in_app", "email", "webhook"])])

    notification = Notification.objects.get()
    email, webhook = the_delivery(notification, Channel.EMAIL), the_delivery(notification, Channel.WEBHOOK)
    assert (outcome.queued, outcome.waiting) == (1, 2)
    assert email.status == webhook.status == DeliveryStatus.WAITING
    # 07:00 British Summer Time the next morning is 06:00 UTC.
    assert email.next_attempt_at == webhook.next_attempt_at == datetime.datetime(2026, 7, 2, 6, 0, tzinfo=UTC)
    assert the_delivery(notification, Channel.IN_APP).status == DeliveryStatus.QUEUED
    assert calls.delayed == [(Channel.IN_APP, [the_delivery(notification, Channel.IN_APP).pk])]


def test_after_midnight_inside_the_window_the_same_morning_is_the_end(company, user):
    quiet(company)

    with time_machine.travel(london(2026, 7, 2, 3, 15), tick=False):
        email = the_delivery(notify(user, KIND, company=company), Channel.EMAIL)

    assert email.next_attempt_at == london(2026, 7, 2, 7, 0)


def test_outside_the_window_email_goes_at_once(company, user):
    quiet(company)

    with time_machine.travel(london(2026, 7, 2, 7, 0), tick=False):
        email = the_delivery(notify(user, KIND, company=company), Channel.EMAIL)

    assert email.status == DeliveryStatus.QUEUED


def test_an_urgent_notification_goes_through_quiet_hours(company, user):
    quiet(company)

    with time_machine.travel(london(2026, 7, 1, 23, 30), tick=False):
        notification = notify(user, KIND, company=company, priority=Priority.URGENT)

    assert set(statuses(notification).values()) == {DeliveryStatus.QUEUED}


def test_a_recipient_window_replaces_the_company_window(company, user, teammate):
    quiet(company)
    quiet(company, (9, 0), (10, 0), recipient_key=f"user:{user.pk}", tz="America/New_York")

    with time_machine.travel(london(2026, 7, 1, 23, 30), tick=False):
        mine = the_delivery(notify(user, KIND, company=company), Channel.EMAIL)
        theirs = the_delivery(notify(teammate, KIND, company=company), Channel.EMAIL)
    with time_machine.travel(datetime.datetime(2026, 7, 2, 9, 30, tzinfo=zoneinfo.ZoneInfo("America/New_York"))):
        later = the_delivery(notify(user, KIND, company=company), Channel.EMAIL)

    assert mine.status == DeliveryStatus.QUEUED  # 18:30 in New York: outside the user's own window
    assert theirs.status == DeliveryStatus.WAITING
    assert (later.status, later.next_attempt_at) == (
        DeliveryStatus.WAITING,
        datetime.datetime(2026, 7, 2, 14, 0, tzinfo=UTC),  # 10:00 EDT
    )


def test_a_window_of_another_company_does_not_hold(company, other_company, user):
    quiet(other_company)

    with time_machine.travel(london(2026, 7, 1, 23, 30), tick=False):
        email = the_delivery(notify(user, KIND, company=company), Channel.EMAIL)

    assert email.status == DeliveryStatus.QUEUED


def test_platform_notifications_have_no_quiet_hours(company, staff):
    quiet(company)

    with time_machine.travel(london(2026, 7, 1, 23, 30), tick=False):
        email = the_delivery(notify(staff, KIND), Channel.EMAIL)

    assert email.status == DeliveryStatus.QUEUED


@pytest.mark.parametrize(
    ("clock", "release"),
    [
        ((11, 59), None),
        ((12, 0), (14, 0)),
        ((13, 59), (14, 0)),
        ((14, 0), None),
        ((23, 0), None),
    ],
)
def test_a_window_that_does_not_wrap_midnight_holds_only_inside(company, clock, release):
    window = quiet(company, (12, 0), (14, 0))

    at = window.release_at(london(2026, 1, 15, *clock))

    assert at == (london(2026, 1, 15, *release) if release else None)


@pytest.mark.parametrize(
    ("now", "release_utc"),
    [
        # Clocks go forward at 01:00 GMT on Sunday 29 March 2026: 07:00 is BST, 06:00 UTC.
        (london(2026, 3, 28, 23, 30), datetime.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (london(2026, 3, 29, 0, 30), datetime.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (london(2026, 3, 29, 3, 30), datetime.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Clocks go back at 02:00 BST on Sunday 25 October 2026: 07:00 is GMT, 07:00 UTC.
        (london(2026, 10, 24, 23, 30), datetime.datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (london(2026, 10, 25, 1, 30), datetime.datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (london(2026, 10, 25, 1, 30).replace(fold=1), datetime.datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
    ],
)
def test_on_the_days_the_clocks_change_the_window_ends_at_the_local_end(company, user, now, release_utc):
    quiet(company)

    with time_machine.travel(now, tick=False):
        email = the_delivery(notify(user, KIND, company=company), Channel.EMAIL)

    assert (email.status, email.next_attempt_at) == (DeliveryStatus.WAITING, release_utc)


def test_a_window_ending_in_the_skipped_hour_ends_when_the_clocks_jump_or_later(company):
    window = quiet(company, (0, 0), (1, 30))  # 01:30 does not exist in London on 29 March 2026

    at = window.release_at(london(2026, 3, 29, 0, 45))

    assert at >= datetime.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # the moment 01:00 GMT became 02:00 BST


def test_in_the_repeated_hour_the_window_end_is_not_in_the_past(company):
    window = quiet(company, (22, 0), (1, 30))  # 01:00-02:00 happens twice on 25 October 2026
    now = london(2026, 10, 25, 1, 15).replace(fold=1)  # the second time: 01:15 GMT

    at = window.release_at(now)

    assert at == datetime.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_sweep_releases_waiting_deliveries_at_the_window_end_and_not_a_minute_before(
    company, user, calls, django_capture_on_commit_callbacks
):
    quiet(company)
    with time_machine.travel(london(2026, 11, 2, 23, 30), tick=False):
        email = the_delivery(notify(user, KIND, company=company, channels=["email"]), Channel.EMAIL)

    with time_machine.travel(london(2026, 11, 3, 6, 59), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            early = delivery.sweep()
        email.refresh_from_db()
        assert (early["released"], email.status, calls.delayed) == (0, DeliveryStatus.WAITING, [])
    with time_machine.travel(london(2026, 11, 3, 7, 0), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            on_time = delivery.sweep()
        email.refresh_from_db()
        assert (on_time["released"], email.status) == (1, DeliveryStatus.QUEUED)
        assert calls.delayed == [(Channel.EMAIL, [email.pk])]
        work(calls, django_capture_on_commit_callbacks)

    email.refresh_from_db()
    assert email.status == DeliveryStatus.SENT
    assert email.sent_at == london(2026, 11, 3, 7, 0)
    assert len(mail.outbox) == 1


# --- Job alerts to staff ----------------------------------------------------------------------


def job_alert(severity: str = "critical"):
    from scheduling.choices import Cause
    from scheduling.models import JobAlert, JobDefinition

    return JobAlert.objects.create(
        job=JobDefinition.objects.get(code="TEST_FAIL"),
        cause=Cause.CONSECUTIVE_FAILURES,
        severity=severity,
        message="TEST_FAIL failed 2 times in a row",
    )


def test_a_job_alert_gives_each_active_staff_user_one_notification_by_email_and_in_app(
    staff, user, calls, django_capture_on_commit_callbacks
):
    second = UserFactory(username="staff2", is_staff=True)
    UserFactory(username="retired", is_staff=True, is_active=False)
    alert = job_alert()

    with django_capture_on_commit_callbacks(execute=True):
        alerts.deliver_job_alert(alert)

    notifications = Notification.objects.filter(kind="job_alert").order_by("user_id")
    assert [n.user for n in notifications] == [staff, second]
    for notification in notifications:
        assert notification.company is None
        assert notification.priority == Priority.URGENT  # critical
        assert notification.dedupe_key == f"job_alert:{alert.pk}:user:{notification.user_id}"
        assert notification.data["job"] == "TEST_FAIL"
        assert statuses(notification) == {Channel.EMAIL: DeliveryStatus.QUEUED, Channel.IN_APP: DeliveryStatus.QUEUED}
    assert len(calls.ids()) == 4


def test_a_warning_alert_is_high_priority(staff):
    alerts.deliver_job_alert(job_alert("warning"))

    assert Notification.objects.get().priority == Priority.HIGH


def test_delivering_a_job_alert_again_creates_nothing(staff, calls, django_capture_on_commit_callbacks):
    alert = job_alert()
    alerts.deliver_job_alert(alert)

    with django_capture_on_commit_callbacks(execute=True):
        alerts.deliver_job_alert(alert)

    assert Notification.objects.count() == 1
    assert calls.delayed == []


def test_a_job_alert_with_no_staff_user_sends_nothing_and_does_not_fail(user, caplog):
    alert = job_alert()

    alerts.deliver_job_alert(alert)

    assert not Notification.objects.exists()
    assert f"alert {alert.pk} has no active staff user" in caplog.text


def test_a_job_alert_is_rendered_and_mailed_to_staff(staff, calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alerts.deliver_job_alert(job_alert())
    work(calls, django_capture_on_commit_callbacks)

    (message,) = mail.outbox
    assert message.subject == "[Countinghouse critical] TEST_FAIL: consecutive failures"
    assert message.to == [staff.email]
    assert "TEST_FAIL failed 2 times in a row" in message.body
    assert Notification.objects.inbox(staff).count() == 1


# --- Company scoping --------------------------------------------------------------------------


def test_the_inbox_shows_only_the_user_own_delivered_notifications(
    company, owner, teammate, calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        mine = notify(owner, KIND, company=company, channels=["in_app"])
        notify(teammate, KIND, company=company, channels=["in_app"])
    notify(owner, KIND, company=company, channels=["in_app"])  # not delivered yet: its task never ran
    notify(owner, KIND, company=company, channels=["email"])  # never in the app
    work(calls, django_capture_on_commit_callbacks)

    assert list(Notification.objects.inbox(owner)) == [mine]
    assert list(Notification.objects.inbox(owner).unread()) == [mine]


def test_an_anonymous_user_has_no_inbox_and_sees_no_company(company, owner):
    from django.contrib.auth.models import AnonymousUser

    notify(owner, KIND, company=company)

    assert not Notification.objects.inbox(AnonymousUser()).exists()
    assert not Notification.objects.for_user(AnonymousUser()).exists()


def test_for_user_keeps_a_member_to_their_own_company_rows_and_staff_see_all(
    company, other_company, owner, outsider, staff
):
    a = notify(owner, KIND, company=company)
    b = notify(outsider, KIND, company=other_company)
    platform = notify(staff, KIND)  # no company: only staff read it
    make_endpoint(company)
    make_endpoint(other_company)

    assert list(Notification.objects.for_user(owner)) == [a]
    assert list(Notification.objects.for_user(outsider)) == [b]
    assert set(Delivery.objects.for_user(owner).values_list("notification", flat=True)) == {a.pk}
    assert set(WebhookEndpoint.objects.for_user(outsider).values_list("company", flat=True)) == {other_company.pk}
    assert set(Notification.objects.for_user(staff)) == {a, b, platform}
    assert list(Notification.objects.for_company(other_company)) == [b]


def test_a_malformed_kind_is_refused_with_a_notify_error(company, user):
    with pytest.raises(NotifyError):
        notify(user, "Invoice Issued!", company=company)


def test_amend_merges_values_into_the_context_by_dedupe_key_within_the_company(company, other_company, user):
    from django.db import transaction

    with transaction.atomic():
        notify_many(
            [
                Message(user, KIND, {"topic": "a", "number": ""}, company=company, dedupe_key="doc:1"),
                Message(user, KIND, {"topic": "b", "number": ""}, company=other_company, dedupe_key="doc:1"),
            ]
        )
        changed = sending.amend(company, {"doc:1": {"number": "INV-7"}, "doc:2": {"number": "INV-8"}})

    assert changed >= 1
    assert dict(Notification.objects.values_list("company__slug", "data")) == {
        company.slug: {"topic": "a", "number": "INV-7"},
        other_company.slug: {"topic": "b", "number": ""},
    }


@pytest.mark.django_db(transaction=True)
def test_amend_outside_a_transaction_is_refused(company):
    with pytest.raises(NotifyError, match="in the transaction that created"):
        sending.amend(company, {"doc:1": {"number": "INV-7"}})
