"""The notifications admin: pages answer, records stay read-only, resend reports refusals,
templates preview (a broken one shows its error), webhook secrets are write-only and shown
once, and an operator who is not a superuser sees only their companies."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    Preference,
    QuietHours,
    Template,
    WebhookEndpoint,
)
from tests.factories import (
    DeliveryFactory,
    MembershipFactory,
    NotificationFactory,
    PreferenceFactory,
    QuietHoursFactory,
    TemplateFactory,
    WebhookEndpointFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
MODELS = [Notification, Delivery, Template, Preference, QuietHours, WebhookEndpoint]


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client():
    """Django's test client, as pytest-django gives it: the package's conftest.py makes
    ``client`` the owner's API client for the API tests."""
    return Client()


def url(model, view: str, *args) -> str:
    return reverse(f"admin:notifications_{model._meta.model_name}_{view}", args=args)


def act(client, model, action: str, *objects):
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    return client.post(url(model, "changelist"), data, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def shown(response, model) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.fixture
def records(company, owner, other_company):
    """One row of every notifications table in each company, by model."""
    made = {}
    for which, home in (("own", company), ("rival", other_company)):
        notification = NotificationFactory(company=home, user=owner if which == "own" else None)
        endpoint = WebhookEndpointFactory(company=home)
        made[which] = {
            Notification: notification,
            Delivery: DeliveryFactory(notification=notification, channel="webhook", endpoint=endpoint),
            Template: TemplateFactory(company=home),
            Preference: PreferenceFactory(company=home),
            QuietHours: QuietHoursFactory(company=home),
            WebhookEndpoint: endpoint,
        }
    return made


@pytest.fixture
def operator(company):
    """A staff user, not a superuser, who is a member of acme and holds every notifications permission."""
    user = MembershipFactory(company=company, user__username="operator", user__is_staff=True).user
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="notifications"))
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


# --- Pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_page_renders_for_a_superuser(admin_client, records, model):
    obj = records["own"][model]

    listing = admin_client.get(url(model, "changelist"))
    page = admin_client.get(url(model, "change", obj.pk))

    assert shown(listing, model) == {records["own"][model].pk, records["rival"][model].pk}
    assert page.status_code == 200


@pytest.mark.parametrize("model", [Template, Preference, QuietHours, WebhookEndpoint], ids=lambda m: m.__name__)
def test_the_add_pages_render(admin_client, model):
    assert admin_client.get(url(model, "add")).status_code == 200


def test_records_cannot_be_added_or_edited(admin_client, records):
    notification = records["own"][Notification]

    assert admin_client.get(url(Notification, "add")).status_code == 403
    assert admin_client.get(url(Delivery, "add")).status_code == 403
    page = admin_client.get(url(Notification, "change", notification.pk))
    assert 'name="_save"' not in page.content.decode()


def test_notifications_filter_by_kind_priority_company_and_read_and_search_the_recipient(admin_client, company):
    read = NotificationFactory(company=company, read_at=NOW, recipient_name="Ada Lovelace")
    urgent = NotificationFactory(company=company, priority="urgent", kind="webhook_disabled")
    listing = url(Notification, "changelist")

    assert shown(admin_client.get(listing, {"read": "yes"}), Notification) == {read.pk}
    assert shown(admin_client.get(listing, {"priority": "urgent"}), Notification) == {urgent.pk}
    assert shown(admin_client.get(listing, {"kind": "webhook_disabled"}), Notification) == {urgent.pk}
    assert shown(admin_client.get(listing, {"company__id__exact": company.pk}), Notification) == {read.pk, urgent.pk}
    assert shown(admin_client.get(listing, {"q": "lovelace"}), Notification) == {read.pk}


def test_a_notifications_page_lists_its_deliveries_read_only(admin_client, company):
    delivery = DeliveryFactory(notification__company=company, status="failed", last_error="mailbox full")

    page = admin_client.get(url(Notification, "change", delivery.notification_id)).content.decode()

    assert "mailbox full" in page
    assert "deliveries-0-status" not in page


def test_deliveries_filter_by_status_and_channel(admin_client, company):
    failed = DeliveryFactory(notification__company=company, status="failed", channel="email")
    sent = DeliveryFactory(notification__company=company, status="sent", channel="in_app")
    listing = url(Delivery, "changelist")

    assert shown(admin_client.get(listing, {"status__exact": "failed"}), Delivery) == {failed.pk}
    assert shown(admin_client.get(listing, {"channel__exact": "in_app"}), Delivery) == {sent.pk}


# --- Resend -----------------------------------------------------------------------------


def test_resend_queues_failed_deliveries_and_reports_each_refusal(admin_client, company):
    failed = DeliveryFactory(notification__company=company, status="failed", attempts=6)
    sent = DeliveryFactory(notification__company=company, status="sent")

    response = act(admin_client, Delivery, "resend", failed, sent)

    assert response.status_code == 200
    assert texts(response) == [
        f"Resend: 1 queued, 1 refused: delivery {sent.pk} is sent; only failed or suppressed ones are resent"
    ]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (DeliveryStatus.QUEUED, 0)


def test_resend_of_nothing_resendable_is_an_error_message(admin_client, company):
    sent = DeliveryFactory(notification__company=company, status="sent")

    response = act(admin_client, Delivery, "resend", sent)

    assert [m.level_tag for m in response.context["messages"]] == ["error"]


# --- Templates --------------------------------------------------------------------------


