"""XERO_SYNC through the job layer (run in this process), and the xero_sync and
xero_connect commands, against the fake Xero server."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import receivables.jobs.xero  # noqa: F401 (registers XERO_SYNC should the app not have yet)
from receivables.models import Document, XeroApp, XeroConnection, XeroGrant
from receivables.xero import client
from receivables.xero.client import Tuning
from scheduling.choices import Level, RunStatus
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from scheduling.services.sync import sync_jobs
from tests.fakes.xero_server import FakeXero, install

pytestmark = pytest.mark.django_db

D = datetime.date


@pytest.fixture(autouse=True)
def quick(settings, tmp_path, monkeypatch):
    """A governor file of the test's own, and retries that do not wait."""
    settings.XERO_GOVERNOR_FILE = str(tmp_path / "governor.json")
    monkeypatch.setattr(client, "DEFAULT_TUNING", Tuning(backoff=0.01, backoff_cap=0.02))
    sync_jobs()


@pytest.fixture
def xero():
    with FakeXero() as server:
        yield server


@pytest.fixture
def organisations(xero):
    """Three healthy organisations with an invoice each, and one dead (Xero answers 403)."""
    tenants = []
    for name in ("North Ltd", "South Ltd", "West Ltd", "Dead Ltd"):
        tenant = xero.add_tenant(name)
        pupil = tenant.add_contact(f"Pupil of {name}")
        tenant.add_invoice(pupil, "100.00", D(2026, 1, 5))
        tenants.append(tenant)
    install(xero, tenants)
    xero.kill_tenant(tenants[-1].tenant_id, status=403)
    return tenants


def request(**params):
    run, _ = runs.request_run(JobDefinition.objects.get(code="XERO_SYNC"), params=params or None)
    return run


def test_xero_sync_is_an_hourly_platform_job_on_the_receivables_queue():
    definition = JobDefinition.objects.get(code="XERO_SYNC")

    assert (definition.scope, definition.queue, definition.key_by) == ("global", "receivables", "hour")
    assert definition.schedules.get().periodic_task.crontab.minute == "15"


def test_a_dead_organisation_is_recorded_and_counted_and_the_others_sync(organisations):
    run = execution.run_here(request())

    assert run.status == RunStatus.SUCCEEDED
    assert (run.chunks_total, run.chunks_done, run.failed, run.processed, run.created) == (4, 4, 1, 6, 3)
    assert run.result == {"app": None, "full": False, "tenants": 4, "discovered": 0}
    synced = XeroConnection.objects.filter(last_synced_at__isnull=False, last_error="")
    assert sorted(synced.values_list("tenant_name", flat=True)) == ["North Ltd", "South Ltd", "West Ltd"]
    dead = XeroConnection.objects.get(tenant_name="Dead Ltd")
    assert dead.failed_at is not None and "refused access to this organisation (403)" in dead.last_error
    errors = list(run.logs.filter(level=Level.ERROR).values_list("message", flat=True))
    assert errors == [f"Dead Ltd: {dead.last_error}"]
    assert Document.objects.count() == 3


def test_a_run_for_one_app_syncs_only_its_organisations_and_an_unknown_app_fails_the_run(xero, organisations):
    other = xero.add_tenant("Elsewhere Ltd")
    install(xero, [other], app_name="Other App")

    run = execution.run_here(request(app="Other App"))
    assert run.status == RunStatus.SUCCEEDED and run.result["tenants"] == 1
    assert list(XeroConnection.objects.filter(last_synced_at__isnull=False).values_list("tenant_name", flat=True)) == [
        "Elsewhere Ltd"
    ]

    failed, _ = runs.request_run(
        JobDefinition.objects.get(code="XERO_SYNC"), params={"app": "Nope"}, run_key="unknown-app"
    )
    failed = execution.run_here(failed)
    assert failed.status == RunStatus.FAILED and "no Xero app named 'Nope'" in failed.error


def test_the_run_first_picks_up_organisations_newly_connected_to_a_grant(xero, organisations):
    grant = XeroGrant.objects.get(connections__tenant_id=organisations[0].tenant_id)
    newcomer = xero.add_tenant("Newcomer Ltd")
    xero.grant_tenant(grant.refresh_token, newcomer.tenant_id)

    run = execution.run_here(request())

    assert run.result["discovered"] == 1 and run.result["tenants"] == 5
    assert XeroConnection.objects.get(tenant_id=newcomer.tenant_id).last_synced_at is not None


