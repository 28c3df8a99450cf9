"""Named actors for permission tests: an owner and a teammate in one company, an
outsider in another, and a staff user who sees every company."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import CompanyFactory, MembershipFactory, UserFactory


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
