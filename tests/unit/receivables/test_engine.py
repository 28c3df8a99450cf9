"""The aging engine's contract: what counts at R, open amounts, buckets, and that a
contact's report total is its balance whatever the documents and dates."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivables import engine
from receivables.engine import Alloc, Doc, Options
from tests.properties import properties

D = Decimal
JUNE_30 = datetime.date(2024, 6, 30)


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def invoice(id_: str, date: str, due: str, total: str, contact: str = "Acme", **kw) -> Doc:
    return Doc(engine.INVOICE, id_, "North", contact, day(date), D(total), "GBP", number=id_, due_date=day(due), **kw)


def credit(kind: str, id_: str, date: str, total: str, contact: str = "Acme", **kw) -> Doc:
    return Doc(kind, id_, "North", contact, day(date), D(total), "GBP", number=id_, **kw)


def alloc(source: str, invoice_id: str, amount: str, date: str) -> Alloc:
    return Alloc(source, invoice_id, D(amount), day(date))


def aged(docs, allocations=(), as_of=JUNE_30, **options) -> engine.Report:
    return engine.age(docs, allocations, Options(as_of, **options))


def by_label(report: engine.Report, row: int = 0) -> dict[str, Decimal]:
    return {label: value for label, value in zip(report.labels, report.rows[row].buckets, strict=True) if value}


# --- seed 003's scenarios, report date 30 June 2024, month buckets by due date ----------


def test_scenario_1_paid_in_june_before_a_july_due_date_is_not_shown():
    docs = [invoice("INV-1", "2024-06-05", "2024-07-05", "100"), credit(engine.PAYMENT, "P-1", "2024-06-20", "100")]

    report = aged(docs, [alloc("P-1", "INV-1", "100", "2024-06-20")])

    assert report.rows == []


def test_scenario_1_exception_a_balance_still_outstanding_is_shown_in_current():
    docs = [invoice("INV-1", "2024-06-05", "2024-07-05", "100"), credit(engine.PAYMENT, "P-1", "2024-06-20", "70")]

    report = aged(docs, [alloc("P-1", "INV-1", "70", "2024-06-20")])

    assert by_label(report) == {"Current": D("30")}


def test_scenario_2_paid_in_full_in_june_due_in_july_is_not_shown():
    docs = [
        invoice("INV-2", "2024-06-01", "2024-07-31", "250.50"),
        credit(engine.PAYMENT, "P-2", "2024-06-30", "250.50"),
    ]

    assert aged(docs, [alloc("P-2", "INV-2", "250.50", "2024-06-30")]).rows == []


def test_scenario_3_issued_in_june_unpaid_due_in_july_is_current():
    report = aged([invoice("INV-3", "2024-06-10", "2024-07-10", "400")])

    assert by_label(report) == {"Current": D("400")}


def test_scenario_4_paid_in_june_for_a_july_invoice_is_a_negative_current_credit():
    # The July invoice does not exist yet at R; the June payment does, unallocated by R.
    docs = [invoice("INV-4", "2024-07-02", "2024-07-31", "300"), credit(engine.PREPAYMENT, "PP-4", "2024-06-25", "300")]

    report = aged(docs, [alloc("PP-4", "INV-4", "300", "2024-07-02")])

    assert by_label(report) == {"Current": D("-300")}
    assert report.rows[0].total == engine.balances(docs, JUNE_30)[("North", "Acme", "GBP")] == D("-300")


def test_scenario_5_issued_and_paid_before_the_report_date_is_not_shown():
    docs = [invoice("INV-5", "2024-05-01", "2024-05-31", "80"), credit(engine.PAYMENT, "P-5", "2024-05-20", "80")]

    assert aged(docs, [alloc("P-5", "INV-5", "80", "2024-05-20")]).rows == []


def test_scenario_6_paid_after_the_report_date_is_shown_positive_in_its_bucket():
    docs = [invoice("INV-6", "2024-05-01", "2024-07-15", "120"), credit(engine.PAYMENT, "P-6", "2024-07-10", "120")]

    report = aged(docs, [alloc("P-6", "INV-6", "120", "2024-07-10")])

    assert by_label(report) == {"Current": D("120")}


def test_scenario_7_partial_payment_leaves_the_rest_positive_because_the_balance_rule_wins():
    # Seed 003 says "show as NEGATIVE (partial payment)". The balance at R is 100 - 40 = 60
    # owed by the customer; a negative figure would make the report disagree with the
    # ledger, so the open 60 is shown, overdue, and the contract's balance rule wins.
    docs = [invoice("INV-7", "2024-04-01", "2024-05-01", "100"), credit(engine.PAYMENT, "P-7", "2024-06-01", "40")]

    report = aged(docs, [alloc("P-7", "INV-7", "40", "2024-06-01")])

    assert by_label(report) == {"1 Month": D("60")}
    assert report.rows[0].total == engine.balances(docs, JUNE_30)[("North", "Acme", "GBP")]


def test_scenario_8_unpaid_invoices_fall_in_their_aging_buckets():
    docs = [
        invoice("A", "2024-06-01", "2024-07-01", "1"),  # not yet due
        invoice("B", "2024-05-01", "2024-06-15", "2"),  # 15 days: < 1 month
        invoice("C", "2024-04-01", "2024-05-20", "4"),  # 1 month 10 days
        invoice("D", "2024-03-01", "2024-04-30", "8"),  # 2 months
        invoice("E", "2024-02-01", "2024-03-31", "16"),  # 2 months 30 days (31 > 30)
        invoice("F", "2024-01-01", "2024-02-29", "32"),  # 4 months: Older with 4 periods
    ]

    report = aged(docs)

    assert report.labels == ["Current", "< 1 Month", "1 Month", "2 Months", "3 Months", "Older"]
    assert by_label(report) == {"Current": D(1), "< 1 Month": D(2), "1 Month": D(4), "2 Months": D(24), "Older": D(32)}


def test_scenario_9_paid_on_the_report_date_is_not_shown():
    docs = [invoice("INV-9", "2024-05-01", "2024-05-31", "60"), credit(engine.PAYMENT, "P-9", "2024-06-30", "60")]

    assert aged(docs, [alloc("P-9", "INV-9", "60", "2024-06-30")]).rows == []


@pytest.mark.parametrize("paid", ["2024-06-29", "2024-06-30"])
def test_scenario_10_paid_on_or_before_the_report_date_is_not_shown(paid):
    docs = [invoice("INV-10", "2024-05-01", "2024-05-31", "60"), credit(engine.PAYMENT, "P-10", paid, "60")]

    assert aged(docs, [alloc("P-10", "INV-10", "60", paid)]).rows == []


# --- buckets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        ("2024-06-30", "Current"),  # due on R: not yet overdue
        ("2024-07-01", "Current"),
        ("2024-06-29", "1-30 Days"),  # d = 1
        ("2024-05-31", "1-30 Days"),  # d = 30: ⌈30/30⌉ = 1
        ("2024-05-30", "31-60 Days"),  # d = 31
        ("2024-04-01", "61-90 Days"),  # d = 90
        ("2024-03-31", "Older"),  # d = 91 > 3 periods
    ],
)
def test_day_periods_are_ceiling_of_days_over_length(anchor, expected):
    options = Options(JUNE_30, periods=3, period_type="day", period_length=30)

    assert engine.bucket_of(day(anchor), options) == expected


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        ("2024-06-23", "1-2 Weeks"),
        ("2024-06-16", "1-2 Weeks"),
        ("2024-06-15", "3-4 Weeks"),
        ("2024-06-02", "3-4 Weeks"),
        ("2024-06-01", "Older"),
    ],
)
def test_week_periods_are_seven_days_times_their_length(anchor, expected):
    options = Options(JUNE_30, periods=2, period_type="week", period_length=2)

    assert engine.bucket_of(day(anchor), options) == expected


@pytest.mark.parametrize(
    ("anchor", "as_of", "months"),
    [
        ("2024-01-31", "2024-02-29", 0),  # the 29th is before the 31st: not a whole month
        ("2024-01-31", "2024-03-31", 2),
        ("2024-01-15", "2024-02-15", 1),
        ("2024-01-15", "2024-02-14", 0),
        ("2023-12-20", "2024-01-19", 0),
        ("2023-12-20", "2024-01-20", 1),
        ("2023-02-28", "2024-02-29", 12),
    ],
)
def test_whole_calendar_months_follow_xero(anchor, as_of, months):
    assert engine.whole_months(day(anchor), day(as_of)) == months


def test_month_periods_put_m_at_or_beyond_p_in_older():
    options = Options(JUNE_30, periods=2)

    assert options.labels == ["Current", "< 1 Month", "1 Month", "Older"]
    assert engine.bucket_of(day("2024-05-30"), options) == "1 Month"
    assert engine.bucket_of(day("2024-04-30"), options) == "Older"


def test_age_by_invoice_date_uses_the_issue_date():
    doc = invoice("X", "2024-04-15", "2024-07-15", "10")

    assert by_label(aged([doc], age_by="invoice")) == {"2 Months": D(10)}
    assert by_label(aged([doc])) == {"Current": D(10)}


def test_unallocated_credit_may_be_aged_by_its_own_date():
    docs = [credit(engine.CREDIT_NOTE, "CN-1", "2024-04-10", "25")]

    assert by_label(aged(docs)) == {"Current": D(-25)}
    assert by_label(aged(docs, credit_aging="date")) == {"2 Months": D(-25)}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"periods": 0}, "periods"),
        ({"periods": 25}, "periods"),
        ({"period_type": "year"}, "period_type"),
        ({"period_length": 0}, "period_length"),
        ({"age_by": "paid"}, "age_by"),
        ({"credit_aging": "older"}, "credit_aging"),
    ],
)
def test_bad_options_are_refused_with_their_name(options, error):
    with pytest.raises(ValueError, match=error):
        Options(JUNE_30, **options)


# --- what counts at R ------------------------------------------------------------------


def test_an_allocation_dated_after_r_does_not_reduce_the_invoice():
    docs = [invoice("I", "2024-06-01", "2024-06-10", "100"), credit(engine.CREDIT_NOTE, "CN", "2024-06-05", "100")]

    report = aged(docs, [alloc("CN", "I", "100", "2024-07-01")])

    assert by_label(report) == {"< 1 Month": D(100), "Current": D(-100)}
    assert report.rows[0].total == 0


def test_documents_dated_after_r_do_not_count():
    docs = [invoice("I", "2024-07-01", "2024-07-31", "100"), credit(engine.PAYMENT, "P", "2024-07-02", "5")]

    assert aged(docs).rows == []


def test_an_allocation_whose_credit_is_dated_after_r_is_not_half_counted():
    # Inconsistent data (an allocation dated before its payment): counting it on the
    # invoice alone would break the balance rule, so it is not counted at all.
    docs = [invoice("I", "2024-06-01", "2024-06-10", "100"), credit(engine.PAYMENT, "P", "2024-07-05", "100")]

    report = aged(docs, [alloc("P", "I", "100", "2024-06-20")])

    assert report.rows[0].total == D(100) == engine.balances(docs, JUNE_30)[("North", "Acme", "GBP")]


def test_rows_are_per_company_contact_and_currency_and_totals_never_mix_currencies():
    docs = [
        invoice("G1", "2024-06-01", "2024-06-10", "100"),
        Doc(
            engine.INVOICE,
            "E1",
            "North",
            "Acme",
            day("2024-06-01"),
            D(50),
            "EUR",
            number="E1",
            due_date=day("2024-06-10"),
            rate=D("1.25"),
        ),
        Doc(
            engine.INVOICE,
            "S1",
            "South",
            "Acme",
            day("2024-06-01"),
            D(7),
            "GBP",
            number="S1",
            due_date=day("2024-06-10"),
        ),
    ]

    report = aged(docs)

    assert [(row.company, row.contact, row.currency, row.total) for row in report.rows] == [
        ("North", "Acme", "EUR", D(50)),
        ("North", "Acme", "GBP", D(100)),
        ("South", "Acme", "GBP", D(7)),
    ]
    assert report.rows[0].base_total == D("40.00")
    assert [(t.company, t.currency, t.total) for t in report.totals] == [
        ("North", "EUR", D(50)),
        ("North", "GBP", D(100)),
        ("South", "GBP", D(7)),
    ]


def test_system_comments_list_each_item_per_bucket():
    docs = [
        invoice("INV-001", "2024-06-01", "2024-07-01", "1500"),
        Doc(engine.CREDIT_NOTE, "67890", "North", "Acme", day("2024-06-02"), D(200), "GBP", number="CN-002"),
        invoice("INV-003", "2024-05-01", "2024-06-10", "2000"),
    ]

    report = aged(docs)

    assert engine.comments(report.rows[0], report.labels) == (
        "Current:\n"
        "INV-001 (Invoice, ID: INV-001) = 1,500.00\n"
        "CN-002 (Credit Note, ID: 67890) = -200.00\n"
        "\n"
        "< 1 Month:\n"
        "INV-003 (Invoice, ID: INV-003) = 2,000.00"
    )


def test_amounts_show_their_currencys_places_unless_they_have_finer_digits():
    assert engine.money(Decimal("1500.000"), "GBP") == "1,500.00"
    assert engine.money(Decimal("1500"), "JPY") == "1,500"
    assert engine.money(Decimal("-2.5"), "KWD") == "-2.500"
    assert engine.money(Decimal("0.125"), "GBP") == "0.125"


def test_percentages_are_each_buckets_share_and_none_when_nothing_is_owed():
    assert engine.percentages([D(25), D(75)], D(100)) == [D("25.00"), D("75.00")]
    assert engine.percentages([D(10), D(-10)], D(0)) == [None, None]


def test_json_form_has_the_issue_shape():
    report = aged([invoice("I", "2024-06-01", "2024-06-10", "12.5")])

    body = engine.as_json(report)

    assert body["as_of"] == "2024-06-30"
    assert body["buckets"][0] == "Current" and body["buckets"][-1] == "Older"
    row = body["rows"][0]
    assert row["buckets"]["< 1 Month"] == "12.50" and row["total"] == "12.50"
    assert row["company"] == "North" and row["contact"] == "Acme" and row["currency"] == "GBP"
    assert body["totals"] == [
        {
            "company": "North",
            "currency": "GBP",
            "buckets": {label: ("12.50" if label == "< 1 Month" else "0.00") for label in body["buckets"]},
            "total": "12.50",
            "percentages": {label: ("100.00" if label == "< 1 Month" else "0.00") for label in body["buckets"]},
            "base_buckets": {label: ("12.50" if label == "< 1 Month" else "0.00") for label in body["buckets"]},
            "base_total": "12.50",
        }
    ]


# --- the balance rule, for any documents and dates ----------------------------------------

dates = st.dates(min_value=datetime.date(2024, 1, 1), max_value=datetime.date(2024, 12, 31))
amounts = st.integers(min_value=1, max_value=100_000).map(lambda cents: Decimal(cents) / 100)


@st.composite
def histories(draw):
    contacts = ["Acme", "Bolt", "Cargo"]
    docs, allocations = [], []
    for n in range(draw(st.integers(min_value=1, max_value=25))):
        kind = draw(st.sampled_from(engine.KINDS))
        date = draw(dates)
        contact = draw(st.sampled_from(contacts))
        due = date + datetime.timedelta(days=draw(st.integers(min_value=-5, max_value=90)))
        docs.append(
            Doc(
                kind,
                f"d{n}",
                "North",
                contact,
                date,
                draw(amounts),
                "GBP",
                number=f"N{n}",
                due_date=due if kind == engine.INVOICE else None,
            )
        )
    invoices = [doc for doc in docs if doc.is_invoice]
    credits = [doc for doc in docs if not doc.is_invoice]
    left = {doc.id: doc.total for doc in docs}
    for _ in range(draw(st.integers(min_value=0, max_value=15))):
        if not invoices or not credits:
            break
        target, source = draw(st.sampled_from(invoices)), draw(st.sampled_from(credits))
        if target.contact != source.contact:
            continue
        room = min(left[target.id], left[source.id])
        if room <= 0:
            continue
        amount = draw(st.integers(min_value=1, max_value=int(room * 100)).map(lambda c: Decimal(c) / 100))
        left[target.id] -= amount
        left[source.id] -= amount
        when = max(target.date, source.date) + datetime.timedelta(days=draw(st.integers(min_value=0, max_value=60)))
        allocations.append(Alloc(source.id, target.id, amount, when))
    return docs, allocations


@properties(max_examples=300)
@given(
    history=histories(),
    as_of=dates,
    period_type=st.sampled_from(engine.PERIOD_TYPES),
    periods=st.integers(min_value=1, max_value=6),
    age_by=st.sampled_from(engine.AGE_BY),
    credit_aging=st.sampled_from(engine.CREDIT_AGING),
)
def test_every_contacts_report_total_is_its_balance(history, as_of, period_type, periods, age_by, credit_aging):
    docs, allocations = history
    options = Options(as_of, periods, period_type, engine.default_period_length(period_type), age_by, credit_aging)

    report = engine.age(docs, allocations, options)

    expected = {key: value for key, value in engine.balances(docs, as_of).items()}
    got = {(row.company, row.contact, row.currency): row.total for row in report.rows}
    for key, balance in expected.items():
        assert got.get(key, Decimal(0)) == balance
    assert set(got) <= set(expected)
    for row in report.rows:
        assert sum(item.amount for item in row.items) == row.total
        assert all(item.amount for item in row.items)
