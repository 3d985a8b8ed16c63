"""Persistence: SQLAlchemy Core tables, the account store and the repositories, Alembic migrations.

Services reach the database only through this package: the unit of work (``store.UnitOfWork``), the account
store's methods on it, and the repository modules (``service_store``, ``outboxes``, ``usage_repo``,
``invoices_repo``, ``reports_repo``), plain functions that take the unit of work's connection. ``Engine`` is the handle services
hold to open units of work on; ``Connection`` is what the repository functions take.
"""

from sqlalchemy import Connection, Engine

__all__ = ["Connection", "Engine"]
