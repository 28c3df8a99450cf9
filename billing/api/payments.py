"""Payments and credit notes over the API: recorded (posted at once), listed, read with
their allocations, allocated to invoices and allocations taken back; and invoices voided.
Every rule is billing.services.settlement's; this module turns requests into its calls.

Amounts go in as strings ("12.30"; a JSON number with a fraction is refused, as it has
become a float) and come out as strings in the currency's places. A refusal of the input
answers 400 naming the fields, a document's state refusing it 409, and either writes
nothing.
"""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.common import BillingMoney, DocumentMoney, income_account_error, not_the_companys, state_conflicts
from billing.api.invoices import InvoiceDetailSerializer, invoice_detail
from billing.models import (
    CreditAllocation,
    CreditNote,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    PaymentMethod,
)
from billing.services import settlement
from ledger.api.common import (
    CompanyField,
    CompanyFilterSet,
    MembersWrite,
    ScopedPrimaryKeyRelatedField,
    money,
    scoped,
)
from ledger.models import Account

MAX_ALLOCATIONS = 500  # invoices one request settles; a bulk import goes through more requests
ORDER = ("-date", "-pk")

# --- Out ----------------------------------------------------------------------------------


def allocation_rows(allocations, currency: str) -> list[dict]:
    return [
        {
            "id": a.pk,
            "invoice": a.invoice_id,
            "invoice_number": a.invoice.number,
            "amount": money(a.amount, currency),
            "date": a.date,
            "created_at": a.created_at,
        }
        for a in allocations
    ]


