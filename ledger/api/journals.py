"""Journal entries over the API: drafts created, changed, posted and deleted; entries
posted at once (idempotent on source and source id) and reversed. Every check on the
books is the posting service's; this module turns requests into its calls."""

from __future__ import annotations

import django_filters
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import Conflict
from ledger.api.common import (
    MONEY,
    CompanyField,
    CompanyFilterSet,
    CompanyImmutable,
    MembersWrite,
    MoneyField,
    money,
    scoped,
)
from ledger.errors import PostingError
from ledger.models import Company, EntryStatus, JournalEntry, JournalLine, Period, Source
from ledger.services import posting

MAX_ID = 2**63 - 1

# "system" entries are the ledger's own (reversals, year-end closings), keyed by source ids
# it chooses; a caller claiming one could pre-empt them.
CALLER_SOURCES = [(value, label) for value, label in Source.choices if value != Source.SYSTEM]


# --- Out ----------------------------------------------------------------------------------


class LineSerializer(serializers.ModelSerializer):
    account_code = serializers.CharField(source="account.code", read_only=True)
    debit = serializers.DecimalField(**MONEY, read_only=True, help_text="In the line's currency.")
    credit = serializers.DecimalField(**MONEY, read_only=True, help_text="In the line's currency.")
    amount = serializers.DecimalField(
        **MONEY, read_only=True, help_text="In the company's currency, debits positive and credits negative."
    )

    class Meta:
        model = JournalLine
        fields = ["id", "account", "account_code", "description", "debit", "credit", "currency", "amount", "party"]
        read_only_fields = fields

    def to_representation(self, line: JournalLine) -> dict:
        data = super().to_representation(line)
        data["debit"] = money(line.debit, line.currency)
        data["credit"] = money(line.credit, line.currency)
        data["amount"] = money(line.amount, line.entry.company.base_currency)
        return data


class EntrySerializer(serializers.ModelSerializer):
    period_label = serializers.CharField(source="period.label", read_only=True)
    reversed_by = serializers.IntegerField(source="reversed_by.pk", default=None, read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    posted_by = serializers.CharField(source="posted_by.username", default=None, read_only=True)
    lines = LineSerializer(many=True, read_only=True)

    class Meta:
        model = JournalEntry
        fields = [
            "id",
            "company",
            "date",
            "period",
            "period_label",
            "reference",
            "memo",
            "source",
            "source_id",
            "status",
            "is_closing",
            "reverses",
            "reversed_by",
            "flagged_at",
            "flag_reason",
            "created_by",
            "created_at",
            "posted_by",
            "posted_at",
            "lines",
        ]
        read_only_fields = fields


# --- In -----------------------------------------------------------------------------------


class LineInputSerializer(serializers.Serializer):
    account = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="An account of the entry's company.")
    debit = MoneyField(default="0", help_text="In the line's currency, as a string.")
    credit = MoneyField(default="0", help_text="In the line's currency, as a string.")
    currency = serializers.CharField(max_length=3, allow_blank=True, default="", help_text="The company's if empty.")
    base_amount = MoneyField(
        allow_null=True, default=None, help_text="The value in the company's currency; required in another currency."
    )
    party = serializers.CharField(max_length=64, allow_blank=True, default="")
    description = serializers.CharField(max_length=200, allow_blank=True, default="")


