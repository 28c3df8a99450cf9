"""Billing API: recurring."""

routes: list = []  # (prefix under api/v1/, viewset, basename)
urlpatterns: list = []
