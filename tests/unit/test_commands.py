import datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ledger.models import Company

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    settings.MODE = "embedded"
    for name in ("ADMIN_USERNAME", "ADMIN_PASSWORD", "ADMIN_EMAIL", "FLOWER_BASIC_AUTH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_admin_is_created_once_with_a_generated_password_kept_for_reruns(var_dir, capsys):
    call_command("ensure_admin")
    call_command("ensure_admin")

    out = capsys.readouterr().out.splitlines()
    password = (var_dir / "admin_password").read_text()
    assert out == [
        f"admin user 'admin' created; password: {password}",
        f"admin user 'admin' exists; password: {password}",
    ]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)


def test_admin_password_from_the_environment_wins(var_dir, monkeypatch, capsys):
    call_command("ensure_admin")
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-chosen-password")

    call_command("ensure_admin")

    assert get_user_model().objects.get(username="admin").check_password("a-long-chosen-password")
    assert "password set from ADMIN_PASSWORD" in capsys.readouterr().out


def test_a_password_changed_in_the_admin_is_not_printed_or_reset(var_dir, capsys):
    call_command("ensure_admin")
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed-by-the-operator")
    admin.save()

    call_command("ensure_admin")

    assert "password: (as set in the admin" in capsys.readouterr().out.splitlines()[-1]
    admin.refresh_from_db()
    assert admin.check_password("changed-by-the-operator")
    assert not (var_dir / "admin_password").exists()


def test_flower_gets_a_generated_password_of_its_own_in_embedded_mode(var_dir, monkeypatch):
    from scheduling.credentials import flower_basic_auth

    first, source = flower_basic_auth()
    again, _ = flower_basic_auth()

    assert first == again == f"admin:{(var_dir / 'flower_password').read_text()}"
    assert source == "var/flower_password"
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:s3cret")
    assert flower_basic_auth() == ("ops:s3cret", "FLOWER_BASIC_AUTH")


def test_flower_never_starts_open_in_distributed_mode(var_dir, settings):
    from django.core.management import CommandError

    settings.MODE = "distributed"

    with pytest.raises(CommandError, match="FLOWER_BASIC_AUTH is required in distributed mode"):
        call_command("runflower")


def test_admin_password_from_the_environment_is_never_printed(var_dir, monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-chosen-password")

    call_command("ensure_admin")

    assert "a-long-chosen-password" not in capsys.readouterr().out


def test_demo_data_loads_once(capsys):
    from billing.models import Invoice

    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, tzinfo=datetime.UTC), tick=False):
        call_command("load_demo")
        call_command("load_demo")

    assert Company.objects.filter(slug="demo").count() == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "ledger: company 'demo' created",
        "ledger: chart of accounts for 'demo': 31 accounts created, 0 already there",
    ]
    first, second = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    assert first[2:] == [
        "billing: company 'school' created",
        "billing: 40 pupils (40 new) enrolled on 5 courses",
        "billing: dunning levels at 1, 7, 14, 30 days overdue",
        "billing: November 2026 invoices: 40 created, 0 already there",
        "receivables: 'Group export (demo)': 116 documents and 38 allocations imported",
        "receivables: aged debtors of 'school' as of 2026-11-21: 200100.00 KES over 40 customers, "
        "control account 200100.00 (reconciled)",
    ]
    assert second[2:] == [
        "billing: company 'school' already there",
        "billing: 40 pupils (0 new) enrolled on 5 courses",
        "billing: dunning levels at 1, 7, 14, 30 days overdue",
        "billing: November 2026 invoices: 0 created, 40 already there",
        "receivables: 'Group export (demo)' already there",
        "receivables: aged debtors of 'school' as of 2026-11-21: 200100.00 KES over 40 customers, "
        "control account 200100.00 (reconciled)",
    ]
    school = Invoice.objects.filter(company__slug="school")
    assert school.filter(status="open").count() == 40
    assert sorted(school.values_list("number", flat=True))[-1] == "INV-000040"


def test_runplatform_refuses_malformed_flower_credentials_in_one_line(var_dir, monkeypatch):
    from django.core.management import CommandError

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "no-colon-here")

    with pytest.raises(CommandError, match="FLOWER_BASIC_AUTH must be user:password"):
        call_command("runplatform")
    with pytest.raises(CommandError, match="FLOWER_BASIC_AUTH must be user:password"):
        call_command("runflower")


def test_runplatform_plans_web_workers_beat_and_flower(var_dir, monkeypatch):
    from scheduling.management.commands.runplatform import Command

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:secret")

    children = Command().plan("127.0.0.1", 8000, 5555, workers=2, flower=True)

    assert [c.name for c in children] == ["web", "worker1", "worker2", "beat", "flower"]
    assert not any("ops:secret" in " ".join(c.argv) for c in children)
    assert children[-1].argv[-3:] == ["runflower", "--address=127.0.0.1", "--port=5555"]
    assert "-Q" in children[1].argv
