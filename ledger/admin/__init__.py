"""The ledger in the admin, where finance operators keep the chart of accounts, periods,
journal entries and budgets.

The admin writes through the same services as the API and the commands: entries and
their lines through ``posting`` (never a form's save), period states through ``periods``.
So a posted entry is read-only here, a period's status moves only through its actions
(closing always stores its balances), and a refusal is a form error or a message, never
a 500. What the GL jobs store (balances, variances, totals, snapshots, reconciliations)
is read-only.
"""

from ledger.admin import books, companies, journals, reports  # noqa: F401  (each registers its models)
