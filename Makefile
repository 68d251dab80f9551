# tokengate: the two commands a fresh machine needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
UV := $(VENV)/bin/uv
# Two installed sets, one stamp each: make run needs only the runtime and the CLI
# (requirements/run.txt); make test, lint and bench add the rest (requirements/dev.txt, a superset
# with the same pins). Either order works: the test set is added to the run set, never reinstalled.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# cfn-lint with the serverless rules and checkov: lint-only tools in their own environment, so
# that make run and make test never install them.
LINT_VENV := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed
PORT ?= 3000
export SAM_CLI_TELEMETRY := 0

.PHONY: help run token events test test-deep lint lint-template apigw-account bench load build deploy smoke invoke rotate lock clean revoke

help:
	@echo "make run     local stack on http://127.0.0.1:$(PORT) (moto as KMS + Secrets Manager)"
	@echo "make token [SCOPES='read write'] [AAL=aal2] [ANONYMOUS=1] [CLIENT_ID=app] [LIFETIME=600]   a development Supabase token"
	@echo "make events  events/ rendered with fresh tokens, and env.json, into .aws-sam/events for sam local invoke"
	@echo "make test    the whole test suite"
	@echo "make test-deep   the same, the heaviest property tests at full depth (thousands of cases each)"
	@echo "make lint    ruff, mypy, sam validate --lint, cfn-lint (serverless rules) and checkov"
	@echo "make bench   benchmarks: same-run ratios against peers, cold starts [COUNT=instructions] [QUICK=1]"
	@echo "make load    2,000 exchanges + 10,000 authorized calls on the local stack (loopback)"
	@echo "make build   sam build (no Docker)"
	@echo "make deploy  sam deploy (guided the first time)"
	@echo "make smoke URL=<base URL> SUPABASE_TOKEN=<token> [STACK=<stack>] [ORIGIN=<origin>]   end-to-end check of a running stack"
	@echo "make invoke FN=TokenExchangeFunction EVENT=events/<file>.json   run a handler on an event"
	@echo "make rotate STEP=create|publish|switch|retire STACK=<stack> [NEXT=<arn>]   rotate the signing key"
	@echo "make revoke SUB=<user id> | SID=<session id> [STACK=<stack>]   revoke a user's or a session's tokens"

# uv installs from the package index in a fraction of pip's time and CPU. The virtual environment
# is made without pip; pip runs once, from the wheel Python ships, to install uv (requirements/uv.txt).
$(UV): requirements/uv.txt
	test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(PY) scripts/bootstrap_uv.py requirements/uv.txt
	touch $(UV)

# A set is reinstalled whenever its pins change; the .pth puts the layer and the repository on the
# path, the client is installed editable (its console script, `tokengate`).
$(RUN_STAMP): $(UV) requirements/run.txt layers/tokengate/requirements.txt client/pyproject.toml
	$(UV) pip install --quiet --python $(PY) -r requirements/run.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e ./client
	$(PY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], '00-tokengate-dev.pth').write_text('\n'.join(str(pathlib.Path(p).resolve()) for p in ('layers/tokengate', '.')) + '\n')"
	touch $(RUN_STAMP)

# The test set compiles the whole environment's bytecode once, at install (about 11 s on 2 cores):
# otherwise each of the suite's workers and child processes compiles what it imports on a fresh
# clone, four at a time (about 25 s of CPU). make run alone leaves it to the first start.
$(STAMP): $(RUN_STAMP) requirements/dev.txt
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements/dev.txt
	touch $(STAMP)

# The SAM CLI and the template linters each get a venv of their own (their pins clash with the
# product's), filled by the same uv.
$(SAM): $(UV) requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)  # with pip: sam build runs the layer's Makefile, which uses it
	$(UV) pip install --quiet --python $(SAM_VENV)/bin/python -r requirements/sam.txt
	touch $(SAM)

$(LINT_STAMP): $(UV) requirements/lint.txt
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(LINT_VENV)
	$(UV) pip install --quiet --python $(LINT_VENV)/bin/python -r requirements/lint.txt
	touch $(LINT_STAMP)

run: $(RUN_STAMP)
	PORT=$(PORT) $(PY) -m devstack

# A development Supabase token for the local stack (stdout: the token alone).
token: $(RUN_STAMP)
	@$(PY) -m devstack.token $(if $(SCOPES),--scopes "$(SCOPES)") $(if $(AAL),--aal "$(AAL)") $(if $(filter 1 true yes,$(ANONYMOUS)),--anonymous) $(if $(CLIENT_ID),--client-id "$(CLIENT_ID)") $(if $(LIFETIME),--lifetime "$(LIFETIME)")

# events/ with fresh tokens and an env.json for sam local invoke, from the running make run
# (CONTAINER_HOST=host.docker.internal for Docker Desktop's default network; see docs/local.md).
events: $(RUN_STAMP)
	@$(PY) -m devstack.sam_events --port $(PORT) $(if $(CONTAINER_HOST),--container-host "$(CONTAINER_HOST)")

