"""Where hasten reads its data and keeps its caches: the only settings read from the
environment.

    HASTEN_DATA    the local data folder (`data_root()`); default: `shared/data` beside the
                   repository (the layout of the development machine)
    HASTEN_CACHE   the cache folder (`cache_root()`); default: `~/.cache/hasten`. It holds
                   `corpora/` (prepared text, `hasten.text.prepare`), `tokenizers/`
                   (`hasten.text.tokenizer.cached_tokenizer`) and `probes/` (timing probes
                   of `hasten cram`'s sizing rule, `hasten.pretrain.objectives.sizing`)

Every other setting is a command's option (`--set`, `--config`), so a run folder's
`config.json` says how the run was made. Results: none of its own (docs/benchmarks.md, "How to
read these figures", names the data each section reads).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "HASTEN_DATA"
CACHE_ENV = "HASTEN_CACHE"


def data_root() -> Path:
    """The local data folder: $HASTEN_DATA if set, else `shared/data` beside the repository."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def cache_root() -> Path:
    """The cache folder: $HASTEN_CACHE if set, else `~/.cache/hasten`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hasten"


def cache_dir(kind: str) -> Path:
    """One kind of cache under `cache_root()`: "corpora", "tokenizers" or "probes"."""
    return cache_root() / kind
