"""Persistence: SQLAlchemy Core tables, the account store and the repositories, Alembic migrations.

Services reach the database only through this package: the unit of work (``store.UnitOfWork``), the account
store's methods on it, and its repositories, classes bound to its connection and reached as properties
(``uow.domains``, ``uow.members``, ``uow.outboxes``, ``uow.intents``, ``uow.reports``, …:
``repositories.Repositories``). ``Engine`` is the handle services hold to open units of work on; ``Connection`` is
what a repository is made with.
"""

from sqlalchemy import Connection, Engine

__all__ = ["Connection", "Engine"]
