"""Text pipeline for budgeted BERT pretraining (Geiping & Goldstein 2023, "Cramming").

`corpus`: read, normalise, train a WordPiece tokenizer, filter, pack into fixed-length rows and
store them as token shards. `masking`: masked-language-model corruption (BERT's 80/10/10 rule)
and the positions a sparse prediction head works on.
"""
