"""The notifications the sales-ledger jobs send, with their default letters. A company
overrides a letter with its own template of the same kind (admin or API).

``statement`` (to the customer, SL_STATEMENT_GENERATION): company_name, customer_name,
statement_id, statement_number, statement_date, currency, balance, owing and in_credit
(booleans), credit (the balance's size when in credit), items (at most 50:
number, type, date, due_date, amount, bucket), more_items (how many were left out), aging
(label, amount), html_url and pdf_url (the API paths of the full statement). A
notification carries no attachment, so the letter is the statement itself.

``credit_limit_exceeded`` (to the company's staff) and ``credit_limit_notice`` (to the
customer, when the check is set to tell them), SL_CREDIT_LIMIT_CHECK: company_name,
customer_id, customer_name, since (the date found over), currency, balance,
credit_limit, over_by. Amounts are text in the currency's decimals."""

from __future__ import annotations

from notifications import kinds

STATEMENT = "statement"
CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
CREDIT_LIMIT_NOTICE = "credit_limit_notice"

STATEMENT_SAMPLE = {
    "company_name": "Hillside Academy",
    "customer_name": "Amina Njoroge",
    "statement_id": 7,
    "statement_number": "ST-20260131-42",
    "statement_date": "2026-01-31",
    "currency": "KES",
    "balance": "4460.00",
    "owing": True,
    "in_credit": False,
    "credit": "0.00",
    "items": [
        {
            "number": "INV-000042",
            "type": "Invoice",
            "date": "2025-12-01",
            "due_date": "2025-12-15",
            "amount": "2500.00",
            "bucket": "1 Month",
        },
        {
            "number": "INV-000057",
            "type": "Invoice",
            "date": "2026-01-01",
            "due_date": "2026-01-15",
            "amount": "2960.00",
            "bucket": "< 1 Month",
        },
        {
            "number": "CN-000003",
            "type": "Credit Note",
            "date": "2026-01-20",
            "due_date": "",
            "amount": "-1000.00",
            "bucket": "Current",
        },
    ],
    "more_items": 0,
    "aging": [
        {"label": "Current", "amount": "-1000.00"},
        {"label": "< 1 Month", "amount": "2960.00"},
        {"label": "1 Month", "amount": "2500.00"},
        {"label": "2 Months", "amount": "0.00"},
        {"label": "3 Months", "amount": "0.00"},
        {"label": "Older", "amount": "0.00"},
    ],
    "html_url": "/api/v1/receivables/statements/7/document?format=html",
    "pdf_url": "/api/v1/receivables/statements/7/document?format=pdf",
}

CREDIT_SAMPLE = {
    "company_name": "Hillside Academy",
    "customer_id": 42,
    "customer_name": "Amina Njoroge",
    "since": "2026-02-03",
    "currency": "KES",
    "balance": "12500.00",
    "credit_limit": "10000.00",
    "over_by": "2500.00",
}


