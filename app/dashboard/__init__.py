"""The dashboard: server-rendered pages over the same queries as the JSON API."""
