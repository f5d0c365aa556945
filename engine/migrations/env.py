"""Alembic's entry point, run by engine/migrations/__init__.py with the connection it holds
(already in a transaction, so every step of an upgrade commits or rolls back together)."""

from __future__ import annotations

from alembic import context

from engine.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters most things only by copying a table: let `op.batch_alter_table` do it.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
