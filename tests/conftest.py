"""Named actors for permission tests: an owner and a teammate in one company, an
outsider in another, and a staff user who sees every company.

``COUNTINGHOUSE_TEST_CLOCK`` (an ISO 8601 instant) moves the clock for the whole run,
migrations included, before any test starts: ``make test`` runs the unit suite a second
time that way, so a test that holds only on the day it was written fails in CI, not on
some later day. Time still flows from that instant; a test that freezes time itself
travels from there as usual."""

from __future__ import annotations

import datetime
import os

import pytest
import time_machine
from rest_framework.test import APIClient

from tests.factories import CompanyFactory, MembershipFactory, UserFactory

CLOCK_VARIABLE = "COUNTINGHOUSE_TEST_CLOCK"


def moved_clock() -> datetime.datetime | None:
    text = os.environ.get(CLOCK_VARIABLE, "").strip()
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"{CLOCK_VARIABLE}={text!r} is not an ISO 8601 instant") from None
    if moment.utcoffset() is None:
        raise pytest.UsageError(f"{CLOCK_VARIABLE}={text!r} needs a UTC offset, e.g. 2028-02-29T23:30:00+00:00")
    return moment


def pytest_configure(config: pytest.Config) -> None:
    moment = moved_clock()
    if moment is not None:
        # Started here, before pytest-django creates and migrates the test database, so what
        # migrations compute from the clock (schedules' next fire times) is computed in the moved time.
        config._moved_clock = time_machine.travel(moment, tick=True)
        config._moved_clock.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = getattr(config, "_moved_clock", None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    moment = moved_clock()
    return f"clock moved to {moment.isoformat()} ({CLOCK_VARIABLE})" if moment else None


@pytest.fixture
def company(db):
    return CompanyFactory(name="Acme Books Ltd", slug="acme")


@pytest.fixture
def other_company(db):
    return CompanyFactory(name="Rival Ledgers plc", slug="rival")


@pytest.fixture
def owner(company):
    return MembershipFactory(company=company, user__username="owner").user


@pytest.fixture
def teammate(company):
    return MembershipFactory(company=company, user__username="teammate").user


@pytest.fixture
def outsider(other_company):
    return MembershipFactory(company=other_company, user__username="outsider").user


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", is_staff=True)


@pytest.fixture
def api():
    """An API client; ``api.as_user(user)`` authenticates with that user's token."""
    from rest_framework.authtoken.models import Token

    client = APIClient()

    def as_user(user):
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    client.as_user = as_user
    return client


@pytest.fixture
def chart(company):
    """The company's default chart of accounts, by code: ``chart["1100"]`` is the bank."""
    from ledger.models import Account
    from ledger.services.chart import load_default_chart

    load_default_chart(company)
    return {account.code: account for account in Account.objects.filter(company=company)}
