"""Persistence: SQLAlchemy Core tables, the account store and the repositories, Alembic migrations.

Services reach the database only through this package: the unit of work (``store.UnitOfWork``), the account
store's methods on it, and its repositories, classes bound to its connection and reached as properties
(``uow.domains``, ``uow.members``, ``uow.outboxes``, ``uow.intents``, …: ``repositories.Repositories``). Still plain
functions of a connection: ``reports_repo`` (the console's reads). ``Engine`` is the handle services hold to open units of work on; ``Connection`` is
what a repository is made with.
"""

from sqlalchemy import Connection, Engine

__all__ = ["Connection", "Engine"]
