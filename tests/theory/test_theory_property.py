"""The public claim API: @claim, r[method, metric], r.frontier, property_search."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic.config import ConfigError, SimConfig
from theory import BUILTIN, CLAIMS, Claim, ClaimError, claim, log, property_search
from theory.closed_forms import thm44_losses
from theory.examples import ft_never_raises_global, lp_never_raises_local
from theory.results import evaluate


@claim("local-le-global-model", statement="FT lowers its own client's loss",
       methods=("global", "ft"), metrics=("local_loss", "global_loss"))  # fmt: skip
def ft_lowers_local(r):
    return r["ft", "local_loss"] <= r["global", "local_loss"]


def test_decorator_returns_a_claim_and_registers_nothing():
    assert isinstance(ft_lowers_local, Claim)
    assert ft_lowers_local.id == "local-le-global-model"
    assert ft_lowers_local.methods == ("global", "ft")
    assert "local-le-global-model" not in CLAIMS
    assert ft_lowers_local.space["eta"] == log(0.01, 1.0)  # the default space


def test_builtin_claims_are_declared_through_the_public_api():
    assert tuple(CLAIMS.values()) == BUILTIN
    for c in BUILTIN:
        assert isinstance(c, Claim)
        assert c.full_check
        assert c.paper_conclusion
        assert c.source
        assert not c.hypotheses(c.default)


@pytest.mark.parametrize("config", [SimConfig(), SimConfig(client=2), SimConfig(C=2, d=5)])
def test_results_have_one_value_per_fine_tuning_client(config):
    r = evaluate(ft_lowers_local, config)
    n = 1 if config.client is not None else config.C
    assert r["ft", "local_loss"].shape == (n,)
    assert r["global", "global_loss"].shape == (n,)
    assert list(r.clients) == ([config.client] if config.client is not None else list(range(n)))
    with pytest.raises(KeyError, match="not among the claim's methods"):
        r["lp", "local_loss"]
    with pytest.raises(KeyError, match="not among the claim's metrics"):
        r["ft", "ood_loss"]


def test_results_match_thm44_closed_form():
    config = SimConfig(eta=0.3)  # isotropic, one step
    r = evaluate(ft_lowers_local, config)
    expected = thm44_losses(config)["global_loss_ft"]
    np.testing.assert_allclose(r["ft", "global_loss"], expected, rtol=1e-9)


def test_frontier_starts_at_the_global_model_and_interpolates():
    config = SimConfig(eta=0.2)
    r = evaluate(ft_lowers_local, config)
    f = r.frontier("ft")
    assert f.values[0] == 0.0
    assert f.values[-1] == pytest.approx(0.4)
    np.testing.assert_allclose(f["global_loss"][0], r["global", "global_loss"], rtol=1e-12)
    mid = len(f.values) // 2
    assert f.values[mid] == pytest.approx(config.eta)
    np.testing.assert_allclose(f["local_loss"][mid], r["ft", "local_loss"], rtol=1e-12)
    # Reading the frontier at FT's own local loss gives back FT's global loss.
    np.testing.assert_allclose(f.at_local(r["ft", "local_loss"]), r["ft", "global_loss"], rtol=1e-9)
    # A target below every point of the frontier is unmatched.
    assert np.all(np.isnan(f.at_local(np.full(config.C, -1.0))))


def test_false_claim_is_found_and_shrunk():
    result = property_search(ft_never_raises_global, max_examples=100, seed=0)
    assert not result.holds
    assert result.failed == ["user's claim"]
    config = result.counterexample
    assert config is not None
    # Shrunk to the smallest problem of the space.
    assert (config.m, config.C, config.d) == (1, 2, 3)
    # It fails exactly where the closed form says: tau = 2 c_L eta s > 2 / C.
    assert thm44_losses(config)["tau"] > 2 / config.C
    record = ft_never_raises_global.check(config, None)
    assert record.verdicts() == {"user's claim": False}
    assert record.kind == "user's claim"
    # The shrunk step size is needed: at the default step size the claim holds there.
    assert ft_never_raises_global.check(config.replace(eta=0.2), None).failed() == []
    assert set(result.failing_values) == {"global.global_loss", "ft.global_loss"}
    assert np.all(result.failing_values["ft.global_loss"]
                  > result.failing_values["global.global_loss"])  # fmt: skip
    assert result.set_line is not None
    assert result.set_line.startswith("--set ")


def test_true_claim_holds_on_the_search():
    result = property_search(lp_never_raises_local, max_examples=60, seed=3)
    assert result.holds
    assert result.n_examples == 60
    assert result.counterexample is None
    assert result.failed == []


def test_search_is_deterministic_for_a_seed():
    a = property_search(ft_never_raises_global, max_examples=50, seed=7)
    b = property_search(ft_never_raises_global, max_examples=50, seed=7)
    assert a.to_dict() == b.to_dict()


def test_fixed_keys_are_held():
    result = property_search(ft_never_raises_global, {"C": "3", "covariate": "isotropic"},
                             max_examples=60, seed=1)  # fmt: skip
    assert result.counterexample is not None
    assert result.counterexample.C == 3
    assert result.counterexample.covariate == "isotropic"


def test_builtin_claim_through_the_search():
    result = property_search(CLAIMS["thm-4.4"], max_examples=60, seed=0)
    assert not result.holds
    assert "paper's conclusion" in result.failed
    assert thm44_losses(result.counterexample)["tau"] < 1  # the known region
    assert property_search(CLAIMS["lemma-4.3"], max_examples=20, seed=0).holds


def _returns(value):
    @claim("bad", statement="returns whatever it is given", methods=("ft",),
           metrics=("local_loss",))  # fmt: skip
    def bad(r):
        return value(r) if callable(value) else value

    return bad


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda r: r["ft", "local_loss"], "expected a bool or a bool array"),
        (lambda r: np.ones((2, 2), bool), "returned shape (2, 2)"),
        (lambda r: 1 / 0, "raised ZeroDivisionError"),
        (lambda r: r["lp", "local_loss"], "raised KeyError"),
    ],
)
def test_bad_claims_raise_one_clear_error(function, message):
    with pytest.raises(ClaimError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _returns(function).check(SimConfig(), None)


def test_bad_declarations_and_empty_space():
    with pytest.raises(ConfigError, match="metric='nope' is invalid"):
        claim("x", statement="s", metrics=("nope",))
    with pytest.raises(ConfigError, match="space key 'speed' is invalid"):
        claim("x", statement="s", space={"speed": (0, 1)})
    with pytest.raises(ConfigError, match="expected lo <= hi"):
        claim("x", statement="s", space={"eta": (1.0, 0.1)})
    with pytest.raises(ClaimError, match="search space is empty"):
        property_search(ft_never_raises_global, {"d": 2}, max_examples=5)
    with pytest.raises(ClaimError, match="max-examples"):
        property_search(ft_never_raises_global, max_examples=0)


def _thm44_ft_global(scale):
    def closed_form(config):
        return {("ft", "global_loss"): scale * thm44_losses(config)["global_loss_ft"]}

    return closed_form


@pytest.mark.parametrize(("scale", "failed"), [(1.0, []), (1.01, ["closed form"])])
def test_user_closed_form_is_compared_with_the_simulator(scale, failed):
    declare = claim("ft-global-closed-form", statement="FT's global loss is Thm 4.4's",
                    methods=("global", "ft"), metrics=("global_loss",),
                    closed_form=_thm44_ft_global(scale))  # fmt: skip
    c = declare(lambda r: r["ft", "global_loss"] >= 0)
    record = c.check(SimConfig(eta=0.3), None)
    assert record.failed() == failed
    assert record.verdicts()["user's claim"] is True
    assert set(c.predict(SimConfig())) == {"global_loss_ft"}
    if failed:
        result = property_search(c, {"covariate": "isotropic"}, max_examples=20, seed=0)
        assert result.failed == ["closed form"]


def test_a_closed_form_that_raises_is_one_clear_error():
    bad = claim("bad-closed-form", statement="s", methods=("ft",), metrics=("local_loss",),
                closed_form=lambda config: [1.0])(lambda r: r["ft", "local_loss"] >= 0)  # fmt: skip
    with pytest.raises(ClaimError, match="closed_form raised AttributeError"):
        bad.check(SimConfig(), None)


@pytest.mark.parametrize(("hypotheses", "message"), [
    (lambda config: 1 / 0, "hypotheses raised ZeroDivisionError"),
    (lambda config: "isotropic only", "expected a list of strings"),
])  # fmt: skip
def test_bad_hypotheses_are_one_clear_error(hypotheses, message):
    bad = claim("bad-hypotheses", statement="s", methods=("ft",), metrics=("local_loss",),
                hypotheses=hypotheses)(lambda r: r["ft", "local_loss"] >= 0)  # fmt: skip
    with pytest.raises(ClaimError, match=message):
        property_search(bad, max_examples=3)


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_builtin_search_outcomes_match_the_audit(claim_id):
    # docs/theory-audit.md: only the conclusions of thm-4.4 and thm-4.5 fail inside the
    # hypotheses (kumar-prop-3.2's federated reading is not part of its check).
    result = property_search(CLAIMS[claim_id], max_examples=25, seed=0)
    assert result.holds == (claim_id not in ("thm-4.4", "thm-4.5"))
    if not result.holds:
        assert set(result.failed) <= {"paper's conclusion",
                                      "paper's conclusion over the other clients"}  # fmt: skip


def test_prop32_needs_a_nonzero_head():
    # With lam = 0 and ||V*_com|| = 0 the "random head" has norm ||V*_i|| = 0: FT starts at the
    # solution and the proposition's contrast is void. A search once shrunk to that point.
    config = CLAIMS["kumar-prop-3.2"].default.replace(lam=0.0, vcom_norm=0.0)
    assert any("||V*_i|| > 0" in m for m in CLAIMS["kumar-prop-3.2"].hypotheses(config))
    assert not CLAIMS["kumar-prop-3.2"].hypotheses(config.replace(lam=0.5))


@claim("global-equals-others", statement="FT's global loss equals its loss on the others",
       methods=("ft",), metrics=("global_loss", "global_loss_others"))  # fmt: skip
def _global_is_others(r):
    return r["ft", "global_loss"] != r["ft", "global_loss_others"]


def test_user_claim_others_row_reports_its_own_failing_record():
    # Under the "others" convention global_loss is global_loss_others, so the claim fails
    # there and holds under "global": the others row must report the others record's values.
    from theory._audit_user import audit_user

    rows = audit_user(_global_is_others, 2, np.random.default_rng(0), "eta-log-uniform", None)
    by_kind = {row.kind: row for row in rows}
    assert by_kind["user-claim"].violations == 0
    others = by_kind["user-claim-others"]
    assert others.violations == 2
    assert others.simplest is not None
    values = others.simplest["failing_values"]
    assert set(values) == {"ft.global_loss", "ft.global_loss_others"}
    assert all(np.size(v) > 0 for v in values.values())


@pytest.mark.parametrize("values", [[0.5, 1.5], [1, -1], [float("nan")]])
def test_frontier_refuses_steps_it_cannot_simulate(values):
    r = evaluate(ft_lowers_local, SimConfig(eta=0.2))
    with pytest.raises(ConfigError, match="knob='steps'"):
        r.frontier("ft", knob="steps", values=values)


def test_frontier_steps_reports_the_steps_simulated():
    r = evaluate(ft_lowers_local, SimConfig(eta=0.2))
    f = r.frontier("ft", knob="steps", values=[2.0, 0, 1])
    assert list(f.values) == [0.0, 1.0, 2.0]
    np.testing.assert_allclose(f["local_loss"][0], r["global", "local_loss"], rtol=1e-12)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"covariate": ("isotrpic",)}, "covariate='isotrpic' is invalid"),
        ({"covariate": "isotrpic"}, "covariate='isotrpic' is invalid"),
        ({"m": log(1, 3)}, "m holds integers"),
        ({"m": (1.5, 3)}, "m=1.5 is invalid"),
        ({"loss": ("mse", "l1x")}, "loss='l1x' is invalid"),
    ],
)  # fmt: skip
def test_bad_space_values_are_named_when_the_claim_is_declared(space, message):
    with pytest.raises(ConfigError, match="space") as info:
        claim("bad-space", statement="s", methods=("ft",), metrics=("local_loss",),
              space=space)(lambda r: r["ft", "local_loss"] >= 0)  # fmt: skip
    assert message in str(info.value)
    assert "empty" not in str(info.value)
    assert len(str(info.value).splitlines()) == 1
