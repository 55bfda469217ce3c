"""Runnable Sluice pipelines: ``python -m pipelines.NAME`` (or ``sluice NAME``)."""

import logging


class _WithoutOptionalGcpNotice(logging.Filter):
    """Beam warns at import that its optional GCP client libraries are absent; locally that is noise."""

    def filter(self, record):
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_WithoutOptionalGcpNotice())
