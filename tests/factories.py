from __future__ import annotations

import factory
import factory.random
from django.contrib.auth import get_user_model

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
