"""Rua: a self-hosted DMARC report collector and analytics service."""

__version__ = "0.1.0"
