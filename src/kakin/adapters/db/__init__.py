"""Persistence: SQLAlchemy Core tables, the account store, Alembic migrations."""
