"""What a run reports: counted outcomes, histograms, local progress, statistics handed to the
driver, and the Parquet side outputs (documents, rejects, examples)."""
