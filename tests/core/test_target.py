from hasten.core.target import time_to_target


def _work(steps):
    return {"steps": steps, "examples_backpropagated": steps * 10}


CURVE = [[1.0, _work(1), 50.0], [2.0, _work(2), 80.0], [3.5, _work(3), 90.0],
         [5.0, _work(4), 89.0], [6.0, _work(5), 92.0]]


def test_first_point_reaching_target():
    hit = time_to_target(CURVE, 90.0)
    assert (hit.seconds, hit.index, hit.value) == (3.5, 2, 90.0)
    assert hit.work == {"steps": 3, "examples_backpropagated": 30}


def test_target_never_reached():
    assert time_to_target(CURVE, 92.5) is None
    assert time_to_target([], 1.0) is None


def test_lower_is_better():
    losses = [[1.0, _work(1), 3.0], [2.0, _work(2), 2.5], [3.0, _work(3), 1.9]]
    assert time_to_target(losses, 2.5, higher_is_better=False).seconds == 2.0


def test_missing_values_are_skipped():
    curve = [[1.0, _work(1), None], [2.0, _work(2), 95.0]]
    assert time_to_target(curve, 90.0).seconds == 2.0
