# Two entry points: `make demo` and `make test`. Each installs what it needs
# into a project-local virtual environment (.venv) first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean viewer chromium postgresql
VIEWER_SRC := $(shell find viewer/src -type f 2>/dev/null) viewer/build.mjs
NPM_STAMP := viewer/node_modules/.exact-installed

# editable_mode=compat: a path entry rather than an import hook (the hook costs every `exact` command
# ~20 ms of start-up); bytecode compiled once, even where PYTHONDONTWRITEBYTECODE is set
$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m compileall -q exactvc server >/dev/null
	touch $(STAMP)

install: $(STAMP)

# the web viewer: npm ci from the lock file, then one esbuild run into viewer/dist/
$(NPM_STAMP): viewer/package.json viewer/package-lock.json
	cd viewer && npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

viewer/dist/.built: $(NPM_STAMP) $(VIEWER_SRC)
	cd viewer && node build.mjs
	touch viewer/dist/.built

viewer: viewer/dist/.built

# the browser tests drive Debian's Chromium (never a downloaded browser build)
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# the scale-out tests start a real PostgreSQL 15 (Debian's package) in a temporary folder
postgresql:
	@test -x /usr/lib/postgresql/15/bin/initdb || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }

demo: $(STAMP) viewer
	$(PY) -m exactvc.demo

test: $(STAMP) viewer chromium postgresql
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m ruff check exactvc server tests bench
	$(PY) -m mypy exactvc server

lint: $(STAMP)
	$(PY) -m ruff check exactvc server tests bench
	$(PY) -m mypy exactvc server

clean:
	rm -rf $(VENV) build *.egg-info demo-data viewer/dist viewer/node_modules