def test_a_templates_page_previews_it_with_its_sample_data_escaped(admin_client, company):
    template = TemplateFactory(
        company=company,
        subject="Hello {{ recipient_name }}",
        html="<p>Dear {{ recipient_name }}</p>",
        sample_data={"recipient_name": "<script>alert(1)</script>"},
    )

    page = admin_client.get(url(Template, "change", template.pk)).content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The HTML part (its own value escaped by the engine) sits escaped once more in srcdoc.
    assert '<iframe sandbox srcdoc="&lt;p&gt;Dear &amp;lt;script&amp;gt;' in page


def test_a_broken_template_shows_its_error_on_its_page(admin_client, company):
    template = TemplateFactory(company=company, body="{% if %}")  # saved around the form's check

    page = admin_client.get(url(Template, "change", template.pk))

    assert page.status_code == 200
    assert "template error:" in page.content.decode()


def test_the_template_form_refuses_a_template_that_does_not_compile(admin_client, company):
    data = {"company": company.pk, "kind": "invoice_issued", "subject": "Hi", "body": "{% for x in y %}", "html": ""}

    response = admin_client.post(url(Template, "add"), {**data, "sample_data": "{}"})

    assert response.status_code == 200
    assert "template error:" in str(response.context["adminform"].form.errors["body"])
    assert not Template.objects.exists()


# --- Webhook endpoints ------------------------------------------------------------------


def endpoint_form(company, **fields) -> dict:
    return {"company": company.pk, "name": "Portal", "url": "https://portal.example.com/hooks", "kinds": "[]", **fields}


def test_adding_an_endpoint_without_a_secret_shows_a_generated_one_once(admin_client, company):
    response = admin_client.post(url(WebhookEndpoint, "add"), endpoint_form(company), follow=True)

    endpoint = WebhookEndpoint.objects.get()
    assert any(endpoint.secret in text and "shown this once" in text for text in texts(response))
    page = admin_client.get(url(WebhookEndpoint, "change", endpoint.pk)).content.decode()
    assert endpoint.secret not in page
    assert endpoint.secret not in endpoint.secret_encrypted


def test_a_blank_secret_on_change_keeps_it_and_a_new_one_replaces_it(admin_client, company):
    endpoint = WebhookEndpointFactory(company=company)
    change = url(WebhookEndpoint, "change", endpoint.pk)

    kept = admin_client.post(change, endpoint_form(company, url=endpoint.url, new_secret=""), follow=True)
    endpoint.refresh_from_db()
    assert endpoint.secret == "whsec_test_secret"
    assert all("secret" not in text for text in texts(kept))

    admin_client.post(change, endpoint_form(company, url=endpoint.url, new_secret="n" * 32))
    endpoint.refresh_from_db()
    assert endpoint.secret == "n" * 32


def test_the_endpoint_form_refuses_bad_urls_kinds_and_short_secrets(admin_client, company):
    response = admin_client.post(
        url(WebhookEndpoint, "add"),
        endpoint_form(company, url="ftp://files.example.com", kinds='["Bad Kind"]', new_secret="short"),
    )

    assert set(response.context["adminform"].form.errors) == {"url", "kinds", "new_secret"}
    assert not WebhookEndpoint.objects.exists()


def test_enable_and_rotate_secret_actions(admin_client, company):
    endpoint = WebhookEndpointFactory(company=company, active=False, consecutive_failures=5, disabled_reason="down")

    enabled = act(admin_client, WebhookEndpoint, "enable", endpoint)
    rotated = act(admin_client, WebhookEndpoint, "rotate_secret", endpoint)

    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.consecutive_failures, endpoint.disabled_reason) == (True, 0, "")
    assert texts(enabled) == ["Enabled 1; 0 were active already."]
    assert endpoint.secret != "whsec_test_secret"
    assert any(endpoint.secret in text for text in texts(rotated))


# --- Scoping ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_an_operator_sees_only_their_companys_rows(operator_client, records, model):
    listing = operator_client.get(url(model, "changelist"))
    rival = operator_client.get(url(model, "change", records["rival"][model].pk))

    assert shown(listing, model) == {records["own"][model].pk}
    assert rival.status_code == 302  # "doesn't exist", as a missing one
    assert operator_client.get(url(model, "change", records["own"][model].pk)).status_code == 200


def test_an_operator_reads_the_platforms_templates_but_cannot_change_them(operator_client, company):
    platform = TemplateFactory(company=None, kind="job_alert", subject="Platform")

    page = operator_client.get(url(Template, "change", platform.pk))
    posted = operator_client.post(url(Template, "change", platform.pk), {"subject": "Mine"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    assert Template.objects.get(pk=platform.pk).subject == "Platform"


def test_an_operator_chooses_among_their_companies_and_must_choose_one(operator_client, company, other_company):
    form = operator_client.get(url(Template, "add")).context["adminform"].form
    data = {"company": "", "kind": "invoice_issued", "subject": "Hi", "body": "Hello", "html": "", "sample_data": "{}"}

    refused = operator_client.post(url(Template, "add"), data)

    assert list(form.fields["company"].queryset) == [company]
    assert "company" in refused.context["adminform"].form.errors
    assert not Template.objects.exists()


def test_an_operators_resend_cannot_reach_another_companys_delivery(operator_client, other_company):
    theirs = DeliveryFactory(notification__company=other_company, status="failed")

    response = act(operator_client, Delivery, "resend", theirs)

    assert texts(response) == ["Resend: 0 queued"]
    assert Delivery.objects.get(pk=theirs.pk).status == DeliveryStatus.FAILED


def test_an_operators_filters_offer_only_their_companies(operator_client, records, company):
    listing = operator_client.get(url(Notification, "changelist"))

    company_filter = next(spec for spec in listing.context["cl"].filter_specs if spec.title == "company")
    assert [pk for pk, _label in company_filter.lookup_choices] == [company.pk]
