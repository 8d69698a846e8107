# make demo : the whole pipeline on the built-in synthetic corpus (no downloads)
# make test : the type check, then the test suite (CPU only)
# make typecheck : mypy over ppgan (config in mypy.ini)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# PaddleGAN's own package (also named ppgan), test-only: the yardstick of the GPEN parity tests.
# Installed beside the venv's packages without its pinned dependencies and imported only by
# tests/integration/paddlegan_reference.py in a subprocess.
PADDLEGAN_REF := $(VENV)/paddlegan-ref/.installed

.PHONY: demo test typecheck install clean-demo

install: $(STAMP) $(PADDLEGAN_REF)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q -r requirements-dev.txt || \
	  (echo "note: torch==2.13.0 not installable here; parity tests will be skipped" && \
	   $(PIP) install -q pytest $$(grep '^librosa\|^mypy==' requirements-dev.txt))
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

$(PADDLEGAN_REF): $(STAMP)
	$(PIP) install -q --no-deps --target $(VENV)/paddlegan-ref ppgan==2.1.0 || \
	  echo "note: PaddleGAN's ppgan not installable here; GPEN parity tests will be skipped"
	mkdir -p $(VENV)/paddlegan-ref && touch $(PADDLEGAN_REF)

demo: $(STAMP)
	$(PY) tools/demo.py --out output/demo

# Type hints are part of the public API (issue 17): a wrong hint fails CI before the tests run.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) $(PADDLEGAN_REF) typecheck
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf output/demo
