"""Billing API: customers."""

routes: list = []  # (prefix under api/v1/, viewset, basename)
urlpatterns: list = []
