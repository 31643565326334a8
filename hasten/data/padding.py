"""A collate function for tokenized text: rows of different lengths padded to the longest row
of their own batch (dynamic padding), with the attention mask built alongside.

    collate = pad_collate(pad_id=0)
    batch = collate([{"input_ids": [2, 7, 3], "label": 1}, {"input_ids": [2, 3], "label": 0}])
    # {"input_ids": [[2, 7, 3], [2, 3, 0]], "attention_mask": [[1, 1, 1], [1, 1, 0]],
    #  "labels": [1, 0]}  (tensors)

Pass it as `collate_fn` to hasten's `train()`, a DataLoader or the HF Trainer
(`data_collator=`). Where it is used: docs/your-loop.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from hasten.core.errors import DataError

# sequence fields padded with the pad id, and those padded with 0 whatever the pad id
PAD_WITH_ID = ("input_ids",)
PAD_WITH_ZERO = ("token_type_ids", "attention_mask", "special_tokens_mask")


def pad_collate(pad_id: int = 0, label_key: str = "label", labels_as: str = "labels",
                max_length: int | None = None) -> Callable[[Sequence[Mapping[str, Any]]],
                                                           dict[str, torch.Tensor]]:
    """A collate function for items that are mappings of token-id lists (`input_ids`, and
    optionally `token_type_ids`, `attention_mask`) and scalars (the label).

    Rows are padded on the right to the longest row of the batch (cut to `max_length` if
    given); `attention_mask` is built from the row lengths when the items lack it. The label
    field `label_key` is returned as `labels_as` (the name HF models take). Other scalar
    fields become tensors; other fields are dropped.
    """
    def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not items:
            raise DataError("cannot collate an empty batch")
        if "input_ids" not in items[0]:
            raise DataError(f"items need an input_ids field, got {sorted(items[0])}")
        rows = [list(item["input_ids"])[:max_length] for item in items]
        width = max(1, max(len(r) for r in rows))
        out: dict[str, torch.Tensor] = {}
        out["input_ids"] = _pad(rows, width, pad_id)
        if "attention_mask" not in items[0]:
            out["attention_mask"] = _pad([[1] * len(r) for r in rows], width, 0)
        for key, value in items[0].items():
            if key == "input_ids":
                continue
            if key in PAD_WITH_ZERO:
                out[key] = _pad([list(it[key])[:max_length] for it in items], width, 0)
            elif isinstance(value, (int, float, bool)) or (
                    isinstance(value, torch.Tensor) and value.dim() == 0):
                name = labels_as if key == label_key else key
                out[name] = torch.as_tensor([it[key] for it in items])
        return out

    return collate


def _pad(rows: list[list[int]], width: int, value: int) -> torch.Tensor:
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            out[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out
