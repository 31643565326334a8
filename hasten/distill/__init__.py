"""Dataset distillation: synthesise a tiny training set that trains a fresh model almost as
well as the full one.

Methods: DC (gradient matching, Zhao et al. ICLR 2021), DSA (DC with differentiable Siamese
augmentation, Zhao & Bilen ICML 2021), DM (distribution matching, Zhao & Bilen WACV 2023) and
MTT (trajectory matching, Cazenavette et al. CVPR 2022); multi-formation storage for any of
them (IDC, Kim et al. ICML 2022); coreset baselines (random, herding, k-center); the papers'
evaluation protocol; and `hasten distill` on the command line.
"""

from hasten.distill.augment import DSA, DSADraw, apply_draw, dsa_strategy
from hasten.distill.coreset import herding, k_center, random_subset
from hasten.distill.evaluate import EvalResult, evaluate
from hasten.distill.formation import decode, encode
from hasten.distill.matching import (
    gradient_distance,
    layer_gradient_distance,
    mean_embedding_distance,
    parameter_distance,
)
from hasten.distill.methods import METHODS, distill
from hasten.distill.mtt import train_expert, unroll_student
from hasten.distill.synthetic import SyntheticSet

__all__ = [
    "DSA", "DSADraw", "EvalResult", "METHODS", "SyntheticSet", "apply_draw", "decode",
    "distill", "dsa_strategy", "encode", "evaluate", "gradient_distance", "herding", "k_center",
    "layer_gradient_distance", "mean_embedding_distance", "parameter_distance",
    "random_subset", "train_expert", "unroll_student",
]
