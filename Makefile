# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
DEMO_OUT ?= demo_out

.PHONY: setup demo test test-fast bench clean

$(VENV)/.mf2-installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

setup: $(VENV)/.mf2-installed

demo: setup
	$(VENV)/bin/mf2 demo --out $(DEMO_OUT)

test: setup
	$(VENV)/bin/python -m pytest -q tests

# The inner loop: everything but the end-to-end runs on real clips (marked slow).
test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow" tests

bench: setup
	$(VENV)/bin/python bench/slice.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
