# Rua in a container: SQLite and the kept originals live on the /data volume; point
# RUA_DATABASE_URL at PostgreSQL for production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUA_DATABASE_URL=sqlite:////data/rua.db \
    RUA_DATA_DIR=/data/files

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY ingest ./ingest
COPY migrations ./migrations
COPY frontend ./frontend
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin rua \
    && mkdir -p /data && chown rua:rua /data

USER rua
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# Migrations are idempotent: apply any pending ones, then serve.
CMD ["sh", "-c", "rua db upgrade && exec rua serve --host 0.0.0.0 --port 8000"]
