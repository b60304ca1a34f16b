# Quick start: `make run` opens the console, `make test` runs every test.
# Both set up what they need: a virtual environment, and (as root, through apt) bubblewrap,
# tmux and the Docker engine. Without root they say what is missing and how to install it.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
APT_PKGS := bubblewrap tmux docker.io iproute2 tinyproxy curl busybox-static openssl gcc  # gcc: tests build a small .so (review h193)

.PHONY: run test bytecode setup system docker-up agents-install model-server-install aiperf-install bench lint clean

# The console opens in a demo workspace (made once, under ~/pilothouse-demo) with the demo
# profile ready: press s, or run `pilothouse run demo` there.
DEMO_WS ?= $(HOME)/pilothouse-demo

run: setup system bytecode
	@$(VENV)/bin/pilothouse doctor >/dev/null 2>&1 || $(VENV)/bin/pilothouse doctor || true
	@[ -d "$(DEMO_WS)" ] || $(VENV)/bin/pilothouse demo-workspace "$(DEMO_WS)" >/dev/null
	cd "$(DEMO_WS)" && "$(CURDIR)/$(VENV)/bin/pilothouse"

# Test files run in parallel, each file whole in one worker (its module fixtures once): most of
# a test's time is spent waiting on daemons, sandboxes and agents, so two workers on 2 cores
# finish in about three quarters of the time of one. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

test: setup system docker-up agents-install model-server-install bytecode
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Every daemon, CLI and agent hook the tests start imports the package: compiled once here, not
# in each process. Python writes these caches itself unless PYTHONDONTWRITEBYTECODE is set (some
# CI shells set it), and then a daemon's start compiled about 0.4 s of source every time.
bytecode: setup
	@$(PY) -m compileall -q -j 0 console store widgets bench >/dev/null

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Pilothouse needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)."; \
	    echo "Install it (apt-get install python3) or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# compat: the source folder goes on sys.path by a plain .pth line. The default editable
	@# mode installs an import finder that imports pathlib and re in every Python start
	@# (about 7 ms of each `pilothouse` command); setuptools may drop compat, then the default.
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat 2>/dev/null || \
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
	    setsid nohup dockerd >/tmp/pilothouse-dockerd.log 2>&1 < /dev/null & \
	    for i in $$(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done; \
	    docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /tmp/pilothouse-dockerd.log"; tail -5 /tmp/pilothouse-dockerd.log; }; \
	  else \
	    echo "the Docker engine is installed but not running; start it (sudo systemctl start docker)"; \
	  fi; \
	fi

# The real agents the end-to-end tests run (tests/agents/test_real_*.py): Claude Code and Codex
# from npm, aider from PyPI into its own venv. All under /usr/local, because a sandbox sees the
# host's /usr read-only and nothing of /root or /opt: the venv is made from /usr/bin/python3,
# not a pyenv or other python3 that lives under a home. Versions are pinned to the ones the
# tests were written against (Codex's hook trust hash is checked against the installed one).
# As root: installs what is missing or not the pinned version, quietly when nothing is. Otherwise, or when a registry
# cannot be reached: says what is missing and goes on (those tests skip and say why).
AGENTS_PREFIX  ?= /usr/local
AIDER_VENV     ?= $(AGENTS_PREFIX)/lib/pilothouse-agents/aider
SYSTEM_PYTHON  ?= /usr/bin/python3
CLAUDE_CODE_PKG ?= @anthropic-ai/claude-code@2.1.332
CODEX_PKG      ?= @openai/codex@0.171.0
AIDER_PKG      ?= aider-chat==0.86.1
AGENTS_SKIP    := their end-to-end tests will skip and say so

agents-install:
	@missing=""; \
	pinned() { "$(AGENTS_PREFIX)/bin/$$1" --version 2>/dev/null | head -n 1 | grep -qwF -- "$$2"; }; \
	pinned claude "$(lastword $(subst @, ,$(CLAUDE_CODE_PKG)))" || missing="$$missing claude"; \
	pinned codex "$(lastword $(subst @, ,$(CODEX_PKG)))" || missing="$$missing codex"; \
	pinned aider "$(lastword $(subst ==, ,$(AIDER_PKG)))" || missing="$$missing aider"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "agents missing (or not the pinned version) under $(AGENTS_PREFIX)/bin:$$missing"; \
	  echo "  install them with: sudo make agents-install"; \
	  echo "  (their end-to-end tests skip and say so)"; exit 0; \
	fi; \
	echo "installing agents:$$missing"; \
	case "$$missing" in *claude*|*codex*) \
	  command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } || \
	    { echo "npm is missing and apt-get could not install it; $(AGENTS_SKIP)"; exit 0; }; \
	  pkgs=""; \
	  case "$$missing" in *claude*) pkgs="$$pkgs $(CLAUDE_CODE_PKG)";; esac; \
	  case "$$missing" in *codex*) pkgs="$$pkgs $(CODEX_PKG)";; esac; \
	  npm install --global --prefix "$(AGENTS_PREFIX)" --no-fund --no-audit --loglevel=error $$pkgs || \
	    { echo "npm could not install:$$pkgs (is the npm registry reachable?); $(AGENTS_SKIP)"; };; \
	esac; \
	case "$$missing" in *aider*) \
	  "$(SYSTEM_PYTHON)" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null; } || \
	    { echo "$(SYSTEM_PYTHON) with venv (3.10+) is needed for aider (apt-get install python3-venv); $(AGENTS_SKIP)"; exit 0; }; \
	  "$(SYSTEM_PYTHON)" -m venv "$(AIDER_VENV)" && \
	  "$(AIDER_VENV)/bin/pip" install --quiet --disable-pip-version-check "$(AIDER_PKG)" && \
	  ln -sf "$(AIDER_VENV)/bin/aider" "$(AGENTS_PREFIX)/bin/aider" || \
	    { echo "pip could not install $(AIDER_PKG) into $(AIDER_VENV) (is PyPI reachable?); $(AGENTS_SKIP)"; };; \
	esac

