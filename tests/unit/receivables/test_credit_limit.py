"""The credit limit check (SL_CREDIT_LIMIT_CHECK): a customer over their limit is told to
the company's staff once per episode (and to the customer when set), a customer back
within it closes the episode, and the breaches are read over the API and in the admin."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import include, path, reverse
from rest_framework.routers import SimpleRouter

import receivables.admin.statements  # noqa: F401 (registers the admin pages)
from billing.models import Customer
from billing.services import settlement
from config.urls import urlpatterns as root_urlpatterns
from notifications import kinds as notification_kinds
from notifications.models import Notification
from notifications.services import rendering
from receivables import kinds
from receivables.api import statements as statements_api
from receivables.jobs import ledger as ledger_jobs
from receivables.models import CreditLimitBreach
from receivables.services import credit
from scheduling import registry
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from scheduling.services.sync import sync_jobs
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tests.unit.receivables.conftest import JAN

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime.datetime(2026, 3, 1, 9, 0, tzinfo=datetime.UTC)

_router = SimpleRouter(trailing_slash=False, use_regex_path=False)
for _prefix, _viewset, _basename in statements_api.routes:
    _router.register(_prefix, _viewset, basename=_basename)
urlpatterns = [path("api/v1/", include(_router.urls)), *root_urlpatterns]
with_api = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture(autouse=True)
def letters():
    kinds.register()


def day(n: int) -> datetime.date:
    return JAN + datetime.timedelta(days=n)


def limit(customer: Customer, amount: str | None) -> Customer:
    customer.credit_limit = None if amount is None else D(amount)
    customer.save(update_fields=["credit_limit"])
    return customer


@pytest.fixture
def over(company, customer, make_invoice, owner):
    """Amina, limit 100, owes 150 from day 0."""
    limit(customer, "100.00")
    make_invoice("150.00", issue=day(0))
    return customer


def staff_notices(**filters):
    return Notification.objects.filter(kind=kinds.CREDIT_LIMIT_EXCEEDED, **filters)


# --- Over the limit, once per episode ---------------------------------------------------------


def test_a_customer_over_their_limit_is_told_to_staff_once(company, over, owner):
    checked = credit.check(company, day(1))

    breach = CreditLimitBreach.objects.get()
    notice = staff_notices().get()
    assert (checked.limited, checked.over, checked.opened, checked.notified) == (1, 1, 1, 1)
    assert (breach.customer, breach.since, breach.cleared_on) == (over, day(1), None)
    assert (breach.balance, breach.credit_limit, breach.over_by) == (D("150.00"), D("100.00"), D("50.00"))
    assert notice.user == owner and notice.company == company
    assert notice.data == {
        "company_name": company.name,
        "customer_id": over.pk,
        "customer_name": "Amina Njoroge",
        "since": "2026-01-02",
        "currency": "GBP",
        "balance": "150.00",
        "credit_limit": "100.00",
        "over_by": "50.00",
    }
    assert breach.notified_at is not None


def test_still_over_the_next_day_tells_nobody_again(company, over):
    credit.check(company, day(1))

    again = credit.check(company, day(2))
    same_day = credit.check(company, day(2))

    assert (again.over, again.opened, again.notified) == (1, 0, 0)
    assert (same_day.opened, same_day.notified) == (0, 0)
    assert CreditLimitBreach.objects.count() == 1
    assert staff_notices().count() == 1


def test_back_within_the_limit_closes_the_episode_and_going_over_again_is_told_again(
    company, over, make_invoice, customer
):
    credit.check(company, day(1))
    settlement.record_payment(company, customer, date=day(3), amount=D("100.00"))

    back = credit.check(company, day(3))
    make_invoice("75.00", issue=day(5))
    again = credit.check(company, day(5))

    assert (back.cleared, back.opened) == (1, 0)
    first, second = CreditLimitBreach.objects.order_by("since")
    assert (first.since, first.cleared_on) == (day(1), day(3))
    assert (second.since, second.cleared_on, second.balance) == (day(5), None, D("125.00"))
    assert (again.opened, again.notified) == (1, 1)
    assert staff_notices().count() == 2


def test_a_balance_equal_to_the_limit_is_within_it(company, customer, make_invoice, owner):
    limit(customer, "150.00")
    make_invoice("150.00", issue=day(0))

    checked = credit.check(company, day(1))

    assert (checked.limited, checked.over) == (1, 0)
    assert not CreditLimitBreach.objects.exists()


def test_a_limit_of_nothing_allows_no_debt(company, customer, make_invoice, owner):
    limit(customer, "0.00")
    make_invoice("0.01", issue=day(0))

    assert credit.check(company, day(1)).opened == 1


def test_customers_without_a_limit_are_ignored(company, customer, make_invoice, owner):
    make_invoice("1000000.00", issue=day(0))

    checked = credit.check(company, day(1))

    assert (checked.limited, checked.over) == (0, 0)
    assert not Notification.objects.exists()


def test_removing_a_limit_closes_the_open_episode(company, over):
    credit.check(company, day(1))
    limit(over, None)

    checked = credit.check(company, day(2))

    assert checked.cleared == 1
    assert CreditLimitBreach.objects.get().cleared_on == day(2)


def test_only_documents_dated_by_the_business_date_count(company, customer, make_invoice, owner):
    limit(customer, "100.00")
    make_invoice("150.00", issue=day(10))
    settlement.record_payment(company, customer, date=day(20), amount=D("150.00"))

    before, during, after = (credit.check(company, day(n)) for n in (9, 10, 20))

    assert (before.over, during.over, after.over) == (0, 1, 0)
    assert (during.opened, after.cleared) == (1, 1)


def test_a_date_before_one_already_judged_opens_no_episode_again(company, over, customer):
    credit.check(company, day(1))
    settlement.record_payment(company, customer, date=day(3), amount=D("100.00"))
    credit.check(company, day(3))

    late = credit.check(company, day(2))  # a catch-up of an older day: over then, but seen since

    assert (late.over, late.opened, late.cleared) == (1, 0, 0)
    assert CreditLimitBreach.objects.count() == 1
    assert staff_notices().count() == 1


@pytest.mark.parametrize("kind", [kinds.STATEMENT, kinds.CREDIT_LIMIT_EXCEEDED, kinds.CREDIT_LIMIT_NOTICE])
def test_the_default_letters_render_with_their_sample_data(kind):
    registered = notification_kinds.get(kind)
    source = rendering.Source(registered.subject, registered.body, registered.html)

    letter = rendering.render(source, registered.sample_data, kind)

    assert letter.subject and letter.body and letter.html
    assert "Amina Njoroge" in letter.body and "{{" not in letter.body + letter.html


def test_the_staff_letter_says_by_how_much(company, over):
    credit.check(company, day(1))
    notice = staff_notices().get()
    registered = notification_kinds.get(kinds.CREDIT_LIMIT_EXCEEDED)

    letter = rendering.render(
        rendering.Source(registered.subject, registered.body, registered.html),
        rendering.context_of(notice, company.name),
    )

    assert letter.subject == "Amina Njoroge is over their credit limit"
    assert "GBP 150.00, GBP 50.00 over their credit limit of GBP 100.00" in letter.body


# --- Who is told ------------------------------------------------------------------------------


def test_the_customer_is_told_only_when_the_check_is_set_to(company, over, make_invoice):
    other = limit(CustomerFactory(company=company, name="Baraka Otieno"), "10.00")

    credit.check(company, day(1))
    make_invoice("20.00", issue=day(2), who=other)
    credit.check(company, day(2), notify_customer=True)

    letters = Notification.objects.filter(kind=kinds.CREDIT_LIMIT_NOTICE)
    assert [letter.recipient_key for letter in letters] == [f"billing.customer:{other.pk}"]
    assert letters.get().data["over_by"] == "10.00"


def test_staff_are_the_companys_members_but_not_customers_portal_users_or_others(
    company, over, owner, teammate, outsider
):
    portal = MembershipFactory(company=company, user__username="portal").user
    CustomerFactory(company=company, portal_user=portal)
    UserFactory(username="gone", is_active=False).memberships.create(company=company)
    UserFactory(username="platform", is_staff=True)

    credit.check(company, day(1))

    assert {notice.user.username for notice in staff_notices()} == {"owner", "teammate"}
    assert {tuple(notice.channels) for notice in staff_notices()} == {("in_app", "email")}


def test_a_company_without_members_tells_the_platforms_staff(company, customer, make_invoice):
    limit(customer, "1.00")
    make_invoice("5.00", issue=day(0))
    UserFactory(username="platform", is_staff=True)

    credit.check(company, day(1))

    assert [notice.user.username for notice in staff_notices()] == ["platform"]


def test_another_companys_customers_are_not_checked(company, other_company, over):
    from ledger.services.chart import load_default_chart

    load_default_chart(other_company)
    limit(CustomerFactory(company=other_company), "0.00")

    credit.check(other_company, day(1))

    assert not CreditLimitBreach.objects.exists()


@pytest.mark.parametrize("count", [2, 20])
def test_the_check_takes_the_same_queries_for_few_customers_as_for_many(
    company, books, owner, count, django_assert_num_queries, make_invoice
):
    # The limits, three grouped balances, the breach history; a savepoint, the clearing
    # update, the insert, the unsent breaches, the staff, notify_many's seven, the update
    # marking them told, and the release.
    for n in range(count):
        make_invoice("20.00", issue=day(0), who=limit(CustomerFactory(company=company, name=f"C{n}"), "10.00"))

    with django_assert_num_queries(19):
        checked = credit.check(company, day(1))

    assert checked.opened == checked.notified == count


# --- The job ------------------------------------------------------------------------------------


def definition(code: str) -> JobDefinition:
    if not JobDefinition.objects.filter(code=code).exists():
        sync_jobs()
    return JobDefinition.objects.get(code=code)


def test_the_job_is_declared_daily_at_eight_per_company():
    spec = registry.get("SL_CREDIT_LIMIT_CHECK")

    assert spec.func is ledger_jobs.credit_limit_check.func
    assert (spec.queue, spec.scope, spec.rule) == ("receivables", "company", None)
    assert (spec.schedule.minute, spec.schedule.hour, spec.schedule.day_of_month) == ("0", "8", "*")
    assert spec.params.describe()["notify_customer"]["default"] is False


def test_the_job_checks_the_business_date_and_tells_the_customer_when_set(company, over):
    job = definition("SL_CREDIT_LIMIT_CHECK")
    run, _ = runs.request_run(job, company=company, business_date=day(1), params={"notify_customer": True})

    done = execution.run_here(run)

    assert done.status == "succeeded", done.error
    assert done.result == {
        "date": "2026-01-02",
        "customers_with_limit": 1,
        "over": 1,
        "opened": 1,
        "cleared": 0,
        "notified": 2,
    }
    assert CreditLimitBreach.objects.get().job_run_id == run.pk
    assert Notification.objects.filter(kind=kinds.CREDIT_LIMIT_NOTICE).count() == 1


def test_a_rerun_of_the_day_tells_nobody_twice(company, over):
    job = definition("SL_CREDIT_LIMIT_CHECK")
    run, _ = runs.request_run(job, company=company, business_date=day(1))
    execution.run_here(run)

    again = execution.run_here(runs.rerun(run))

    assert again.status == "succeeded" and again.result["opened"] == again.result["notified"] == 0
    assert staff_notices().count() == 1


# --- API and admin --------------------------------------------------------------------------------


@with_api
def test_a_member_lists_the_breaches_and_another_company_sees_none(api, company, over, owner, outsider):
    credit.check(company, day(1))
    breach = CreditLimitBreach.objects.get()

    mine = api.as_user(owner).get("/api/v1/receivables/credit-limit-breaches", {"open": "true"})
    closed = api.as_user(owner).get("/api/v1/receivables/credit-limit-breaches", {"open": "false"})
    theirs = api.as_user(outsider).get("/api/v1/receivables/credit-limit-breaches")
    theirs_one = api.as_user(outsider).get(f"/api/v1/receivables/credit-limit-breaches/{breach.pk}")

    (row,) = mine.json()["results"]
    assert (row["customer_name"], row["open"], row["over_by"], row["since"]) == (
        "Amina Njoroge",
        True,
        "50.00",
        "2026-01-02",
    )
    assert closed.json()["results"] == []
    assert theirs.json()["results"] == [] and theirs_one.status_code == 404


def test_the_admin_lists_and_shows_breaches_read_only(admin_client, company, over):
    credit.check(company, day(1))
    breach = CreditLimitBreach.objects.get()

    listed = admin_client.get(reverse("admin:receivables_creditlimitbreach_changelist"), {"cleared_on__isempty": "1"})
    page = admin_client.get(reverse("admin:receivables_creditlimitbreach_change", args=[breach.pk]))

    assert listed.status_code == page.status_code == 200
    assert "Amina Njoroge" in listed.content.decode()
    assert admin_client.get(reverse("admin:receivables_creditlimitbreach_add")).status_code == 403


def test_an_operator_sees_only_their_companys_breaches(client, company, other_company, over):
    credit.check(company, day(1))
    operator = MembershipFactory(company=other_company, user__username="rival-op", user__is_staff=True).user
    operator.user_permissions.set(Permission.objects.filter(content_type__app_label="receivables"))
    client.force_login(operator)

    listed = client.get(reverse("admin:receivables_creditlimitbreach_changelist"))

    assert list(listed.context["cl"].result_list) == []
