"""Alembic's entry point for the feedback store (digit_api.feedback_store.upgrade runs it).

Always online, on the connection the caller opened and locked: the caller owns the transaction.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m digit_api.feedback_store upgrade`, which passes a connection")
# Batch mode: SQLite cannot ALTER most things in place; alembic copies the table instead.
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