# The workload benchmark's real parts (tests/replay/llama_server.py, bench/replay.py), each in
# its own venv under /usr/local (a sandbox sees /usr read-only, so the sandboxed openai SDK
# client of the end-to-end test runs from there too):
# - llama-cpp-python's server, gguf (the tiny model is written at test time) and the openai SDK.
#   llama-cpp-python is a C++ build (about 20 minutes on 2 busy cores); its wheel is kept in
#   the wheelhouse, so a reinstall takes seconds.
# - aiperf (NVIDIA's benchmark client), the anchor `make bench` compares the replay with.
# Quiet when installed; without root or a registry they say what is missing and go on (the
# tests that need them skip and say why).
BENCH_PREFIX      ?= /usr/local/lib/pilothouse-bench
WHEELHOUSE        ?= $(BENCH_PREFIX)/wheelhouse
MODEL_SERVER_VENV ?= $(BENCH_PREFIX)/model-server
AIPERF_VENV       ?= $(BENCH_PREFIX)/aiperf
LLAMA_CPP_VERSION ?= 0.3.36
MODEL_SERVER_PKGS ?= llama-cpp-python[server]==$(LLAMA_CPP_VERSION) gguf==0.19.0 openai==3.57.0
AIPERF_PKG        ?= aiperf==0.13.0

model-server-install:
	@[ -f "$(MODEL_SERVER_VENV)/.installed-$(LLAMA_CPP_VERSION)" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "llama-cpp-python's server is not installed in $(MODEL_SERVER_VENV)"; \
	  echo "  install it with: sudo make model-server-install (its tests skip and say so)"; exit 0; \
	fi; \
	for p in cmake g++; do command -v $$p >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null; break; }; done; \
	"$(SYSTEM_PYTHON)" -m venv "$(MODEL_SERVER_VENV)" || { echo "$(SYSTEM_PYTHON) -m venv failed \
	  (apt-get install python3-venv); the real model server's tests skip"; exit 0; }; \
	mkdir -p "$(WHEELHOUSE)"; \
	if ! ls "$(WHEELHOUSE)"/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) (C++, once; the wheel is kept in $(WHEELHOUSE))"; \
	  "$(MODEL_SERVER_VENV)/bin/pip" wheel --quiet --disable-pip-version-check --no-deps \
	    --wheel-dir "$(WHEELHOUSE)" "llama-cpp-python==$(LLAMA_CPP_VERSION)" || \
	    { echo "could not build llama-cpp-python (is PyPI reachable? cmake and g++ installed?); \
	      the real model server's tests skip"; exit 0; }; \
	fi; \
	"$(MODEL_SERVER_VENV)/bin/pip" install --quiet --disable-pip-version-check \
	  --find-links "$(WHEELHOUSE)" $(foreach p,$(MODEL_SERVER_PKGS),'$(p)') && \
	  touch "$(MODEL_SERVER_VENV)/.installed-$(LLAMA_CPP_VERSION)" || \
	  echo "pip could not install $(MODEL_SERVER_PKGS) (is PyPI reachable?); the real model server's tests skip"

aiperf-install:
	@[ -x "$(AIPERF_VENV)/bin/aiperf" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "aiperf is not installed in $(AIPERF_VENV)"; \
	  echo "  install it with: sudo make aiperf-install (make bench then uses a stdlib reference client)"; exit 0; \
	fi; \
	echo "installing $(AIPERF_PKG) into $(AIPERF_VENV) (a few minutes, once)"; \
	"$(SYSTEM_PYTHON)" -m venv "$(AIPERF_VENV)" && \
	"$(AIPERF_VENV)/bin/pip" install --quiet --disable-pip-version-check "$(AIPERF_PKG)" || \
	  echo "pip could not install $(AIPERF_PKG) (is PyPI reachable?); make bench uses a stdlib reference client"

bench: setup system docker-up model-server-install aiperf-install bytecode
	$(PY) bench/all.py

lint: setup
	$(VENV)/bin/ruff check console widgets store tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
