"""Syncing Xero organisations through the real SDK against the fake Xero server: paging,
incremental syncs, removals, payments and refunds, tokens, 429s, 5xx and bad answers."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config import secrets
from receivables import engine
from receivables.models import Allocation, Document, XeroConnection, XeroContact, XeroGrant
from receivables.sources import stored
from receivables.xero import normalise, store
from receivables.xero.client import Tuning
from receivables.xero.errors import SyncFailed, SyncInProgress
from receivables.xero.governor import FileBackend, Governor
from receivables.xero.sync import discover_connections, sync_connection
from tests.fakes.xero_server import FakeXero, install
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

D = datetime.date
FAST = Tuning(backoff=0.01, backoff_cap=0.02)
NOW = timezone.now()
HOURS_AGO = [NOW - datetime.timedelta(hours=n) for n in range(10)]


@pytest.fixture
def xero():
    with FakeXero() as server:
        yield server


@pytest.fixture
def governor(tmp_path):
    return Governor(FileBackend(tmp_path / "governor.json"))


@pytest.fixture
def sync(governor):
    def run(connection: XeroConnection, **options):
        options.setdefault("tuning", FAST)
        return sync_connection(connection, governor=governor, **options)

    return run


@pytest.fixture
def acme(xero):
    return xero.add_tenant("Acme Ltd", base_currency="GBP")


def connection_of(tenant) -> XeroConnection:
    return XeroConnection.objects.select_related("app", "grant").get(tenant_id=tenant.tenant_id)


def documents(connection) -> dict[str, tuple]:
    return {
        d.external_id: (d.kind, d.contact_name, d.total, d.currency, d.status)
        for d in Document.objects.filter(connection=connection)
    }


def test_a_first_sync_brings_every_kind_in_the_tables_shape_and_ages_to_the_balance(xero, acme, sync):
    # Given an organisation with an invoice paid in part, credited, refunded and prepaid
    amina = acme.add_contact("Amina Njoroge", email="amina@example.com", updated=HOURS_AGO[5])
    bill = acme.add_contact("Bill's Books", updated=HOURS_AGO[5])
    first = acme.add_invoice(
        amina, "120.00", D(2026, 1, 5), due_date=D(2026, 2, 4), number="INV-1", updated=HOURS_AGO[5]
    )
    second = acme.add_invoice(bill, "80.00", D(2026, 1, 6), currency="EUR", rate="1.25", updated=HOURS_AGO[5])
    acme.add_invoice(amina, "999.00", D(2026, 1, 7), type="ACCPAY", updated=HOURS_AGO[5])  # a bill: not receivable
    acme.add_invoice(amina, "55.00", D(2026, 1, 8), status="DRAFT", updated=HOURS_AGO[5])
    paid = acme.add_payment(first, "20.00", D(2026, 1, 20), updated=HOURS_AGO[5])
    credit = acme.add_credit_note(
        amina,
        "30.00",
        D(2026, 1, 10),
        number="CN-1",
        allocations=[(first, "10.00", D(2026, 1, 11))],
        updated=HOURS_AGO[5],
    )
    refund = acme.add_refund(credit, "5.00", D(2026, 1, 12), updated=HOURS_AGO[5])
    prepaid = acme.add_prepayment(bill, "50.00", D(2026, 1, 2), currency="EUR", rate="1.25", updated=HOURS_AGO[5])
    acme.allocate(prepaid, second, "50.00", D(2026, 1, 6), updated=HOURS_AGO[5])
    over = acme.add_overpayment(amina, "15.00", D(2026, 1, 21), updated=HOURS_AGO[5])
    install(xero, [acme])
    connection = connection_of(acme)

    # When it is synced for the first time
    result = sync(connection)

    # Then the receivables are there, normalised, with their allocations
    assert documents(connection) == {
        first: ("invoice", "Amina Njoroge", Decimal("120.00"), "GBP", "AUTHORISED"),
        second: ("invoice", "Bill's Books", Decimal("80.00"), "EUR", "AUTHORISED"),
        paid: ("payment", "Amina Njoroge", Decimal("20.00"), "GBP", "AUTHORISED"),
        credit: ("credit_note", "Amina Njoroge", Decimal("30.00"), "GBP", "AUTHORISED"),
        refund: ("invoice", "Amina Njoroge", Decimal("5.00"), "GBP", "AUTHORISED"),
        prepaid: ("prepayment", "Bill's Books", Decimal("50.00"), "EUR", "PAID"),
        over: ("overpayment", "Amina Njoroge", Decimal("15.00"), "GBP", "AUTHORISED"),
    }
    assert sorted(
        Allocation.objects.filter(connection=connection).values_list("source_id", "invoice_id", "amount")
    ) == sorted(
        [
            (paid, first, Decimal("20.00")),
            (credit, first, Decimal("10.00")),
            (credit, refund, Decimal("5.00")),
            (prepaid, second, Decimal("50.00")),
        ]
    )
    invoice = Document.objects.get(external_id=first)
    assert (invoice.number, invoice.date, invoice.due_date, invoice.company_label) == (
        "INV-1",
        D(2026, 1, 5),
        D(2026, 2, 4),
        "Acme Ltd",
    )
    assert Document.objects.get(external_id=second).rate == Decimal("1.25")
    assert XeroContact.objects.filter(connection=connection).count() == 2
    connection.refresh_from_db()
    assert (connection.data_version, connection.base_currency, connection.last_error) == (1, "GBP", "")
    assert connection.last_synced_at is not None and set(connection.watermarks) == {
        "contacts",
        "invoices",
        "credit_notes",
        "overpayments",
        "prepayments",
        "payments",
    }
    assert result.changed and result.written.created == 7 and result.calls == 7  # organisation + six kinds

    # And Amina's aged total is her balance: 120 - 20 - 30 + 5 (refunded) - 15 = 60
    docs, allocations = stored.documents(D(2026, 3, 1), connection=connection)
    report = engine.age(docs, allocations, engine.Options(D(2026, 3, 1)))
    totals = {(row.contact, row.currency): row.total for row in report.rows}
    assert totals == {("Amina Njoroge", "GBP"): Decimal("60.00"), ("Bill's Books", "EUR"): Decimal("30.00")}


def test_every_call_carries_the_tenant_a_bearer_token_a_page_of_1000_and_the_where_filter(xero, acme, sync):
    install(xero, [acme])

    sync(connection_of(acme))

    calls = xero.calls_to("/api.xro/2.0/")
    assert {call.headers["xero-tenant-id"] for call in calls} == {acme.tenant_id}
    assert all(call.headers["authorization"].startswith("Bearer ") for call in calls)
    listing = [call for call in calls if "organisation" not in call.path.lower()]
    assert [(call.path.rsplit("/", 1)[1], call.params) for call in listing] == [
        ("Contacts", {"page": "1", "pageSize": "1000"}),
        ("Invoices", {"where": 'Type=="ACCREC"', "page": "1", "pageSize": "1000"}),
        ("CreditNotes", {"where": 'Type=="ACCRECCREDIT"', "page": "1", "pageSize": "1000"}),
        ("Overpayments", {"where": 'Type=="RECEIVE-OVERPAYMENT"', "page": "1", "pageSize": "1000"}),
        ("Prepayments", {"where": 'Type=="RECEIVE-PREPAYMENT"', "page": "1", "pageSize": "1000"}),
        (
            "Payments",
            {
                "where": 'PaymentType=="ACCRECPAYMENT" OR PaymentType=="ARCREDITPAYMENT" OR '
                'PaymentType=="AROVERPAYMENTPAYMENT" OR PaymentType=="ARPREPAYMENTPAYMENT"',
                "page": "1",
                "pageSize": "1000",
            },
        ),
    ]
    assert not any("if-modified-since" in call.headers for call in calls)


def test_more_than_a_thousand_invoices_come_in_pages_of_a_thousand(xero, acme, sync):
    pupil = acme.add_contact("Pupil")
    for n in range(1205):
        acme.add_invoice(pupil, "10.00", D(2026, 1, 1) + datetime.timedelta(days=n % 300))
    install(xero, [acme])
    connection = connection_of(acme)

    result = sync(connection)

    pages = [(call.params["page"], call.params["pageSize"]) for call in xero.calls_to("/Invoices")]
    assert pages == [("1", "1000"), ("2", "1000")]
    assert result.fetched["invoices"] == 1205
    assert Document.objects.filter(connection=connection, kind="invoice").count() == 1205


def test_small_pages_are_asked_for_until_the_last_one(xero, acme, sync):
    pupil = acme.add_contact("Pupil")
    for _ in range(5):
        acme.add_invoice(pupil, "10.00", D(2026, 1, 1))
    install(xero, [acme])

    sync(connection_of(acme), tuning=Tuning(page_size=2, backoff=0.01))

    assert [call.params["page"] for call in xero.calls_to("/Invoices")] == ["1", "2", "3"]
    assert Document.objects.filter(kind="invoice").count() == 5


def test_a_page_is_written_in_the_same_number_of_statements_whatever_its_size(xero, sync):
    def queries_for(count: int) -> int:
        tenant = xero.add_tenant(f"Org of {count}")
        pupil = tenant.add_contact("Pupil")
        for _ in range(count):
            invoice = tenant.add_invoice(pupil, "10.00", D(2026, 1, 1))
            tenant.add_payment(invoice, "4.00", D(2026, 1, 2))
        install(xero, [tenant], app_name=f"App {count}")
        connection = connection_of(tenant)
        with CaptureQueriesContext(db) as queries:
            sync(connection)
        return len(queries)

    assert queries_for(5) == queries_for(60)


def test_an_incremental_sync_asks_only_for_changes_and_gets_only_them(xero, acme, sync):
    # Given an organisation synced once, whose documents last changed five hours ago
    pupil = acme.add_contact("Pupil", updated=HOURS_AGO[5])
    invoices = [acme.add_invoice(pupil, "10.00", D(2026, 1, 1), updated=HOURS_AGO[5]) for _ in range(4)]
    install(xero, [acme])
    connection = connection_of(acme)
    sync(connection)
    assert connection.data_version == 1

    # When one invoice changes and one is added in Xero, and it is synced again
    acme.update(invoices[0], total="12.50", updated=HOURS_AGO[2])
    added = acme.add_invoice(pupil, "7.00", D(2026, 1, 3), updated=HOURS_AGO[2])
    xero.reset_calls()
    result = sync(connection)

    # Then every list was asked only for what changed since the last sync's latest change
    expected = HOURS_AGO[5].astimezone(datetime.UTC).replace(tzinfo=None, microsecond=0).isoformat()
    listing = [call for call in xero.calls_to("/api.xro/2.0/") if "organisation" not in call.path.lower()]
    assert {call.headers.get("if-modified-since") for call in listing} >= {expected}
    assert xero.calls_to("/Invoices")[0].headers["if-modified-since"] == expected
    # and only the changed invoices came (and the contact, unchanged since, at the watermark)
    assert result.fetched["invoices"] == 2 + 3  # the unchanged three at the watermark's second come again…
    assert (result.written.created, result.written.updated) == (1, 1)  # …and written only where it changed
    assert Document.objects.get(external_id=invoices[0]).total == Decimal("12.50")
    assert Document.objects.filter(external_id=added).exists()
    connection.refresh_from_db()
    assert connection.data_version == 2

    # And a third sync with nothing new asks from the newer watermark and changes nothing
    xero.reset_calls()
    again = sync(connection)
    assert xero.calls_to("/Invoices")[0].headers["if-modified-since"] == (
        HOURS_AGO[2].astimezone(datetime.UTC).replace(tzinfo=None, microsecond=0).isoformat()
    )
    assert again.fetched["invoices"] == 2 and not again.changed
    connection.refresh_from_db()
    assert connection.data_version == 2


def test_a_voided_invoice_a_deleted_payment_and_a_voided_credit_go_with_their_allocations(xero, acme, sync):
    pupil = acme.add_contact("Pupil", updated=HOURS_AGO[5])
    kept = acme.add_invoice(pupil, "100.00", D(2026, 1, 1), updated=HOURS_AGO[5])
    voided = acme.add_invoice(pupil, "40.00", D(2026, 1, 1), updated=HOURS_AGO[5])
    payment = acme.add_payment(kept, "30.00", D(2026, 1, 5), updated=HOURS_AGO[5])
    credit = acme.add_credit_note(
        pupil, "25.00", D(2026, 1, 2), allocations=[(kept, "25.00", D(2026, 1, 3))], updated=HOURS_AGO[5]
    )
    install(xero, [acme])
    connection = connection_of(acme)
    sync(connection)
    assert Allocation.objects.filter(connection=connection).count() == 2

    acme.void(voided, updated=HOURS_AGO[1])
    acme.void(payment, updated=HOURS_AGO[1])  # a payment is deleted, not voided
    acme.void(credit, updated=HOURS_AGO[1])
    result = sync(connection)

    assert set(documents(connection)) == {kept}
    assert not Allocation.objects.filter(connection=connection).exists()
    assert (result.written.removed, result.written.allocations_removed) == (3, 2)
    connection.refresh_from_db()
    assert connection.data_version == 2


def test_an_allocation_removed_in_xero_goes_and_one_added_comes(xero, acme, sync):
    pupil = acme.add_contact("Pupil", updated=HOURS_AGO[5])
    first = acme.add_invoice(pupil, "100.00", D(2026, 1, 1), updated=HOURS_AGO[5])
    second = acme.add_invoice(pupil, "100.00", D(2026, 1, 1), updated=HOURS_AGO[5])
    credit = acme.add_credit_note(
        pupil, "50.00", D(2026, 1, 2), allocations=[(first, "20.00", D(2026, 1, 3))], updated=HOURS_AGO[5]
    )
    install(xero, [acme])
    connection = connection_of(acme)
    sync(connection)

    record = acme.by_id[credit]
    record.allocations.clear()  # Xero lets an allocation be deleted; the credit then changes
    acme.allocate(credit, second, "30.00", D(2026, 1, 4), updated=HOURS_AGO[1])
    sync(connection)

    assert list(Allocation.objects.filter(connection=connection).values_list("source_id", "invoice_id", "amount")) == [
        (credit, second, Decimal("30.00"))
    ]


def test_a_contact_renamed_in_xero_renames_its_documents(xero, acme, sync):
    pupil = acme.add_contact("Old Name", updated=HOURS_AGO[5])
    acme.add_invoice(pupil, "10.00", D(2026, 1, 1), updated=HOURS_AGO[5])
    install(xero, [acme])
    connection = connection_of(acme)
    sync(connection)

    acme.update(pupil, name="New Name", updated=HOURS_AGO[1])  # the invoice itself is not touched
    result = sync(connection)

    assert result.fetched["invoices"] == 1  # only the watermark's second again
    assert list(Document.objects.values_list("contact_name", flat=True)) == ["New Name"]
    assert XeroContact.objects.get(contact_id=pupil).name == "New Name"
    connection.refresh_from_db()
    assert connection.data_version == 2


def test_a_full_sync_removes_what_xero_no_longer_has_at_all(xero, acme, sync):
    pupil = acme.add_contact("Pupil")
    kept = acme.add_invoice(pupil, "10.00", D(2026, 1, 1))
    gone = acme.add_invoice(pupil, "20.00", D(2026, 1, 1))
    install(xero, [acme])
    connection = connection_of(acme)
    sync(connection)
    del acme.records["invoice"][gone]  # vanished without a trace (an archive restored elsewhere)

    result = sync(connection, full=True)

    assert set(documents(connection)) == {kept}
    assert result.written.removed == 1 and result.full
    assert not any("if-modified-since" in call.headers for call in xero.calls_to("/Invoices")[1:])


def test_a_token_about_to_expire_is_refreshed_first_and_saved_encrypted(xero, acme, sync):
    install(xero, [acme])
    connection = connection_of(acme)
    grant = connection.grant
    XeroGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + datetime.timedelta(seconds=30))
    old_access, old_refresh = grant.access_token, grant.refresh_token
    connection = connection_of(acme)

    sync(connection)

    calls = xero.calls
    assert calls[0].path == "/connect/token" and calls[0].status == 200
    assert len(xero.calls_to("/connect/token")) == 1
    grant.refresh_from_db()
    assert grant.access_token != old_access and grant.refresh_token != old_refresh
    assert grant.expires_at > timezone.now() + datetime.timedelta(minutes=25)
    assert old_access not in grant.access_token_encrypted and grant.access_token not in grant.access_token_encrypted
    assert secrets.decrypt(grant.refresh_token_encrypted) == grant.refresh_token
    assert all(call.headers["authorization"] == f"Bearer {grant.access_token}" for call in xero.calls_to("/api.xro"))


def test_two_tenants_of_one_grant_refresh_it_once(xero, sync):
    # Given two organisations reached through one grant whose token is about to expire
    north, south = xero.add_tenant("North Ltd"), xero.add_tenant("South Ltd")
    install(xero, [north, south], shared_grant=True)
    XeroGrant.objects.update(expires_at=timezone.now() + datetime.timedelta(seconds=10))
    first, second = connection_of(north), connection_of(south)  # both hold the old token in memory

    # When both sync, one after the other
    sync(first)
    sync(second)

    # Then the refresh token was spent once: the second took the token the first got
    assert len(xero.calls_to("/connect/token")) == 1
    assert all(call.status == 200 for call in xero.calls)
    assert XeroConnection.objects.filter(last_error="").count() == 2


def test_an_access_token_xero_refuses_is_refreshed_and_the_call_made_again(xero, acme, sync):
    install(xero, [acme])
    xero.expire_access_tokens()  # Xero says expired; the grant here says thirty minutes left

    sync(connection_of(acme))

    statuses = [(call.path, call.status) for call in xero.calls[:3]]
    assert statuses == [("/api.xro/2.0/Organisation", 401), ("/connect/token", 200), ("/api.xro/2.0/Organisation", 200)]


def test_a_refused_refresh_token_fails_the_sync_saying_what_to_do_and_no_secret(xero, acme, sync):
    install(xero, [acme])
    grant = connection_of(acme).grant
    xero.revoke(grant.refresh_token)
    XeroGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now())
    connection = connection_of(acme)

    with pytest.raises(SyncFailed, match="invalid_grant"):
        sync(connection)

    connection.refresh_from_db()
    assert "connect the app again" in connection.last_error and connection.failed_at is not None
    for secret in (grant.refresh_token, grant.access_token, connection.app.client_secret):
        assert secret not in connection.last_error


def test_a_429_blocks_the_tenant_for_its_retry_after_and_the_call_succeeds_after(xero, acme, sync, governor):
    install(xero, [acme])
    xero.rate_limit(retry_after=1, problem="minute", tenant=acme.tenant_id, path="/Invoices")

    result = sync(connection_of(acme))

    limited, retried = xero.calls_to("/Invoices")
    assert (limited.status, retried.status) == (429, 200)
    assert retried.started - limited.finished >= 0.95
    assert result.rate_limited == 1 and not result.skipped
    assert Document.objects.count() == 0 and XeroConnection.objects.get().last_error == ""


def test_5xx_answers_are_retried_with_backoff(xero, acme, sync):
    pupil = acme.add_contact("Pupil")
    acme.add_invoice(pupil, "10.00", D(2026, 1, 1))
    install(xero, [acme])
    xero.fail(503, times=2, path="/Invoices")

    result = sync(connection_of(acme))

    assert [call.status for call in xero.calls_to("/Invoices")] == [503, 503, 200]
    assert result.retries == 2 and Document.objects.count() == 1


def test_an_answer_slower_than_the_read_timeout_is_asked_for_again(xero, acme, sync):
    install(xero, [acme])
    xero.slow(0.5, times=1, path="/Invoices")

    result = sync(connection_of(acme), tuning=Tuning(read_timeout=0.2, backoff=0.01))

    assert result.retries == 1 and XeroConnection.objects.get().last_error == ""
    wait_for(lambda: len(xero.calls_to("/Invoices")) == 2, timeout=5, what="the slow answer to be given up on")


def test_a_dead_tenant_fails_after_its_retries_and_says_so(xero, acme, sync):
    install(xero, [acme])
    xero.kill_tenant(acme.tenant_id, status=500)
    connection = connection_of(acme)

    with pytest.raises(SyncFailed, match="Xero answered 500 4 times"):
        sync(connection)

    assert len(xero.calls_to("/api.xro")) == 4
    connection.refresh_from_db()
    assert connection.failed_at is not None and connection.last_synced_at is None
    assert connection.last_error.startswith("Xero answered 500 4 times")


def test_a_malformed_answer_fails_the_tenant_keeping_the_pages_already_written(xero, acme, sync):
    pupil = acme.add_contact("Pupil")
    acme.add_invoice(pupil, "10.00", D(2026, 1, 1))
    install(xero, [acme])
    xero.malformed(path="/Invoices")
    connection = connection_of(acme)

    with pytest.raises(SyncFailed, match="not the expected JSON"):
        sync(connection)

    connection.refresh_from_db()
    assert "not the expected JSON" in connection.last_error
    assert XeroContact.objects.count() == 1 and Document.objects.count() == 0
    assert set(connection.watermarks) == {"contacts"}  # the next sync starts the invoices again

    sync(connection)  # Xero answers properly again
    assert Document.objects.count() == 1


def test_a_sync_of_a_connection_being_synced_is_refused_without_recording_a_failure(xero, acme, sync):
    install(xero, [acme])
    XeroConnection.objects.update(last_sync_started_at=timezone.now())
    connection = connection_of(acme)

    with pytest.raises(SyncInProgress):
        sync(connection)

    connection.refresh_from_db()
    assert connection.failed_at is None and not xero.calls


def test_a_connection_without_a_grant_fails_saying_how_to_connect(xero, acme, sync):
    install(xero, [acme])
    XeroConnection.objects.update(grant=None)

    with pytest.raises(SyncFailed, match="xero_connect"):
        sync(connection_of(acme))


def test_discovery_records_the_organisations_a_grant_reaches(xero, governor):
    north, south = xero.add_tenant("North Ltd"), xero.add_tenant("South Ltd")
    install(xero, [north], shared_grant=True)
    grant = XeroGrant.objects.select_related("app").get()
    xero.grant_tenant(grant.refresh_token, south.tenant_id)  # the user connected one more

    found = discover_connections(grant, governor=governor, tuning=FAST)

    assert [c.tenant_name for c in found.created] == ["South Ltd"]
    assert sorted(XeroConnection.objects.values_list("tenant_name", "grant_id")) == [
        ("North Ltd", grant.pk),
        ("South Ltd", grant.pk),
    ]
    assert found.missing == []


def test_an_organisation_renamed_in_xero_is_renamed_on_its_documents(xero, acme, sync, governor):
    pupil = acme.add_contact("Pupil")
    acme.add_invoice(pupil, "10.00", D(2026, 1, 1))
    install(xero, [acme])
    connection = connection_of(acme)
    sync(connection)

    acme.name = "Acme Group"
    discover_connections(connection.grant, governor=governor, tuning=FAST)
    result = sync(connection_of(acme))

    assert list(Document.objects.values_list("company_label", flat=True)) == ["Acme Group"]
    assert result.changed and connection_of(acme).data_version == 2


def test_a_payment_xero_sent_without_its_contact_or_currency_takes_them_from_its_invoice(xero, acme):
    install(xero, [acme])
    connection = connection_of(acme)
    Document.objects.create(
        connection=connection,
        kind="invoice",
        external_id="inv-1",
        company_label="Acme Ltd",
        contact_id="c-1",
        contact_name="Pupil",
        date=D(2026, 1, 1),
        total=Decimal("10.00"),
        currency="EUR",
    )
    page = normalise.Page(
        documents={
            "pay-1": {
                "kind": "payment",
                "company_label": "Acme Ltd",
                "contact_id": "",
                "contact_name": "",
                "number": "",
                "date": D(2026, 1, 2),
                "due_date": None,
                "total": Decimal("4.00"),
                "currency": "",
                "rate": Decimal(1),
                "status": "AUTHORISED",
                "updated_at": NOW,
            }
        },
        targets={"pay-1": "inv-1"},
    )

    store.write_page(connection, page)

    assert Document.objects.filter(external_id="pay-1").values_list("contact_id", "contact_name", "currency").get() == (
        "c-1",
        "Pupil",
        "EUR",
    )
