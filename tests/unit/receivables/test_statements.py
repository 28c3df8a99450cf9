"""Customer statements (SL_STATEMENT_GENERATION): the open items and aging of each customer
as of the statement date, equal to their balance; stored and sent once; rendered as HTML
and PDF from the snapshot; read over the API by the company's callers only; in the admin."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import include, path, reverse
from rest_framework.routers import SimpleRouter

import receivables.admin.statements  # noqa: F401 (registers the admin pages)
from billing.models import Invoice
from billing.services import finalising, settlement
from billing.services.subledger import open_items_by_party
from config.urls import urlpatterns as root_urlpatterns
from ledger.models import Account
from ledger.services.chart import load_default_chart
from notifications.models import Delivery, DeliveryStatus, Notification
from notifications.services import rendering
from receivables import kinds
from receivables.api import statements as statements_api
from receivables.jobs import ledger as ledger_jobs
from receivables.models import Statement
from receivables.services import statements
from scheduling import registry
from scheduling.calendar import RuleKind, next_fire_times
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from scheduling.services.sync import sync_jobs
from tests.factories import CompanyFactory, CustomerFactory, MembershipFactory

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime.datetime(2026, 2, 1, 9, 0, tzinfo=datetime.UTC)
DEC = datetime.date(2025, 12, 1)
JAN = datetime.date(2026, 1, 1)
END = datetime.date(2026, 1, 31)  # the statement date

# The API under test, whether or not the project's URLs mount it yet.
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


def jan(day: int) -> datetime.date:
    return datetime.date(2026, 1, day)


@pytest.fixture
def history(company, customer, make_invoice):
    """Amina: three invoices (one part paid, one credited, one paid after the statement
    date) and two payments not allocated by then; Baraka: settled; Chidi: an invoice and an
    unallocated payment that net to nothing; Dana: no email, one invoice."""
    first = make_invoice("100.00", issue=DEC, days=14)  # due 15 Dec: a month old at the 31st
    second = make_invoice("250.00", issue=jan(10), days=14)  # due 24 Jan: under a month
    third = make_invoice("80.00", issue=jan(20), days=30)  # due 19 Feb: current
    make_invoice("999.00", issue=datetime.date(2026, 2, 5))  # after the statement date
    settlement.record_payment(company, customer, date=jan(5), amount=D("60.00"), allocations=[(first, D("60.00"))])
    settlement.record_credit_note(company, customer, date=jan(25), subtotal=D("30.00"), invoice=second)
    settlement.record_payment(company, customer, date=jan(28), amount=D("50.00"))
    late = settlement.record_payment(company, customer, date=jan(29), amount=D("25.00"))
    settlement.allocate_payment(late, [(third, D("25.00"), datetime.date(2026, 2, 3))])

    baraka = CustomerFactory(company=company, name="Baraka Otieno")
    paid = make_invoice("500.00", issue=jan(2), who=baraka)
    settlement.record_payment(company, baraka, date=jan(20), amount=D("500.00"), allocations=[(paid, D("500.00"))])
    chidi = CustomerFactory(company=company, name="Chidi Okafor")
    make_invoice("70.00", issue=jan(3), who=chidi)
    settlement.record_payment(company, chidi, date=jan(20), amount=D("70.00"))
    dana = CustomerFactory(company=company, name="Dana Mwangi", email="")
    make_invoice("90.00", issue=jan(15), who=dana)
    return {"amina": customer, "baraka": baraka, "chidi": chidi, "dana": dana, "first": first, "third": third}


def statement_of(customer, on: datetime.date = END) -> Statement:
    return Statement.objects.get(customer=customer, statement_date=on)


def open_amounts(statement: Statement) -> dict[str, str]:
    return {item["id"]: item["amount"] for item in statement.items}


# --- What a statement says ---------------------------------------------------------------------


def test_a_statement_lists_the_open_items_and_its_balance_is_the_customers(company, history):
    statements.generate(company, END)

    statement = statement_of(history["amina"])
    assert statement.balance == D("265.00")
    assert statement.balance == open_items_by_party(company, END)[history["amina"].party]
    assert sum(D(amount) for amount in open_amounts(statement).values()) == statement.balance
    kinds_and_amounts = sorted((item["kind"], item["amount"]) for item in statement.items)
    assert kinds_and_amounts == [
        ("invoice", "220.00"),  # 250 less the 30 credit note allocated to it
        ("invoice", "40.00"),  # 100 less the 60 part payment
        ("invoice", "80.00"),
        ("payment", "-25.00"),
        ("payment", "-50.00"),
    ]


def test_an_allocation_after_the_statement_date_is_not_counted(company, history):
    statements.generate(company, END)

    amounts = open_amounts(statement_of(history["amina"]))
    assert amounts[f"invoice:{history['third'].pk}"] == "80.00"
    paid_late = [item for item in statement_of(history["amina"]).items if item["amount"] == "-25.00"]
    assert paid_late and paid_late[0]["kind"] == "payment"


def test_documents_after_the_statement_date_are_left_out(company, history):
    statements.generate(company, END)

    assert "999.00" not in {item["total"] for item in statement_of(history["amina"]).items}


def test_the_aging_summary_buckets_each_item_by_its_due_date(company, history):
    statements.generate(company, END)

    statement = statement_of(history["amina"])
    assert statement.aging == [
        {"label": "Current", "amount": "5.00"},  # 80 not yet due, less 50 and 25 on account
        {"label": "< 1 Month", "amount": "220.00"},
        {"label": "1 Month", "amount": "40.00"},
        {"label": "2 Months", "amount": "0.00"},
        {"label": "3 Months", "amount": "0.00"},
        {"label": "Older", "amount": "0.00"},
    ]
    assert sum(D(bucket["amount"]) for bucket in statement.aging) == statement.balance
    by_id = {item["id"]: item["bucket"] for item in statement.items}
    assert by_id[f"invoice:{history['first'].pk}"] == "1 Month"


def test_a_statement_keeps_what_it_said_after_the_account_moves_on(company, history):
    statements.generate(company, END)
    settlement.record_payment(company, history["amina"], date=jan(31), amount=D("265.00"))

    statement = statement_of(history["amina"])
    assert statement.balance == D("265.00")
    assert "265.00" in statements.render_html(
        Statement.objects.select_related("company", "customer").get(pk=statement.pk)
    )


def test_only_customers_with_a_balance_get_a_statement_by_default(company, history):
    made = statements.generate(company, END)

    assert set(Statement.objects.values_list("customer__name", flat=True)) == {"Amina Njoroge", "Dana Mwangi"}
    assert made.customers == made.created == 2
    assert made.balance == D("355.00")


def test_asked_to_include_them_customers_whose_open_items_net_to_nothing_get_one_too(company, history):
    statements.generate(company, END, only_with_balance=False)

    chidi = statement_of(history["chidi"])
    assert chidi.balance == D("0.00")
    assert sorted(open_amounts(chidi).values()) == ["-70.00", "70.00"]
    assert not Statement.objects.filter(customer=history["baraka"]).exists()  # nothing open at all


def test_amounts_are_in_the_currency_places_of_the_company(db):
    company = CompanyFactory(base_currency="JPY", slug="yen")
    load_default_chart(company)
    sales = Account.objects.get(company=company, code="4100")
    customer = CustomerFactory(company=company)
    invoice = Invoice.objects.create(
        company=company,
        customer=customer,
        issue_date=jan(5),
        due_date=jan(19),
        currency="JPY",
        subtotal=1200,
        total=1200,
        due=1200,
    )
    invoice.lines.create(description="Lesson", amount=1200, total=1200, income_account=sales)
    finalising.finalise(company, [invoice.pk], notify=False)

    statements.generate(company, END)

    statement = statement_of(customer)
    assert [item["amount"] for item in statement.items] == ["1200"]
    assert statement.aging[1] == {"label": "< 1 Month", "amount": "1200"}
    assert Notification.objects.get(kind=kinds.STATEMENT).data["balance"] == "1200"


# --- Sent once -------------------------------------------------------------------------------


@with_api
def test_each_statement_goes_to_its_customer_with_the_statement_in_the_letter(company, history):
    made = statements.generate(company, END)

    assert made.notified == 2
    notice = Notification.objects.get(kind=kinds.STATEMENT, recipient_key=f"billing.customer:{history['amina'].pk}")
    statement = statement_of(history["amina"])
    assert notice.dedupe_key == f"statement:{history['amina'].pk}:2026-01-31"
    assert notice.data["balance"] == "265.00"
    assert notice.data["pdf_url"] == f"/api/v1/receivables/statements/{statement.pk}/document?format=pdf"
    letter = rendering.render(
        rendering.sources({(company.pk, kinds.STATEMENT)})[(company.pk, kinds.STATEMENT)],
        rendering.context_of(notice, company.name),
    )
    assert "GBP 265.00 is outstanding" in letter.body
    assert "220.00" in letter.body and "1 Month: 40.00" in letter.body
    assert '<td style="text-align:right">-50.00</td>' in letter.html
    assert statement.notified_at is not None


def test_a_customer_without_an_email_gets_a_statement_and_only_the_in_app_delivery(company, history):
    statements.generate(company, END)

    notice = Notification.objects.get(kind=kinds.STATEMENT, recipient_key=f"billing.customer:{history['dana'].pk}")
    email = Delivery.objects.get(notification=notice, channel="email")
    assert statement_of(history["dana"]).balance == D("90.00")
    assert (email.status, email.last_error) == (DeliveryStatus.SUPPRESSED, "no email address")


def test_rerunning_creates_and_sends_nothing_twice(company, history):
    statements.generate(company, END)

    again = statements.generate(company, END)

    assert (again.created, again.existing, again.notified) == (0, 2, 0)
    assert Statement.objects.count() == 2
    assert Notification.objects.filter(kind=kinds.STATEMENT).count() == 2


def test_a_statement_stored_but_not_sent_is_sent_by_the_next_run(company, history):
    statements.generate(company, END)
    Notification.objects.all().delete()
    Statement.objects.filter(customer=history["dana"]).update(notified_at=None)  # a run stopped after its insert

    again = statements.generate(company, END)

    assert (again.created, again.notified) == (0, 1)
    assert Notification.objects.get().recipient_key == f"billing.customer:{history['dana'].pk}"


def test_batches_write_and_send_every_statement(company, customer, make_invoice):
    for n in range(5):
        make_invoice("10.00", issue=jan(2), who=CustomerFactory(company=company, name=f"Batch {n}"))

    made = statements.generate(company, END, batch_size=2)

    assert (made.customers, made.created, made.notified) == (5, 5, 5)
    assert not Statement.objects.unsent().exists()


def test_a_batch_size_out_of_range_is_refused(company):
    with pytest.raises(ValueError, match="batch size"):
        statements.generate(company, END, batch_size=0)


@pytest.mark.parametrize("count", [3, 30])
def test_the_queries_do_not_grow_with_the_customers(company, books, count, django_assert_num_queries):
    # Five to read the documents; then for the batch: its savepoint, the insert, the unsent
    # statements, their recipients, notify_many's seven (savepoint, notifications,
    # preferences, quiet hours, webhook endpoints, deliveries, release), the update marking
    # them sent and the release. A query per customer would show here as dozens.
    customers = CustomerFactory.create_batch(count, company=company)
    invoices = [
        Invoice(
            company=company,
            customer=who,
            issue_date=JAN,
            due_date=jan(15),
            currency="GBP",
            subtotal=D("10.00"),
            total=D("10.00"),
            due=D("10.00"),
            status="open",
            number=f"INV-{n}",
            finalised_at=NOW,
        )
        for n, who in enumerate(customers)
    ]
    Invoice.objects.bulk_create(invoices)
    ContentType.objects.get_for_model(customers[0])  # cached for the process, as in a worker

    with django_assert_num_queries(18):
        made = statements.generate(company, END)

    assert made.created == made.notified == count


# --- Renderings --------------------------------------------------------------------------------


def test_the_statement_renders_as_html_and_pdf(company, history):
    statements.generate(company, END)
    statement = Statement.objects.select_related("company", "customer").get(customer=history["amina"])

    html = statements.render_html(statement)
    pdf = statements.render_pdf(statement)

    assert pdf.startswith(b"%PDF")
    assert statement.number in html and "Amina Njoroge" in html
    assert "220.00" in html and "-50.00" in html and "265.00" in html
    assert "1 Month" in html


def test_a_name_with_markup_is_escaped_in_both_renderings(company, make_invoice):
    who = CustomerFactory(company=company, name="<b>Bold & Co</b>")
    make_invoice("10.00", issue=jan(2), who=who)
    statements.generate(company, END)
    statement = Statement.objects.select_related("company", "customer").get(customer=who)

    assert "&lt;b&gt;Bold &amp; Co&lt;/b&gt;" in statements.render_html(statement)
    assert statements.render_pdf(statement).startswith(b"%PDF")


def test_many_open_items_continue_over_pages_and_the_letter_lists_the_first_fifty(company, customer, books):
    Invoice.objects.bulk_create(
        Invoice(
            company=company,
            customer=customer,
            issue_date=jan(2),
            due_date=jan(16),
            currency="GBP",
            subtotal=D("1.00"),
            total=D("1.00"),
            due=D("1.00"),
            status="open",
            number=f"INV-{n:04d}",
            finalised_at=NOW,
        )
        for n in range(120)
    )
    statements.generate(company, END)
    statement = Statement.objects.select_related("company", "customer").get(customer=customer)

    assert len(re.findall(rb"/Type /Page[^s]", statements.render_pdf(statement))) >= 2
    data = Notification.objects.get(kind=kinds.STATEMENT).data
    assert (len(data["items"]), data["more_items"]) == (50, 70)


# --- The job -------------------------------------------------------------------------------------


def definition(code: str) -> JobDefinition:
    if not JobDefinition.objects.filter(code=code).exists():
        sync_jobs()
    return JobDefinition.objects.get(code=code)


def test_the_job_is_declared_for_the_last_day_of_the_month_at_eight_per_company():
    spec = registry.get("SL_STATEMENT_GENERATION")

    assert spec.func is ledger_jobs.statement_generation.func
    assert (spec.queue, spec.scope, spec.atomic) == ("receivables", "company", False)
    assert (spec.schedule.minute, spec.schedule.hour) == ("0", "8")
    assert spec.rule.kind == RuleKind.LAST_DAY_OF_MONTH
    fires = next_fire_times(spec.schedule, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 3, spec.rule)
    assert [fire.date() for fire in fires] == [END, datetime.date(2026, 2, 28), datetime.date(2026, 3, 31)]
    assert {fire.hour for fire in fires} == {8}


def test_the_job_makes_the_business_dates_statements_and_a_rerun_adds_nothing(company, history):
    job = definition("SL_STATEMENT_GENERATION")
    run, _ = runs.request_run(job, company=company, business_date=END)

    done = execution.run_here(run)
    first = (done.status, done.result, done.processed, done.created)
    again = execution.run_here(runs.rerun(done))  # the same run, its slot run again

    status, result, processed, created = first
    assert status == "succeeded", done.error
    assert (result["created"], result["notified"], result["balance"]) == (2, 2, "355.00")
    assert (processed, created) == (2, 2)
    assert again.status == "succeeded" and again.result["created"] == 0 and again.result["notified"] == 0
    assert Statement.objects.filter(job_run=run).count() == 2
    assert Notification.objects.filter(kind=kinds.STATEMENT).count() == 2


def test_the_job_takes_only_with_balance_as_a_parameter(company, history):
    job = definition("SL_STATEMENT_GENERATION")
    run, _ = runs.request_run(job, company=company, business_date=END, params={"only_with_balance": False})

    done = execution.run_here(run)

    assert done.result["statements"] == 3


# --- The API -----------------------------------------------------------------------------------


@pytest.fixture
def made(company, history):
    statements.generate(company, END)
    return statement_of(history["amina"])


@with_api
def test_a_member_lists_and_reads_the_companys_statements(api, owner, made, history):
    client = api.as_user(owner)

    listed = client.get("/api/v1/receivables/statements", {"customer": history["amina"].pk})
    detail = client.get(f"/api/v1/receivables/statements/{made.pk}")

    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["number"], row["balance"], row["statement_date"]) == (made.number, "265.00", "2026-01-31")
    assert "items" not in row
    assert len(detail.json()["items"]) == 5
    assert row["links"]["pdf"] == f"/api/v1/receivables/statements/{made.pk}/document?format=pdf"


@with_api
def test_statements_filter_by_date(api, owner, made):
    client = api.as_user(owner)

    on = client.get("/api/v1/receivables/statements", {"date_from": "2026-01-31", "date_to": "2026-01-31"})
    before = client.get("/api/v1/receivables/statements", {"date_to": "2026-01-30"})

    assert len(on.json()["results"]) == 2
    assert before.json()["results"] == []


@with_api
def test_a_statement_is_fetched_as_html_or_pdf(api, owner, made):
    client = api.as_user(owner)
    url = f"/api/v1/receivables/statements/{made.pk}/document"

    html = client.get(url, {"format": "html"})
    pdf = client.get(url, {"format": "pdf"})
    negotiated = client.get(url, HTTP_ACCEPT="text/html")
    wrong = client.get(url, {"format": "docx"})

    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert "Amina Njoroge" in html.content.decode()
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert f'filename="{made.number}.pdf"' in pdf["Content-Disposition"]
    assert negotiated["Content-Type"].startswith("text/html")
    assert wrong.status_code == 400 and wrong.json()["error"]["fields"]["format"]


@with_api
def test_another_companys_caller_sees_no_statement(api, outsider, made):
    client = api.as_user(outsider)

    listed = client.get("/api/v1/receivables/statements")
    detail = client.get(f"/api/v1/receivables/statements/{made.pk}")
    document = client.get(f"/api/v1/receivables/statements/{made.pk}/document", {"format": "pdf"})

    assert listed.json()["results"] == []
    assert detail.status_code == 404 and document.status_code == 404


@with_api
def test_statements_are_read_only(api, owner, made):
    client = api.as_user(owner)

    assert client.post("/api/v1/receivables/statements", {}, format="json").status_code == 405
    assert client.delete(f"/api/v1/receivables/statements/{made.pk}").status_code == 405


@with_api
def test_anonymous_callers_are_refused(client, made):
    assert client.get("/api/v1/receivables/statements").status_code == 401
    assert client.get(f"/api/v1/receivables/statements/{made.pk}/document").status_code == 401


# --- The admin ---------------------------------------------------------------------------------


def test_the_admin_lists_shows_and_opens_statements(admin_client, made):
    changelist = admin_client.get(reverse("admin:receivables_statement_changelist"))
    page = admin_client.get(reverse("admin:receivables_statement_change", args=[made.pk]))
    pdf = admin_client.get(reverse("admin:receivables_statement_document", args=[made.pk, "pdf"]))
    html = admin_client.get(reverse("admin:receivables_statement_document", args=[made.pk, "html"]))

    assert changelist.status_code == page.status_code == 200
    assert made.number in changelist.content.decode()
    assert "220.00" in page.content.decode()
    assert pdf.content.startswith(b"%PDF") and "Amina Njoroge" in html.content.decode()


def test_an_operator_of_another_company_cannot_open_a_statement(client, other_company, made):
    operator = MembershipFactory(company=other_company, user__username="rival-op", user__is_staff=True).user
    operator.user_permissions.set(Permission.objects.filter(content_type__app_label="receivables"))
    client.force_login(operator)

    listed = client.get(reverse("admin:receivables_statement_changelist"))
    pdf = client.get(reverse("admin:receivables_statement_document", args=[made.pk, "pdf"]))

    assert list(listed.context["cl"].result_list) == []
    assert pdf.status_code == 404


def test_statements_are_not_added_changed_or_deleted_in_the_admin(admin_client, made):
    assert admin_client.get(reverse("admin:receivables_statement_add")).status_code == 403
    assert admin_client.get(reverse("admin:receivables_statement_delete", args=[made.pk])).status_code == 403


@with_api
def test_the_url_sweeps_objects_are_the_owners_and_out_of_another_companys_reach(api, company, owner, outsider):
    from tests.unit.receivables.sweep_statements import OWNED

    for route, make in OWNED.items():
        url = "/" + route.replace("<pk>", str(make(company)))
        assert api.as_user(owner).get(url).status_code == 200, url
        client = api.as_user(outsider)
        for method in ("get", "post", "patch", "put", "delete"):
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code in (403, 404, 405), f"{method.upper()} {url}: {response.status_code}"
