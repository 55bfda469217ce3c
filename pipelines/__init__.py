"""Runnable Sluice pipelines: ``python -m pipelines.NAME`` (or ``sluice NAME``), each thin: parse,
build the graph, run, publish.

- one module per command: ``tokenizer``, ``mono``, ``nl``, ``multi``, ``instruct`` (publish versions),
  ``datasets``, ``summary``, ``report`` (inspect them); ``cli`` lists them once (``sluice``).
- ``driver``: one-line usage errors, argument types, runner options, exit statuses.
- ``flags``: the flag groups the pipelines share and the checked configs they give.
- ``run``: one run of one version (``Run``: claim, staging, mode, counters, publish), with
  ``claims`` (who owns a staging folder), ``versions`` (the folder layout and file moves),
  ``manifests`` (manifest assembly) and ``job_metrics`` (a finished job's counters).
- ``corpus``: the sequence Mono, NL and Multi share after their curation (``CorpusRun``).
"""

import logging


class _WithoutOptionalGcpNotice(logging.Filter):
    """Beam warns at import that its optional GCP client libraries are absent; locally that is noise."""

    def filter(self, record):
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_WithoutOptionalGcpNotice())