def register() -> None:
    kinds.register(
        STATEMENT,
        subject="Statement {{ statement_number }} from {{ company_name }}",
        body=(
            "Dear {{ customer_name }},\n\n"
            "Your statement of account as of {{ statement_date }}: "
            "{% if in_credit %}your account is {{ currency }} {{ credit }} in credit."
            "{% elif owing %}{{ currency }} {{ balance }} is outstanding."
            "{% else %}nothing is outstanding.{% endif %}\n\n"
            "{% if items %}Open items:\n"
            "{% for item in items %}{{ item.date }}  {{ item.number }} ({{ item.type }}"
            "{% if item.due_date %}, due {{ item.due_date }}{% endif %})  {{ item.amount }}\n{% endfor %}"
            "{% if more_items %}and {{ more_items }} more, on the full statement.\n{% endif %}\n{% endif %}"
            "Aging:\n{% for bucket in aging %}{{ bucket.label }}: {{ bucket.amount }}\n{% endfor %}\n"
            "{% if pdf_url %}The full statement: {{ pdf_url }}\n\n{% endif %}"
            "Thank you,\n{{ company_name }}"
        ),
        html=(
            "<p>Dear {{ customer_name }},</p>"
            "<p>Your statement of account <strong>{{ statement_number }}</strong> as of {{ statement_date }}: "
            "{% if in_credit %}your account is <strong>{{ currency }} {{ credit }}</strong> in credit."
            "{% elif owing %}<strong>{{ currency }} {{ balance }}</strong> is outstanding."
            "{% else %}nothing is outstanding.{% endif %}</p>"
            "{% if items %}<table><thead><tr><th>Date</th><th>Number</th><th>Type</th><th>Due</th>"
            "<th>Aged</th><th>Open {{ currency }}</th></tr></thead><tbody>"
            "{% for item in items %}<tr><td>{{ item.date }}</td><td>{{ item.number }}</td><td>{{ item.type }}</td>"
            "<td>{{ item.due_date }}</td><td>{{ item.bucket }}</td>"
            '<td style="text-align:right">{{ item.amount }}</td></tr>{% endfor %}'
            "</tbody></table>"
            "{% if more_items %}<p>And {{ more_items }} more, on the full statement.</p>{% endif %}{% endif %}"
            "<table><thead><tr>{% for bucket in aging %}<th>{{ bucket.label }}</th>{% endfor %}"
            "<th>Balance</th></tr></thead><tbody><tr>"
            '{% for bucket in aging %}<td style="text-align:right">{{ bucket.amount }}</td>{% endfor %}'
            '<td style="text-align:right"><strong>{{ balance }}</strong></td></tr></tbody></table>'
            '{% if pdf_url %}<p><a href="{{ pdf_url }}">The full statement (PDF)</a></p>{% endif %}'
            "<p>Thank you,<br>{{ company_name }}</p>"
        ),
        description="A customer's monthly statement: open items, aging and balance (SL_STATEMENT_GENERATION).",
        sample_data=STATEMENT_SAMPLE,
    )
    kinds.register(
        CREDIT_LIMIT_EXCEEDED,
        subject="{{ customer_name }} is over their credit limit",
        body=(
            "On {{ since }} {{ customer_name }} owes {{ currency }} {{ balance }}, {{ currency }} {{ over_by }} "
            "over their credit limit of {{ currency }} {{ credit_limit }}.\n\n"
            "This is said once while the balance stays over the limit; you will hear again if it goes over "
            "after coming back within it.\n{{ company_name }}"
        ),
        html=(
            "<p>On {{ since }} <strong>{{ customer_name }}</strong> owes {{ currency }} {{ balance }}, "
            "<strong>{{ currency }} {{ over_by }}</strong> over their credit limit of "
            "{{ currency }} {{ credit_limit }}.</p>"
            "<p>This is said once while the balance stays over the limit; you will hear again if it goes over "
            "after coming back within it.</p><p>{{ company_name }}</p>"
        ),
        description="A customer's balance went over their credit limit (SL_CREDIT_LIMIT_CHECK), to staff.",
        sample_data=CREDIT_SAMPLE,
    )
    kinds.register(
        CREDIT_LIMIT_NOTICE,
        subject="Your account with {{ company_name }} is over its credit limit",
        body=(
            "Dear {{ customer_name }},\n\n"
            "On {{ since }} your balance is {{ currency }} {{ balance }}, above your credit limit of "
            "{{ currency }} {{ credit_limit }}. Please pay at least {{ currency }} {{ over_by }} to bring it "
            "back within the limit.\n\nThank you,\n{{ company_name }}"
        ),
        html=(
            "<p>Dear {{ customer_name }},</p>"
            "<p>On {{ since }} your balance is <strong>{{ currency }} {{ balance }}</strong>, above your credit "
            "limit of {{ currency }} {{ credit_limit }}. Please pay at least {{ currency }} {{ over_by }} to bring "
            "it back within the limit.</p><p>Thank you,<br>{{ company_name }}</p>"
        ),
        description="The customer's own notice of going over their credit limit, when SL_CREDIT_LIMIT_CHECK "
        "is set to notify customers.",
        sample_data=CREDIT_SAMPLE,
    )
