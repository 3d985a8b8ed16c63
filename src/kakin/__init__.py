"""kakin (課金): self-hosted subscription and billing for Japanese B2B SaaS vendors."""

__version__ = "0.1.0"
