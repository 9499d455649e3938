# Customer 360: two commands for a newcomer (make demo, make test), plus the UIs and benchmarks.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
export C360_HOME ?= $(CURDIR)/.c360
export DAGSTER_HOME ?= $(C360_HOME)/dagster
# Tools of the virtualenv (dbt, dagster, mlflow) first, activated or not.
export PATH := $(CURDIR)/$(BIN):$(PATH)
CUSTOMERS ?= 20000
SEED ?= 42

.PHONY: install demo test test-spark ui bench screenshots lint clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9

# Installs exactly what uv.lock pins (a fresh machine needs only Python 3.11 and PyPI).
# --compile-bytecode, and the same for the platform's own packages: uv installs no .pyc files, and
# where PYTHONDONTWRITEBYTECODE is set (containers, CI, these machines) none is ever written, so
# every process compiled each module it imported from source, every time: `import great_expectations`
# took 11.1 s instead of 4.3, `import dbt.cli.main` (each dbt step's start-up) 4.4 s instead of 2.2.
$(BIN)/.installed: $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --extra dev --inexact --compile-bytecode
	$(BIN)/python -m compileall -q -j 0 app c360 cli expectations ml orchestration >/dev/null
	@touch $@

install: $(BIN)/.installed

# --rebuild: `make demo` again on the same home (after an upgrade) regenerates the landing files it
# already loaded, so without it the run would find nothing new and skip the build.
demo: install
	$(BIN)/c360 keys init --if-missing
	$(BIN)/c360 generate --customers $(CUSTOMERS) --seed $(SEED) --out $(C360_HOME)/landing
	$(BIN)/c360 run --rebuild

test: install
	$(BIN)/pytest -n 2 --dist loadfile

# The dbt project on Apache Spark vs DuckDB (needs Java 17+), in a virtualenv of its own: with
# pyspark installed, Great Expectations imports pyspark.sql.connect, whose import calls sys.exit(0)
# in any process started with `python -c` (Dagster's run workers among them), so it must never
# share the platform's .venv.
SPARK_VENV := .venv-spark
test-spark: $(UV)
	UV_PROJECT_ENVIRONMENT=$(SPARK_VENV) $(UV) sync --frozen --extra dev --extra spark --python $(PYTHON) --compile-bytecode
	PATH=$(CURDIR)/$(SPARK_VENV)/bin:$$PATH $(SPARK_VENV)/bin/pytest -m spark tests/spark

DBT_DOCS := $(C360_HOME)/dbt/docs
DATA_DOCS := $(C360_HOME)/reports/data_docs/gx/uncommitted/data_docs/local_site
ui: install
	@echo "Dagster UI: http://127.0.0.1:3000   MLflow UI: http://127.0.0.1:5000   Insights app: http://127.0.0.1:8501"
	@echo "dbt docs: http://127.0.0.1:8580   Great Expectations Data Docs: http://127.0.0.1:8581   (Ctrl-C stops all)"
	@mkdir -p $(DBT_DOCS) $(DATA_DOCS)
	@trap 'kill 0' INT TERM EXIT; \
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
	    --backend-store-uri sqlite:///$(C360_HOME)/mlflow/mlflow.db \
	    --default-artifact-root $(C360_HOME)/mlflow/artifacts & \
	$(BIN)/c360 dagster-home >/dev/null; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000 & \
	$(BIN)/c360 app --host 127.0.0.1 --port 8501 & \
	$(BIN)/python -m http.server 8580 --bind 127.0.0.1 --directory $(DBT_DOCS) >/dev/null 2>&1 & \
	$(BIN)/python -m http.server 8581 --bind 127.0.0.1 --directory $(DATA_DOCS) >/dev/null 2>&1 & \
	wait

# S and M by default; L on request: make bench BENCH_SCALES=L (generates its landing first; add
# BENCH_ARGS="--landing /path/to/landing" to reuse one already generated).
BENCH_SCALES ?= S M
BENCH_ARGS ?=
bench: install
	$(BIN)/c360 bench $(foreach s,$(BENCH_SCALES),--scale $(s)) --results benchmarks/results.json $(BENCH_ARGS)

# The README's pictures (docs/screenshots) retaken from $(C360_HOME), a `make demo` home, in headless
# Chromium; by hand after a UI change (scripts/screenshots.py --only NAME for one).
screenshots: install
	$(BIN)/python scripts/screenshots.py --home $(C360_HOME) --out docs/screenshots

LINTED := c360 ml expectations orchestration cli app scripts tests dbt_project
lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

clean:
	rm -rf $(C360_HOME) dbt_project/target dbt_project/logs
