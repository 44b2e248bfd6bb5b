# The two commands of the README. Both set everything up on a fresh machine first.
#   make run   - the service on the embedded default (SQLite file under ./data, no other server);
#                HOST=0.0.0.0 PORT=9000 make run to listen elsewhere
#   make test  - lint, types and the whole test suite against PostgreSQL (behind nginx too)
# Beside them:
#   make migrate - bring the database of DATABASE_URL to the latest schema
#   make worker  - a standalone prediction worker against DATABASE_URL (as many as you like)
#   make lock    - re-resolve constraints.txt, the versions every install (CI, Dockerfile) uses
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# The CPU build of torch lies on this kind of machine's disk; any other version pulls a CUDA build.
TORCH := torch==2.13.0
PIP := $(BIN)/python -m pip install --quiet --constraint constraints.txt
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_POSTGRES_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
export TEST_POSTGRES_ADMIN_URL

.PHONY: run migrate worker test postgres nginx chromium lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The service alone: the core dependencies, no torch.
$(VENV)/.core: pyproject.toml constraints.txt | $(BIN)/python
	@echo "==> installing the service's dependencies into $(VENV) (a minute the first time)"
	$(PIP) -e .
	touch $@

# The test suite: dev tools, the notebook's kernel and the `ml` extra. The CPU build of torch goes
# first, so that the extra's `torch>=2.13` is already met and no multi-GB CUDA build is pulled.
$(VENV)/.full: pyproject.toml constraints.txt | $(BIN)/python
	@echo "==> installing $(TORCH) (CPU build, a few hundred MB; shown with progress)"
	$(BIN)/python -m pip install --constraint constraints.txt --progress-bar on $(TORCH)
	@echo "==> installing the service with the dev, ml and notebook extras"
	$(PIP) -e ".[dev,ml,notebook]"
	touch $@

run: $(VENV)/.core
	$(BIN)/mlops serve --host $(HOST) --port $(PORT)

migrate: $(VENV)/.core
	$(BIN)/mlops migrate

worker: $(VENV)/.core
	$(BIN)/mlops worker

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n 1) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
		echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1

# Debian's nginx, for the test that serves through deploy/nginx.conf. The package's own service is
# not wanted: the test starts nginx itself on a free port.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends nginx >/dev/null && \
		{ service nginx stop >/dev/null 2>&1 || true; }; }

# Debian's Chromium, for the tests that load /docs and /redoc in a browser (tests/browser):
# Playwright drives this one and never downloads a browser of its own.
chromium:
	@test -x /usr/bin/chromium || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; }

test: $(VENV)/.full postgres nginx chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/python -m pytest

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	echo "$(TORCH)" | $(BIN)/uv pip compile pyproject.toml - --all-extras --universal \
		--python-version 3.11 --no-header --annotation-style line --upgrade -o constraints.txt
