import math

import pytest
import tiny_stack
import torch
from torch import nn

from hasten.bench import stack
from hasten.bench.harness import Recipe, run_one, run_suite
from hasten.bench.stack import (
    StackOptions,
    methods_for,
    plain_trials,
)
from hasten.bench.stack_plan import (
    from_validation,
    load_choices,
    plan_methods,
    save_choices,
    write_choices,
)
from hasten.bench.stack_report import (
    lever_verdicts,
    select_levers,
    stack_table,
    verdict,
    write_stack_report,
)
from hasten.core import distributed
from hasten.core.budget import Budget
from hasten.core.config import resolve
from hasten.core.errors import ConfigError, DataError
from hasten.core.sampling import ShuffledSampler
from hasten.core.trainer import TrainConfig, TrainState
from hasten.levers.dynamic import PhasedSampler
from hasten.select.infobatch import InfoBatch
from hasten.steps.selective_backprop import SelectiveBackprop


def _run(method, seed, t, rel=None, final=90.0):
    return {"task": "t", "method": method, "seed": seed, "time_to_target": t,
            "relative_time": rel, "final": final,
            "relative_work": {"examples_backpropagated": 0.5, "flops": 0.6}}


def test_pay_rule_keeps_a_lever_only_if_removing_it_costs_on_every_seed():
    results = {"runs": [
        _run("tuned-baseline", 0, 20.0, 1.0), _run("tuned-baseline", 1, 20.0, 1.0),
        _run("stack", 0, 10.0, 0.5), _run("stack", 1, 20.0, 1.0),
        _run("stack-minus-a", 0, 11.0), _run("stack-minus-a", 1, 21.0),  # +10%, +5%
        _run("stack-minus-b", 0, 10.4), _run("stack-minus-b", 1, None),  # +4%, never
        _run("stack-minus-c", 0, None), _run("stack-minus-c", 1, None),  # never, never
        _run("stack-minus-d", 0, 9.0), _run("stack-minus-d", 1, 30.0),  # faster without it
    ]}
    v = lever_verdicts(results)
    assert v["a"]["costs"] == {0: pytest.approx(0.1), 1: pytest.approx(0.05)}
    assert v["a"]["pays"]
    assert v["b"]["costs"] == {0: pytest.approx(0.04), 1: math.inf} and not v["b"]["pays"]
    assert v["c"] == {"costs": {0: math.inf, 1: math.inf}, "pays": True, "threshold": 0.05}
    assert v["d"]["costs"][0] == pytest.approx(-0.1) and not v["d"]["pays"]
    assert lever_verdicts(results, threshold=0.11)["a"]["pays"] is False
    out = verdict(results)
    assert out["relative_time"] == 0.75 and out["kept"] == ["a", "c"]
    assert out["not_paying"] == ["b", "d"] and out["pass"] is False
    assert verdict({"runs": [_run("stack", 0, 5.0, 0.5), _run("stack-minus-a", 0, 6.0)]}
                   )["pass"] is True


def test_a_seed_where_the_stack_misses_cannot_show_a_lever_pays():
    results = {"runs": [_run("stack", 0, None), _run("stack-minus-a", 0, 5.0)]}
    assert lever_verdicts(results)["a"] == {"costs": {0: None}, "pays": False,
                                            "threshold": 0.05}
    assert verdict(results)["relative_time"] == math.inf
    table = stack_table(results)
    assert "| stack-minus-a | 90.00 (90.00–90.00) | 0.50 | 0.60 | 5.0 | — | 1/1 | costs —: " \
           "does not pay here |" in table


def test_plain_trials_start_from_the_tasks_recipe_and_are_seeded():
    trials = plain_trials(4, seed=0)
    assert trials[0] == {"micro_batch": 256, "lr_scale": 1.0, "precision": "fp32"}
    assert len({tuple(t.values()) for t in trials}) == 4
    assert trials == plain_trials(4, seed=0) and plain_trials(1) == trials[:1]
    assert stack.stack_methods("sst2-small")[-1] == "stack-minus-proxy"
    assert "only-curriculum" in stack.stack_methods("sst2-small")
    assert "only-curriculum" not in stack.stack_methods("fashion-stack")
    assert methods_for(["bf16", "curriculum"], 0.5) == [
        "tuned-baseline", "baseline", "baseline@0.5", "stack", "only-bf16", "stack-minus-bf16"]


