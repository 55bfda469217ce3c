# Sluice's two entry points: `make demo` (set up + run Mono, NL and Multi on the bundled samples), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO ?= out/demo
# Versions are immutable, so the demo starts from an empty root each time (ROOT/DATASET/VERSION).
V ?= v1

.PHONY: setup setup-test demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.sluice-base: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.sluice-test: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.sluice-base

setup: $(VENV)/.sluice-base
setup-test: $(VENV)/.sluice-test

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
	$(PY) -m pipelines.datasets list $(DEMO)
	for d in mono nl multi; do \
	    $(PY) -m pipelines.datasets verify $(DEMO)/$$d/$(V) && \
	    $(PY) -m pipelines.report $(DEMO)/$$d/$(V) --output $(DEMO)/$$d-$(V).html || exit 1; \
	done

test: setup-test
	$(PY) -m pytest

bench: setup
	$(PY) bench/mono_pipeline.py

clean:
	rm -rf out
