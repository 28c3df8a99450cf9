"""Walk every URL: an anonymous caller and a caller from another company are refused.

A new API route with a path parameter must say here how to name an object of the
owner's company; the sweep fails until it does, so no route escapes it.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PUBLIC = {"api/v1/health", "api/v1/auth/token", "api/schema/", "api/docs/"}


def company_run(company):
    from scheduling.models import JobDefinition, JobRun

    definition = JobDefinition.objects.get(code="TEST_PER_COMPANY")
    run, _ = JobRun.objects.get_or_create(
        job=definition,
        run_key="2026-11-21",
        company=company,
        defaults={"business_date": "2026-11-21", "slot_at": "2026-11-21T00:00Z", "trigger": "manual"},
    )
    return run.pk


def alert_on_company_run(company):
    from scheduling.models import JobAlert, JobRun

    run = JobRun.objects.get(pk=company_run(company))
    return JobAlert.objects.create(job=run.job, run=run, cause="blocked", message="blocked").pk


def first_schedule(company):
    from scheduling.models import JobSchedule

    return JobSchedule.objects.order_by("pk").first().pk


def ledger_account(company):
    from ledger.models import Account

    account, _ = Account.objects.get_or_create(company=company, code="1100", defaults={"name": "Bank", "type": "asset"})
    return account.pk


def ledger_period(company):
    import datetime

    from ledger.services import periods

    return periods.open_year(company, datetime.date(2026, 11, 21)).periods.order_by("start_date").first().pk


def ledger_fiscal_year(company):
    import datetime

    from ledger.services import periods

    return periods.open_year(company, datetime.date(2026, 11, 21)).pk


def ledger_draft(company):
    import datetime

    from ledger.models import Account
    from ledger.services import posting

    sales, _ = Account.objects.get_or_create(company=company, code="4100", defaults={"name": "Sales", "type": "income"})
    lines = [posting.Line(ledger_account(company), debit="10.00"), posting.Line(sales, credit="10.00")]
    return posting.create_draft(company, posting.Entry(datetime.date(2026, 11, 21), lines)).pk


def ledger_budget(company):
    from ledger.models import Budget

    return Budget.objects.create(
        company=company, account_id=ledger_account(company), period_id=ledger_period(company), amount=100
    ).pk


def ledger_snapshot(company):
    import datetime

    from ledger.services import reports

    return reports.snapshot_trial_balance(company, datetime.date(2026, 11, 1), datetime.date(2026, 11, 30)).pk


def ledger_reconciliation(company):
    import datetime

    from ledger.models import Account
    from ledger.subledgers import reconcile_account

    account = Account.objects.create(company=company, code="1200", name="Receivables", type="asset", role="receivables")
    return reconcile_account(account, datetime.date(2026, 11, 30)).pk


def notification_delivery(company):
    from tests.factories import DeliveryFactory, MembershipFactory

    member = MembershipFactory(company=company).user
    return DeliveryFactory(notification__company=company, notification__user=member, status="failed").pk


def notification_to_member(company):
    from notifications.models import Delivery

    return Delivery.objects.get(pk=notification_delivery(company)).notification_id


def notification_factory(name: str):
    def make(company):
        import tests.factories

        return getattr(tests.factories, name)(company=company).pk

    return make


# route → how to name an object that belongs to the owner's company. The system routes are
# staff-only; their objects are the platform's, reached here through a company's run.
OWNED_OBJECT = {
    "api/v1/companies/<pk>": lambda company: company.pk,
    "api/v1/system/jobs/<code>": lambda company: "TEST_PER_COMPANY",
    "api/v1/system/jobs/<code>/backfill": lambda company: "TEST_PER_COMPANY",
    "api/v1/system/schedules/<pk>": first_schedule,
    "api/v1/system/runs/<pk>": company_run,
    "api/v1/system/runs/<pk>/logs": company_run,
    "api/v1/system/runs/<pk>/cancel": company_run,
    "api/v1/system/runs/<pk>/rerun": company_run,
    "api/v1/system/runs/<pk>/release": company_run,
    "api/v1/system/alerts/<pk>/acknowledge": alert_on_company_run,
    "api/v1/ledger/accounts/<pk>": ledger_account,
    "api/v1/ledger/fiscal-years/<pk>": ledger_fiscal_year,
    "api/v1/ledger/periods/<pk>": ledger_period,
    "api/v1/ledger/periods/<pk>/close": ledger_period,
    "api/v1/ledger/periods/<pk>/reopen": ledger_period,
    "api/v1/ledger/journal-entries/<pk>": ledger_draft,
    "api/v1/ledger/journal-entries/<pk>/post": ledger_draft,
    "api/v1/ledger/journal-entries/<pk>/reverse": ledger_draft,
    "api/v1/ledger/budgets/<pk>": ledger_budget,
    "api/v1/ledger/trial-balance-snapshots/<pk>": ledger_snapshot,
    "api/v1/ledger/reconciliations/<pk>": ledger_reconciliation,
    "api/v1/notifications/inbox/<pk>": notification_to_member,
    "api/v1/notifications/inbox/<pk>/read": notification_to_member,
    "api/v1/notifications/inbox/<pk>/unread": notification_to_member,
    "api/v1/notifications/notifications/<pk>": notification_to_member,
    "api/v1/notifications/deliveries/<pk>": notification_delivery,
    "api/v1/notifications/deliveries/<pk>/resend": notification_delivery,
    "api/v1/notifications/webhook-endpoints/<pk>": notification_factory("WebhookEndpointFactory"),
    "api/v1/notifications/webhook-endpoints/<pk>/enable": notification_factory("WebhookEndpointFactory"),
    "api/v1/notifications/webhook-endpoints/<pk>/rotate-secret": notification_factory("WebhookEndpointFactory"),
    "api/v1/notifications/templates/<pk>": notification_factory("TemplateFactory"),
    "api/v1/notifications/templates/<pk>/preview": notification_factory("TemplateFactory"),
    "api/v1/notifications/preferences/<pk>": notification_factory("PreferenceFactory"),
    "api/v1/notifications/quiet-hours/<pk>": notification_factory("QuietHoursFactory"),
}


def _areas_owned() -> dict:
    """Billing's and receivables' areas each name their routes' objects in
    ``tests/unit/<app>/sweep_*.py`` (a dict ``OWNED``), so the areas do not share one list."""
    import importlib
    import pkgutil

    import tests.unit.billing
    import tests.unit.receivables

    owned = {}
    for package in (tests.unit.billing, tests.unit.receivables):
        for module in pkgutil.iter_modules(package.__path__):
            if module.name.startswith("sweep_"):
                owned.update(importlib.import_module(f"{package.__name__}.{module.name}").OWNED)
    return owned


OWNED_OBJECT.update(_areas_owned())


def all_routes() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    # "<str:pk>" and "<pk>" name the same route here
    return sorted({re.sub(r"<\w+:(\w+)>", r"<\1>", route) for route in walk(get_resolver().url_patterns)})


def api_routes() -> list[str]:
    return [r for r in all_routes() if r.startswith("api/") and r not in PUBLIC]


def has_parameters(route: str) -> bool:
    return "<" in route or "(?P" in route


def concrete(route: str, value) -> str:
    return "/" + re.sub(r"<\w+>", str(value), route)


@pytest.mark.parametrize("route", api_routes())
def test_anonymous_callers_are_refused(client, company, route):
    path = concrete(route, company.pk)

    for method in ("get", "post", "patch", "delete"):
        response = getattr(client, method)(path)
        assert response.status_code in (401, 405), f"{method.upper()} {path}: {response.status_code}"
        assert response.json()["error"]["code"] in ("not_authenticated", "method_not_allowed")


@pytest.mark.parametrize("route", [r for r in api_routes() if has_parameters(r)])
def test_another_companys_caller_cannot_reach_the_object(api, company, outsider, route):
    assert route in OWNED_OBJECT, f"the sweep does not know how to name an object for {route}"
    path = concrete(route, OWNED_OBJECT[route](company))

    client = api.as_user(outsider)
    for method in ("get", "post", "patch", "put", "delete"):
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code in (403, 404, 405), f"{method.upper()} {path}: {response.status_code}"


@pytest.mark.parametrize("route", [r for r in all_routes() if r.startswith("admin/") and not has_parameters(r)])
def test_admin_pages_send_strangers_to_the_login(client, outsider, route):
    if route in ("admin/login/", "admin/logout/"):
        pytest.skip("the login page itself")
    for user in (None, outsider):
        if user:
            client.force_login(user)
        response = client.get("/" + route)
        assert response.status_code == 302, f"/{route}: {response.status_code}"
        assert response["Location"].startswith("/admin/login/")


def test_the_sweep_sees_the_api():
    assert "api/v1/companies" in api_routes()
    assert set(OWNED_OBJECT) <= set(api_routes())
