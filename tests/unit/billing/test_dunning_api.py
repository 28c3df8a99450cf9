"""Dunning over the API: levels (CRUD with 400s), notices (read-only, filtered), overdue
invoices; everything scoped to the caller's companies."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from billing.models import DunningLevel, NoticeStatus, OverdueNotice
from billing.services import dunning, overdue
from tests.factories import CustomerFactory, TemplateFactory
from tests.unit.billing.test_overdue import day, issue, pay

pytestmark = pytest.mark.django_db

LEVELS = "/api/v1/billing/dunning-levels"
NOTICES = "/api/v1/billing/overdue-notices"
OVERDUE = "/api/v1/billing/overdue-invoices"


def create(client, company, **fields):
    body = {"company": company.pk, "days_overdue": 7, "name": "First reminder", **fields}
    return client.post(LEVELS, body, format="json")


def fields_of(response) -> dict:
    return response.json()["error"]["fields"]


# --- Levels ------------------------------------------------------------------------------------------


def test_a_member_creates_a_level_with_money_as_strings(api, company, owner):
    response = create(
        api.as_user(owner), company, fee="10.5", interest_rate="8.25", channels=["email", "webhook", "email"]
    )

    assert response.status_code == 201, response.json()
    assert response.json() | {"id": None} == {
        "id": None,
        "company": company.pk,
        "days_overdue": 7,
        "name": "First reminder",
        "kind": "payment_reminder",
        "channels": ["email", "webhook"],
        "fee": "10.50",
        "interest_rate": "8.2500",
        "active": True,
    }
    level = DunningLevel.objects.get()
    assert (level.fee, level.interest_rate) == (Decimal("10.50"), Decimal("8.25"))


def test_a_level_takes_the_defaults_it_is_not_given(api, company, owner):
    response = create(api.as_user(owner), company)

    assert response.status_code == 201
    assert (response.json()["channels"], response.json()["fee"], response.json()["interest_rate"]) == (
        ["in_app", "email"],
        "0.00",
        "0.0000",
    )


def test_a_second_level_at_the_same_days_is_a_400_on_the_days(api, company, owner):
    client = api.as_user(owner)
    create(client, company)

    response = create(client, company, name="Again")

    assert response.status_code == 400
    assert fields_of(response) == {"days_overdue": ["The company has a level at 7 days already."]}


def test_another_company_may_use_the_same_days(api, company, other_company, owner, outsider):
    create(api.as_user(owner), company)

    response = create(api.as_user(outsider), other_company)

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"days_overdue": 0}, "days_overdue"),
        ({"days_overdue": 3651}, "days_overdue"),
        ({"kind": "Final Demand!"}, "kind"),
        ({"kind": "final_demand"}, "kind"),  # no template for it
        ({"channels": ["sms"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": "email"}, "channels"),
        ({"fee": 10.5}, "fee"),  # a float
        ({"fee": "-1.00"}, "fee"),
        ({"fee": "1.005"}, "fee"),  # more places than GBP has
        ({"interest_rate": "100.01"}, "interest_rate"),
        ({"interest_rate": "-1"}, "interest_rate"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_level_fields_are_400s_naming_the_field(api, company, owner, fields, field):
    response = create(api.as_user(owner), company, **fields)

    assert response.status_code == 400, response.json()
    assert field in fields_of(response)


def test_a_kind_of_the_companys_own_template_is_accepted(api, company, owner):
    TemplateFactory(company=company, kind="final_demand")

    response = create(api.as_user(owner), company, kind="final_demand")

    assert response.status_code == 201


def test_another_companys_template_does_not_make_a_kind_valid(api, company, other_company, owner):
    TemplateFactory(company=other_company, kind="final_demand")

    response = create(api.as_user(owner), company, kind="final_demand")

    assert response.status_code == 400
    assert "kind" in fields_of(response)


def test_a_level_cannot_go_into_a_company_the_caller_is_not_in(api, company, other_company, owner, staff):
    response = create(api.as_user(owner), other_company)
    as_staff = create(api.as_user(staff), company)

    assert response.status_code == 400
    assert "company" in fields_of(response)
    assert as_staff.status_code == 403


def test_a_level_is_updated_but_stays_in_its_company(api, company, other_company, owner):
    client = api.as_user(owner)
    level_id = create(client, company).json()["id"]
    create(client, company, days_overdue=14)

    fee = client.patch(f"{LEVELS}/{level_id}", {"fee": "5.00", "active": False}, format="json")
    moved = client.patch(f"{LEVELS}/{level_id}", {"company": other_company.pk}, format="json")
    clash = client.patch(f"{LEVELS}/{level_id}", {"days_overdue": 14}, format="json")

    assert (fee.status_code, fee.json()["fee"], fee.json()["active"]) == (200, "5.00", False)
    assert moved.status_code == 400
    assert clash.status_code == 400
    assert fields_of(clash) == {"days_overdue": ["The company has a level at 14 days already."]}


def test_levels_list_in_days_order_for_the_callers_companies_only(api, company, other_company, owner, outsider):
    client = api.as_user(owner)
    for days in (30, 1, 7):
        create(client, company, days_overdue=days)
    DunningLevel.objects.create(company=other_company, days_overdue=3, name="Theirs")

    mine = client.get(LEVELS)
    theirs = api.as_user(outsider).get(f"{LEVELS}/{DunningLevel.objects.get(company=company, days_overdue=1).pk}")

    assert [row["days_overdue"] for row in mine.json()["results"]] == [1, 7, 30]
    assert theirs.status_code == 404


def test_a_level_without_notices_is_deleted_one_with_notices_is_a_409(api, company, owner, books, customer):
    client = api.as_user(owner)
    unused = create(client, company, days_overdue=30).json()["id"]
    used = create(client, company, days_overdue=1).json()["id"]
    issue(company, customer)
    overdue.check(company, day(2))

    deleted = client.delete(f"{LEVELS}/{unused}")
    refused = client.delete(f"{LEVELS}/{used}")

    assert deleted.status_code == 204
    assert refused.status_code == 409
    assert DunningLevel.objects.filter(pk=used).exists()


# --- Notices --------------------------------------------------------------------------------------


@pytest.fixture
def noticed(company, books, customer):
    """Three customers' invoices noticed on day 7 (one settled and cancelled at send time)
    and one of another company."""
    DunningLevel.objects.create(company=company, days_overdue=7, name="First reminder", fee=5)
    other = CustomerFactory(company=company)
    invoices = [issue(company, customer), issue(company, customer), issue(company, other)]
    overdue.check(company, day(7))
    pay(invoices[1])
    dunning.send_reminders(company, day(7))
    return invoices


def test_notices_list_newest_first_with_what_was_charged(api, company, owner, noticed, customer):
    response = api.as_user(owner).get(NOTICES)

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["invoice"] for row in rows] == [noticed[2].pk, noticed[1].pk, noticed[0].pk]
    first = rows[-1]
    assert first | {"id": None, "created_at": None, "sent_at": None, "notification": None, "fee_invoice": None} == {
        "id": None,
        "company": company.pk,
        "invoice": noticed[0].pk,
        "invoice_number": noticed[0].number,
        "customer": customer.pk,
        "level": DunningLevel.objects.get().pk,
        "level_name": "First reminder",
        "level_days": 7,
        "days_overdue": 7,
        "amount_due": "1000.00",
        "business_date": "2026-01-22",
        "status": "sent",
        "notification": None,
        "fee": "5.00",
        "interest": "0.00",
        "fee_invoice": None,
        "created_at": None,
        "sent_at": None,
    }
    assert first["notification"] and first["fee_invoice"] and first["sent_at"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "cancelled"}, [1]),
        ({"status": "sent"}, [2, 0]),
        ({"customer": "customer"}, [1, 0]),
        ({"invoice": 2}, [2]),
        ({"business_date": "2026-01-22"}, [2, 1, 0]),
        ({"business_date": "2026-01-23"}, []),
    ],
)
def test_notices_filter_by_status_customer_invoice_and_date(api, owner, noticed, customer, query, expected):
    if query.get("customer") == "customer":
        query = {"customer": customer.pk}
    if "invoice" in query:
        query = {"invoice": noticed[query["invoice"]].pk}

    response = api.as_user(owner).get(NOTICES, query)

    assert response.status_code == 200
    assert [row["invoice"] for row in response.json()["results"]] == [noticed[i].pk for i in expected]


def test_a_filter_naming_another_companys_invoice_or_a_bad_status_is_a_400(api, outsider, noticed):
    client = api.as_user(outsider)

    assert client.get(NOTICES, {"invoice": noticed[0].pk}).status_code == 400
    assert client.get(NOTICES, {"status": "lost"}).status_code == 400


def test_notices_are_read_only_and_hidden_from_other_companies(api, owner, outsider, noticed):
    notice = OverdueNotice.objects.first()

    assert api.as_user(outsider).get(NOTICES).json()["results"] == []
    assert api.as_user(outsider).get(f"{NOTICES}/{notice.pk}").status_code == 404
    client = api.as_user(owner)
    assert client.get(f"{NOTICES}/{notice.pk}").status_code == 200
    assert client.post(NOTICES, {}, format="json").status_code == 405
    assert client.patch(f"{NOTICES}/{notice.pk}", {"status": "pending"}, format="json").status_code == 405
    assert OverdueNotice.objects.filter(status=NoticeStatus.PENDING).count() == 0


# --- Overdue invoices ------------------------------------------------------------------------------


def test_overdue_invoices_on_a_date_with_days_overdue_and_level_noticed(api, company, owner, books, customer):
    DunningLevel.objects.create(company=company, days_overdue=7, name="First reminder")
    late = issue(company, customer, "120.00")
    later = issue(company, customer, "80.00", due=day(5))
    issue(company, customer, "50.00", due=day(20))  # not yet due
    pay(issue(company, customer))
    overdue.check(company, day(10))

    response = api.as_user(owner).get(OVERDUE, {"company": company.slug, "on": "2026-01-25"})

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(row["id"], row["days_overdue"], row["due"], row["noticed_level"]) for row in rows] == [
        (late.pk, 10, "120.00", 7),
        (later.pk, 5, "80.00", None),
    ]
    assert rows[0]["customer_name"] == "Amina Njoroge"
    assert rows[0]["number"] == late.number


@time_machine.travel(datetime.datetime(2026, 1, 17, 12, 0, tzinfo=datetime.UTC), tick=False)
def test_overdue_invoices_default_to_the_companys_today_and_its_only_company(api, company, owner, books, customer):
    invoice = issue(company, customer)

    response = api.as_user(owner).get(OVERDUE)

    assert response.status_code == 200
    assert [(row["id"], row["days_overdue"]) for row in response.json()["results"]] == [(invoice.pk, 2)]


def test_overdue_invoices_are_cursor_paginated(api, company, owner, books, customer):
    for n in range(3):
        issue(company, customer, due=day(-n))

    first = api.as_user(owner).get(OVERDUE, {"on": "2026-02-01", "page_size": 2}).json()
    second = api.as_user(owner).get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 1
    assert second["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [({"on": "2026-13-01"}, "on"), ({"company": "nobody"}, "company"), ({"company": "rival"}, "company")],
)
def test_a_bad_overdue_query_is_a_400(api, owner, other_company, query, field):
    response = api.as_user(owner).get(OVERDUE, query)

    assert response.status_code == 400
    assert field in fields_of(response)


def test_another_companys_overdue_invoices_are_not_listed(api, company, outsider, books, customer):
    issue(company, customer)

    response = api.as_user(outsider).get(OVERDUE, {"company": company.pk, "on": "2026-02-01"})
    anonymous = APIClient().get(OVERDUE, {"company": company.pk})

    assert response.status_code == 400
    assert fields_of(response) == {"company": [f'No company "{company.pk}".']}
    assert anonymous.status_code == 401


# --- Admin ---------------------------------------------------------------------------------------------


def admin_url(model, view: str, *args) -> str:
    from django.urls import reverse

    return reverse(f"admin:billing_{model._meta.model_name}_{view}", args=args)


def test_the_admin_lists_and_changes_levels_and_shows_notices(admin_client, company, noticed):
    notice = OverdueNotice.objects.first()
    level = DunningLevel.objects.get()

    assert admin_client.get(admin_url(DunningLevel, "changelist")).status_code == 200
    assert admin_client.get(admin_url(DunningLevel, "change", level.pk)).status_code == 200
    notices = admin_client.get(admin_url(OverdueNotice, "changelist") + "?status=sent")
    assert notices.status_code == 200
    assert len(notices.context["cl"].result_list) == 2
    assert admin_client.get(admin_url(OverdueNotice, "change", notice.pk)).status_code == 200
    assert admin_client.post(admin_url(OverdueNotice, "change", notice.pk), {}).status_code == 403
    assert admin_client.get(admin_url(OverdueNotice, "add")).status_code == 403


def test_the_admin_adds_a_level_and_refuses_bad_channels_and_kinds(admin_client, company):
    form = {
        "company": company.pk,
        "days_overdue": 14,
        "name": "Second reminder",
        "kind": "payment_reminder",
        "channels": '["email"]',
        "fee": "2.50",
        "interest_rate": "0",
        "active": "on",
    }

    bad = admin_client.post(admin_url(DunningLevel, "add"), form | {"channels": '["sms"]', "kind": "no_such_kind"})
    good = admin_client.post(admin_url(DunningLevel, "add"), form)

    assert bad.status_code == 200
    assert set(bad.context["adminform"].form.errors) == {"channels", "kind"}
    assert good.status_code == 302
    assert DunningLevel.objects.get().channels == ["email"]
