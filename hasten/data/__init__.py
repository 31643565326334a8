"""Data loading and sampling: index samplers, batch gathering, torch samplers driven by a
budget's progress (`CompetenceBatchSampler`, `CompetenceIndexSampler`), and dynamic padding
for tokenized text (`pad_collate`)."""

from hasten.data.batch_sampler import CompetenceBatchSampler, CompetenceIndexSampler
from hasten.data.padding import pad_collate

__all__ = ["CompetenceBatchSampler", "CompetenceIndexSampler", "pad_collate"]
