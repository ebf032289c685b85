# Rua: `make run` to use it, `make test` to check it. Both set everything up on a fresh
# Debian machine (apt packages when run as root), so a new clone needs nothing else.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export RUA_DATABASE_URL ?= sqlite:///./rua.db
export RUA_DATA_DIR ?= ./rua-data
TEST_WORKERS ?= $(shell n=$$(nproc); [ $$n -lt 2 ] && n=2; [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: run test lint typecheck bench system-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || bash tests/services/system-deps.sh run
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/rua db upgrade
	$(BIN)/rua serve --host 127.0.0.1 --port 8000

system-deps:
	bash tests/services/system-deps.sh test

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy app ingest

# two processes even on one core: most of the suite waits on servers it drives
test: system-deps $(STAMP) lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/api_bench.py
	$(BIN)/python bench/imap_bench.py
	$(BIN)/python bench/recompute_bench.py
	$(BIN)/python bench/sender_bench.py
	$(BIN)/python bench/dashboard_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