# The suite runs on pytest-xdist workers, two per core (TEST_WORKERS=N to change, 0 for one
# process): much of it waits (deadlines that must pass, sleeps past a cache or a cooldown, child
# processes, servers), so a second worker per core computes while the first one waits. A module's
# tests that share a module-scoped fixture stay on one worker (tests/conftest.py). Bytecode is
# cached (__pycache__, ignored by git) even where PYTHONDONTWRITEBYTECODE is set: every worker
# and every child process would otherwise compile the same modules again.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 )))
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest
test: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup

# The heaviest property tests at the depth they were written for (tests/depth.py): thousands of
# generated route tables, claim values and tokens each, instead of make test's hundreds.
test-deep: $(STAMP)
	TOKENGATE_TEST_DEPTH=deep $(PYTEST) -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP) $(SAM)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(SAM) validate --lint --template template.yaml
	$(MAKE) --no-print-directory lint-template

# The template's static analysis; every finding left is suppressed in template.yaml beside its reason.
lint-template: $(LINT_STAMP)
	$(LINT_VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

# Before every deploy, ApiGatewayCloudWatchRole is chosen from `aws apigateway get-account` and
# saved in samconfig.toml (scripts/apigw_account.py): create where the account and Region have no
# API Gateway CloudWatch role, existing where they do (docs/deploy.md).
deploy: apigw-account
apigw-account: $(SAM)
	$(SAM_VENV)/bin/python scripts/apigw_account.py --samconfig samconfig.toml

# make bench [COUNT=instructions] [QUICK=1] [OUT=docs/performance.md]
bench: $(STAMP)
	@if [ "$(COUNT)" = instructions ] && ! command -v valgrind >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y valgrind || { apt-get update -qq && apt-get install -y valgrind; }; \
		else echo "COUNT=instructions needs valgrind: sudo apt-get install -y valgrind"; exit 2; fi; \
	fi
	COUNT=$(COUNT) QUICK=$(QUICK) $(PY) -m benchmarks $(if $(OUT),--write $(OUT))

load: $(STAMP)
	$(PY) -m benchmarks.load

build: $(SAM)
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build --template template.yaml
	$(PYTHON) scripts/check_build.py

deploy: build $(STAMP)
	if [ -f samconfig.toml ] && grep -q '^stack_name' samconfig.toml; then $(SAM) deploy; else $(SAM) deploy --guided; fi
	# SigningMode=secretsmanager: publish the signing secrets' public keys (SigningPublicKeys), so
	# the public JWKS function never reads a private key. Nothing to do in the KMS mode.
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(PY) scripts/rotate_signing_key.py sync-public-keys --samconfig samconfig.toml --apply

# Key rotation, one step at a time (SECURITY.md): STEP=create|publish|switch|retire STACK=name [NEXT=arn]
rotate: $(RUN_STAMP)
	@test -n "$(STEP)" -a -n "$(STACK)" || { echo "usage: make rotate STEP=create|publish|switch|retire|sync-public-keys STACK=<stack> [NEXT=<key or secret arn>]"; exit 2; }
	$(PY) scripts/rotate_signing_key.py $(STEP) --stack $(STACK) $(if $(NEXT),--next $(NEXT))

invoke: $(RUN_STAMP)
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<LogicalId> EVENT=events/<file>.json"; exit 2; }
	@$(PY) -m devstack.invoke $(FN) $(EVENT)

# Pins requirements/dev.txt (dev.in + the CLI's dependencies in client/pyproject.toml), then
# requirements/run.txt from run.in within those pins. Pins already in a file are kept; UPGRADE=1
# moves everything to the newest releases.
LOCK := $(UV) pip compile --quiet --universal --python-version 3.11 --custom-compile-command "make lock" $(if $(filter 1 true yes,$(UPGRADE)),--upgrade)
lock: $(UV)
	$(LOCK) requirements/dev.in client/pyproject.toml -o requirements/dev.txt
	$(LOCK) requirements/run.in client/pyproject.toml -c requirements/dev.txt -o requirements/run.txt

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LINT_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

# Post-deploy check against any base URL: make smoke URL=<Outputs.BaseUrl> SUPABASE_TOKEN=<token>
smoke: export SUPABASE_TOKEN := $(SUPABASE_TOKEN)
smoke: $(RUN_STAMP)
	@test -n "$(URL)" -a -n "$$SUPABASE_TOKEN" || { echo "usage: make smoke URL=<base URL> SUPABASE_TOKEN=<Supabase access token>"; exit 2; }
	@$(PY) scripts/smoke.py --url "$(URL)" $(if $(STACK),--stack "$(STACK)") $(if $(ORIGIN),--origin "$(ORIGIN)")

# Operator revocation (docs/revocation.md): make run's stack on $(PORT), or STACK=<name> deployed.
revoke: $(RUN_STAMP)
	@test -n "$(SUB)$(SID)" -a -z "$(and $(SUB),$(SID))" || { echo "usage: make revoke SUB=<user id> | SID=<session id> [STACK=<stack>]"; exit 2; }
	@$(PY) scripts/revoke.py $(if $(SUB),--sub "$(SUB)") $(if $(SID),--sid "$(SID)") $(if $(STACK),--stack "$(STACK)",--port $(PORT))
