"""Each corpus's read-and-filter chain, one composite transform shared by the corpus pipeline and
the tokenizer pipeline, so a tokenizer samples exactly what the corpus keeps."""
