"""Billing's admin for customers, fee structures, enrolments, invoices, invoice runs and
number sequences: pages answer, forms refuse what the API refuses, invoices are records
finalised by the action and opened as PDF or HTML, and an operator sees only their
companies' rows."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse

from billing.models import (
    Customer,
    DocumentSequence,
    Enrolment,
    FeeComponent,
    FeeStructure,
    Invoice,
    InvoiceRun,
    InvoiceStatus,
    Series,
)
from billing.services import invoicing, numbering
from billing.services.invoicing import RunSpec
from ledger.models import Account
from ledger.services.chart import load_default_chart
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from tests.factories import CustomerFactory, FeeStructureFactory, MembershipFactory
from tests.unit.billing.conftest import JAN

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 1, 10, 9, 0, tzinfo=datetime.UTC)
ROWS = 30


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def url(model, view: str, *args) -> str:
    return reverse(f"admin:billing_{model._meta.model_name}_{view}", args=args)


def act(client, model, action: str, *objects):
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    return client.post(url(model, "changelist"), data, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def inline(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{name}": value for name, value in row.items()})
    return data


@pytest.fixture
def records(company, fees, enrol, customer):
    """January billed through the job (an invoice run linked to its job run), a draft and a sequence."""
    enrol(customer, fees["maths"], end_date=datetime.date(2026, 1, 31))
    run, _ = runs.request_run(
        JobDefinition.objects.get(code="BILLING_MONTHLY_INVOICES"), company=company, business_date=JAN
    )
    execution.run_here(run)
    drafted = CustomerFactory(company=company, name="Drafted")
    enrol(drafted, fees["english"])
    invoicing.generate(RunSpec.for_period(company, "monthly", datetime.date(2026, 2, 1), finalise=False))
    return {"open": Invoice.objects.get(customer=customer), "draft": Invoice.objects.get(customer=drafted)}


MODELS = [Customer, FeeStructure, Enrolment, Invoice, InvoiceRun, DocumentSequence]


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_and_change_page_answers(admin_client, records, model):
    obj = model.objects.order_by("pk").first()

    assert admin_client.get(url(model, "changelist")).status_code == 200
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", [Customer, FeeStructure, Enrolment, DocumentSequence])
def test_add_pages_answer_for_what_operators_create(admin_client, records, model):
    assert admin_client.get(url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", [Invoice, InvoiceRun])
def test_invoices_and_runs_are_not_added_or_changed_here(admin_client, records, model):
    obj = model.objects.order_by("pk").first()

    assert admin_client.get(url(model, "add")).status_code == 403
    assert admin_client.post(url(model, "change", obj.pk), {}).status_code == 403


def test_the_changelist_filters_answer(admin_client, records, company):
    queries = [
        (Customer, f"?company__id__exact={company.pk}&active__exact=1&q=amina", 1),
        (FeeStructure, "?cadence=weekly&active__exact=1", 1),
        (Enrolment, "?fee_structure__cadence=monthly&q=maths", 1),
        (Invoice, "?status=draft&cadence=monthly&source=run", 1),
        (Invoice, "?status=open&q=INV-000001", 1),
        (InvoiceRun, f"?company__id__exact={company.pk}&cadence=monthly", 1),
    ]

    for model, query, rows in queries:
        response = admin_client.get(url(model, "changelist") + query)
        assert response.status_code == 200, query
        assert len(response.context["cl"].result_list) == rows, query


@pytest.fixture
def many(company, fees, enrol):
    for _ in range(ROWS):
        enrol(CustomerFactory(company=company), fees["english"])
    invoicing.generate(RunSpec.for_period(company, "monthly", JAN))


@pytest.mark.parametrize("model", [Customer, Enrolment, Invoice])
def test_changelists_take_a_fixed_number_of_queries(admin_client, many, django_assert_max_num_queries, model):
    with django_assert_max_num_queries(8):
        response = admin_client.get(url(model, "changelist"))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= ROWS


# --- Invoices ---------------------------------------------------------------------------------


def test_finalising_selected_drafts_numbers_and_posts_them(admin_client, records):
    response = act(admin_client, Invoice, "finalise_drafts", records["draft"], records["open"])

    assert texts(response) == ["Finalised 1 drafts; 1 not drafts left alone"]
    draft = Invoice.objects.get(pk=records["draft"].pk)
    assert (draft.status, draft.number) == (InvoiceStatus.OPEN, "INV-000002")
    assert draft.journal_entry_id is not None


def test_a_refused_finalising_is_a_message(admin_client, company, records):
    Account.objects.filter(company=company, role="receivables").update(is_active=False)

    response = act(admin_client, Invoice, "finalise_drafts", records["draft"])

    assert response.status_code == 200
    [message] = texts(response)
    assert message.startswith("Finalised 0 drafts; refused: acme: The company has no active account")
    assert Invoice.objects.get(pk=records["draft"].pk).status == InvoiceStatus.DRAFT


def test_an_invoice_opens_as_pdf_and_html_from_its_page(admin_client, records):
    invoice = records["open"]

    page = admin_client.get(url(Invoice, "change", invoice.pk))
    pdf = admin_client.get(reverse("admin:billing_invoice_document", args=[invoice.pk, "pdf"]))
    html = admin_client.get(reverse("admin:billing_invoice_document", args=[invoice.pk, "html"]))
    other = admin_client.get(f"/admin/billing/invoice/{invoice.pk}/document.docx")

    assert reverse("admin:billing_invoice_document", args=[invoice.pk, "pdf"]) in page.content.decode()
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "INV-000001" in html.content.decode()
    assert other.status_code == 404


def test_only_drafts_are_deleted(admin_client, records):
    assert admin_client.get(url(Invoice, "delete", records["open"].pk)).status_code == 403

    response = admin_client.post(url(Invoice, "delete", records["draft"].pk), {"post": "yes"})

    assert response.status_code == 302
    assert list(Invoice.objects.all()) == [records["open"]]


def test_an_invoice_runs_page_links_to_its_job_run(admin_client, records):
    run = InvoiceRun.objects.get()

    page = admin_client.get(url(InvoiceRun, "change", run.pk)).content.decode()

    assert reverse("admin:scheduling_jobrun_change", args=[run.job_run_id]) in page


def test_a_sequences_counter_is_not_rewritten_from_its_page(admin_client, company, records):
    sequence = DocumentSequence.objects.get(company=company, series=Series.INVOICE)
    page = {"prefix": "INV-", "padding": "6"}
    numbering.advance(numbering.lock(company, Series.INVOICE), 5)  # numbers taken while the page was open

    response = admin_client.post(url(DocumentSequence, "change", sequence.pk), {**page, "prefix": "F-"})

    assert response.status_code == 302
    sequence.refresh_from_db()
    assert (sequence.prefix, sequence.next_number) == ("F-", 7)


# --- Customers, fees, enrolments ---------------------------------------------------------------


def customer_form(company, **fields) -> dict:
    return {
        "company": company.pk,
        "name": "Baraka Otieno",
        "email": "baraka@example.com",
        "external_ref": "",
        "payment_terms_days": "14",
        "active": "on",
        **fields,
    }


def test_a_customers_enrolments_take_its_company_and_are_invoiced_when_asked(admin_client, company, fees):
    rows = [
        {"fee_structure": fees["english"].pk, "start_date": "2026-01-05", "consolidate": "on"},
        {"fee_structure": fees["maths"].pk, "start_date": "2026-01-05", "invoice_on_enrolment": "on"},
    ]

    response = admin_client.post(url(Customer, "add"), {**customer_form(company), **inline("enrolments", rows)})

    assert response.status_code == 302, response.context["errors"] if response.context else response
    customer = Customer.objects.get(name="Baraka Otieno")
    assert set(Enrolment.objects.values_list("company", "customer")) == {(company.pk, customer.pk)}
    invoice = Invoice.objects.get()
    assert (invoice.source, invoice.total, invoice.status) == ("enrolment", Decimal("2320.00"), InvoiceStatus.OPEN)


def test_a_fee_of_another_company_is_a_form_error_on_an_enrolment(admin_client, company, customer, other_company):
    theirs = FeeStructureFactory(company=other_company)
    form = {"company": company.pk, "customer": customer.pk, "fee_structure": theirs.pk, "start_date": "2026-01-05"}

    response = admin_client.post(url(Enrolment, "add"), form)

    assert response.status_code == 200
    assert "another company" in str(response.context["adminform"].form.errors["fee_structure"])
    assert not Enrolment.objects.exists()


def fee_form(company, **fields) -> dict:
    return {
        "company": company.pk,
        "code": "SCI",
        "name": "Science",
        "description": "",
        "amount": "300.00",
        "currency": "GBP",
        "cadence": "monthly",
        "tax_rate": "16",
        "active": "on",
        **fields,
    }


def test_a_fee_structure_is_added_with_components_that_add_up(admin_client, company, books):
    rows = [{"position": "0", "name": "Tuition", "amount": "250"}, {"position": "1", "name": "Lab", "amount": "50"}]

    response = admin_client.post(url(FeeStructure, "add"), {**fee_form(company), **inline("components", rows)})

    assert response.status_code == 302
    assert list(FeeComponent.objects.values_list("name", flat=True)) == ["Tuition", "Lab"]


def test_fee_structure_forms_refuse_what_the_books_cannot_take(admin_client, company, books, other_company):
    load_default_chart(other_company)
    rival_sales = Account.objects.get(company=other_company, code="4100")
    short = inline("components", [{"position": "0", "name": "Tuition", "amount": "100"}])

    components = admin_client.post(url(FeeStructure, "add"), {**fee_form(company), **short})
    currency = admin_client.post(
        url(FeeStructure, "add"), {**fee_form(company, currency="EUR"), **inline("components", [])}
    )
    bank = admin_client.post(
        url(FeeStructure, "add"), {**fee_form(company, income_account=books["1100"].pk), **inline("components", [])}
    )
    rival = admin_client.post(
        url(FeeStructure, "add"), {**fee_form(company, income_account=rival_sales.pk), **inline("components", [])}
    )

    assert "add up to 100" in str(components.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert "books are in GBP" in str(currency.context["adminform"].form.errors["currency"])
    assert "not an income account" in str(bank.context["adminform"].form.errors["income_account"])
    assert "another company" in str(rival.context["adminform"].form.errors["income_account"])
    assert not FeeStructure.objects.exists()


# --- Scoping ------------------------------------------------------------------------------------


@pytest.fixture
def operator_client(client, company):
    user = MembershipFactory(company=company, user__username="operator", user__is_staff=True).user
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing"))
    client.force_login(user)
    return client


@pytest.fixture
def two_books(company, other_company, fees, enrol, customer):
    load_default_chart(other_company)
    rival = CustomerFactory(company=other_company, name="Rival's customer")
    enrol(customer, fees["english"])
    enrol_rival = FeeStructureFactory(company=other_company, code="R1")
    from tests.factories import EnrolmentFactory

    EnrolmentFactory(company=other_company, customer=rival, fee_structure=enrol_rival)
    for books in (company, other_company):
        invoicing.generate(RunSpec.for_period(books, "monthly", JAN, finalise=False))
    return Invoice.objects.get(company=other_company)


@pytest.mark.parametrize("model", [Customer, FeeStructure, Enrolment, Invoice])
def test_an_operator_lists_only_their_companys_rows(operator_client, company, two_books, model):
    response = operator_client.get(url(model, "changelist"))

    rows = list(response.context["cl"].result_list)
    assert rows
    assert {row.company for row in rows} == {company}


def test_an_operator_cannot_open_or_finalise_another_companys_invoice(operator_client, two_books):
    page = operator_client.get(url(Invoice, "change", two_books.pk))
    pdf = operator_client.get(reverse("admin:billing_invoice_document", args=[two_books.pk, "pdf"]))
    act(operator_client, Invoice, "finalise_drafts", two_books)

    assert page.status_code == 302  # "doesn't exist", back to the admin's index
    assert pdf.status_code == 404
    assert Invoice.objects.get(pk=two_books.pk).status == InvoiceStatus.DRAFT


# --- Guards found in review -----------------------------------------------------------------------


def test_a_fee_with_more_places_than_its_currency_or_a_giant_amount_is_a_form_error(admin_client, company, books):
    places = admin_client.post(
        url(FeeStructure, "add"), {**fee_form(company, amount="100.005"), **inline("components", [])}
    )
    giant = admin_client.post(
        url(FeeStructure, "add"), {**fee_form(company, amount="90000000000000000"), **inline("components", [])}
    )
    component = admin_client.post(
        url(FeeStructure, "add"),
        {**fee_form(company), **inline("components", [{"position": "0", "name": "Tuition", "amount": "300.001"}])},
    )

    assert "decimal places" in str(places.context["adminform"].form.errors["amount"])
    assert "At most" in str(giant.context["adminform"].form.errors["amount"])
    assert "decimal places" in str(component.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert not FeeStructure.objects.exists()


def test_a_customer_or_fee_keeps_its_company_once_saved(admin_client, company, customer, fees):
    page = admin_client.get(url(Customer, "change", customer.pk))
    fee_page = admin_client.get(url(FeeStructure, "change", fees["maths"].pk))

    assert "company" not in page.context["adminform"].form.fields
    assert "company" not in fee_page.context["adminform"].form.fields


def test_an_invoiced_enrolment_cannot_move_to_another_fee(admin_client, company, customer, fees, enrol):
    enrolment = enrol(customer, fees["maths"])
    invoicing.generate(RunSpec.for_period(company, "monthly", JAN))
    form = {"customer": customer.pk, "fee_structure": fees["english"].pk, "start_date": "2025-09-01"}

    response = admin_client.post(url(Enrolment, "change", enrolment.pk), form)

    assert response.status_code == 200
    assert "has been invoiced" in str(response.context["adminform"].form.errors["fee_structure"])
    enrolment.refresh_from_db()
    assert enrolment.fee_structure == fees["maths"]


def test_a_portal_user_of_another_company_or_the_staff_is_refused(admin_client, company, customer, outsider, staff):
    form = {"name": customer.name, "email": customer.email, "payment_terms_days": "14", "active": "on"}

    theirs = admin_client.post(
        url(Customer, "change", customer.pk), {**form, "portal_user": outsider.pk, **inline("enrolments", [])}
    )
    staffer = admin_client.post(
        url(Customer, "change", customer.pk), {**form, "portal_user": staff.pk, **inline("enrolments", [])}
    )

    for response in (theirs, staffer):
        assert "another company or to the staff" in str(response.context["adminform"].form.errors["portal_user"])
    customer.refresh_from_db()
    assert customer.portal_user is None


def test_a_number_sequence_must_fit_the_number_column(admin_client, company):
    form = {"company": company.pk, "series": "invoice", "prefix": "INV-2026-", "padding": "25", "next_number": "1"}

    response = admin_client.post(url(DocumentSequence, "add"), form)

    assert "fit in 32 characters" in str(response.context["adminform"].form.errors["padding"])
    assert not DocumentSequence.objects.exists()


def test_deleting_an_invoice_that_is_no_longer_a_draft_is_refused(company, customer, fees, enrol):
    from billing.errors import BillingStateError
    from billing.services import manual

    enrol(customer, fees["maths"])
    invoicing.generate(RunSpec.for_period(company, "monthly", JAN, finalise=False))
    stale = Invoice.objects.get()  # read as a draft, then finalised by someone else
    from billing.services import finalising

    finalising.finalise(company, [stale.pk])

    with pytest.raises(BillingStateError, match="only drafts are deleted"):
        manual.delete_draft(stale)
    assert Invoice.objects.filter(pk=stale.pk, status=InvoiceStatus.OPEN).exists()
