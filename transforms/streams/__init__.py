"""The tail every corpus shares: tokenize, shuffle globally, pack into fixed-length sequences and
write TFRecord and Arrow shards; and tokenizer training."""
