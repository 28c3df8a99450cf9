import datetime

import pytest
from django.core.exceptions import ValidationError

from ledger.models import Company
from tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db


def test_member_lists_only_their_companies(api, owner, company, other_company):
    response = api.as_user(owner).get("/api/v1/companies")

    assert response.status_code == 200
    assert [c["slug"] for c in response.json()["results"]] == ["acme"]


def test_outsider_cannot_tell_another_company_exists(api, outsider, company):
    response = api.as_user(outsider).get(f"/api/v1/companies/{company.pk}")

    assert response.status_code == 404
    assert response.json() == {"error": {"status": 404, "code": "not_found", "message": "Not found."}}


def test_staff_see_every_company(api, staff, company, other_company):
    response = api.as_user(staff).get("/api/v1/companies")

    assert sorted(c["slug"] for c in response.json()["results"]) == ["acme", "rival"]


def test_member_cannot_create_or_change_companies(api, owner, company):
    client = api.as_user(owner)

    created = client.post("/api/v1/companies", {"name": "New", "slug": "new"}, format="json")
    changed = client.patch(f"/api/v1/companies/{company.pk}", {"name": "Renamed"}, format="json")

    assert created.status_code == 403
    assert changed.status_code == 403
    assert created.json()["error"]["code"] == "permission_denied"
    assert Company.objects.get(pk=company.pk).name == "Acme Books Ltd"


def test_staff_create_a_company(api, staff):
    payload = {
        "name": "Northwind Ltd",
        "slug": "northwind",
        "base_currency": "EUR",
        "timezone": "Europe/Dublin",
        "fiscal_year_start_month": 4,
        "fiscal_year_start_day": 6,
    }

    response = api.as_user(staff).post("/api/v1/companies", payload, format="json")

    assert response.status_code == 201, response.json()
    company = Company.objects.get(slug="northwind")
    assert (company.base_currency, str(company.timezone)) == ("EUR", "Europe/Dublin")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_currency": "XYZ"}, "base_currency"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"fiscal_year_start_month": 13}, "fiscal_year_start_month"),
        ({"fiscal_year_start_month": 2, "fiscal_year_start_day": 29}, "fiscal_year_start_day"),
        ({"slug": "not a slug"}, "slug"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_company_input_is_refused_with_field_messages(api, staff, change, field):
    payload = {"name": "Northwind Ltd", "slug": "northwind", **change}

    response = api.as_user(staff).post("/api/v1/companies", payload, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert not Company.objects.filter(slug="northwind").exists()


def test_duplicate_slug_is_refused(api, staff, company):
    response = api.as_user(staff).post("/api/v1/companies", {"name": "Other", "slug": "acme"}, format="json")

    assert response.status_code == 400
    assert "slug" in response.json()["error"]["fields"]


def test_partial_update_checks_fiscal_start_against_stored_month(api, staff):
    company = CompanyFactory(fiscal_year_start_month=2, fiscal_year_start_day=1)

    response = api.as_user(staff).patch(f"/api/v1/companies/{company.pk}", {"fiscal_year_start_day": 30}, format="json")

    assert response.status_code == 400
    assert "fiscal_year_start_day" in response.json()["error"]["fields"]


def test_me_shows_the_callers_companies(api, owner, company, other_company):
    response = api.as_user(owner).get("/api/v1/me")

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "owner"
    assert [c["slug"] for c in body["companies"]] == ["acme"]


def test_company_list_pages_by_cursor(api, staff):
    CompanyFactory.create_batch(5)
    client = api.as_user(staff)

    first = client.get("/api/v1/companies", {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == 2
    assert {c["id"] for c in first["results"]}.isdisjoint(c["id"] for c in second["results"])
    assert "cursor=" in first["next"]


def test_token_is_issued_for_valid_credentials_only(api, owner):
    good = api.post("/api/v1/auth/token", {"username": "owner", "password": "correct horse battery staple"})
    bad = api.post("/api/v1/auth/token", {"username": "owner", "password": "wrong"})

    assert good.status_code == 200 and good.json()["token"]
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    ("start", "day", "expected"),
    [
        ((1, 1), datetime.date(2026, 11, 21), (datetime.date(2026, 1, 1), datetime.date(2026, 12, 31))),
        ((4, 6), datetime.date(2026, 4, 5), (datetime.date(2025, 4, 6), datetime.date(2026, 4, 5))),
        ((4, 6), datetime.date(2026, 4, 6), (datetime.date(2026, 4, 6), datetime.date(2027, 4, 5))),
        ((3, 1), datetime.date(2024, 2, 29), (datetime.date(2023, 3, 1), datetime.date(2024, 2, 29))),
    ],
)
def test_fiscal_year_containing_a_date(start, day, expected):
    company = Company(fiscal_year_start_month=start[0], fiscal_year_start_day=start[1])

    assert company.fiscal_year_containing(day) == expected


def test_fiscal_year_cannot_start_on_a_day_some_years_lack():
    company = Company(name="X", slug="x", fiscal_year_start_month=2, fiscal_year_start_day=29)

    with pytest.raises(ValidationError) as raised:
        company.full_clean()

    assert "fiscal_year_start_day" in raised.value.message_dict


def test_business_date_follows_the_company_timezone(time_machine):
    time_machine.move_to(datetime.datetime(2026, 11, 21, 23, 30, tzinfo=datetime.UTC), tick=False)

    assert Company(timezone="Pacific/Auckland").today() == datetime.date(2026, 11, 22)
    assert Company(timezone="America/New_York").today() == datetime.date(2026, 11, 21)


def test_company_list_costs_the_same_queries_for_many_companies(api, staff, django_assert_num_queries):
    client = api.as_user(staff)
    CompanyFactory.create_batch(3)
    with django_assert_num_queries(2):  # the token's user, then one page of companies
        client.get("/api/v1/companies")

    CompanyFactory.create_batch(30)
    with django_assert_num_queries(2):
        client.get("/api/v1/companies")
