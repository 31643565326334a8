"""The text pipeline: everything between text files and the token rows a model trains on.

- `read`: UTF-8 files, folders, `.gz`, JSON lines; Gutenberg boilerplate stripped; NFKC.
- `tokenizer`: the one tokenizer trainer (WordPiece and BPE), with each caller's preset.
- `filter`: Cramming's tokens-per-character filter and a report of a corpus's cleaning.
- `dedup`: exact and MinHash near-duplicate removal.
- `pack`: documents into fixed-length rows; rows into `.npy` shards and back.
- `prepare`: all of it once per corpus and settings, cached, with held-out books.
- `masking`: MLM corruption (BERT's 80/10/10) and sparse-prediction positions.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""
