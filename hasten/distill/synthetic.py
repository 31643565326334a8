"""The result of dataset distillation: a small labelled image set with its provenance.

`SyntheticSet` holds images (N, *input_shape) float32, labels (N,) int64 and a JSON-able
`meta` dict (dataset, method, ipc, iterations, seconds, ...). It is saved as one safetensors
file whose header carries the metadata as JSON, written to a temporary file and renamed, so
a file on disk is always complete. `save_grid_png` draws one row per class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch.utils.data import TensorDataset

from hasten.core.atomic import atomic_write
from hasten.core.errors import ConfigError, DataError
from hasten.distill.formation import check_factor, decode, decode_labels

META_KEY = "hasten.distill"


@dataclass
class SyntheticSet:
    """A distilled (or coreset) training set, class-balanced with `ipc` images per class."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = self.images.detach().to("cpu", torch.float32).contiguous()
        self.labels = self.labels.detach().to("cpu", torch.int64).contiguous()
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise DataError(f"synthetic set: {len(self.images)} images but labels of shape "
                            f"{tuple(self.labels.shape)}")
        if len(self.images) == 0:
            raise DataError("synthetic set is empty")
        if not torch.isfinite(self.images).all():
            raise DataError("synthetic set has non-finite pixels (distillation diverged?)")
        factor = self.meta.get("factor", 1)
        try:
            check_factor(factor, self.input_shape)
        except ConfigError as err:
            raise DataError(f"synthetic set: {err}") from None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(self.meta.get("num_classes", int(self.labels.max()) + 1))

    @property
    def method(self) -> str:
        """The method that made the set, as a user names it: DC with DSA on is "dsa"."""
        name = str(self.meta.get("method", "?"))
        return "dsa" if name == "dc" and self.meta.get("dsa") else name

    @property
    def ipc(self) -> int:
        """Stored images per class (the largest count, should the set be unbalanced)."""
        return int(torch.bincount(self.labels, minlength=self.num_classes).max())

    @property
    def factor(self) -> int:
        """Multi-formation factor: each stored image decodes to factor^2 training images."""
        return int(self.meta.get("factor", 1))

    def training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels to train on: the stored ones, decoded if factor > 1."""
        with torch.no_grad():
            return decode(self.images, self.factor), decode_labels(self.labels, self.factor)

    def dataset(self) -> TensorDataset:
        """The training set (decoded) as a TensorDataset, for a plain training loop."""
        return TensorDataset(*self.training_set())

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write `path` (safetensors, metadata JSON in its header) atomically."""
        path = Path(path)
        tensors = {"images": self.images.contiguous(), "labels": self.labels.contiguous()}
        metadata = {META_KEY: json.dumps(self.meta, default=str)}
        atomic_write(path, lambda fh: fh.write(save(tensors, metadata=metadata)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SyntheticSet:
        """Read a file written by `save`; DataError if it is missing or not one."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
                if not {"images", "labels"} <= keys:
                    raise DataError(f"{path}: not a synthetic set (tensors {sorted(keys)})")
                images, labels = f.get_tensor("images"), f.get_tensor("labels")
                header = f.metadata() or {}
        except (SafetensorError, OSError) as err:
            raise DataError(f"{path}: not a readable safetensors file ({err})") from None
        try:
            meta = json.loads(header.get(META_KEY, "{}"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: corrupt metadata ({err})") from None
        if not isinstance(meta, dict):
            raise DataError(f"{path}: corrupt metadata (not a JSON object)")
        return cls(images, labels, meta)

    def save_grid_png(self, path: str | Path, max_per_class: int = 10) -> Path:
        """Draw the images as a grid (one row per class, up to `max_per_class` columns).

        Each image is min-max scaled on its own, so the grid shows shapes, not the
        (standardised) intensity scale.
        """
        if len(self.input_shape) != 3 or self.input_shape[0] not in (1, 3):
            raise ConfigError(f"a grid needs images (1 or 3, H, W); this set has examples of "
                              f"shape {self.input_shape}")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        classes = list(range(self.num_classes))
        cols = max(1, min(max_per_class, self.ipc))
        fig, axes = plt.subplots(len(classes), cols, squeeze=False,
                                 figsize=(max(cols * 0.9 + 0.6, 2.8), len(classes) * 0.9))
        names = self.meta.get("class_names")
        for r, c in enumerate(classes):
            idx = (self.labels == c).nonzero().flatten()[:cols].tolist()
            for k in range(cols):
                ax = axes[r][k]
                ax.set_xticks([])
                ax.set_yticks([])
                if k < len(idx):
                    img = self.images[idx[k]]
                    img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-8)
                    if img.shape[0] == 1:
                        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
                    else:
                        ax.imshow(img.permute(1, 2, 0).numpy())
                else:
                    ax.axis("off")
            axes[r][0].set_ylabel(str(names[c]) if names else str(c), rotation=0,
                                  labelpad=12, va="center", fontsize=8)
        title = " ".join(str(part) for part in (self.meta.get("dataset"),
                                                 "method" in self.meta and self.method) if part)
        formed = f" x{self.factor * self.factor}" if self.factor > 1 else ""
        if title:
            fig.suptitle(f"{title}  ipc={self.ipc}{formed}", fontsize=9)
        fig.tight_layout()
        path = Path(path)
        try:
            atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=80))
        finally:
            plt.close(fig)
        return path
