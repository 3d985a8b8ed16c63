"""Use cases: one function per command, each taking a unit of work and ``now``."""
