"""Receivables' API under ``receivables/``: aged report runs and their downloads, imported
document files, Xero connections, and statements. Everything is scoped to the caller's
companies (staff see all).

Each module declares ``routes`` (router prefix, viewset, basename) and ``urlpatterns``."""

from rest_framework.routers import SimpleRouter

from receivables.api import reports, statements

MODULES = (reports, statements)

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
for module in MODULES:
    for prefix, viewset, basename in module.routes:
        router.register(prefix, viewset, basename=basename)

urlpatterns = [pattern for module in MODULES for pattern in module.urlpatterns] + router.urls
