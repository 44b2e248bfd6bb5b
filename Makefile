# The two commands of the README. Both set everything up on a fresh machine first.
#   make run   - the service on the embedded default (SQLite file under ./data, no other server)
#   make test  - lint, types and the whole test suite against PostgreSQL
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
TEST_POSTGRES_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
export TEST_POSTGRES_ADMIN_URL

.PHONY: run test postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The service alone: the core dependencies, no torch.
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test suite: dev tools and the `ml` extra. The CPU build of torch goes first, so that the
# extra's `torch>=2.13` is already met and no multi-GB CUDA build is pulled.
$(VENV)/.full: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,ml]"
	touch $@

run: $(VENV)/.core
	$(BIN)/mlops serve

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n 1) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
		echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1

test: $(VENV)/.full postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/python -m pytest