def test_an_inactive_organisation_is_not_synced(organisations):
    XeroConnection.objects.filter(tenant_name="North Ltd").update(active=False)

    run = execution.run_here(request(discover=False))

    assert run.result["tenants"] == 3
    assert XeroConnection.objects.get(tenant_name="North Ltd").last_synced_at is None


# --- Commands ---------------------------------------------------------------------------------------


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_xero_sync_syncs_each_organisation_with_a_line_each_and_fails_when_one_did(organisations):
    with pytest.raises(CommandError, match="1 of 4 Xero organisations failed to sync"):
        command("xero_sync")

    assert XeroConnection.objects.filter(last_synced_at__isnull=False).count() == 3


def test_xero_sync_prints_a_line_per_organisation_and_a_summary(organisations, capsys):
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("xero_sync", stdout=out)

    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines[:4]] == ["Dead Ltd", "North Ltd", "South Ltd", "West Ltd"]
    assert "failed: Xero refused access to this organisation (403)" in lines[0]
    assert "2 fetched, 1 new, 0 changed, 0 removed in 7 calls" in lines[1]
    assert lines[-1] == "synced 3 of 4 Xero organisations; 1 failed"


def test_xero_sync_of_one_tenant_in_full(organisations):
    north = organisations[0]

    out = command("xero_sync", "--tenant", north.tenant_id, "--full")

    assert out.splitlines()[-1] == "synced 1 of 1 Xero organisation"
    assert XeroConnection.objects.filter(last_synced_at__isnull=False).get().tenant_name == "North Ltd"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "Nope"], "no Xero app named 'Nope'"),
        (["--tenant", "not-a-tenant"], "no Xero organisation 'not-a-tenant'"),
    ],
)
def test_xero_sync_refuses_bad_input_in_one_line(organisations, args, message):
    with pytest.raises(CommandError, match=message):
        command("xero_sync", *args)


def test_xero_sync_refuses_an_inactive_organisation_named_on_its_own(organisations):
    XeroConnection.objects.filter(tenant_name="North Ltd").update(active=False)

    with pytest.raises(CommandError, match=r"North Ltd .* is inactive"):
        command("xero_sync", "--tenant", organisations[0].tenant_id)


def test_xero_connect_saves_the_app_and_grant_spends_the_token_once_and_finds_the_organisations(xero):
    client_id, client_secret = xero.add_app()
    north, south = xero.add_tenant("North Ltd"), xero.add_tenant("South Ltd")
    tokens = xero.issue_tokens(client_id, [north.tenant_id, south.tenant_id])

    out = command(
        "xero_connect",
        "--app", "Schools",
        "--client-id", client_id,
        "--client-secret", client_secret,
        "--api-url", xero.api_url,
        "--identity-url", xero.identity_url,
        "--token-url", xero.token_url,
        "--refresh-token", tokens.refresh_token,
        "--name", "Finance team",
    )  # fmt: skip

    app = XeroApp.objects.get(name="Schools")
    grant = XeroGrant.objects.get(app=app)
    assert app.client_secret == client_secret and client_secret not in app.client_secret_encrypted
    assert grant.name == "Finance team" and grant.refresh_token != tokens.refresh_token  # spent and rotated
    assert grant.access_token and grant.expires_at > datetime.datetime.now(datetime.UTC)
    assert sorted(XeroConnection.objects.values_list("tenant_name", flat=True)) == ["North Ltd", "South Ltd"]
    assert out.splitlines()[0] == f"app Schools created; grant {grant.pk} saved"
    assert out.splitlines()[-1] == "2 organisations reached, 2 new"
    assert tokens.refresh_token not in out and grant.access_token not in out


def test_xero_connect_with_a_refused_token_saves_nothing(xero):
    client_id, client_secret = xero.add_app()

    with pytest.raises(CommandError, match=r"Xero refused to connect: .*invalid_grant"):
        command(
            "xero_connect",
            "--app", "Schools",
            "--client-id", client_id,
            "--client-secret", client_secret,
            "--token-url", xero.token_url,
            "--refresh-token", "not-a-token",
        )  # fmt: skip

    assert not XeroApp.objects.exists() and not XeroGrant.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--refresh-token", "t"], "app 'New' is new: give --client-id and --client-secret"),
        (["--refresh-token", " "], "--refresh-token is empty"),
        (["--refresh-token", "t", "--token-url", "ftp://x"], "--token-url 'ftp://x' is not an http"),
    ],
)
def test_xero_connect_refuses_bad_input_in_one_line(args, message):
    with pytest.raises(CommandError, match=message):
        command("xero_connect", "--app", "New", *args)
