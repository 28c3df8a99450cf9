"""Receivables in the admin: Xero secrets write-only and encrypted, connections and reports
scoped to the operator's companies, reports downloaded."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from receivables import engine
from receivables.models import AgedReport, XeroApp, XeroConnection, XeroGrant
from receivables.services import reports
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

AS_OF = datetime.date(2026, 2, 28)


@pytest.fixture
def operator_client(client, company):
    user = MembershipFactory(company=company, user__username="operator", user__is_staff=True).user
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="receivables"))
    client.force_login(user)
    return client


def made(companies) -> AgedReport:
    report = reports.create(options=engine.Options(AS_OF), source="db", companies=companies)
    reports.make(report)
    report.refresh_from_db()
    return report


def test_an_apps_client_secret_is_written_once_and_stored_encrypted(admin_client):
    add = reverse("admin:receivables_xeroapp_add")
    fields = {
        "name": "App 1",
        "client_id": "client-1",
        "new_client_secret": "client-secret-of-app-1",
        "api_url": "https://api.xero.com/api.xro/2.0",
        "identity_url": "https://api.xero.com",
        "token_url": "https://identity.xero.com/connect/token",
        "calls_per_minute": 10000,
        "active": "on",
    }

    missing = admin_client.post(add, {**fields, "new_client_secret": ""})
    saved = admin_client.post(add, fields)

    assert missing.status_code == 200 and "needs its client secret" in missing.content.decode()
    assert saved.status_code == 302
    app = XeroApp.objects.get()
    assert app.client_secret == "client-secret-of-app-1" and "client-secret-of-app-1" not in app.client_secret_encrypted
    page = admin_client.get(reverse("admin:receivables_xeroapp_change", args=[app.pk])).content.decode()
    assert "client-secret-of-app-1" not in page and app.client_secret_encrypted not in page


def test_a_grants_refresh_token_is_write_only(admin_client):
    app = XeroApp.objects.create(name="App 1", client_id="id")

    admin_client.post(
        reverse("admin:receivables_xerogrant_add"),
        {"app": app.pk, "name": "Finance", "new_refresh_token": "refresh-token-of-finance"},
    )

    grant = XeroGrant.objects.get()
    assert grant.refresh_token == "refresh-token-of-finance" and grant.access_token == ""
    page = admin_client.get(reverse("admin:receivables_xerogrant_change", args=[grant.pk])).content.decode()
    assert "refresh-token-of-finance" not in page
    assert grant.refresh_token_encrypted not in page


def test_an_operator_sees_only_their_companys_connections_and_reports(operator_client, company, other_company):
    app = XeroApp.objects.create(name="App 1", client_id="id")
    mine = XeroConnection.objects.create(app=app, tenant_id="t1", tenant_name="Mine", company=company)
    XeroConnection.objects.create(app=app, tenant_id="t2", tenant_name="Theirs", company=other_company)
    own, theirs, both = made([company]), made([other_company]), made([company, other_company])

    connections = operator_client.get(reverse("admin:receivables_xeroconnection_changelist"))
    listed = operator_client.get(reverse("admin:receivables_agedreport_changelist"))

    assert list(connections.context["cl"].result_list) == [mine]
    assert list(listed.context["cl"].result_list) == [own]
    assert operator_client.get(reverse("admin:receivables_agedreport_download", args=[own.pk])).status_code == 200
    for hidden in (theirs, both):
        assert (
            operator_client.get(reverse("admin:receivables_agedreport_download", args=[hidden.pk])).status_code == 404
        )


def test_a_made_report_downloads_from_its_page(admin_client, company):
    report = made([company])

    page = admin_client.get(reverse("admin:receivables_agedreport_change", args=[report.pk]))
    downloaded = admin_client.get(reverse("admin:receivables_agedreport_download", args=[report.pk]))

    assert page.status_code == 200
    assert downloaded.status_code == 200 and downloaded["Content-Type"] == "application/json"
    assert downloaded.json()["as_of"] == "2026-02-28"


@pytest.mark.parametrize("model", ["xeroapp", "xerogrant", "xeroconnection", "agedreport", "documentset"])
def test_the_changelists_load(admin_client, model):
    assert admin_client.get(reverse(f"admin:receivables_{model}_changelist")).status_code == 200
