"""Billing's models, one module per aggregate."""

from billing.models.customers import Cadence, Customer, Enrolment, FeeComponent, FeeStructure
from billing.models.dunning import DunningLevel, NoticeStatus, OverdueNotice
from billing.models.invoices import (
    DocumentSequence,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceSource,
    InvoiceStatus,
    Series,
)
from billing.models.payments import CreditAllocation, CreditNote, Payment, PaymentAllocation, PaymentMethod
from billing.models.recurring import Frequency, Generates, RecurringGeneration, RecurringTemplate, TemplateStatus

__all__ = [
    "Cadence",
    "CreditAllocation",
    "CreditNote",
    "Customer",
    "DocumentSequence",
    "DunningLevel",
    "Enrolment",
    "FeeComponent",
    "FeeStructure",
    "Frequency",
    "Generates",
    "Invoice",
    "InvoiceLine",
    "InvoiceRun",
    "InvoiceSource",
    "InvoiceStatus",
    "NoticeStatus",
    "OverdueNotice",
    "Payment",
    "PaymentAllocation",
    "PaymentMethod",
    "RecurringGeneration",
    "RecurringTemplate",
    "Series",
    "TemplateStatus",
]
