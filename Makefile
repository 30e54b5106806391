# The two commands of the README: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEV_ENV := DJANGO_DEBUG=1 ENTRA_DEV_ISSUER=1

# `make serve`: production-like (DEBUG off, gunicorn). Without ENTRA_TENANT_ID in the
# environment it trusts the development issuer by explicit override, for trying it locally.
# Its secret key is made once into a git-ignored file (mode 600) and read by the shell, so
# make never prints it; DJANGO_SECRET_KEY from the environment wins.
SERVE_SECRET_FILE := .serve_secret_key
SERVE_ENV := DJANGO_DEBUG=0 DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-$$(cat $(SERVE_SECRET_FILE))} \
	DJANGO_ALLOWED_HOSTS=$${DJANGO_ALLOWED_HOSTS:-127.0.0.1,localhost} PORT=$(PORT)
ifeq ($(ENTRA_TENANT_ID),)
SERVE_ENV += ENTRA_DEV_ISSUER=1 ENTRA_DEV_ISSUER_WITHOUT_DEBUG=1
endif

.PHONY: run serve test lint install clean bench openapi

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	@$(DEV_ENV) $(BIN)/python manage.py quickstart --base-url http://$(HOST):$(PORT)
	@$(DEV_ENV) $(BIN)/python manage.py ensure_demo_superuser --base-url http://$(HOST):$(PORT)
	$(DEV_ENV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

$(SERVE_SECRET_FILE):
	@umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

serve: $(STAMP) $(SERVE_SECRET_FILE)
	$(SERVE_ENV) $(BIN)/python manage.py migrate --noinput
	$(SERVE_ENV) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(SERVE_ENV) $(BIN)/gunicorn -c project/gunicorn.conf.py project.wsgi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two suites, one settings module each: entra_auth alone (tests.settings, pytest.ini), then
# the sample service (tests.sample.settings, tests/sample only).
test: lint
	$(BIN)/pytest
	$(BIN)/pytest --ds=tests.sample.settings tests/sample

# `make openapi`: write docs/openapi.yaml again from the sample's views (docs/openapi.md).
openapi: $(STAMP)
	$(BIN)/python -m tests.sample.openapi_file

# `make bench`: the performance figures of docs/performance.md (not part of `make test` or
# CI). Installs wrk and Redis from Debian's packages when missing; exits 1 if a target is missed.
bench: $(STAMP)
	bash bench/services.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