def test_phased_sampler_switches_at_the_budget_fraction():
    first, second = ShuffledSampler(10, seed=1), InfoBatch(10, seed=2)
    phased = PhasedSampler(first, second, at=0.5)
    a = phased.sample(4, 0.2)
    assert a == ShuffledSampler(10, seed=1).sample(4) and second.epoch == -1
    b = phased.sample(4, 0.5)
    assert b == InfoBatch(10, seed=2).sample(4)
    again = PhasedSampler(ShuffledSampler(10, seed=1), InfoBatch(10, seed=2), at=0.5)
    again.load_state_dict(phased.state_dict())
    assert again.sample(4, 0.1) == phased.sample(4, 0.1)
    assert again.sample(4, 0.9) == phased.sample(4, 0.9)


def test_selective_backprop_names_the_ids_of_the_rows_it_hands_on():
    x = torch.tensor([[3.0], [1.0], [4.0], [1.5], [5.0], [9.0], [2.0], [6.0]])
    model = nn.Identity()
    state = TrainState(model=model, raw_model=model, optimizer=None, budget=Budget("1steps"),
                       config=TrainConfig(), dist=distributed.Dist(),
                       loss_fn=lambda m, b: b[0][:, 0], train_data=None,
                       batch_indices=[10, 11, 12, 13, 14, 15, 16, 17])
    hook = SelectiveBackprop("topk", keep=0.5, backward_batch=4)
    hook.on_start(state)
    out = hook.on_batch(state, (x, torch.zeros(8)))
    assert out[0][:, 0].tolist() == [4.0, 5.0, 9.0, 6.0]  # the top half, in batch order
    assert state.batch_indices == [12, 14, 15, 17]


@pytest.fixture
def tiny(monkeypatch):
    tiny_stack.register(monkeypatch)  # tiny-stack and tiny-stack-val; the stack applies
    yield
    tiny_stack.unregister()


def test_stack_suite_end_to_end_on_a_tiny_task(tmp_path, monkeypatch, one_thread, tiny):
    monkeypatch.setitem(tiny_stack.EXTRAS, "levers_data", True)  # curriculum and proxy apply
    levers = ["schedule", "bf16", "batch", "curriculum", "infobatch", "proxy"]
    methods = methods_for(levers, 0.6, curriculum=True)
    results = run_suite("stack", quick=True, tasks=["tiny-stack"], methods=methods,
                        options={"levers": levers}, command="test")
    runs = {r["method"]: r for r in results["runs"]}
    assert list(runs) == methods and results["runs"][0]["baseline"] == "tuned-baseline"
    tuned = runs["tuned-baseline"]["notes"]["stack"]
    lever_trials = [t for t in tuned["trials"] if t["kind"] == "lever"]
    plain = [t for t in tuned["trials"] if t["kind"] == "plain"]
    assert [(t["lever"], t["candidate"]) for t in lever_trials] == [
        ("schedule", 0), ("schedule", 1), ("schedule", 2), ("batch", 0), ("batch", 1),
        ("curriculum", 0), ("curriculum", 1)]
    assert len(plain) == len(lever_trials) == 7  # as many trials as the levers' choices
    assert runs["tuned-baseline"]["budget"] == "640ex" and runs["stack"]["budget"] == "384ex"
    applied = runs["stack"]["notes"]["stack"]["levers"]
    assert list(applied) == levers
    chosen = runs["stack"]["notes"]["stack"]["choices"]
    assert set(chosen) == {"schedule", "batch", "curriculum"}
    for name, run in runs.items():
        if name.startswith(("stack", "only-")):  # every run uses the same choices
            assert run["notes"]["stack"]["choices"].items() <= chosen.items()
    assert list(runs["stack-minus-proxy"]["notes"]["stack"]["levers"]) == levers[:-1]
    assert runs["stack"]["overhead_seconds"] > 0  # the proxy's training is charged
    assert runs["only-infobatch"]["notes"]["pruning"]["rule"] == "infobatch"
    assert runs["stack"]["work"]["examples_backpropagated"] == (
        runs["stack"]["work"]["steps"] * 32 * applied["batch"]["scale"])
    paths = write_stack_report(results, tmp_path)
    assert paths["plot"].stat().st_size > 0
    assert "| stack-minus-infobatch |" in paths["table"].read_text()
    # the choices, written once, let another process skip the validation trials
    path = write_choices(results, tmp_path / "choices.json")
    options = resolve(StackOptions, file=path, flags={"levers": levers})
    assert options.choices == {**runs["tuned-baseline"]["notes"]["stack"]["choices"],
                               "trials": tuned["trials"]}
    assert load_choices(path) == options.choices
    assert set(options.choices["levers"]) == {"schedule", "batch", "curriculum"}
    monkeypatch.setattr(stack, "_chosen", {})
    monkeypatch.setattr(stack, "_tune", lambda *a: pytest.fail("tuned again"))
    again, _ = run_one("tiny-stack", "stack", 0, True, options=options)
    assert again["notes"]["stack"]["choices"] == chosen


