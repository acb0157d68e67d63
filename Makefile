# Two commands do all the set-up on a fresh Linux machine:
#   make demo   - create .venv, install geventq, run the README demo
#   make test   - create .venv, install geventq with test extras, run the tests
#   make fuzz   - the property-based tests with many more examples (minutes)
#   make chaos  - the chaos test at its long scale (workers killed, Redis restarted; minutes)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test fuzz chaos lint bench redis-server chromium screenshots clean

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

# The dashboard's browser tests drive Debian's Chromium through Playwright (never a downloaded
# browser); GEVENTQ_CHROMIUM names another binary.
chromium:
	@[ -n "$$GEVENTQ_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the dashboard's browser tests need Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium)"; exit 1; \
	  fi; }

demo: $(VENV)/.installed redis-server
	$(PY) examples/demo.py

# The suite runs in TEST_PROCESSES pytest-xdist processes, each with its own private
# redis-server (most of its time is spent waiting on workers, not on the CPU); tests/conftest.py
# asks xdist to keep the tests that share a costly fixture (the local Redis Cluster, a module's
# Chromium or wheel) in one process (see the note there). TEST_PROCESSES=0: one process.
TEST_PROCESSES ?= 2

test: $(VENV)/.installed redis-server chromium
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_PROCESSES) --dist loadgroup

# The property-based (hypothesis) tests with many more examples than the suite runs.
fuzz: $(VENV)/.installed redis-server
	GEVENTQ_HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider -m hypothesis \
	  -o timeout=3600 --hypothesis-show-statistics

# The chaos test (tests/test_chaos.py) at its long scale; the suite runs its short scale.
chaos: $(VENV)/.installed redis-server
	GEVENTQ_CHAOS=long $(PY) -m pytest -q -p no:cacheprovider -s -m chaos -o timeout=1200

# docs/dashboard.png, taken by the browser tests
screenshots: $(VENV)/.installed redis-server chromium
	GEVENTQ_SCREENSHOTS=docs $(PY) -m pytest -q -p no:cacheprovider tests/test_dashboard_browser.py -k screenshot

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check geventq tests bench examples

bench: $(VENV)/.installed redis-server
	$(PY) -m pip install -q rq huey
	$(PY) bench/enqueue.py
	$(PY) bench/throughput.py
	$(PY) bench/peers.py

clean:
	rm -rf $(VENV) build dist *.egg-info
