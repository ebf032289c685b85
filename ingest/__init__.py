"""The ingest pipeline: bytes → unpack → parse → normalise → store."""
