"""The admin's backfill page for a job: a range of dates, previewed slot by slot, then made
by the one backfill service (``services.backfill``) that the command and the API call."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from config.companies import company_model, in_companies
from scheduling.choices import Scope
from scheduling.models import JobDefinition
from scheduling.registry import ParamError
from scheduling.services import backfill

PREVIEW_ROWS = 500  # slots listed on the preview; the summary counts them all


class BackfillForm(forms.Form):
    first = forms.DateField(label="From", help_text="the first day, YYYY-MM-DD")
    last = forms.DateField(label="To", help_text="the last day, YYYY-MM-DD (inclusive)")
    company = forms.ModelChoiceField(
        queryset=None, required=False, help_text="only this company (a per-company job; empty: every company)"
    )
    params = forms.JSONField(
        required=False, initial=dict, help_text='parameters for every run, e.g. {"consolidate": false}'
    )
    rerun_failed = forms.BooleanField(required=False, help_text="re-run slots whose run failed or was cancelled")
    force = forms.BooleanField(required=False, help_text="allow more runs than JOB_BACKFILL_MAX_RUNS")

    def __init__(self, *args, definition: JobDefinition, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.fields["company"].queryset = in_companies(company_model().objects.order_by("name"), user)
        if definition.scope != Scope.COMPANY:
            del self.fields["company"]

    def clean_params(self):
        params = self.cleaned_data.get("params") or {}
        if not isinstance(params, dict):
            raise forms.ValidationError("a JSON object of parameter names and values")
        return params

    def backfill(self, *, dry_run: bool, user) -> backfill.Backfill | None:
        """The backfill as asked, or None with the reason on the form."""
        data = self.cleaned_data
        try:
            return backfill.backfill(
                self.definition,
                data["first"],
                data["last"],
                company=data.get("company"),
                params=data["params"],
                rerun_failed=data["rerun_failed"],
                dry_run=dry_run,
                force=data["force"],
                user=user,
            )
        except ParamError as exc:
            for name, message in exc.errors.items():
                self.add_error("company" if name == "company" and "company" in self.fields else "params", message)
        except backfill.BackfillError as exc:
            self.add_error(None, str(exc))
        return None


def backfill_view(model_admin, request, object_id: str):
    definition = get_object_or_404(JobDefinition, pk=object_id)
    if not (model_admin.has_change_permission(request, definition) and definition.registered):
        raise PermissionDenied
    form = BackfillForm(request.POST or None, definition=definition, user=request.user)
    plan = None
    if request.method == "POST" and form.is_valid():
        make = "_backfill" in request.POST
        plan = form.backfill(dry_run=not make, user=request.user)
        if plan is not None and make:
            model_admin.message_user(request, plan.summary(), messages.SUCCESS)
            query = urlencode({"job": definition.code, "trigger__exact": "backfill"})
            return HttpResponseRedirect(f"{reverse('admin:scheduling_jobrun_changelist')}?{query}")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Backfill {definition.code}",
        "opts": model_admin.model._meta,
        "original": definition,
        "form": form,
        "plan": plan,
        "slots": plan.slots[:PREVIEW_ROWS] if plan else [],
        "more": max(len(plan.slots) - PREVIEW_ROWS, 0) if plan else 0,
    }
    return TemplateResponse(request, "admin/scheduling/jobdefinition/backfill.html", context)
