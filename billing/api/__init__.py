"""Billing's API under ``billing/``: customers, fee structures, enrolments, invoices (with
their HTML and PDF), invoice runs, payments, credit notes, recurring templates, dunning
levels and overdue notices. Everything is scoped to the caller's companies (staff see
all; changing a company's books takes membership of it).

Each module declares ``routes`` (router prefix, viewset, basename) and ``urlpatterns``."""

from rest_framework.routers import SimpleRouter

from billing.api import customers, dunning, invoices, payments, recurring

MODULES = (customers, invoices, payments, recurring, dunning)

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
for module in MODULES:
    for prefix, viewset, basename in module.routes:
        router.register(prefix, viewset, basename=basename)

urlpatterns = [pattern for module in MODULES for pattern in module.urlpatterns] + router.urls
