# Two commands do all the set-up on a fresh Linux machine:
#   make demo   - create .venv, install geventq, run the README demo
#   make test   - create .venv, install geventq with test extras, run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench redis-server clean

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,hiredis]'
	touch $@

# Tests and the demo start their own private redis-server; this makes sure one exists.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || [ -n "$$GEVENTQ_REDIS_SERVER" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "geventq needs redis-server: install it (Debian/Ubuntu: sudo apt-get install redis-server)"; exit 1; \
	  fi; }

demo: $(VENV)/.installed redis-server
	$(PY) examples/demo.py

test: $(VENV)/.installed redis-server
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check geventq tests bench examples

bench: $(VENV)/.installed redis-server
	$(PY) -m pip install -q rq huey
	$(PY) bench/enqueue.py
	$(PY) bench/throughput.py
	$(PY) bench/peers.py

clean:
	rm -rf $(VENV) build dist *.egg-info
