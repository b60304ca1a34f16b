# Quick start: `make run` opens the console, `make test` runs every test.
# Both set up what they need: a virtual environment, and (as root, through apt) bubblewrap,
# tmux and the Docker engine. Without root they say what is missing and how to install it.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
APT_PKGS := bubblewrap tmux docker.io iproute2 tinyproxy curl busybox-static

.PHONY: run test setup system docker-up bench lint clean

# The console opens in a demo workspace (made once, under ~/pilothouse-demo) with the demo
# profile ready: press s, or run `pilothouse run demo` there.
DEMO_WS ?= $(HOME)/pilothouse-demo

run: setup system
	@$(VENV)/bin/pilothouse doctor >/dev/null 2>&1 || $(VENV)/bin/pilothouse doctor || true
	@[ -d "$(DEMO_WS)" ] || $(VENV)/bin/pilothouse demo-workspace "$(DEMO_WS)" >/dev/null
	cd "$(DEMO_WS)" && "$(CURDIR)/$(VENV)/bin/pilothouse"

test: setup system docker-up
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Pilothouse needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)."; \
	    echo "Install it (apt-get install python3) or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

# System packages: installed through apt when running as root, else reported.
system:
	@missing=""; \
	for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	    { echo "apt-get could not install:$$missing"; exit 1; }; \
	else \
	  echo "missing system packages:$$missing"; \
	  echo "  install them with: sudo apt-get install$$missing"; \
	  echo "  (tests that need them will skip and say so)"; \
	fi

# Start the Docker engine when it is installed and not running (tests need a real one).
docker-up:
	@if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "starting dockerd (log: /tmp/pilothouse-dockerd.log)"; \
	    nohup dockerd >/tmp/pilothouse-dockerd.log 2>&1 & \
	    for i in $$(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done; \
	    docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /tmp/pilothouse-dockerd.log"; tail -5 /tmp/pilothouse-dockerd.log; }; \
	  else \
	    echo "the Docker engine is installed but not running; start it (sudo systemctl start docker)"; \
	  fi; \
	fi

bench: setup system docker-up
	$(PY) bench/all.py

lint: setup
	$(VENV)/bin/ruff check console widgets store tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
