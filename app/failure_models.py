"""Tables of failure reports (filled by the failure report store)."""

from __future__ import annotations
