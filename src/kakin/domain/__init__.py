"""The billing rules. Standard library only: no I/O, no clock, no SQLAlchemy."""
