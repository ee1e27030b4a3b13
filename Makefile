# The two commands of the README:
#   make demo   install what is needed, then run the retraining loop locally (retrain demo)
#   make test   install what is needed, then lint and run the test suite
# Installs go to .venv/ (project, from uv.lock) and .tools/ (the pinned uv that installs it, and aws-sam-cli in
# its own venv .tools/sam/ for the SAM checks of `make test`; checkov in .tools/checkov/ for its security scan).

# The project's Python (requires-python); under pyenv, .python-version makes the python3.13 shim resolve.
PYTHON ?= $(shell command -v python3.13 || command -v python3)
UV_VERSION := 0.9.30
UV := .tools/bin/uv
SAM_REQUIREMENTS := tests/packaging/requirements-sam-cli.txt
CHECKOV_REQUIREMENTS := tests/packaging/requirements-checkov.txt

.PHONY: setup sam-cli checkov demo test lint bench docs clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: pyproject.toml uv.lock Makefile | $(UV)
	# --compile-bytecode: imports then read .pyc files, halving start-up time of every process
	# (mlflow + moto + sklearn import 9.8 s -> 4.5 s here), which matters with PYTHONDONTWRITEBYTECODE set.
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON) --no-python-downloads
	touch $@

setup: .venv/.installed

# aws-sam-cli pins its own boto3/click: a venv of its own, hash-locked, so `sam validate --lint` and `sam build`
# run in CI without disturbing the project's dependency set.
.tools/sam/.installed: $(SAM_REQUIREMENTS) | $(UV)
	rm -rf .tools/sam
	$(UV) venv --quiet --python $(PYTHON) --no-python-downloads .tools/sam
	$(UV) pip install --quiet --python .tools/sam/bin/python --require-hashes --requirement $(SAM_REQUIREMENTS)
	touch $@

sam-cli: .tools/sam/.installed

# checkov (the template's security scan in `make test`) pins its own boto3 too: a venv of its own, hash-locked.
.tools/checkov/.installed: $(CHECKOV_REQUIREMENTS) | $(UV)
	rm -rf .tools/checkov
	$(UV) venv --quiet --python $(PYTHON) --no-python-downloads .tools/checkov
	$(UV) pip install --quiet --python .tools/checkov/bin/python --require-hashes --requirement $(CHECKOV_REQUIREMENTS)
	touch $@

checkov: .tools/checkov/.installed

demo: setup
	.venv/bin/retrain demo

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: lint sam-cli checkov
	.venv/bin/pytest

bench: setup
	# the peer tools the benchmarks compare against (Evidently) come from the bench group, added on top
	$(UV) sync --frozen --compile-bytecode --group bench --inexact --python $(PYTHON) --no-python-downloads
	.venv/bin/python bench/run.py bench/RESULTS.md

# The docs site (mkdocs.yml) on http://127.0.0.1:8000, rebuilt on every change; the tests build it with --strict.
docs: setup
	.venv/bin/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	-.venv/bin/retrain down
	rm -rf .venv .tools .local .pytest_cache .ruff_cache
