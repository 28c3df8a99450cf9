"""Billing API: invoices."""

routes: list = []  # (prefix under api/v1/, viewset, basename)
urlpatterns: list = []
