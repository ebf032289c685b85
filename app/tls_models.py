"""Tables of tls reports (filled by the tls report store)."""

from __future__ import annotations
