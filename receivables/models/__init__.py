"""Receivables' tables: documents to age (synced from Xero or imported from files), the
Xero apps and connections they come from, aged report runs, customer statements and
credit limit breaches."""

from receivables.models.documents import Allocation, Document, DocumentKind, DocumentSet
from receivables.models.reports import AgedReport, ReportFormat, ReportSource
from receivables.models.statements import CreditLimitBreach, Statement
from receivables.models.xero import XeroApp, XeroConnection, XeroContact, XeroGrant

__all__ = [
    "AgedReport",
    "Allocation",
    "CreditLimitBreach",
    "Document",
    "DocumentKind",
    "DocumentSet",
    "ReportFormat",
    "ReportSource",
    "Statement",
    "XeroApp",
    "XeroConnection",
    "XeroContact",
    "XeroGrant",
]