class PaymentSerializer(DocumentMoney, serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    allocations = serializers.SerializerMethodField(help_text="The invoices it settles, oldest first.")
    money_fields = ("amount", "allocated", "unallocated")

    class Meta:
        model = Payment
        fields = [
            "id",
            "company",
            "customer",
            "customer_name",
            "date",
            "amount",
            "currency",
            "method",
            "reference",
            "external_id",
            "allocated",
            "unallocated",
            "journal_entry",
            "created_by",
            "created_at",
            "allocations",
        ]
        read_only_fields = fields

    def get_allocations(self, payment: Payment) -> list[dict]:
        return allocation_rows(payment.allocations.all(), payment.currency)


class CreditNoteSerializer(DocumentMoney, serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    invoice_number = serializers.CharField(source="invoice.number", default=None, read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    allocations = serializers.SerializerMethodField(help_text="The invoices it settles, oldest first.")
    money_fields = ("subtotal", "tax", "total", "allocated", "unallocated")

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "company",
            "customer",
            "customer_name",
            "number",
            "date",
            "invoice",
            "invoice_number",
            "reason",
            "currency",
            "subtotal",
            "tax",
            "total",
            "allocated",
            "unallocated",
            "income_account",
            "journal_entry",
            "created_by",
            "created_at",
            "allocations",
        ]
        read_only_fields = fields

    def get_allocations(self, note: CreditNote) -> list[dict]:
        return allocation_rows(note.allocations.all(), note.currency)


# --- In -----------------------------------------------------------------------------------


class AllocationInput(serializers.Serializer):
    invoice = ScopedPrimaryKeyRelatedField(queryset=Invoice.objects.all(), help_text="An open invoice of the customer.")
    amount = BillingMoney(help_text="At most the invoice's due, as a string.")
    date = serializers.DateField(
        required=False, allow_null=True, default=None, help_text="The later of the two documents' dates by default."
    )


class AllocateInput(serializers.Serializer):
    """Either ``allocations``, or ``"allocate": "auto"`` for the oldest due invoices first."""

    allocations = AllocationInput(many=True, required=False, max_length=MAX_ALLOCATIONS)
    allocate = serializers.ChoiceField(choices=[settlement.AUTO], required=False)

    def validate(self, attrs: dict) -> dict:
        if "allocations" in attrs and "allocate" in attrs:
            raise serializers.ValidationError({"allocate": ['Give "allocations" or "allocate": "auto", not both.']})
        return attrs

    def wanted(self, company, *, required: bool) -> list | str:
        """The service's allocations: (invoice, amount, date) each, or AUTO."""
        data = self.validated_data
        if data.get("allocate") == settlement.AUTO:
            return settlement.AUTO
        if required and not data.get("allocations"):
            raise serializers.ValidationError({"allocations": ['Give at least one, or "allocate": "auto".']})
        # Keyed by position, as the list's own field errors are.
        wrong = {
            index: {"invoice": [message]}
            for index, message in enumerate(
                not_the_companys(a["invoice"], company) for a in data.get("allocations", [])
            )
            if message
        }
        if wrong:
            raise serializers.ValidationError({"allocations": wrong})
        return [(a["invoice"], a["amount"], a["date"]) for a in data.get("allocations", [])]


class PaymentInput(AllocateInput):
    company = CompanyField()
    customer = ScopedPrimaryKeyRelatedField(queryset=Customer.objects.all())
    date = serializers.DateField()
    amount = BillingMoney(help_text="As a string.")
    currency = serializers.CharField(max_length=3, required=False, help_text="The company's; may be left out.")
    method = serializers.ChoiceField(choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER)
    reference = serializers.CharField(max_length=100, allow_blank=True, default="")
    external_id = serializers.CharField(
        max_length=100,
        allow_blank=True,
        default="",
        help_text="Your id for the payment: sending it again answers 200 with the payment already recorded.",
    )

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        wrong = not_the_companys(attrs["customer"], attrs["company"])
        if wrong:
            raise serializers.ValidationError({"customer": [wrong]})
        return attrs


class CreditNoteInput(serializers.Serializer):
    company = CompanyField()
    customer = ScopedPrimaryKeyRelatedField(queryset=Customer.objects.all())
    date = serializers.DateField()
    subtotal = BillingMoney(help_text="Before tax, as a string.")
    tax = BillingMoney(default="0", help_text="As a string.")
    currency = serializers.CharField(max_length=3, required=False, help_text="The company's; may be left out.")
    reason = serializers.CharField(max_length=500, allow_blank=True, default="")
    invoice = ScopedPrimaryKeyRelatedField(
        queryset=Invoice.objects.all(), allow_null=True, default=None, help_text="The invoice it credits, if one."
    )
    income_account = ScopedPrimaryKeyRelatedField(
        queryset=Account.objects.all(), allow_null=True, default=None, help_text="The sales account if empty."
    )
    allocate = serializers.BooleanField(default=True, help_text="Settle what it can of the invoice it credits.")

    def validate(self, attrs: dict) -> dict:
        company = attrs["company"]
        errors = {}
        for name in ("customer", "invoice"):
            wrong = not_the_companys(attrs[name], company)
            if wrong:
                errors[name] = [wrong]
        wrong = income_account_error(attrs["income_account"], company)
        if wrong:
            errors["income_account"] = [wrong]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class UnallocateInput(serializers.Serializer):
    allocation = serializers.IntegerField(min_value=1, help_text="One of this document's allocations.")


class VoidInput(serializers.Serializer):
    date = serializers.DateField(
        required=False, allow_null=True, default=None, help_text="The company's today by default; not before issue."
    )
    reason = serializers.CharField(max_length=500, allow_blank=True, default="")


# --- Views --------------------------------------------------------------------------------


class DocumentFilter(CompanyFilterSet):
    customer = django_filters.ModelChoiceFilter(queryset=scoped(Customer))
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    unallocated = django_filters.BooleanFilter(
        method="filter_unallocated", help_text="true: with something left to allocate; false: fully allocated."
    )

    def filter_unallocated(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(unallocated__gt=0) if value else queryset.filter(unallocated=0)


class PaymentFilter(DocumentFilter):
    method = django_filters.ChoiceFilter(choices=PaymentMethod.choices)
    external_id = django_filters.CharFilter()

    class Meta:
        model = Payment
        fields = ["company", "customer", "method", "external_id"]


class CreditNoteFilter(DocumentFilter):
    invoice = django_filters.ModelChoiceFilter(queryset=scoped(Invoice))
    number = django_filters.CharFilter()

    class Meta:
        model = CreditNote
        fields = ["company", "customer", "invoice", "number"]


class SettlementViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """What payments and credit notes share: reading, allocating and taking back."""

    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    cursor_ordering = ORDER
    lookup_value_converter = "int"
    allocation_model: type[PaymentAllocation] | type[CreditAllocation]

    def answer(self, document, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=document.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    def allocations(self):
        return Prefetch("allocations", self.allocation_model.objects.select_related("invoice").order_by("date", "pk"))

    def allocate_document(self, request: Request, allocate) -> Response:
        document = self.get_object()
        given = AllocateInput(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        wanted = given.wanted(document.company, required=True)
        with state_conflicts():
            if wanted == settlement.AUTO:
                settlement.auto_allocate(document)
            else:
                allocate(document, wanted)
        return self.answer(document)

    def unallocate_document(self, request: Request) -> Response:
        document = self.get_object()
        given = UnallocateInput(data=request.data)
        given.is_valid(raise_exception=True)
        allocation = document.allocations.filter(pk=given.validated_data["allocation"]).first()
        if allocation is None:
            pk = given.validated_data["allocation"]
            raise serializers.ValidationError({"allocation": [f"Allocation {pk} is not this document's."]})
        with state_conflicts():
            settlement.unallocate(allocation)
        return self.answer(document)


class PaymentViewSet(SettlementViewSet):
    """The caller's companies' payments, newest first, each with its allocations.

    POST records a payment and posts it (Dr bank, Cr the customer's receivables), then
    allocates it: ``allocations`` [{invoice, amount, date?}] or ``"allocate": "auto"``
    (oldest due first); what is not allocated stays credit on the customer's account. An
    ``external_id`` sent again answers 200 with the payment already recorded, or 409 when
    its details differ. ``allocate`` settles more invoices with what is left;
    ``unallocate`` takes an allocation back.
    """

    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter
    allocation_model = PaymentAllocation

    def get_queryset(self):
        return (
            Payment.objects.for_user(self.request.user)
            .select_related("company", "customer", "created_by")
            .prefetch_related(self.allocations())
        )

    @extend_schema(request=PaymentInput, responses={201: PaymentSerializer, 200: PaymentSerializer})
    def create(self, request: Request) -> Response:
        given = PaymentInput(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        data = given.validated_data
        with state_conflicts():
            payment = settlement.record_payment(
                data["company"],
                data["customer"],
                date=data["date"],
                amount=data["amount"],
                currency=data.get("currency"),
                method=data["method"],
                reference=data["reference"],
                external_id=data["external_id"],
                allocations=given.wanted(data["company"], required=False),
                user=request.user,
            )
        return self.answer(payment, status.HTTP_201_CREATED if payment.created else status.HTTP_200_OK)

    @extend_schema(request=AllocateInput, responses=PaymentSerializer)
    @action(detail=True, methods=["post"])
    def allocate(self, request: Request, pk=None) -> Response:
        return self.allocate_document(request, settlement.allocate_payment)

    @extend_schema(request=UnallocateInput, responses=PaymentSerializer)
    @action(detail=True, methods=["post"])
    def unallocate(self, request: Request, pk=None) -> Response:
        return self.unallocate_document(request)


class CreditNoteViewSet(SettlementViewSet):
    """The caller's companies' credit notes, newest first, each with its allocations.

    POST records a credit note, numbered from the company's series, and posts it (Dr
    income and tax, Cr the customer's receivables). Crediting an ``invoice`` settles what
    it can of it unless ``allocate`` is false; the rest stays credit on the customer's
    account, for ``allocate`` (a list, or ``"allocate": "auto"``) to settle later.
    """

    serializer_class = CreditNoteSerializer
    filterset_class = CreditNoteFilter
    allocation_model = CreditAllocation

    def get_queryset(self):
        return (
            CreditNote.objects.for_user(self.request.user)
            .select_related("company", "customer", "invoice", "created_by")
            .prefetch_related(self.allocations())
        )

    @extend_schema(request=CreditNoteInput, responses={201: CreditNoteSerializer})
    def create(self, request: Request) -> Response:
        given = CreditNoteInput(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        data = given.validated_data
        with state_conflicts():
            note = settlement.record_credit_note(
                data["company"],
                data["customer"],
                date=data["date"],
                subtotal=data["subtotal"],
                tax=data["tax"],
                currency=data.get("currency"),
                reason=data["reason"],
                invoice=data["invoice"],
                income_account=data["income_account"],
                allocate=data["allocate"],
                user=request.user,
            )
        return self.answer(note, status.HTTP_201_CREATED)

    @extend_schema(request=AllocateInput, responses=CreditNoteSerializer)
    @action(detail=True, methods=["post"])
    def allocate(self, request: Request, pk=None) -> Response:
        return self.allocate_document(request, settlement.allocate_credit)

    @extend_schema(request=UnallocateInput, responses=CreditNoteSerializer)
    @action(detail=True, methods=["post"])
    def unallocate(self, request: Request, pk=None) -> Response:
        return self.unallocate_document(request)


class VoidInvoiceView(generics.GenericAPIView):
    """POST voids an invoice: a draft at once; an issued invoice with nothing paid or
    credited by reversing its posting on ``date`` (the company's today by default, not
    before the issue date), releasing its lines to be billed again. 409 while money is
    allocated to it: credit it or take the allocations back first. Voiding a void invoice
    answers 200 with it unchanged."""

    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    serializer_class = VoidInput
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        return Invoice.objects.for_user(self.request.user)

    @extend_schema(request=VoidInput, responses=InvoiceDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        invoice = self.get_object()
        given = VoidInput(data=request.data)
        given.is_valid(raise_exception=True)
        with state_conflicts():
            settlement.void_invoice(invoice, **given.validated_data, user=request.user)
        fresh = invoice_detail(Invoice.objects.filter(pk=invoice.pk)).get()
        return Response(InvoiceDetailSerializer(fresh, context=self.get_serializer_context()).data)


routes = [
    ("billing/payments", PaymentViewSet, "billing-payment"),
    ("billing/credit-notes", CreditNoteViewSet, "billing-credit-note"),
]
urlpatterns = [path("billing/invoices/<int:pk>/void", VoidInvoiceView.as_view(), name="billing-invoice-void")]
