import math

import torch

from hasten.bench import charlm
from hasten.bench.harness import TASKS


def test_the_char_task_windows_the_text_and_scores_bits_per_character():
    parts = charlm.splits()
    ids, vocab = charlm._text()
    assert vocab == 65 and len(ids) == 1_115_394
    assert parts["train"].shape[1] == charlm.BLOCK + 1
    # non-overlapping windows: each starts where the last one's context ended
    assert torch.equal(parts["train"][1][0], parts["train"][0][charlm.BLOCK])
    assert len(parts["train"]) == (int(0.9 * len(ids)) - 1) // charlm.BLOCK
    recipe = TASKS["shakespeare-char"](0, True)
    assert len(recipe.train_data) == 512 and len(recipe.difficulty) == 512
    assert recipe.config.metric == "bpc" and not recipe.config.higher_is_better
    bpc = recipe.evaluate(recipe.model)["bpc"]
    assert abs(bpc - math.log2(65)) < 0.3  # an untrained model is near uniform
    assert recipe.proxy_model().config.layers == 1