def test_compile_lever_charges_the_compile_seconds():
    recipe = Recipe(nn.Linear(2, 2), None, None, None, TrainConfig(), overhead_seconds=1.0)
    lever = stack.lever_table(StackOptions())["compile"][0](recipe, {})
    recipe.hooks.append(stack._ChargeCompile(recipe))
    lever.configure(recipe.config)
    assert recipe.config.compile
    state = TrainState(model=None, raw_model=None, optimizer=None, budget=Budget("1steps"),
                       config=recipe.config, dist=distributed.Dist(), loss_fn=None,
                       train_data=None)
    state.budget.ledger.seconds["compile"] = 2.5
    recipe.hooks[-1].on_step_end(state)
    assert recipe.overhead_seconds == 3.5 and recipe.notes["compile_seconds"] == 2.5


def test_validation_keeps_a_lever_that_cost_on_some_seed():
    results = {"runs": [
        _run("stack", 0, 10.0), _run("stack", 1, 20.0), _run("stack", 2, None),
        _run("stack-minus-a", 0, 10.2), _run("stack-minus-a", 1, 21.0),  # +2%, +5%
        _run("stack-minus-b", 0, 10.4), _run("stack-minus-b", 1, 20.2),  # +4%, +1%
        _run("stack-minus-c", 0, None), _run("stack-minus-c", 1, 19.0),  # never, -5%
        _run("stack-minus-d", 0, 9.0), _run("stack-minus-d", 2, 1.0)]}  # -10%, no compare
    chosen = select_levers(results, 0.05)
    assert chosen["kept"] == ["a", "c"] and chosen["dropped"] == ["b", "d"]
    assert chosen["costs"]["a"] == {0: pytest.approx(0.02), 1: pytest.approx(0.05),
                                    2: None}
    assert chosen["costs"]["c"][0] == math.inf and chosen["threshold"] == 0.05
    assert select_levers(results, 0.06)["kept"] == ["c"]
    # the test phase's pay rule is stricter: every seed (none of these pays there)
    assert verdict(results)["kept"] == []


def _val_run(method, seed, t, notes=None):
    return {**_run(method, seed, t), "task": "fashion-stack-val", "notes": notes or {}}


