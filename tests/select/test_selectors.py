import numpy as np
import pytest

from hasten.core.errors import ConfigError, DataError
from hasten.select import selectors as sel
from hasten.select.per_example import Scores


def scores(values, higher_is="harder", name="s") -> Scores:
    return Scores(np.asarray(values, dtype=float), name, higher_is)


def test_keep_hardest_and_easiest_follow_the_direction():
    hard = scores([0.1, 0.9, 0.5, 0.3])
    assert sel.keep_hardest(hard, 0.5).tolist() == [1, 2]
    assert sel.keep_easiest(hard, 0.5).tolist() == [0, 3]
    easy = scores([0.1, 0.9, 0.5, 0.3], higher_is="easier")  # e.g. AUM, margin: flipped
    assert sel.keep_hardest(easy, 0.5).tolist() == [0, 3]
    assert sel.keep_easiest(easy, 0.5).tolist() == [1, 2]


def test_count_is_rounded_at_least_one_and_ties_go_to_lower_index():
    s = scores([1.0, 1.0, 1.0, 0.0, 0.0])
    assert sel.keep_hardest(s, 0.4).tolist() == [0, 1]  # round(2.0); ties: lower index first
    assert sel.keep_hardest(s, 0.01).tolist() == [0]  # at least one
    assert sel.keep_hardest(s, 1.0).tolist() == [0, 1, 2, 3, 4]
    assert sel.kept_count(10, 0.33) == 3 and sel.kept_count(10, 0.37) == 4


def test_keep_random_is_seeded_sorted_and_unique():
    a = sel.keep_random(100, 0.3, seed=1)
    assert len(a) == 30 and len(set(a.tolist())) == 30 and np.all(np.diff(a) > 0)
    assert a.tolist() == sel.keep_random(100, 0.3, seed=1).tolist()
    assert a.tolist() != sel.keep_random(100, 0.3, seed=2).tolist()
    assert sel.select("random", scores(np.zeros(100)), 0.3, seed=1).tolist() == a.tolist()


def test_class_balanced_keeps_each_class_in_proportion():
    #            class 0 (6 examples)          class 1 (4 examples)
    values = [0.1, 0.6, 0.2, 0.9, 0.65, 0.8, 0.5, 0.05, 0.7, 0.4]
    labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    s = scores(values)
    # keep 5 of 10: 3 of class 0, 2 of class 1
    assert sel.class_balanced(s, labels, 0.5).tolist() == [3, 4, 5, 6, 8]
    assert sel.class_balanced(s, labels, 0.5, which="easiest").tolist() == [0, 1, 2, 7, 9]
    flipped = scores(values, higher_is="easier")
    assert sel.class_balanced(flipped, labels, 0.5).tolist() == [0, 1, 2, 7, 9]
    # plain hardest takes 4 of class 0 and only 1 of class 1
    assert sel.keep_hardest(s, 0.5).tolist() == [1, 3, 4, 5, 8]


def test_class_quotas_sum_exactly_and_break_ties_to_larger_then_lower_class():
    assert sel._class_quotas(np.array([3, 3, 3]), 4).tolist() == [2, 1, 1]
    assert sel._class_quotas(np.array([2, 5, 3]), 5).tolist() == [1, 3, 1]  # 1, 2.5, 1.5
    assert sel._class_quotas(np.array([1, 99]), 10).sum() == 10


def test_ccs_allocation_by_hand():
    # strata of sizes 2 and 8, budget 6: the small one first takes min(2, 6 // 2) = 2,
    # the last takes min(8, 4) = 4
    assert sel.ccs_allocation([2, 8], 6).tolist() == [2, 4]
    # sizes 5, 1, 0, 3, budget 6: visit 1 (size 1): min(1, 6 // 3) = 1; then size 3:
    # min(3, 5 // 2) = 2; then size 5: min(5, 3) = 3; the empty stratum takes nothing
    assert sel.ccs_allocation([5, 1, 0, 3], 6).tolist() == [3, 1, 0, 2]
    assert sel.ccs_allocation([4, 4], 8).tolist() == [4, 4]


def test_strata_are_equal_width_over_the_range():
    v = np.array([0.0, 0.1, 0.49, 0.5, 0.99, 1.0])
    assert sel.strata_of(v, 2).tolist() == [0, 0, 0, 1, 1, 1]
    assert sel.strata_of(np.ones(3), 5).tolist() == [0, 0, 0]


