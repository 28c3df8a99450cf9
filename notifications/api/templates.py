"""Templates over the API, their previews, and the kinds the code registers.

A company's template wins over the platform's (no company), which wins over the default a
kind registered in code. Members read their companies' templates and the platform's, and
change their companies' own; the platform's are changed by superusers. A template that does
not compile is refused on the field at fault; a preview that fails answers 400 with the
template's error, never a 500.
"""

from __future__ import annotations

import json

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import kinds
from notifications.api.common import (
    CompanyField,
    CompanyFilterSet,
    MembersWrite,
    RowSerializer,
    is_superuser,
    readable_companies,
)
from notifications.models import Channel, Template, kind_validator
from notifications.services import rendering
from notifications.services.rendering import RenderError
from notifications.services.sending import NUL

PARTS = ("subject", "body", "html")


def preview(source: rendering.Source, context: dict) -> rendering.Rendered:
    """``source`` rendered with ``context``, or a 400 naming each part that fails."""
    try:
        return rendering.render(source, context)
    except RenderError:
        pass
    errors = {}
    for part in PARTS:
        text = getattr(source, part)
        try:
            rendering.render(rendering.Source(**{"subject": "", "body": "", part: text}), context)
        except RenderError as error:
            errors[part] = [str(error)]
    raise serializers.ValidationError(errors or {"non_field_errors": ["The template does not render."]})


def must_be_object(value) -> dict:
    if not isinstance(value, dict):
        raise serializers.ValidationError("An object of names and values.")
    if NUL.search(json.dumps(value)):
        raise serializers.ValidationError("A NUL character cannot be stored.")
    return value


# --- Templates -------------------------------------------------------------------------


class TemplateSerializer(RowSerializer):
    """The subject and bodies of one kind, in the Django template language."""

    company = CompanyField(
        allow_null=True, help_text="The company's id: one you are a member of; null for the platform's (superusers)."
    )

    unique = ("kind",)
    unique_message = "There is already a template of this kind here."

    class Meta:
        model = Template
        fields = ["id", "company", "kind", "subject", "body", "html", "sample_data", "updated_at"]
        read_only_fields = ["updated_at"]
        extra_kwargs = {name: {"trim_whitespace": False} for name in PARTS}
        validators = []  # the kind's uniqueness per company is RowSerializer's check

    def validate_company(self, company):
        if company is None and not is_superuser(self.context["request"].user):
            raise serializers.ValidationError("Required: the platform's templates are changed by superusers.")
        return super().validate_company(company)

    def validate_subject(self, text: str) -> str:
        return self._compiles(text)

    def validate_body(self, text: str) -> str:
        return self._compiles(text)

    def validate_html(self, text: str) -> str:
        return self._compiles(text)

    def validate_sample_data(self, value) -> dict:
        return must_be_object(value)

    def _compiles(self, text: str) -> str:
        error = rendering.check(text)
        if error:
            raise serializers.ValidationError(error)
        return text


class TemplatePreviewSerializer(serializers.Serializer):
    subject = serializers.CharField()
    body = serializers.CharField()
    html = serializers.CharField(help_text="Empty when the template has no HTML part.")


class TemplateDraftSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=64, validators=[kind_validator])
    subject = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    html = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    data = serializers.JSONField(
        required=False, validators=[must_be_object], help_text="The context; by default the kind's sample data."
    )

    def validate(self, attrs: dict) -> dict:
        registered = kinds.get(attrs["kind"])
        if not any(part in attrs for part in PARTS):
            if registered is None:
                raise serializers.ValidationError(
                    {"kind": ["No kind of this name is registered: send a subject and a body to preview."]}
                )
            attrs.update(subject=registered.subject, body=registered.body, html=registered.html)
        attrs.setdefault("data", registered.sample_data if registered else {})
        return attrs


class TemplateFilter(CompanyFilterSet):
    class Meta:
        model = Template
        fields = ["company", "kind"]


class TemplateViewSet(viewsets.ModelViewSet):
    """Templates of the caller's companies and the platform's. ``preview`` renders a saved
    template with its sample data; ``POST templates/preview`` renders a draft."""

    serializer_class = TemplateSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = TemplateFilter
    cursor_ordering = ("kind", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        user = self.request.user
        companies = readable_companies(user)
        platform = Q(company=None) if user.is_staff or companies.exists() else Q(pk__in=[])
        return Template.objects.filter(Q(company__in=companies) | platform)

    @extend_schema(request=None, responses=TemplatePreviewSerializer)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk=None) -> Response:
        """The template rendered with its sample data (or its kind's); 400 with the error."""
        template = self.get_object()
        source = rendering.Source(template.subject, template.body, template.html)
        return Response(TemplatePreviewSerializer(preview(source, rendering.sample_context(template))).data)

    @extend_schema(request=TemplateDraftSerializer, responses=TemplatePreviewSerializer)
    @action(detail=False, methods=["post"], url_path="preview", url_name="preview-draft")
    def preview_draft(self, request: Request) -> Response:
        """A draft rendered: its subject, body and html (left out: the kind's registered
        ones) with ``data`` (left out: the kind's sample data); 400 with the error."""
        draft = TemplateDraftSerializer(data=request.data)
        draft.is_valid(raise_exception=True)
        values = draft.validated_data
        source = rendering.Source(values.get("subject", ""), values.get("body", ""), values.get("html", ""))
        return Response(TemplatePreviewSerializer(preview(source, {"kind": values["kind"], **values["data"]})).data)


# --- Kinds -----------------------------------------------------------------------------


class NotificationKindSerializer(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()
    channels = serializers.ListField(
        child=serializers.CharField(), help_text=f"The default channels: {', '.join(Channel.values)}."
    )
    subject = serializers.CharField(help_text="The default subject template.")
    body = serializers.CharField(help_text="The default plain-text template.")
    html = serializers.CharField(help_text="The default HTML template; empty sends text only.")
    sample_data = serializers.DictField(help_text="A context the previews render with.")


class KindViewSet(viewsets.ViewSet):
    """The kinds the code registers, with their default channels and templates."""

    @extend_schema(responses=NotificationKindSerializer(many=True))
    def list(self, request: Request) -> Response:
        return Response(NotificationKindSerializer(kinds.all_kinds(), many=True).data)
