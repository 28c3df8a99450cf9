"""The notifications billing sends, with their default letters. A company overrides a
letter with its own template of the same kind (admin or API), or sends a dunning level
under a kind of its own.

The reminder kinds' context (a dunning level reached): company_name, customer_name,
invoice_id, invoice_number, due_date, days_overdue, level, currency, amount_due, fee,
interest (amounts as text in the currency's decimals), fee_charged and interest_charged
(true when charged), fee_invoice_number (the dunning invoice carrying them, or empty)."""

from __future__ import annotations

from notifications import kinds

INVOICE_ISSUED = "invoice_issued"
PAYMENT_REMINDER = "payment_reminder"
PAYMENT_OVERDUE = "payment_overdue"


def register() -> None:
    kinds.register(
        INVOICE_ISSUED,
        subject="Invoice {{ invoice_number }} from {{ company_name }}",
        body=(
            "Dear {{ customer_name }},\n\n"
            "Invoice {{ invoice_number }}{% if period %} for {{ period }}{% endif %} is {{ currency }} {{ total }}, "
            "due on {{ due_date }}.\n\nThank you,\n{{ company_name }}"
        ),
        html=(
            "<p>Dear {{ customer_name }},</p>"
            "<p>Invoice <strong>{{ invoice_number }}</strong>{% if period %} for {{ period }}{% endif %} is "
            "<strong>{{ currency }} {{ total }}</strong>, due on {{ due_date }}.</p>"
            "<p>Thank you,<br>{{ company_name }}</p>"
        ),
        description="An invoice was finalised (an invoice run, an enrolment, a recurring template).",
        sample_data={
            "company_name": "Hillside Academy",
            "customer_name": "Amina Njoroge",
            "invoice_id": 42,
            "invoice_number": "INV-000042",
            "period": "January 2026",
            "issue_date": "2026-01-01",
            "due_date": "2026-01-15",
            "currency": "KES",
            "total": "6960.00",
        },
    )
    reminder_sample = {
        "company_name": "Hillside Academy",
        "customer_name": "Amina Njoroge",
        "invoice_id": 42,
        "invoice_number": "INV-000042",
        "due_date": "2026-01-15",
        "days_overdue": 7,
        "level": "First reminder",
        "currency": "KES",
        "amount_due": "2500.00",
        "fee": "0.00",
        "interest": "0.00",
        # Whether anything was charged, for the letter to say so: an amount's text depends on
        # its currency's decimals ("0.00", "0", "0.000"), so comparing it with "0.00" is wrong.
        "fee_charged": False,
        "interest_charged": False,
        "fee_invoice_number": "",
    }
    kinds.register(
        PAYMENT_REMINDER,
        subject="Reminder: invoice {{ invoice_number }} is {{ days_overdue }} days overdue",
        body=(
            "Dear {{ customer_name }},\n\n"
            "Invoice {{ invoice_number }} was due on {{ due_date }}; {{ currency }} {{ amount_due }} is still "
            "outstanding.{% if fee_charged %} A late fee of {{ currency }} {{ fee }} has been charged.{% endif %}"
            "{% if interest_charged %} Interest of {{ currency }} {{ interest }} has been charged.{% endif %}"
            "{% if fee_invoice_number %} They are on invoice {{ fee_invoice_number }}, due now.{% endif %}\n\n"
            "Please pay at your earliest convenience.\n{{ company_name }}"
        ),
        description="A dunning level reached by an overdue invoice.",
        sample_data=reminder_sample,
    )
    kinds.register(
        PAYMENT_OVERDUE,
        subject="Invoice {{ invoice_number }} is overdue",
        body=(
            "Dear {{ customer_name }},\n\n"
            "Invoice {{ invoice_number }} was due on {{ due_date }}; {{ currency }} {{ amount_due }} is outstanding "
            "({{ days_overdue }} days overdue).\n\n{{ company_name }}"
        ),
        description="An invoice became overdue (companies without dunning levels get this once per invoice).",
        sample_data=reminder_sample,
    )
