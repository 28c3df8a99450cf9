"""Receivables' tables: documents to age (synced from Xero or imported from files), the
Xero apps and connections they come from, and aged report runs."""

from receivables.models.documents import Allocation, Document, DocumentKind, DocumentSet
from receivables.models.reports import AgedReport, ReportFormat, ReportSource
from receivables.models.xero import XeroApp, XeroConnection, XeroContact, XeroGrant

__all__ = [
    "AgedReport",
    "Allocation",
    "Document",
    "DocumentKind",
    "DocumentSet",
    "ReportFormat",
    "ReportSource",
    "XeroApp",
    "XeroConnection",
    "XeroContact",
    "XeroGrant",
]
