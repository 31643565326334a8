"""FLOP counting: torch's `FlopCounterMode`, plus the CPU attention kernels it misses.

On CPU, `F.scaled_dot_product_attention` runs `aten._scaled_dot_product_flash_attention_for_cpu`
(and its `_backward`), which torch's counter has no formula for, so an encoder's attention
matmuls (2 x 2 x seq x hidden per token per layer, forward) counted as zero. `flop_counter()`
maps those two ops to the formulas torch uses for the CUDA flash kernel, so a CPU count equals
a GPU count of the same model.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def _attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _attention_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def _cpu_attention_formulas() -> dict:
    """Formulas (on shapes; FlopCounterMode passes them) for the CPU attention kernels."""
    ops = torch.ops.aten
    mapping = {}
    if hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[ops._scaled_dot_product_flash_attention_for_cpu] = _attention
    if hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[ops._scaled_dot_product_flash_attention_for_cpu_backward] = _attention_backward
    return mapping


def flop_counter() -> FlopCounterMode:
    """A silent `FlopCounterMode` that also counts CPU scaled-dot-product attention."""
    return FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