def test_the_test_phase_reads_its_levers_and_choices_from_the_validation_record(tmp_path):
    picked = {"levers": {"schedule": 2, "batch": 0}, "plain": {"micro_batch": 128,
                                                              "lr_scale": 2.0,
                                                              "precision": "bf16"}}
    trials = [{"kind": "plain", "final": 88.0}]
    val = {"runs": [
        _val_run("tuned-baseline", 0, 20.0, {"stack": {"choices": picked, "trials": trials}}),
        _val_run("stack", 0, 10.0), _val_run("stack-minus-bf16", 0, 12.0),
        _val_run("stack-minus-batch", 0, 10.1), _val_run("stack-minus-proxy", 0, None)]}
    options, selection = from_validation(val, "fashion-stack", StackOptions(), "val.json")
    assert options.levers == ["bf16", "proxy"]
    assert options.choices == {**picked, "trials": trials}
    assert selection["kept"] == ["bf16", "proxy"] and selection["dropped"] == ["batch"]
    assert (selection["source"], selection["task"]) == ("val.json", "fashion-stack-val")
    every = selection["kept"] + selection["dropped"]
    assert plan_methods("fashion-stack", options, "levers", every) == [
        "tuned-baseline", "stack", "stack-minus-bf16", "stack-minus-proxy"]
    assert plan_methods("fashion-stack", options, "controls", every) == [
        "only-bf16", "only-batch", "only-proxy", "baseline", "baseline@0.6"]
    assert plan_methods("fashion-stack", StackOptions(fraction=0.5))[-2:] == [
        "baseline", "baseline@0.5"]
    assert "only-curriculum" not in plan_methods("fashion-stack", StackOptions())
    given = StackOptions(choices={"levers": {}, "plain": {}})
    assert from_validation(val, "fashion-stack", given, "v")[0].choices == given.choices
    with pytest.raises(ConfigError, match=r"^v holds runs of fashion-stack-val, not of "
                                          r"sst2-small-val \(the validation twin of "
                                          r"sst2-small\)$"):
        from_validation(val, "sst2-small", StackOptions(), "v")
    with pytest.raises(ConfigError, match="part: 'half' is not one of all, levers, controls"):
        plan_methods("fashion-stack", options, "half")


def test_choices_files_round_trip_and_bad_ones_are_named(tmp_path):
    choices = {"levers": {"batch": 1}, "plain": {"micro_batch": 256}, "trials": []}
    path = save_choices(choices, tmp_path / "c.json")
    assert load_choices(path) == choices
    assert resolve(StackOptions, file=path).choices == choices  # also a --config file
    with pytest.raises(DataError, match=f"^choices file not found: {tmp_path / 'no.json'}$"):
        load_choices(tmp_path / "no.json")
    (tmp_path / "bad.json").write_text('{"choices": {"levers": {}}}')
    with pytest.raises(DataError, match="not a choices file \\(no 'choices' with 'levers' "
                                        "and 'plain'\\)$"):
        load_choices(tmp_path / "bad.json")


def test_the_proxy_and_curriculum_levers_apply_where_the_task_has_their_parts():
    recipe = Recipe(nn.Linear(2, 2), None, None, None, TrainConfig(),
                    notes={"model": "no-such-model"})
    assert [x for x in stack.LEVERS if stack.applies(x, recipe)] == [
        "schedule", "bf16", "batch", "compile", "infobatch"]
    recipe.difficulty, recipe.proxy_model = [1.0, 2.0], lambda: nn.Linear(2, 2)
    assert all(stack.applies(x, recipe) for x in stack.LEVERS)


def test_every_arm_is_evaluated_at_the_same_points_of_the_tuned_baselines_work():
    def recipe(evaluate):
        cfg = TrainConfig(budget="1000ex", micro_batch=10, eval_every=0.1)
        return Recipe(model=nn.Linear(2, 2), train_data=None, loss_fn=None,
                      evaluate=evaluate, config=cfg, options=StackOptions(fraction=0.5))

    def sharded(model, shard=(0, 1)):
        return {"accuracy": 1.0}
    sharded.partial = lambda model, i, n: (i, n)
    sharded.finish = lambda parts: {"accuracy": 0.5}

    base = stack.same_work_eval(recipe(sharded), "tuned-baseline")
    assert base.config.eval_every == pytest.approx(0.02)
    assert base.evaluate(None) == {"accuracy": 0.5}  # the fixed part, mid-training
    assert base.evaluate(None, final=True) == {"accuracy": 1.0}  # all of it at the end
    levered = stack.same_work_eval(recipe(sharded), "stack-minus-bf16")
    assert levered.config.eval_every == pytest.approx(0.04)  # 2% of twice as much work
    plain = stack.same_work_eval(recipe(lambda model: {"accuracy": 1.0}), "baseline@0.5")
    assert plain.config.eval_every == pytest.approx(0.04)
    assert plain.evaluate(None) == {"accuracy": 1.0}  # a set that cannot split: all of it