class EntryInputSerializer(CompanyImmutable, serializers.Serializer):
    """An entry to save as a draft, or with ``post`` to post at once. On a change to a draft
    the company may be left out; given lines replace all the draft's lines."""

    company = CompanyField()
    date = serializers.DateField()
    reference = serializers.CharField(max_length=100, allow_blank=True, default="")
    memo = serializers.CharField(allow_blank=True, default="")
    source = serializers.ChoiceField(choices=CALLER_SOURCES, default=Source.MANUAL)
    source_id = serializers.CharField(
        max_length=100, allow_blank=True, default="", help_text="Posting again with the same source id creates nothing."
    )
    lines = LineInputSerializer(many=True)
    post = serializers.BooleanField(default=False, help_text="Post at once instead of saving a draft.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:
            self.fields["company"].required = False

    def validate_post(self, value: bool) -> bool:
        if value and self.instance is not None:
            raise serializers.ValidationError("Post a saved draft with POST .../post.")
        return value

    def entry(self, base: posting.Entry | None = None) -> posting.Entry:
        """The service's Entry: the given fields over ``base`` (a draft's current values)."""
        data = self.validated_data

        def given(name: str):
            return data[name] if name in data else getattr(base, name)

        lines = [posting.Line(**line) for line in data["lines"]] if "lines" in data else base.lines
        return posting.Entry(
            date=given("date"),
            lines=lines,
            reference=given("reference"),
            memo=given("memo"),
            source=given("source"),
            source_id=given("source_id"),
        )


class ReverseSerializer(serializers.Serializer):
    date = serializers.DateField(
        required=False, allow_null=True, help_text="The reversal's date; the entry's own by default."
    )
    memo = serializers.CharField(allow_blank=True, default="")


# --- Views ----------------------------------------------------------------------------------


class EntryFilter(CompanyFilterSet):
    status = django_filters.ChoiceFilter(choices=EntryStatus.choices)
    source = django_filters.ChoiceFilter(choices=Source.choices)
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    period = django_filters.ModelChoiceFilter(queryset=scoped(Period))

    class Meta:
        model = JournalEntry
        fields = ["company", "status", "source", "date_from", "date_to", "period"]


class JournalEntryViewSet(viewsets.ModelViewSet):
    """Journal entries with their lines, newest first.

    POST saves a draft, or posts at once with ``"post": true`` (201; the same source and
    source id again answers 200 with the entry already there). Only drafts change or are
    deleted (409 otherwise); ``post`` posts a draft, ``reverse`` posts a posted entry's
    mirror. A refused posting answers 400 naming the fields at fault, and writes nothing.
    """

    serializer_class = EntrySerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = EntryFilter
    cursor_ordering = ("-date", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        lines = JournalLine.objects.select_related("account").order_by("pk")
        return (
            JournalEntry.objects.for_user(self.request.user)
            .select_related("company", "period__fiscal_year", "created_by", "posted_by", "reversed_by")
            .prefetch_related(Prefetch("lines", queryset=lines))
        )

    def answer(self, entry: JournalEntry, created: bool) -> Response:
        fresh = self.get_queryset().get(pk=entry.pk)
        return Response(
            self.get_serializer(fresh).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(request=EntryInputSerializer, responses={201: EntrySerializer, 200: EntrySerializer})
    def create(self, request: Request) -> Response:
        given = EntryInputSerializer(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        company, entry = given.validated_data["company"], given.entry()
        if given.validated_data["post"]:
            posted = posting.post(company, entry, user=request.user)
            return self.answer(posted.entry, posted.created)
        existing = already_there(company, entry)
        if existing is not None:
            return self.answer(existing, created=False)
        # A request saving the same source id since we looked makes this a 400 "already used".
        return self.answer(posting.create_draft(company, entry, user=request.user), created=True)

    @extend_schema(request=EntryInputSerializer, responses=EntrySerializer)
    def update(self, request: Request, pk=None, partial: bool = False) -> Response:
        draft = self.get_object()
        if not draft.is_draft:
            raise Conflict(f"Entry {draft.pk} is {draft.status}; only drafts change. Reverse it instead.")
        given = EntryInputSerializer(draft, data=request.data, partial=partial, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        try:
            posting.update_draft(draft, given.entry(posting.draft_as_entry(draft)))
        except PostingError as exc:
            if "status" in exc.message_dict:  # posted by another request since we looked
                raise Conflict(" ".join(exc.message_dict["status"])) from exc
            raise
        return self.answer(draft, created=False)

    @extend_schema(request=EntryInputSerializer, responses=EntrySerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk=None) -> Response:
        entry = self.get_object()
        with transaction.atomic():
            entry = JournalEntry.objects.select_for_update().get(pk=entry.pk)
            if not entry.is_draft:
                raise Conflict(f"Entry {entry.pk} is {entry.status}; only drafts are deleted. Reverse it instead.")
            entry.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=EntrySerializer)
    @action(detail=True, methods=["post"], url_path="post", url_name="post")
    def post_draft(self, request: Request, pk=None) -> Response:
        posted = posting.post_draft(self.get_object(), user=request.user)
        return self.answer(posted.entry, created=False)

    @extend_schema(request=ReverseSerializer, responses={201: EntrySerializer, 200: EntrySerializer})
    @action(detail=True, methods=["post"], url_path="reverse", url_name="reverse")
    def reverse_entry(self, request: Request, pk=None) -> Response:
        entry = self.get_object()
        if entry.is_draft:
            raise Conflict(f"Entry {entry.pk} is a draft; delete it instead of reversing it.")
        given = ReverseSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        posted = posting.reverse(
            entry, date=given.validated_data.get("date"), user=request.user, memo=given.validated_data["memo"]
        )
        return self.answer(posted.entry, posted.created)


def already_there(company: Company, entry: posting.Entry) -> JournalEntry | None:
    if entry.key is None:
        return None
    return JournalEntry.objects.filter(company=company, source=entry.source, source_id=entry.source_id).first()