def test_ccs_drops_the_hardest_then_samples_strata_from_the_smallest_up():
    # 12 examples; beta = 1/6 drops the 2 hardest (11, 10); the other 10 span [0, 1] with
    # 2 in the lower half-range and 8 in the upper: keep 6 -> all 2 low + 4 of the 8 high
    values = np.array([0.0, 0.2, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, 5.0, 9.0])
    s = scores(values)
    picked = sel.ccs(s, keep=0.5, beta=1 / 6, strata=2, seed=0)
    assert len(picked) == 6 and 10 not in picked and 11 not in picked
    assert {0, 1} <= set(picked.tolist())
    assert len(set(picked.tolist()) & set(range(2, 10))) == 4
    assert picked.tolist() == sel.ccs(s, keep=0.5, beta=1 / 6, strata=2, seed=0).tolist()
    assert np.all(np.diff(picked) > 0)


def test_ccs_cutoff_uses_its_own_direction():
    values = scores(np.linspace(0, 1, 10))
    aum = scores([-3.0, 5, 5, 5, 5, 5, 5, 5, 5, -2.0], higher_is="easier")  # 0, 9 hardest
    picked = sel.ccs(values, keep=0.8, beta=0.2, strata=5, cutoff_scores=aum)
    assert picked.tolist() == list(range(1, 9))
    with pytest.raises(ConfigError, match=r"ccs: keep=0.9 asks for 9 examples but only 8"):
        sel.ccs(values, keep=0.9, beta=0.2, cutoff_scores=aum)
    with pytest.raises(DataError, match="have 3 values for 10 examples"):
        sel.ccs(values, keep=0.5, cutoff_scores=scores([1.0, 2, 3]))


def test_offset_skips_the_very_hardest():
    s = scores(np.arange(10.0))
    assert sel.offset(s, keep=0.3, offset=0.2).tolist() == [5, 6, 7]
    assert sel.select("offset", s, 0.3, offset=0.0).tolist() == [7, 8, 9]
    with pytest.raises(ConfigError, match="offset=0.5 drops 5 and keep=0.6 asks for 6"):
        sel.offset(s, keep=0.6, offset=0.5)


@pytest.mark.parametrize("keep", [0, 1.5, -0.1, float("nan")])
def test_bad_keep_is_one_clear_line(keep):
    with pytest.raises(ConfigError, match=r"keep must be a fraction in \(0, 1\], got"):
        sel.keep_hardest(scores([1.0, 2.0]), keep)


def test_bad_inputs_name_the_problem():
    s = scores([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(DataError, match="scores 's' have 4 values for 5 examples"):
        sel.select("hardest", s, 0.5, n=5)
    with pytest.raises(DataError, match="have 4 values for 3 examples"):
        sel.class_balanced(s, [0, 1, 0], 0.5)
    with pytest.raises(ConfigError, match="which must be 'hardest' or 'easiest'"):
        sel.class_balanced(s, [0, 1, 0, 1], 0.5, which="middle")
    for beta in (1.0, -0.1):
        with pytest.raises(ConfigError, match=f"beta must be in \\[0, 1\\), got {beta}"):
            sel.ccs(s, 0.5, beta=beta)
    with pytest.raises(ConfigError, match="strata must be >= 1"):
        sel.ccs(s, 0.5, strata=0)
    with pytest.raises(ConfigError, match=r"unknown selector 'top'; known: ccs, class_balanced, "
                                          r"easiest, hardest, offset, random"):
        sel.select("top", s, 0.5)


def test_select_dispatches_with_options():
    s = scores([0.1, 0.9, 0.5, 0.3])
    assert sel.select("hardest", s, 0.5, n=4).tolist() == [1, 2]
    assert sel.select("easiest", s, 0.5).tolist() == [0, 3]
    assert sel.select("class_balanced", s, 0.5, labels=[0, 0, 1, 1]).tolist() == [1, 2]
    assert len(sel.select("ccs", s, 0.5, beta=0.25, strata=2)) == 2
    with pytest.raises(ConfigError, match="selector 'hardest' has no option.s. beta; known: none"):
        sel.select("hardest", s, 0.5, beta=0.1)
    with pytest.raises(ConfigError, match="class_balanced needs labels="):
        sel.select("class_balanced", s, 0.5)
