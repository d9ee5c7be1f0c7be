# contivpy: the two commands a new user needs are `make demo` and `make test` (see README.md).
# The project's virtual environment, made by scripts/install-deps.sh with Debian's own python3.
PYTHON ?= .venv/bin/python

# `make install` (docs/deployment.md): a venv at PREFIX made with BASE_PYTHON, the commands linked
# into SBINDIR, the systemd units into UNITDIR (nothing enabled), netctl's completions into
# BASHCOMPDIR/ZSHCOMPDIR. DESTDIR stages under another root.
# SRC is what pip installs: this checkout, or a wheel from `make dist`.
PREFIX ?= /opt/contivpy
SBINDIR ?= /usr/local/sbin
UNITDIR ?= /etc/systemd/system
BASHCOMPDIR ?= /usr/local/share/bash-completion/completions
ZSHCOMPDIR ?= /usr/local/share/zsh/site-functions
BASE_PYTHON ?= /usr/bin/python3
DESTDIR ?=
SRC ?= $(CURDIR)
INSTALL_VARS = PREFIX="$(PREFIX)" SBINDIR="$(SBINDIR)" UNITDIR="$(UNITDIR)" BASE_PYTHON="$(BASE_PYTHON)" \
	BASHCOMPDIR="$(BASHCOMPDIR)" ZSHCOMPDIR="$(ZSHCOMPDIR)" DESTDIR="$(DESTDIR)" SRC="$(SRC)"

.PHONY: deps install uninstall dist demo test lint bench

deps:            ## install the system packages and the Python package (idempotent)
	bash scripts/install-deps.sh

install:         ## install into $(PREFIX) (a venv), link commands into $(SBINDIR), units into $(UNITDIR)
	$(INSTALL_VARS) sh scripts/install.sh install

uninstall:       ## reverse `make install` (same variables)
	$(INSTALL_VARS) sh scripts/install.sh uninstall

dist: deps       ## wheel and sdist into dist/
	$(PYTHON) -m build -o dist .

demo: deps       ## etcd + netmaster + two simulated hosts (OVS, dockerd, netplugin) running the seed scenario
	$(PYTHON) scripts/demo.py

test: deps       ## the whole test suite against real etcd, OVS and dockerd started by the fixtures
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
