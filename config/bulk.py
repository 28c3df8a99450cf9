"""Rows written column by column in one statement per batch, for the hot paths that write
thousands (journal lines, notifications, deliveries).

PostgreSQL: ``INSERT … SELECT * FROM UNNEST(%s::type[], …)`` — one parameter per column,
whatever the number of rows. Elsewhere (SQLite): multi-row ``VALUES`` in batches under the
bound-parameter limit, each value prepared by its field. Building a model instance per row
and preparing each field through the ORM costs more than the insert itself, which is why
these paths do not use ``bulk_create``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

SQLITE_MAX_PARAMETERS = 32766


def insert_columns(
    model: type[models.Model],
    columns: dict[str, list],
    *,
    returning: Sequence[str] = ("id",),
    ignore_conflicts: bool = False,
) -> list[tuple]:
    """Insert the rows given as equal-length column lists; ``returning`` columns of the rows
    written, in the order given (PostgreSQL returns an ``INSERT … SELECT``'s rows in the
    order it inserts them, which Django's own bulk_create relies on too). With
    ``ignore_conflicts`` a row that breaks a unique constraint is skipped and returns nothing."""
    if not columns or not next(iter(columns.values())):
        return []
    fields = [model._meta.get_field(name) for name in columns]
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.column) for field in fields)
    table = quote(model._meta.db_table)
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if returning:
        tail += " RETURNING " + ", ".join(quote(model._meta.get_field(name).column) for name in returning)
    rows_out: list[tuple] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = [_json_texts(field, column) for field, column in zip(fields, columns.values(), strict=True)]
            arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT * FROM UNNEST({arrays}){tail}", values)
            return list(cursor.fetchall()) if returning else []
        prepared = [
            [field.get_db_prep_save(value, connection) for value in column]
            for field, column in zip(fields, columns.values(), strict=True)
        ]
        rows = list(zip(*prepared, strict=True))
        per_statement = max(1, SQLITE_MAX_PARAMETERS // len(fields))
        placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([placeholder] * len(batch))}{tail}"
            cursor.execute(sql, [value for row in batch for value in row])
            if returning:
                rows_out.extend(cursor.fetchall())
    return rows_out


def _json_texts(field: models.Field, column: list) -> list:
    """jsonb arrays are passed as their texts and cast; psycopg has no jsonb[] adapter."""
    if not isinstance(field, models.JSONField):
        return column
    encoder = field.encoder or DjangoJSONEncoder
    return [None if value is None else json.dumps(value, cls=encoder) for value in column]


def update_columns(model: type[models.Model], rows: list[models.Model], names: Sequence[str]) -> int:
    """Write ``names`` of ``rows`` (instances already holding the new values) in one
    statement per batch: ``UPDATE … FROM UNNEST(…)`` on PostgreSQL, a prepared statement
    run per row elsewhere. Django's ``bulk_update`` builds a CASE per column per row, which
    cost a delivery batch more than sending it."""
    if not rows:
        return 0
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = model._meta.pk
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = [[field.pre_save(row, False) for row in rows] for field in fields]
            values = [_json_texts(field, column) for field, column in zip(fields, values, strict=True)]
            arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in [pk, *fields])
            aliases = ", ".join(f"c{n}" for n in range(len(fields) + 1))
            sets = ", ".join(f"{quote(field.column)} = v.c{n + 1}" for n, field in enumerate(fields))
            match = f"{table}.{quote(pk.column)} = v.c0"
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM UNNEST({arrays}) AS v({aliases}) WHERE {match}",
                [[row.pk for row in rows], *values],
            )
            return cursor.rowcount
        sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        params = [
            [*(field.get_db_prep_save(field.pre_save(row, False), connection) for field in fields), row.pk]
            for row in rows
        ]
        cursor.executemany(f"UPDATE {table} SET {sets} WHERE {quote(pk.column)} = %s", params)
        return len(rows)
