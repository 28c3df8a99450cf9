from __future__ import annotations

import datetime

import factory
import factory.random
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.services import recurring
from ledger.models import Account, AccountType, Company, Membership

factory.random.reseed_random(20261121)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n} Ltd")
    slug = factory.Sequence(lambda n: f"company-{n}")
    base_currency = "GBP"
    timezone = "Europe/London"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    company = factory.SubFactory(CompanyFactory)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    company = factory.SubFactory(CompanyFactory)
    code = factory.Sequence(lambda n: f"9{n:03d}")
    name = factory.Sequence(lambda n: f"Account {n}")
    type = AccountType.ASSET


# --- Notifications ---------------------------------------------------------------------


class NotificationFactory(factory.django.DjangoModelFactory):
    """A notification to a user, already in their inbox (its in-app delivery went out)."""

    class Meta:
        model = "notifications.Notification"

    company = factory.SubFactory(CompanyFactory)
    kind = "job_alert"
    dedupe_key = factory.Sequence(lambda n: f"test:{n}")
    user = factory.SubFactory(UserFactory)
    recipient_key = factory.LazyAttribute(lambda n: f"user:{n.user.pk}" if n.user else "billing.customer:1")
    recipient_name = factory.LazyAttribute(lambda n: n.user.username if n.user else "A customer")
    recipient_email = factory.LazyAttribute(lambda n: n.user.email if n.user else "customer@example.com")
    channels = factory.LazyFunction(lambda: ["in_app", "email"])
    data = factory.LazyFunction(dict)
    subject = factory.Sequence(lambda n: f"Notice {n}")
    body = "Something happened."
    rendered_at = factory.LazyFunction(timezone.now)
    in_app_at = factory.LazyFunction(timezone.now)


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "notifications.Delivery"

    notification = factory.SubFactory(NotificationFactory)
    company = factory.SelfAttribute("notification.company")
    channel = "email"
    status = "sent"
    attempts = 1


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "notifications.Template"

    company = factory.SubFactory(CompanyFactory)
    kind = factory.Sequence(lambda n: f"test_kind_{n}")
    subject = "Hello {{ recipient_name }}"
    body = "Body for {{ recipient_name }}."
    html = ""
    sample_data = factory.LazyFunction(lambda: {"recipient_name": "Ada"})


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "notifications.WebhookEndpoint"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Endpoint {n}")
    url = factory.Sequence(lambda n: f"https://hooks{n}.example.com/receive")
    secret = "whsec_test_secret"
    kinds = factory.LazyFunction(list)


class PreferenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "notifications.Preference"

    company = factory.SubFactory(CompanyFactory)
    recipient_key = factory.Sequence(lambda n: f"user:{n + 1000}")
    kind = ""
    channel = "email"
    enabled = False


class QuietHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "notifications.QuietHours"

    company = factory.SubFactory(CompanyFactory)
    recipient_key = ""
    start = datetime.time(22, 0)
    end = datetime.time(7, 0)
    timezone = "Europe/London"


# --- Billing -----------------------------------------------------------------------------


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "billing.Customer"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    payment_terms_days = 14


class FeeStructureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "billing.FeeStructure"

    company = factory.SubFactory(CompanyFactory)
    code = factory.Sequence(lambda n: f"FEE{n:03d}")
    name = factory.Sequence(lambda n: f"Course {n}")
    amount = "100.00"
    currency = factory.LazyAttribute(lambda f: f.company.base_currency)
    cadence = "monthly"


class FeeComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "billing.FeeComponent"

    fee_structure = factory.SubFactory(FeeStructureFactory)
    position = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"Component {n}")
    amount = "50.00"


class EnrolmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "billing.Enrolment"

    company = factory.SubFactory(CompanyFactory)
    customer = factory.SubFactory(CustomerFactory, company=factory.SelfAttribute("..company"))
    fee_structure = factory.SubFactory(FeeStructureFactory, company=factory.SelfAttribute("..company"))
    start_date = datetime.date(2025, 9, 1)


class RecurringTemplateFactory(factory.django.DjangoModelFactory):
    """A monthly invoice template from 1 January 2026, saved through the service."""

    class Meta:
        model = "billing.RecurringTemplate"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    frequency = "monthly"
    amount = "100.00"
    currency = ""
    generates = "invoice"
    customer = factory.SubFactory(CustomerFactory, company=factory.SelfAttribute("..company"))
    start_date = datetime.date(2026, 1, 1)
    days_ahead = 0

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return recurring.save_template(model_class(*args, **kwargs))
