"""Demo data for billing: a school that bills monthly, with its pupils (customers), courses
(fee structures), enrolments, dunning levels and this month's invoices. Safe to re-run:
everything is found by its natural key, and the month's run skips what it billed."""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from decimal import Decimal

from billing.models import Cadence, Customer, DunningLevel, Enrolment, FeeComponent, FeeStructure
from billing.services import invoicing, periods
from ledger.models import Company
from ledger.services.chart import load_default_chart

SCHOOL = {
    "name": "Hillside Academy",
    "base_currency": "KES",
    "timezone": "Africa/Nairobi",
    "fiscal_year_start_month": 1,
    "fiscal_year_start_day": 1,
}
# code, name, cadence, tax rate, components (name, amount)
COURSES = [
    ("MATH", "Mathematics", Cadence.MONTHLY, "16", [("Tuition", "1800.00"), ("Materials", "200.00")]),
    ("ENG", "English", Cadence.MONTHLY, "16", [("Tuition", "1500.00")]),
    ("SCI", "Science", Cadence.MONTHLY, "16", [("Tuition", "2000.00"), ("Laboratory", "500.00")]),
    ("CHESS", "Chess club", Cadence.WEEKLY, "0", [("Club fee", "300.00")]),
    ("EXAM", "Examination fee", Cadence.ANNUAL, "0", [("National examinations", "4500.00")]),
]
FIRST_NAMES = ["Amina", "Brian", "Chebet", "David", "Esther", "Faith", "George", "Halima", "Ian", "Joy"]
LAST_NAMES = ["Njoroge", "Otieno", "Wanjiru", "Kamau", "Mutua", "Achieng"]
PUPILS = 40
# days overdue, name, fee, interest % a year
LEVELS = [
    (1, "Friendly reminder", "0", "0"),
    (7, "Second reminder", "0", "0"),
    (14, "Late fee", "250.00", "0"),
    (30, "Final notice", "500.00", "12"),
]


def load() -> Iterator[str]:
    school, created = Company.objects.get_or_create(slug="school", defaults=SCHOOL)
    yield f"company {school.slug!r} {'created' if created else 'already there'}"
    load_default_chart(school)
    courses = {code: _course(school, code, name, cadence, rate, parts) for code, name, cadence, rate, parts in COURSES}
    rng = random.Random(2026)  # the same pupils and enrolments every time
    start = datetime.date(school.today().year, 1, 1)
    new = 0
    for n in range(1, PUPILS + 1):
        name = f"{FIRST_NAMES[n % len(FIRST_NAMES)]} {LAST_NAMES[n % len(LAST_NAMES)]} {n}"
        pupil, made = Customer.objects.get_or_create(
            company=school,
            external_ref=f"PUPIL-{n:04d}",
            defaults={"name": name, "email": f"parent{n}@hillside.example", "payment_terms_days": 9},
        )
        new += made
        chosen = ["MATH", "ENG", *rng.sample(["SCI", "CHESS", "EXAM"], k=rng.randint(0, 2))]
        for code in chosen:
            Enrolment.objects.get_or_create(
                company=school,
                customer=pupil,
                fee_structure=courses[code],
                defaults={"start_date": start, "consolidate": code != "EXAM"},
            )
    yield f"{PUPILS} pupils ({new} new) enrolled on {len(COURSES)} courses"
    for days, name, fee, interest in LEVELS:
        DunningLevel.objects.get_or_create(
            company=school,
            days_overdue=days,
            defaults={"name": name, "fee": Decimal(fee), "interest_rate": Decimal(interest)},
        )
    yield f"dunning levels at {', '.join(str(days) for days, *_ in LEVELS)} days overdue"
    month = invoicing.RunSpec.for_period(school, Cadence.MONTHLY, school.today())
    outcome = invoicing.generate(month)
    yield (
        f"{periods.label(Cadence.MONTHLY, month.period_start)} invoices: {outcome.created} created, "
        f"{outcome.skipped} already there"
    )


def _course(school: Company, code: str, name: str, cadence: str, rate: str, parts) -> FeeStructure:
    amount = sum((Decimal(value) for _part, value in parts), Decimal(0))
    course, created = FeeStructure.objects.get_or_create(
        company=school,
        code=code,
        defaults={
            "name": name,
            "amount": amount,
            "currency": school.base_currency,
            "cadence": cadence,
            "tax_rate": Decimal(rate),
        },
    )
    if created:
        FeeComponent.objects.bulk_create(
            FeeComponent(fee_structure=course, position=n, name=part, amount=Decimal(value))
            for n, (part, value) in enumerate(parts)
        )
    return course
