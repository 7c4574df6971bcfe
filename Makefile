# Two commands on a fresh machine: `make run` (set up + run the v1 pipeline), `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[v1,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/churnctl run

test: $(STAMP)
	$(PY) -m ruff check churnctl tests bench
	$(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(PY) -m ruff check churnctl tests bench

bench: $(STAMP)
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .churnctl reports
