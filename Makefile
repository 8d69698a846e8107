# make demo : the whole pipeline on the built-in synthetic corpus (no downloads)
# make test : the test suite (CPU only)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q -r requirements-dev.txt || \
	  (echo "note: torch==2.13.0 not installable here; parity tests will be skipped" && $(PIP) install -q pytest)
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py --out output/demo

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf output/demo
