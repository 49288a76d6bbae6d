# Everything the project needs is installed from its own files into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit demo demo-check bench clean mutation mutation-report

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,local]'
	touch $(STAMP)

install: $(STAMP)

CODE := $(wildcard src tests bench examples)

lint: install
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest -q

unit: install
	$(VENV)/bin/pytest -q tests/unit

# Mutation testing of the core logic (not part of `make test`): mutmut 3 over the files listed in
# pyproject's [tool.mutmut], running only the mutants named in mutation/core.txt, each against the
# unit tests of its module listed there (tests/support/mutation_select.py), niced, on every core.
# Scores, the run's wall-clock time and its CPU time (what it costs on a shared machine, where the
# wall clock depends on the other load): mutation/results.json and a table.
MUTATION_STAMP := $(VENV)/.mutation-installed
$(MUTATION_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,local,mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	rm -rf mutants
	start=$$(date +%s); cpu=$$(mktemp); \
	timer=$$(command -v /usr/bin/time >/dev/null && echo "/usr/bin/time -o $$cpu -f %U+%S"); \
	$$timer nice -n 19 $(VENV)/bin/mutmut run $$(grep -v '^#' mutation/core.txt | awk 'NF {print $$1}') \
		> mutation/run.log 2>&1 || { tail -n 40 mutation/run.log; exit 1; }; \
	MUTATION_SECONDS=$$(( $$(date +%s) - start )) \
	MUTATION_CPU_SECONDS=$$(tail -n 1 $$cpu | awk -F+ '{print $$1 + $$2}'; rm -f $$cpu) \
	$(PY) mutation/report.py

mutation-report: $(MUTATION_STAMP)
	$(PY) mutation/report.py

# A month of a practice (600 patients, 3 care managers) on embedded servers, or on
# CARECOORD_KAFKA_BOOTSTRAP / CARECOORD_FHIR_BASE_URL; e.g. make demo DEMO_ARGS="--patients 40 --days 5"
DEMO_ARGS ?=
demo: install
	$(PY) -m carecoord.demo $(DEMO_ARGS)

# The demo at small scale, then its report rendered offline in headless Chromium (not in `make test`):
# the five charts drawn, a screenshot beside the report (report.png), every chart label at least
# 12 px at 100 % zoom (measured in the browser).
DEMO_CHECK_REPORT ?= data/demo-check/report.html
demo-check: install
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
		|| apt-get install -y chromium >/dev/null \
		|| { echo "demo-check needs Chromium: apt-get install -y chromium"; exit 1; }
	$(PY) -m carecoord.demo --patients 40 --days 5 --no-progress --report $(DEMO_CHECK_REPORT)
	$(PY) -m carecoord.demo.browser $(DEMO_CHECK_REPORT)

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data mutants
