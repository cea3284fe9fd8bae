# BLADI Cases: `make run` serves the app with demo data; `make test` runs the whole suite;
# `make test-fast` is ruff plus the tests that need neither Chromium, PostgreSQL nor a gunicorn.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test test-fast install pins translations extract-messages update-catalogs lint bench \
	clean assets worker

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# requirements*.in name the direct dependencies; pip-compile pins them and everything they
# pull in into requirements*.txt. Existing pins are kept: to move one, change its `==` in the
# .in file, or `make pins PINS_ARGS="--upgrade-package NAME"` for a transitive package.
PIP_COMPILE = $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links
pins: install
	$(PIP_COMPILE) $(PINS_ARGS) --output-file=requirements.txt requirements.in
	$(PIP_COMPILE) $(PINS_ARGS) --output-file=requirements-dev.txt requirements-dev.in

# The field app's XPath evaluator (openrosa-xpath-evaluator), bundled and minified by esbuild
# from bladi_cases/static/src/xpath.js. The bundle is committed: nothing builds it at deploy or
# in CI, and tests/test_xpath_bundle.py checks that rebuilding gives the same bytes.
assets:
	test -f node_modules/esbuild/package.json || npm ci --no-audit --no-fund
	npm run --silent build:xpath > bladi_cases/static/js/xpath.min.js.tmp
	mv bladi_cases/static/js/xpath.min.js.tmp bladi_cases/static/js/xpath.min.js

# Compiled catalogs are build products (not committed): made on every run/test.
translations: install
	$(BIN)/pybabel compile --statistics -d translations

run: translations
	BLADI_ENV=development $(FLASK) db upgrade
	BLADI_ENV=development $(FLASK) seed demo --beneficiaries 330 --if-empty
	BLADI_ENV=development $(BIN)/gunicorn --bind 127.0.0.1:$(PORT) --workers 2 --timeout 120 --access-logfile - wsgi:app

# On each node of a deployment with Redis (REDIS_URL set, as for the web processes): one RQ
# worker that runs the background jobs (start more for more at once) and the scheduler that
# enqueues the periodic ones (the sweep every minute, the figures every 5 minutes, the
# nightly backup); the periodic work itself runs once at a time across all nodes.
WORKERS ?= 1
worker: translations
	test -n "$$REDIS_URL" || (echo "REDIS_URL is not set: without it, jobs run inside the web process" && false)
	trap 'kill 0' INT TERM EXIT; \
	for n in $$(seq $(WORKERS)); do $(FLASK) jobs worker & done; \
	$(FLASK) jobs scheduler & \
	wait

test: translations
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick loop: always SQLite (TEST_DATABASE_URL emptied), no browser tests, no gunicorn
# under load (tests/test_concurrency.py, about a minute: `make test` runs it).
test-fast: translations
	$(BIN)/ruff check .
	TEST_DATABASE_URL= $(BIN)/python -m pytest -m "not browser and not postgres and not server" \
		$(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# Translator workflow: extract new strings, then merge them into the ar/fr/en catalogs.
extract-messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		-o translations/messages.pot .

update-catalogs: extract-messages
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i translations/messages.pot -d translations

bench: install
	$(BIN)/python bench/page_weight.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/participation.py
	$(BIN)/python bench/reporting.py
	$(BIN)/python bench/import_rows.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/page_parts.py
	$(BIN)/python bench/bombs.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
