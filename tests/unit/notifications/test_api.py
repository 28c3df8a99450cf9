"""The notifications API under /api/v1/notifications/: the caller's own inbox and
preferences, and, scoped to the caller's companies, notifications, deliveries and resending,
webhook endpoints (secrets write-only), templates and previews, preferences, quiet hours
and the kinds."""

from __future__ import annotations

import datetime

import pytest

from notifications.models import Delivery, DeliveryStatus, Notification, Preference, Template, WebhookEndpoint
from notifications.services import webhooks
from tests.factories import (
    CompanyFactory,
    DeliveryFactory,
    MembershipFactory,
    NotificationFactory,
    PreferenceFactory,
    QuietHoursFactory,
    TemplateFactory,
    UserFactory,
    WebhookEndpointFactory,
)
from tests.unit.notifications.helpers import (
    DELIVERIES,
    ENDPOINTS,
    INBOX,
    KINDS,
    NOTIFICATIONS,
    PREFERENCES,
    QUIET_HOURS,
    TEMPLATES,
    ids,
    invalid,
    template_body,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


# --- Inbox ------------------------------------------------------------------------------


def test_inbox_holds_the_callers_own_notifications_from_every_company_and_the_platform(
    client, owner, teammate, company, other_company
):
    mine = NotificationFactory(company=company, user=owner)
    elsewhere = NotificationFactory(company=other_company, user=owner)
    platform = NotificationFactory(company=None, user=owner)
    NotificationFactory(company=company, user=owner, in_app_at=None)  # its in-app delivery has not gone out
    NotificationFactory(company=company, user=teammate)

    listed = ids(client.get(INBOX))

    assert sorted(listed) == sorted([mine.pk, elsewhere.pk, platform.pk])


def test_another_users_notification_is_not_found_in_the_inbox(client, teammate, company):
    theirs = NotificationFactory(company=company, user=teammate)

    answers = [
        client.get(f"{INBOX}/{theirs.pk}").status_code,
        client.post(f"{INBOX}/{theirs.pk}/read").status_code,
        client.post(f"{INBOX}/{theirs.pk}/unread").status_code,
    ]

    assert answers == [404, 404, 404]
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_inbox_filters_by_unread_and_kind_and_refuses_a_bad_flag(client, owner, company):
    unread = NotificationFactory(company=company, user=owner, kind="job_alert")
    read = NotificationFactory(company=company, user=owner, kind="job_alert", read_at=NOW)
    other_kind = NotificationFactory(company=company, user=owner, kind="webhook_disabled")

    assert sorted(ids(client.get(INBOX, {"unread": "true"}))) == sorted([unread.pk, other_kind.pk])
    assert ids(client.get(INBOX, {"unread": "false"})) == [read.pk]
    assert ids(client.get(INBOX, {"kind": "webhook_disabled"})) == [other_kind.pk]
    assert "unread" in invalid(client.get(INBOX, {"unread": "maybe"}))


def test_inbox_is_newest_first_and_pages_by_cursor(client, owner, company):
    made = [
        NotificationFactory(company=company, user=owner, in_app_at=NOW - datetime.timedelta(minutes=i))
        for i in range(3)
    ]

    first = client.get(INBOX, {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert [row["id"] for row in first["results"] + second["results"]] == [n.pk for n in made]


def test_reading_marks_once_and_unread_clears_it(client, owner, company, time_machine):
    notification = NotificationFactory(company=company, user=owner)

    first = client.post(f"{INBOX}/{notification.pk}/read").json()
    time_machine.move_to(NOW + datetime.timedelta(hours=1), tick=False)
    again = client.post(f"{INBOX}/{notification.pk}/read").json()
    cleared = client.post(f"{INBOX}/{notification.pk}/unread").json()

    assert (first["read"], first["read_at"]) == (True, "2026-11-21T12:00:00Z")
    assert again["read_at"] == first["read_at"]
    assert (cleared["read"], cleared["read_at"]) == (False, None)
    notification.refresh_from_db()
    assert notification.read_at is None


def test_read_all_marks_the_callers_unread_ones_and_answers_the_count(client, owner, teammate, company):
    NotificationFactory.create_batch(3, company=company, user=owner)
    NotificationFactory(company=None, user=owner, read_at=NOW - datetime.timedelta(days=1))
    theirs = NotificationFactory(company=company, user=teammate)

    before = client.get(f"{INBOX}/unread-count").json()
    marked = client.post(f"{INBOX}/read-all").json()
    after = client.get(f"{INBOX}/unread-count").json()

    assert (before, marked, after) == ({"count": 3}, {"count": 3}, {"count": 0})
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_the_inbox_reads_in_a_fixed_number_of_queries(client, owner, company, django_assert_num_queries):
    NotificationFactory.create_batch(20, company=company, user=owner)

    with django_assert_num_queries(2):  # the token, the page
        response = client.get(INBOX)

    assert len(response.json()["results"]) == 20


def test_anonymous_callers_get_401_from_the_inbox(api):
    assert api.get(INBOX).status_code == 401
    assert api.get(f"{INBOX}/unread-count").status_code == 401
    assert api.post(f"{INBOX}/read-all").status_code == 401


# --- Own preferences --------------------------------------------------------------------


def test_a_user_replaces_their_own_preferences(client, owner, teammate, company):
    PreferenceFactory(company=company, recipient_key=f"user:{owner.pk}", channel="webhook", enabled=False)
    theirs = PreferenceFactory(company=company, recipient_key=f"user:{teammate.pk}", channel="email")
    wanted = [
        {"company": None, "kind": "", "channel": "email", "enabled": False},
        {"company": company.pk, "kind": "job_alert", "channel": "email", "enabled": True},
    ]

    put = client.put(f"{INBOX}/preferences", {"preferences": wanted}, format="json")
    got = client.get(f"{INBOX}/preferences")

    assert put.status_code == 200, put.content
    assert put.json() == got.json() == {"preferences": wanted}
    rows = Preference.objects.filter(recipient_key=f"user:{owner.pk}")
    assert {(r.company_id, r.kind, r.channel, r.enabled) for r in rows} == {
        (None, "", "email", False),
        (company.pk, "job_alert", "email", True),
    }
    assert Preference.objects.filter(pk=theirs.pk).exists()


def test_own_preferences_refuse_bad_input(client, other_company):
    def put(*items):
        return client.put(f"{INBOX}/preferences", {"preferences": list(items)}, format="json")

    item = {"kind": "", "channel": "email", "enabled": False}
    hidden = put({**item, "company": other_company.pk})
    twice = put(item, item)
    bad = put({**item, "channel": "pigeon", "kind": "Not A Kind"})
    missing = client.put(f"{INBOX}/preferences", {}, format="json")

    assert "company" in invalid(hidden)["preferences"]["0"]
    assert "given twice" in invalid(twice)["preferences"][0]
    assert set(invalid(bad)["preferences"]["0"]) == {"channel", "kind"}
    assert "preferences" in invalid(missing)


# --- Notifications of a company ----------------------------------------------------------


def test_members_list_their_companys_notifications_with_deliveries(client, owner, teammate, company, other_company):
    to_teammate = NotificationFactory(company=company, user=teammate)
    failed = DeliveryFactory(notification=to_teammate, channel="email", status="failed", last_error="refused")
    NotificationFactory(company=other_company)
    NotificationFactory(company=None, user=owner)  # the platform's: in the inbox, not here

    rows = client.get(NOTIFICATIONS).json()["results"]

    assert [row["id"] for row in rows] == [to_teammate.pk]
    assert rows[0]["deliveries"] == [
        {
            "id": failed.pk,
            "notification": to_teammate.pk,
            "company": company.pk,
            "channel": "email",
            "endpoint": None,
            "status": "failed",
            "attempts": 1,
            "last_error": "refused",
            "sent_at": None,
            "next_attempt_at": "2026-11-21T12:00:00Z",
            "provider_message_id": "",
            "created_at": "2026-11-21T12:00:00Z",
            "updated_at": "2026-11-21T12:00:00Z",
        }
    ]


def test_notifications_filter_by_company_kind_priority_recipient_dates_and_read(client, owner, company):
    MembershipFactory(user=owner, company=(rival := CompanyFactory(slug="second")))
    old = NotificationFactory(company=company, created_at=NOW - datetime.timedelta(days=3), read_at=NOW)
    urgent = NotificationFactory(company=company, priority="urgent", kind="webhook_disabled")
    theirs = NotificationFactory(company=rival, recipient_key="billing.customer:9", user=None)

    assert ids(client.get(NOTIFICATIONS, {"company": "second"})) == [theirs.pk]
    assert ids(client.get(NOTIFICATIONS, {"company": company.pk, "priority": "urgent"})) == [urgent.pk]
    assert ids(client.get(NOTIFICATIONS, {"kind": "webhook_disabled"})) == [urgent.pk]
    assert ids(client.get(NOTIFICATIONS, {"recipient_key": "billing.customer:9"})) == [theirs.pk]
    assert ids(client.get(NOTIFICATIONS, {"created_before": "2026-11-20T00:00:00Z"})) == [old.pk]
    assert ids(client.get(NOTIFICATIONS, {"created_after": "2026-11-20T00:00:00Z", "company": "acme"})) == [urgent.pk]
    assert ids(client.get(NOTIFICATIONS, {"read": "true"})) == [old.pk]


def test_notification_filters_refuse_bad_values(client, other_company):
    assert "company" in invalid(client.get(NOTIFICATIONS, {"company": other_company.slug}))
    assert "company" in invalid(client.get(NOTIFICATIONS, {"company": "99999999999999999999999"}))
    assert "priority" in invalid(client.get(NOTIFICATIONS, {"priority": "shouting"}))
    assert "created_after" in invalid(client.get(NOTIFICATIONS, {"created_after": "yesterday"}))
    assert "read" in invalid(client.get(NOTIFICATIONS, {"read": "perhaps"}))


def test_an_outsider_never_sees_another_companys_notifications_or_deliveries(api, outsider, company):
    notification = NotificationFactory(company=company)
    delivery = DeliveryFactory(notification=notification, status="failed")
    client = api.as_user(outsider)

    assert ids(client.get(NOTIFICATIONS)) == []
    assert ids(client.get(DELIVERIES)) == []
    assert client.get(f"{NOTIFICATIONS}/{notification.pk}").status_code == 404
    assert client.get(f"{DELIVERIES}/{delivery.pk}").status_code == 404
    assert client.post(f"{DELIVERIES}/{delivery.pk}/resend").status_code == 404
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.FAILED


def test_notifications_list_in_a_fixed_number_of_queries(client, company, django_assert_num_queries):
    for notification in NotificationFactory.create_batch(10, company=company):
        DeliveryFactory(notification=notification, channel="email")
        DeliveryFactory(notification=notification, channel="in_app")

    with django_assert_num_queries(3):  # the token, the page (companies a subquery), its deliveries
        response = client.get(NOTIFICATIONS)

    assert sum(len(row["deliveries"]) for row in response.json()["results"]) == 20


def test_notifications_are_read_only(client, company):
    notification = NotificationFactory(company=company)

    assert client.post(NOTIFICATIONS, {}, format="json").status_code == 405
    assert client.delete(f"{NOTIFICATIONS}/{notification.pk}").status_code == 405


# --- Deliveries -------------------------------------------------------------------------


def test_deliveries_filter_by_status_channel_endpoint_and_notification(client, company):
    endpoint = WebhookEndpointFactory(company=company)
    hook = DeliveryFactory(notification__company=company, channel="webhook", endpoint=endpoint, status="failed")
    mail = DeliveryFactory(notification__company=company, channel="email", status="sent")

    assert ids(client.get(DELIVERIES, {"status": "failed"})) == [hook.pk]
    assert ids(client.get(DELIVERIES, {"channel": "email"})) == [mail.pk]
    assert ids(client.get(DELIVERIES, {"endpoint": endpoint.pk})) == [hook.pk]
    assert ids(client.get(DELIVERIES, {"notification": mail.notification_id, "company": "acme"})) == [mail.pk]
    assert "status" in invalid(client.get(DELIVERIES, {"status": "lost"}))


def test_delivery_filters_refuse_another_companys_endpoint(client, other_company):
    theirs = WebhookEndpointFactory(company=other_company)

    assert "endpoint" in invalid(client.get(DELIVERIES, {"endpoint": theirs.pk}))


def test_resending_a_failed_delivery_queues_it_with_fresh_attempts(client, company):
    delivery = DeliveryFactory(notification__company=company, status="failed", attempts=6, last_error="down")

    response = client.post(f"{DELIVERIES}/{delivery.pk}/resend")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["attempts"], response.json()["last_error"]) == (
        "queued",
        0,
        "",
    )


def test_resending_a_sent_delivery_is_a_conflict(client, company):
    delivery = DeliveryFactory(notification__company=company, status="sent")

    response = client.post(f"{DELIVERIES}/{delivery.pk}/resend")

    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"delivery {delivery.pk} is sent; only failed or suppressed ones are resent"
    )


def test_resending_to_a_disabled_endpoint_is_a_conflict(client, company):
    endpoint = WebhookEndpointFactory(company=company, active=False)
    delivery = DeliveryFactory(notification__company=company, channel="webhook", endpoint=endpoint, status="suppressed")

    response = client.post(f"{DELIVERIES}/{delivery.pk}/resend")

    assert response.status_code == 409
    assert "enable it first" in response.json()["error"]["message"]


def test_staff_read_every_companys_deliveries_but_resend_only_as_members(api, staff, company):
    delivery = DeliveryFactory(notification__company=company, status="failed")
    client = api.as_user(staff)

    assert ids(client.get(DELIVERIES)) == [delivery.pk]
    assert client.post(f"{DELIVERIES}/{delivery.pk}/resend").status_code == 403
    MembershipFactory(user=staff, company=company)
    assert client.post(f"{DELIVERIES}/{delivery.pk}/resend").status_code == 200


# --- Webhook endpoints ------------------------------------------------------------------


def test_creating_an_endpoint_without_a_secret_shows_a_generated_one_once(client, company):
    created = client.post(
        ENDPOINTS,
        {"company": company.pk, "name": "Portal", "url": "https://portal.example.com/hooks", "kinds": ["job_alert"]},
        format="json",
    )

    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get(pk=created.json()["id"])
    assert endpoint.secret == secret
    assert secret not in endpoint.secret_encrypted
    later = [
        client.get(ENDPOINTS),
        client.get(f"{ENDPOINTS}/{endpoint.pk}"),
        client.patch(f"{ENDPOINTS}/{endpoint.pk}", {"name": "Portal 2"}, format="json"),
        client.post(f"{ENDPOINTS}/{endpoint.pk}/enable"),
    ]
    rows = [later[0].json()["results"][0], *(response.json() for response in later[1:])]
    for response in later:
        assert response.status_code == 200, response.content
        assert secret not in response.content.decode()
    assert all("secret" not in row for row in rows)


def test_an_endpoint_created_with_its_own_secret_does_not_echo_it(client, company):
    mine = "a-secret-of-my-own-choosing-0123456789"

    created = client.post(
        ENDPOINTS,
        {"company": company.pk, "name": "ERP", "url": "http://erp.example.com/in", "secret": mine},
        format="json",
    )

    assert created.status_code == 201, created.content
    assert created.json()["secret"] is None
    assert mine not in created.content.decode()
    assert WebhookEndpoint.objects.get(pk=created.json()["id"]).secret == mine


def test_endpoint_input_is_checked_field_by_field(client, company):
    WebhookEndpointFactory(company=company, url="https://taken.example.com/hooks")

    def create(**fields):
        body = {"company": company.pk, "name": "Portal", "url": "https://portal.example.com/hooks", **fields}
        return client.post(ENDPOINTS, body, format="json")

    assert "url" in invalid(create(url="ftp://files.example.com/drop"))
    assert "url" in invalid(create(url="not a url"))
    assert "url" in invalid(create(url="https://taken.example.com/hooks"))
    assert "kinds" in invalid(create(kinds=["Invoice Issued"]))
    assert "kinds" in invalid(create(kinds="job_alert"))
    assert "secret" in invalid(create(secret="short"))
    assert "name" in invalid(create(name=""))


def test_rotating_a_secret_shows_the_new_one_once(client, company):
    endpoint = WebhookEndpointFactory(company=company)

    rotated = client.post(f"{ENDPOINTS}/{endpoint.pk}/rotate-secret")

    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    endpoint.refresh_from_db()
    assert endpoint.secret == new != "whsec_test_secret"
    assert new not in client.get(f"{ENDPOINTS}/{endpoint.pk}").content.decode()


def test_a_secret_sent_on_update_replaces_the_old_one(client, company):
    endpoint = WebhookEndpointFactory(company=company)
    new = webhooks.new_secret()

    response = client.patch(f"{ENDPOINTS}/{endpoint.pk}", {"secret": new}, format="json")

    assert response.status_code == 200
    assert new not in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.secret == new


def test_enabling_a_disabled_endpoint_clears_its_failures(client, company):
    endpoint = WebhookEndpointFactory(
        company=company, active=False, consecutive_failures=5, disabled_at=NOW, disabled_reason="5 in a row"
    )

    row = client.post(f"{ENDPOINTS}/{endpoint.pk}/enable").json()

    assert (row["active"], row["consecutive_failures"], row["disabled_at"], row["disabled_reason"]) == (
        True,
        0,
        None,
        "",
    )


def test_an_endpoint_stays_in_its_company(client, owner, company):
    second = CompanyFactory()
    MembershipFactory(user=owner, company=second)
    endpoint = WebhookEndpointFactory(company=company)

    assert "company" in invalid(client.patch(f"{ENDPOINTS}/{endpoint.pk}", {"company": second.pk}, format="json"))


def test_an_outsider_cannot_reach_or_create_another_companys_endpoints(api, outsider, company):
    endpoint = WebhookEndpointFactory(company=company)
    client = api.as_user(outsider)

    assert ids(client.get(ENDPOINTS)) == []
    for response in (
        client.get(f"{ENDPOINTS}/{endpoint.pk}"),
        client.patch(f"{ENDPOINTS}/{endpoint.pk}", {"name": "Mine"}, format="json"),
        client.delete(f"{ENDPOINTS}/{endpoint.pk}"),
        client.post(f"{ENDPOINTS}/{endpoint.pk}/rotate-secret"),
        client.post(f"{ENDPOINTS}/{endpoint.pk}/enable"),
    ):
        assert response.status_code == 404
    created = client.post(
        ENDPOINTS, {"company": company.pk, "name": "X", "url": "https://x.example.com"}, format="json"
    )
    assert "company" in invalid(created)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == "whsec_test_secret"


def test_staff_who_are_no_members_cannot_add_an_endpoint(api, staff, company):
    body = {"company": company.pk, "name": "X", "url": "https://x.example.com"}

    response = api.as_user(staff).post(ENDPOINTS, body, format="json")

    assert response.status_code == 403


def test_members_delete_their_endpoints(client, company):
    endpoint = WebhookEndpointFactory(company=company)

    assert client.delete(f"{ENDPOINTS}/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


# --- Templates --------------------------------------------------------------------------


def test_members_create_and_change_their_companys_templates(client, company):
    created = client.post(TEMPLATES, template_body(company), format="json")
    changed = client.patch(f"{TEMPLATES}/{created.json()['id']}", {"subject": "Your invoice"}, format="json")

    assert created.status_code == 201, created.content
    assert changed.json()["subject"] == "Your invoice"
    assert Template.objects.get(company=company, kind="invoice_issued").subject == "Your invoice"


def test_a_template_that_does_not_compile_is_refused_on_its_field(client, company):
    broken = client.post(TEMPLATES, template_body(company, body="{% if %}oops"), format="json")
    unclosed = client.post(TEMPLATES, template_body(company, html="{% for x in y %}"), format="json")

    assert invalid(broken)["body"][0].startswith("template error:")
    assert "html" in invalid(unclosed)


def test_template_input_is_checked(client, company):
    TemplateFactory(company=company, kind="invoice_issued")

    assert "kind" in invalid(client.post(TEMPLATES, template_body(company), format="json"))
    assert "kind" in invalid(client.post(TEMPLATES, template_body(company, kind="Bad Kind"), format="json"))
    assert "sample_data" in invalid(
        client.post(TEMPLATES, template_body(company, kind="x", sample_data=[1]), format="json")
    )
    assert "company" in invalid(client.post(TEMPLATES, template_body(None, kind="y"), format="json"))


def test_members_read_the_platforms_templates_but_only_superusers_change_them(
    client, api, superuser, company, other_company
):
    platform = TemplateFactory(company=None, kind="job_alert")
    own = TemplateFactory(company=company)
    TemplateFactory(company=other_company)

    listed = ids(client.get(TEMPLATES))
    refused = client.patch(f"{TEMPLATES}/{platform.pk}", {"subject": "Mine"}, format="json")
    as_root = api.as_user(superuser).patch(f"{TEMPLATES}/{platform.pk}", {"subject": "Platform"}, format="json")

    assert sorted(listed) == sorted([platform.pk, own.pk])
    assert refused.status_code == 403
    assert as_root.status_code == 200, as_root.content
    assert Template.objects.get(pk=platform.pk).subject == "Platform"


def test_a_superuser_creates_a_platform_template(api, superuser):
    client = api.as_user(superuser)

    response = client.post(TEMPLATES, template_body(None), format="json")
    again = client.post(TEMPLATES, template_body(None), format="json")

    assert response.status_code == 201, response.content
    assert Template.objects.get(pk=response.json()["id"]).company is None
    assert "kind" in invalid(again)


def test_an_outsider_cannot_reach_another_companys_template(api, outsider, company):
    template = TemplateFactory(company=company)
    client = api.as_user(outsider)

    assert client.get(f"{TEMPLATES}/{template.pk}").status_code == 404
    assert client.get(f"{TEMPLATES}/{template.pk}/preview").status_code == 404
    assert client.delete(f"{TEMPLATES}/{template.pk}").status_code == 404


def test_a_saved_template_previews_with_its_sample_data(client, company):
    template = TemplateFactory(
        company=company,
        subject="Hi {{ recipient_name }}",
        html="<b>{{ recipient_name }}</b>",
        sample_data={"recipient_name": "<Ada>"},
    )

    preview = client.get(f"{TEMPLATES}/{template.pk}/preview")

    assert preview.status_code == 200
    assert preview.json() == {"subject": "Hi <Ada>", "body": "Body for <Ada>.", "html": "<b>&lt;Ada&gt;</b>"}


def test_a_broken_saved_template_previews_as_a_400_with_its_error(client, company):
    template = TemplateFactory(company=company, body="{% if %}")  # saved around the API's check

    fields = invalid(client.get(f"{TEMPLATES}/{template.pk}/preview"))

    assert list(fields) == ["body"]
    assert fields["body"][0].startswith("template error:")


def test_a_template_that_compiles_but_fails_to_render_previews_as_a_400(client, company):
    created = client.post(TEMPLATES, template_body(company, html='{{ kind|ljust:"99999" }}'), format="json")

    fields = invalid(client.get(f"{TEMPLATES}/{created.json()['id']}/preview"))

    assert list(fields) == ["html"]


def test_a_draft_previews_with_its_data(client):
    response = client.post(
        f"{TEMPLATES}/preview",
        {
            "kind": "invoice_issued",
            "subject": "Invoice {{ number }}",
            "body": "{{ number|lower }}",
            "data": {"number": "INV-9"},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"subject": "Invoice INV-9", "body": "inv-9", "html": ""}


def test_a_draft_of_a_registered_kind_previews_its_default_template(client):
    response = client.post(f"{TEMPLATES}/preview", {"kind": "job_alert"}, format="json")

    assert response.status_code == 200
    assert response.json()["subject"] == "[Countinghouse critical] GL_DAILY_CLOSE: Consecutive failures"


def test_a_draft_that_fails_answers_400_with_the_template_error(client):
    def preview(**fields):
        return client.post(f"{TEMPLATES}/preview", {"kind": "invoice_issued", "body": "ok", **fields}, format="json")

    syntax = invalid(preview(subject="{% if %}"))
    runtime = invalid(preview(subject="ok", body='{{ kind|ljust:"99999" }}'))

    assert list(syntax) == ["subject"] and syntax["subject"][0].startswith("template error")
    assert list(runtime) == ["body"] and "a width is at most 200" in runtime["body"][0]
    assert "kind" in invalid(client.post(f"{TEMPLATES}/preview", {"kind": "unknown_kind"}, format="json"))
    assert "data" in invalid(preview(data=[1, 2]))
    assert "kind" in invalid(client.post(f"{TEMPLATES}/preview", {}, format="json"))


# --- Preferences and quiet hours --------------------------------------------------------


def test_members_manage_their_companys_preferences(client, company):
    body = {
        "company": company.pk,
        "recipient_key": "billing.customer:42",
        "kind": "",
        "channel": "email",
        "enabled": False,
    }

    created = client.post(PREFERENCES, body, format="json")
    again = client.post(PREFERENCES, body, format="json")
    switched = client.patch(f"{PREFERENCES}/{created.json()['id']}", {"enabled": True}, format="json")

    assert created.status_code == 201, created.content
    assert "channel" in invalid(again)
    assert switched.json()["enabled"] is True
    assert ids(client.get(PREFERENCES, {"enabled": "true", "recipient_key": "billing.customer:42"})) == [
        created.json()["id"]
    ]
    assert "enabled" in invalid(client.get(PREFERENCES, {"enabled": "yes please"}))


def test_preference_input_is_checked(client, company):
    def create(**fields):
        body = {"company": company.pk, "recipient_key": "user:7", "channel": "email", "enabled": False, **fields}
        return client.post(PREFERENCES, body, format="json")

    assert "recipient_key" in invalid(create(recipient_key="seven"))
    assert "kind" in invalid(create(kind="Job Alert"))
    assert "channel" in invalid(create(channel="fax"))
    assert "company" in invalid(create(company=None))


def test_an_outsider_cannot_reach_another_companys_preferences_or_quiet_hours(api, outsider, company):
    preference = PreferenceFactory(company=company)
    window = QuietHoursFactory(company=company)
    client = api.as_user(outsider)

    assert ids(client.get(PREFERENCES)) == ids(client.get(QUIET_HOURS)) == []
    assert client.patch(f"{PREFERENCES}/{preference.pk}", {"enabled": True}, format="json").status_code == 404
    assert client.delete(f"{QUIET_HOURS}/{window.pk}").status_code == 404


def test_members_set_quiet_hours(client, company):
    body = {"company": company.pk, "recipient_key": "", "start": "22:00", "end": "07:00", "timezone": "Europe/Paris"}

    created = client.post(QUIET_HOURS, body, format="json")
    again = client.post(QUIET_HOURS, body, format="json")

    assert created.status_code == 201, created.content
    assert created.json() | {"id": 0} == {"id": 0, **body, "start": "22:00:00", "end": "07:00:00"}
    assert "recipient_key" in invalid(again)


def test_quiet_hours_refuse_an_empty_window_and_an_unknown_timezone(client, company):
    def create(**fields):
        body = {"company": company.pk, "recipient_key": "user:7", "start": "22:00", "end": "07:00", **fields}
        return client.post(QUIET_HOURS, body, format="json")

    window = QuietHoursFactory(company=company)

    assert "end" in invalid(create(end="22:00"))
    assert "timezone" in invalid(create(timezone="Mars/Olympus"))
    assert "start" in invalid(create(start="25:00"))
    assert "end" in invalid(client.patch(f"{QUIET_HOURS}/{window.pk}", {"end": "22:00"}, format="json"))


# --- Kinds and anonymous callers ----------------------------------------------------------


def test_kinds_list_the_registered_kinds_with_their_defaults(client):
    kinds = {row["code"]: row for row in client.get(KINDS).json()}

    assert {"job_alert", "webhook_disabled"} <= set(kinds)
    assert kinds["job_alert"]["channels"] == ["in_app", "email"]
    assert kinds["job_alert"]["subject"].startswith("[Countinghouse")
    assert kinds["job_alert"]["sample_data"]["job"] == "GL_DAILY_CLOSE"


@pytest.mark.parametrize(
    "path",
    [INBOX, f"{INBOX}/preferences", NOTIFICATIONS, DELIVERIES, ENDPOINTS, TEMPLATES, PREFERENCES, QUIET_HOURS, KINDS],
)
def test_anonymous_callers_get_401(api, path):
    response = api.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_notification_unknown_to_the_inbox_is_a_404_not_a_500(client):
    assert client.get(f"{INBOX}/99999999999999999999999").status_code == 404
    assert Notification.objects.count() == 0
