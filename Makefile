# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv with Python >= 3.12 (ArviZ 1.x needs it) and install bgmm into it.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.bgmm-installed
PYTEST_ARGS ?=

.PHONY: demo test test-notebooks test-slow bench lint clean

$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x "$(PY)" ] || ! "$(PY)" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then \
	  py=$$(bash .ci/find-python); \
	  echo "creating $(VENV) with $$py"; \
	  rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) -m pip install --quiet -e ".[test]"; \
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bgmm demo --out bgmm-demo.png

test: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow and not notebooks" $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	$(PY) -m pytest -n 2 -m notebooks $(PYTEST_ARGS)

test-slow: $(STAMP)
	@# pytest exits 5 when no test carries the marker: that is not a failure
	$(PY) -m pytest -n 2 -m slow $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	PYTHON=$(PY) bash benchmarks/run_all.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check bgmm tests benchmarks

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache bgmm-demo.png
