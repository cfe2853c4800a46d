# Two entry points: `make demo` and `make test`. Each installs what it needs
# into a project-local virtual environment (.venv) first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m exactvc.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m ruff check exactvc server tests bench
	$(PY) -m mypy exactvc server

lint: $(STAMP)
	$(PY) -m ruff check exactvc server tests bench
	$(PY) -m mypy exactvc server

clean:
	rm -rf $(VENV) build *.egg-info demo-data
