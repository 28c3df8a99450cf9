from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from ledger.models.company import CompanyScopedQuerySet


class AccountType(models.TextChoices):
    ASSET = "asset", "Asset"
    LIABILITY = "liability", "Liability"
    EQUITY = "equity", "Equity"
    INCOME = "income", "Income"
    EXPENSE = "expense", "Expense"


class NormalBalance(models.TextChoices):
    DEBIT = "debit", "Debit"
    CREDIT = "credit", "Credit"


NORMAL_BALANCE = {
    AccountType.ASSET: NormalBalance.DEBIT,
    AccountType.EXPENSE: NormalBalance.DEBIT,
    AccountType.LIABILITY: NormalBalance.CREDIT,
    AccountType.EQUITY: NormalBalance.CREDIT,
    AccountType.INCOME: NormalBalance.CREDIT,
}

# Income and expense are closed into retained earnings at year end.
PROFIT_AND_LOSS = (AccountType.INCOME, AccountType.EXPENSE)


class AccountRole(models.TextChoices):
    """What other apps and the year-end close look an account up by. One account per
    role per company."""

    NONE = "", "—"
    RECEIVABLES = "receivables", "Receivables control"
    PAYABLES = "payables", "Payables control"
    TAX = "tax", "Tax control"
    BANK = "bank", "Bank"
    RETAINED_EARNINGS = "retained_earnings", "Retained earnings"
    SALES = "sales", "Sales income (billing's default)"
    OTHER_INCOME = "other_income", "Other income (fees and interest charged)"


# Control accounts whose balance a sub-ledger of parties (customers, suppliers) explains.
SUBLEDGER_ROLES = (AccountRole.RECEIVABLES, AccountRole.PAYABLES)


class AccountQuerySet(CompanyScopedQuerySet):
    def active(self) -> AccountQuerySet:
        return self.filter(is_active=True)

    def with_role(self, role: str) -> AccountQuerySet:
        return self.filter(role=role)


class Account(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="accounts")
    code = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=AccountType.choices)
    normal_balance = models.CharField(
        max_length=6,
        choices=NormalBalance.choices,
        blank=True,
        help_text="Left blank, follows the type (debit for assets and expenses). Set it for contra accounts.",
    )
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children", help_text="For the tree."
    )
    role = models.CharField(max_length=20, choices=AccountRole.choices, blank=True, default=AccountRole.NONE)
    is_active = models.BooleanField(default=True, help_text="Inactive accounts accept no postings.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="account_unique_code"),
            models.UniqueConstraint(
                fields=["company", "role"], condition=~models.Q(role=""), name="account_unique_role"
            ),
            models.CheckConstraint(condition=models.Q(type__in=AccountType.values), name="account_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def save(self, *args, **kwargs) -> None:
        if not self.normal_balance and self.type:
            self.normal_balance = NORMAL_BALANCE[AccountType(self.type)]
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self._check_type_change()
        if self.parent_id is None:
            return
        if self.parent.company_id != self.company_id:
            raise ValidationError({"parent": "The parent account belongs to another company."})
        seen, node = {self.pk}, self.parent
        while node is not None:
            if node.pk in seen:
                raise ValidationError({"parent": "An account cannot be its own ancestor."})
            seen.add(node.pk)
            node = node.parent

    def _check_type_change(self) -> None:
        """An account with postings keeps to its side of the year-end close: moved between
        the balance sheet and income and expense, its running total would be closed into
        retained earnings (or stop being)."""
        if self.pk is None or not self.type:
            return
        stored = Account.objects.filter(pk=self.pk).values_list("type", flat=True).first()
        if stored is None or (stored in PROFIT_AND_LOSS) == (self.type in PROFIT_AND_LOSS):
            return
        if self.lines.exists():
            side = "income and expense" if stored in PROFIT_AND_LOSS else "the balance sheet"
            raise ValidationError(
                {"type": f"The account has postings on {side}; open a new account instead of changing its type."}
            )

    @property
    def sign(self) -> int:
        """+1 when the natural balance is a debit, -1 when a credit; balances are stored
        debit-positive, so ``balance * sign`` reads the way an accountant expects."""
        normal = self.normal_balance or NORMAL_BALANCE[AccountType(self.type)]
        return 1 if normal == NormalBalance.DEBIT else -1
