# Sluice's two entry points: `make demo` (set up + run Mono, NL, Multi and Instruct on the bundled samples), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO ?= out/demo
# Versions are immutable, so the demo starts from an empty root each time (ROOT/DATASET/VERSION).
V ?= v1

.PHONY: setup setup-test setup-train demo train-demo experiments test test-airflow bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.sluice-base: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.sluice-test: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.sluice-base

$(VENV)/.sluice-train: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[train]'
	touch $@ $(VENV)/.sluice-base

setup: $(VENV)/.sluice-base
setup-test: $(VENV)/.sluice-test
setup-train: $(VENV)/.sluice-train

demo: setup
	rm -rf $(DEMO)
	$(PY) -m pipelines.tokenizer --source mono --input samples/mono/manifest.jsonl \
	    --output $(DEMO)/tokenizer/$(V) --vocab_size 8000
	$(PY) -m pipelines.mono --input samples/mono/manifest.jsonl --output $(DEMO)/mono/$(V) \
	    --tokenizer $(DEMO)/tokenizer/$(V)/tokenizer.model --num_shards 4 --seq_len 2048 \
	    --write_documents --write_rejects
	$(PY) -m pipelines.summary $(DEMO)/mono/$(V)
	@# NL reuses the one tokenizer, as CodeGen used one tokenizer for all its corpora.
	$(PY) -m pipelines.nl --input 'samples/nl/train/*.jsonl.zst,samples/nl/val.jsonl.zst' \
	    --output $(DEMO)/nl/$(V) --tokenizer $(DEMO)/tokenizer/$(V)/tokenizer.model --num_shards 4 \
	    --seq_len 2048 --write_documents --write_rejects
	$(PY) -m pipelines.summary $(DEMO)/nl/$(V)
	@# Multi runs the BigQuery SQL file over the bundled github_repos snapshot, with DuckDB.
	$(PY) -m pipelines.multi --bigquery_snapshot samples/multi/snapshot --output $(DEMO)/multi/$(V) \
	    --tokenizer $(DEMO)/tokenizer/$(V)/tokenizer.model --num_shards 4 --seq_len 2048 \
	    --write_documents --write_rejects
	$(PY) -m pipelines.summary $(DEMO)/multi/$(V)
	@# Instruction mixtures: 18 real tasks in 12 FLAN clusters + 2 code tasks from the Mono samples,
	@# every leave-one-cluster-out split in one version (out/demo/instruct/v1/holdout-<cluster>/).
	$(PY) -m pipelines.instruct --tasks samples/instruct/tasks.yaml --output $(DEMO)/instruct/$(V) \
	    --tokenizer $(DEMO)/tokenizer/$(V)/tokenizer.model --all_holdouts --num_shards 2 --mixing_cap 150 \
	    --write_examples
	$(PY) -m pipelines.summary $(DEMO)/instruct/$(V)
	$(PY) -m pipelines.summary $(DEMO)/instruct/$(V)/holdout-sentiment
	$(PY) -m pipelines.datasets list $(DEMO)
	for d in mono nl multi instruct; do \
	    $(PY) -m pipelines.datasets verify $(DEMO)/$$d/$(V) && \
	    $(PY) -m pipelines.report $(DEMO)/$$d/$(V) --output $(DEMO)/$$d-$(V).html || exit 1; \
	done

# Tiny CPU run of the training stages on the demo data version $(V) (nl -> multi -> mono -> instruct on
# one split of the instruct version), then HumanEval, MTPB and prompt perplexity with a few samples.
# Runs `make demo` first if its data is missing.
train-demo: setup-train
	test -f $(DEMO)/instruct/$(V)/manifest.json || $(MAKE) demo
	$(PY) -m training.demo --data $(DEMO) --version $(V) --output $(DEMO)/train/$(V)

# The FLAN experiments (instruction tuning vs none, cluster ladder, model size) with the tiny configs on
# CPU, into $(DEMO)/experiments/ (results.json, PNG, SVG per experiment, index.html). Runs `make demo`
# first if its data is missing, and builds the cluster-ladder instruct version it needs (sentiment and
# nli held out, small caps) from samples/instruct with the demo tokenizer.
EXPERIMENT_FLAGS ?= --steps 4 --limit 8
experiments: setup-train
	test -f $(DEMO)/instruct/$(V)/manifest.json || $(MAKE) demo
	test -f $(DEMO)/instruct/ladder-$(V)/manifest.json || \
	$(PY) -m pipelines.instruct --tasks samples/instruct/tasks.yaml --output $(DEMO)/instruct/ladder-$(V) \
	    --tokenizer $(DEMO)/tokenizer/$(V)/tokenizer.model --holdout_clusters sentiment,nli --cluster_ladder \
	    --num_shards 1 --max_examples_per_task 60 --mixing_cap 60 --seq_len 1024 --max_input_tokens 768 \
	    --max_target_tokens 128
	$(PY) -m training.experiments --data $(DEMO) --version $(V) --ladder $(DEMO)/instruct/ladder-$(V) \
	    --holdout_split holdout-sentiment --output $(DEMO)/experiments $(EXPERIMENT_FLAGS)

test: setup-test
	$(PY) -m pytest

# The Composer DAGs' tests, with Airflow and its providers in their own environment (.ci/airflow-venv:
# installed on first use, then cached outside the clone), where a missing Airflow fails, not skips.
test-airflow:
	airflow_py=$$(bash .ci/airflow-venv) && home=$$(mktemp -d) && \
	AIRFLOW_HOME=$$home AIRFLOW__CORE__LOAD_EXAMPLES=False SLUICE_AIRFLOW_TESTS=required \
	    $$airflow_py -m pytest tests/dataflow_templates/test_airflow_dags.py; \
	status=$$?; rm -rf "$$home"; exit $$status

bench: setup
	$(PY) bench/mono_pipeline.py

clean:
	rm -rf out
