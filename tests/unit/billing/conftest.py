"""Fixtures the billing tests share: a company with books (the default chart and open
periods), a school's fee structures, and customers enrolled on them."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from billing.models import Cadence
from tests.factories import CustomerFactory, EnrolmentFactory, FeeComponentFactory, FeeStructureFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def books(company, chart):
    """The company's chart by code; invoices post to 1200, 4100 and 2200."""
    return chart


@pytest.fixture
def fees(company, books):
    """Maths (two components, 16 % tax), English (no components), a weekly club."""
    maths = FeeStructureFactory(company=company, code="MATH", name="Maths", amount=Decimal("2000.00"), tax_rate=16)
    FeeComponentFactory(fee_structure=maths, position=0, name="Tuition", amount=Decimal("1800.00"))
    FeeComponentFactory(fee_structure=maths, position=1, name="Materials", amount=Decimal("200.00"))
    english = FeeStructureFactory(company=company, code="ENG", name="English", amount=Decimal("1500.00"))
    club = FeeStructureFactory(
        company=company, code="CLUB", name="Chess club", amount=Decimal("50.00"), cadence=Cadence.WEEKLY
    )
    return {"maths": maths, "english": english, "club": club}


@pytest.fixture
def enrol(company):
    """``enrol(customer, fee, **fields)``: an enrolment from September 2025."""

    def make(customer, fee, **fields):
        return EnrolmentFactory(company=company, customer=customer, fee_structure=fee, **fields)

    return make


@pytest.fixture
def customer(company):
    return CustomerFactory(company=company, name="Amina Njoroge", email="amina@example.com")
