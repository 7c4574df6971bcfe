# Two commands on a fresh machine: `make run` (set up + run the v1 pipeline), `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench clean system-tools

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# v1 is all the default pipeline needs; the tests also drive v2's real DVC and MLflow.
$(VENV)/.installed-v1: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[v1]'
	$(PY) -m compileall -q churnctl  # bytecode up front, also where PYTHONDONTWRITEBYTECODE is set
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[v4,dev]'
	python3 -m venv $(VENV)/tools/semgrep  # semgrep pins opentelemetry 1.37: its own venv
	$(VENV)/tools/semgrep/bin/pip install --quiet 'semgrep>=1.100'
	python3 -m venv $(VENV)/tools/checkov  # checkov pins its own versions: its own venv too
	$(VENV)/tools/checkov/bin/pip install --quiet 'checkov>=3.2'
	$(PY) -m compileall -q churnctl
	touch $@ $(VENV)/.installed-v1

run: $(VENV)/.installed-v1
	$(VENV)/bin/churnctl run

# The tests drive real system tools (promtool, redis-server): install the missing ones from
# Debian, so the README's test command runs everything on a fresh machine.
SYSTEM_TOOLS := promtool:prometheus redis-server:redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing (apt)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; fi

test: system-tools $(VENV)/.installed-test
	$(PY) -m ruff check churnctl tests bench
	$(PY) -m pytest -n 2 -q

lint: $(VENV)/.installed-test
	$(PY) -m ruff check churnctl tests bench

bench: $(VENV)/.installed-test
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .churnctl reports
