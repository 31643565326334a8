import pytest
import torch

from hasten.core.errors import DataError
from hasten.data import pad_collate


def test_rows_are_padded_to_the_longest_row_of_their_batch():
    collate = pad_collate(pad_id=9)
    batch = collate([{"input_ids": [2, 7, 3], "label": 1, "text": "abc"},
                     {"input_ids": [2, 3], "label": 0, "text": "d"}])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["input_ids"].dtype == torch.long


def test_given_masks_and_type_ids_are_padded_with_zeros_and_cut():
    collate = pad_collate(pad_id=5, max_length=3)
    batch = collate([{"input_ids": [1, 2, 3, 4], "token_type_ids": [0, 0, 1, 1],
                      "attention_mask": [1, 1, 1, 1], "label": 2},
                     {"input_ids": [1], "token_type_ids": [0], "attention_mask": [1],
                      "label": 0}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [1, 5, 5]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_items_without_input_ids_are_a_data_error():
    with pytest.raises(DataError, match=r"items need an input_ids field, got \['label'\]"):
        pad_collate()([{"label": 1}])
