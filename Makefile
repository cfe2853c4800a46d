# Two entry points: `make demo` and `make test`. Each installs what it needs
# into a project-local virtual environment (.venv) first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

# editable_mode=compat: a path entry rather than an import hook (the hook costs every `exact` command
# ~20 ms of start-up); bytecode compiled once, even where PYTHONDONTWRITEBYTECODE is set
$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m compileall -q exactvc server >/dev/null
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
