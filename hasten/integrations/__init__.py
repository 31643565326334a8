"""hasten's levers in the loops people already run.

- `hasten.integrations.hf`: the HF `transformers` Trainer (`BudgetCallback`,
  `budget_optimizers`, `SelectiveBackpropTrainer`, `BudgetSamplerTrainer`); extra `hf`.
- `hasten.integrations.lightning`: PyTorch Lightning (`BudgetCallback`, `budget_dataloader`);
  extra `lightning`.
- `hasten.integrations.clock`: one training clock for all processes (used by both callbacks).
- `hasten.integrations.sst2`: a small local text task for the examples and benchmarks.
- `hasten.integrations.hf_bench`: the budget schedule against HF's step-sized schedule at an
  equal wall-clock budget (the suite `hasten bench hf-trainer`).

A plain PyTorch loop needs none of these: `hasten.Budget`, `hasten.budget_lr` and
`hasten.data.CompetenceBatchSampler` are enough (docs/your-loop.md). Each adapter is imported
on its own, so importing this package needs neither framework.
"""
