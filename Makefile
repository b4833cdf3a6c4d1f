# The two commands of the README: `make preview` and `make test`. Each sets up what it needs.
#   make preview                                  offline preview of every stack, with the policy verdict
#   make preview STACK=prod                       one stack
#   make preview PROGRAM=DIR CONFIG=FILE [OUT=DIR] [POLICY_CONFIG=FILE]   any Pulumi Python program
#   make test                                     ruff, mypy, actionlint, zizmor, pytest
#   make pytest-shifted-clock [SHIFTED_CLOCK=...] pytest again under a shifted wall clock (Debian faketime)
#   make bench                                    benchmarks (run on purpose; results go to docs/)
#   make cost                                     price every stack's preview plan; rewrites the README's cost table
#   make client / make record                     the real Claude Code client (npm ci in client/); re-record its fixtures
#   make collector                                the OpenTelemetry Collector of the image's release, for the tests
#   make screenshots                              the dashboard's custom widgets on a synthetic fleet, into docs/images/
#   make chromium                                 headless Chromium (Debian package) for the widget layout test

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
RUN := $(UV) run --frozen --no-sync
TYPED_DIRS := infra components policies lambda_src offline benchmarks collector ci_access

.PHONY: setup preview cost test lint typecheck workflows pytest pytest-shifted-clock bench clean client record collector chromium screenshots

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install, so a fresh clone's first preview does not compile pulumi_aws's modules on import.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet --compile-bytecode
	touch $@

# The Lambda packages' compiled dependencies (orjson for arm64), fetched here so previews and tests never need the index.
build/lambda-dependencies/.synced: $(VENV)/.synced uv.lock
	$(RUN) python -m components.lambda_code
	touch $@

setup: $(VENV)/.synced build/lambda-dependencies/.synced

preview: setup
ifdef PROGRAM
	$(RUN) python -m offline.preview --program "$(PROGRAM)" --config "$(CONFIG)" \
		$(if $(OUT),--out "$(OUT)") $(if $(POLICY_CONFIG),--policy-config "$(POLICY_CONFIG)")
else
	$(RUN) python -m offline.preview $(if $(STACK),--stack "$(STACK)") $(if $(OUT),--out "$(OUT)") \
		$(if $(POLICY_CONFIG),--policy-config "$(POLICY_CONFIG)")
endif

# The plans of every stack (one line each), then their prices; the README's table and docs/cost.md follow them.
cost: setup
	$(RUN) python -m offline.preview --quiet
	$(RUN) python -m offline.cost --write-readme

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup
	$(RUN) mypy $(TYPED_DIRS)

workflows: setup
	$(RUN) actionlint -shellcheck= .github/workflows/*.yml
	$(RUN) zizmor --offline --min-severity low .github/workflows

# Built once, then cached by its manifest (collector/build.py); needs Go and the Go module proxy.
collector: setup
	$(RUN) python -m collector.build

# Installed once from the distribution when no Chromium is on the PATH (CI images bring one).
CHROMIUM_NAMES := chromium chromium-browser google-chrome
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@for name in $(CHROMIUM_NAMES); do command -v $$name >/dev/null && exit 0; done; \
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

pytest: setup client collector chromium
	$(RUN) pytest

# Renders every custom widget from the real handlers on a synthetic fleet (moto, fixed clock) and screenshots it.
screenshots: setup chromium
	$(RUN) python -m tests.lambda_src.dashboard_screenshots --out docs/images

test: lint typecheck workflows pytest

# No test may depend on today's date: the suite passes again with the wall clock moved (the clock keeps running).
SHIFTED_CLOCK ?= 2028-02-29 23:30:00
pytest-shifted-clock: setup client collector chromium
	@command -v faketime >/dev/null || { echo "faketime is missing: apt-get install faketime" >&2; exit 1; }
	TZ=UTC faketime '$(SHIFTED_CLOCK)' $(VENV)/bin/python -m pytest -q -p no:cacheprovider

bench: setup
	$(RUN) python -m benchmarks.collector_series --write-readme
	$(RUN) python -m benchmarks.analytics_transform --write-readme
	$(RUN) python -m benchmarks.dashboard --write-readme
	$(RUN) python -m benchmarks.quota --write-readme
	$(MAKE) --no-print-directory cost  # re-price the stacks with what was just measured

# The native binary comes from the optional dependency @anthropic-ai/claude-code-linux-x64 (postinstall links it).
client/node_modules/.bin/claude: client/package.json client/package-lock.json
	cd client && npm ci --no-audit --no-fund
	$@ --version
	touch $@

client: client/node_modules/.bin/claude

record: client setup
	$(RUN) python -m tests.harness.record

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
