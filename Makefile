# Niaga — the two commands that matter: `make serve` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SERVE_ARGS ?=

.PHONY: help install serve demo test test-fast lint bench load deploy clean

help:
	@echo "make serve   - set up .venv, install, serve the API on SQLite with demo data (port 8000)"
	@echo "make test    - set up .venv, install, run the whole test suite (SQLite, PostgreSQL, DynamoDB on moto)"
	@echo "make demo    - one customer across web, app, a store and its till, printed step by step"
	@echo "make lint    - ruff"
	@echo "make bench   - benchmarks; figures go to docs/BENCHMARKS.md"
	@echo "make load    - niaga serve under rising concurrency to the p99 knee, then niaga audit (LOAD_ARGS=--pg)"
	@echo "make deploy  - sam build + sam deploy --guided (needs the SAM CLI and an AWS account; infra/README.md)"
	@echo "make clean   - remove .venv and caches (keeps niaga.sqlite)"

# The venv is rebuilt when pyproject.toml changes; the stamp records a finished install.
# The example third-party plugin (examples/plugins/niaga-kurir-id) is installed as a
# merchant would, from its own package: make test runs its tests and serves it.
KURIR_ID := examples/plugins/niaga-kurir-id
$(STAMP): pyproject.toml $(KURIR_ID)/pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Niaga needs Python 3.11 or newer (set PY=python3.12)")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing Niaga and its test tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e $(KURIR_ID)
	@touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/niaga serve $(SERVE_ARGS)

demo: $(STAMP)
	$(BIN)/niaga demo

# Two workers (pytest-xdist), a test file per worker: the suite's fixtures are per file or
# finer, each worker gets its own PostgreSQL database. PYTEST_WORKERS=0 runs in one process.
# .ci/install-browser first: headless Chromium for tests/e2e (the storefront), installed with
# apt-get when it can be (root or password-less sudo); when it cannot, make test goes on and
# that test skips saying how to install (under CI it fails instead).
PYTEST_WORKERS ?= 2
test: $(STAMP)
	-@.ci/install-browser || echo "make: no headless Chromium here; tests/e2e will skip"
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check kernel plugins tests examples

bench: $(STAMP)
	$(BIN)/python tests/bench/bench_checkout.py --out docs/BENCHMARKS.md
	$(BIN)/python tests/bench/bench_postgres.py --workers 2 --out docs/BENCHMARKS.md
	$(BIN)/python tests/bench/bench_cart.py --out docs/BENCHMARKS.md
	$(BIN)/python tests/bench/bench_hooks.py --out docs/BENCHMARKS.md
	$(BIN)/python tests/bench/bench_aws.py --out docs/BENCHMARKS.md

# ~3 min: rising concurrency until checkout p99 > 250 ms; fails on a 5xx, oversell or any
# discrepancy `niaga audit` finds afterwards. LOAD_ARGS=--pg (PostgreSQL, 4 workers), --quick.
LOAD_ARGS ?=
load: $(STAMP)
	$(BIN)/python tests/load/load.py --out docs/BENCHMARKS.md $(LOAD_ARGS)

# The serverless shape (infra/README.md). Needs the AWS SAM CLI, Docker (arm64 wheels are
# built in the Lambda build image) and AWS credentials; the template itself is tested by
# tests/aws/test_infra.py (cfn-lint, aws-sam-translator, deployed into moto), the package by
# tests/aws/test_package.py. infra/package.py stages the project with its dist-info (the
# plugins' entry points), then prunes what sam build installed (Babel locales outside
# NIAGA_LOCALES or the demo markets' languages, Litestar's CLI and example factories).
SAM ?= sam
deploy: $(STAMP)
	rm -rf build/lambda .aws-sam/build
	$(BIN)/python infra/package.py stage build/lambda
	cp infra/requirements.txt build/lambda/requirements.txt
	$(SAM) build --template infra/template.yaml --use-container
	for fn in .aws-sam/build/*/; do $(BIN)/python infra/package.py prune "$$fn" || exit 1; done
	$(SAM) deploy --guided --capabilities CAPABILITY_IAM

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
