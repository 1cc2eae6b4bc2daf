"""What ``docs/theory-audit.md`` says was derived for the claims without a section of their own.

Text only (used by :mod:`theory.report`); each entry names the derivation it summarizes.
"""

from __future__ import annotations

#: Claim id -> bullet points of its "derived" paragraph.
DERIVED: dict[str, list[str]] = {
    "lemma-4.3": [
        "Gradients (`derive_gradients`, dimension-free in V via sympy matrix calculus; "
        "entrywise on explicit (k, d) in B): grad_V = 2 c_L B S r, grad_B = 2 c_L V (S r)^T.",
        "One step from ([V*_com; 0], B*) (`derive_one_step`, MatrixSymbol expansion, recomputed "
        "from sympy's gradients on explicit instances): B_1 = B* + a V_0 g^T, V_1 = V_0 + a B* g, "
        "w_1 = w_0 + a (P + cI) g + a^2 (w_0^T g) g, a = 2 c_L eta lambda, g = S_i u_i.",
        "Isotropic (`derive_lemma43`): row j of B_FT = b*_j + 2 c_L eta lambda (V_0)_j u_i, "
        "V_FT = V_0 + 2 c_L eta lambda e_{m+i}, w_FT = w_0 + 2 c_L eta lambda s u_i. The restated "
        "form is confirmed for mse (c_L = 1); with half_mse the factor 2 becomes 1.",
    ],
    "kumar-span": [
        "`derive_span_lemma`: with h = X^T rho, g_B u = 2 c_L V rho^T X u = 0 when X u = 0 "
        "(dimension-free). Checked on simulated FT and LP-FT trajectories with n < d.",
    ],
    "kumar-balance": [
        "`derive_balance_step`: the first-order terms cancel for any quadratic loss (population "
        "or samples), so one GD step changes V V^T - B B^T by exactly eta^2 (g_V g_V^T - g_B "
        "g_B^T) (dimension-free MatrixSymbol identity). The conclusion, invariance under "
        "gradient flow, is checked on the flow itself: over the same time eta * steps the drift "
        "of V V^T - B B^T with step eta/16 must be half the drift with step eta/8 (within 0.1), "
        "i.e. it vanishes linearly with the step.",
    ],
    "kumar-prop-3.2": [
        "With B_0 = B* and exact LP (k <= n samples), LP gives w = w*_i, the FT gradient "
        "vanishes, and the OOD error ||w*_i - B^T V||^2 stays 0 at every step; FT from a random "
        "head keeps a positive OOD error when n < d. Hypothesis k <= n < d is needed: with "
        "population losses (or n >= d) FT from a random head also converges to w*_i (the "
        "first audit found OOD error ~1e-30 after 100 steps), so the contrast disappears.",
        "Federated reading (the paper's transfer of this result to global performance): "
        "LP-FT's global loss over D_G <= FT's. The audit counts where it fails: with many small "
        "steps (FT has not moved all the way) or with n < d samples, FT often ends with the "
        "*lower* global loss. In every failure FT's local loss is higher (`ft_local_higher`: "
        "under-trained FT). At matched local loss (FT traced over up to 20x its steps and read "
        "at LP-FT's local loss, which is 0): where FT never reaches it (`unmatched`, the common "
        "case: it approaches 0 only asymptotically, or not at all with n < d) there is no "
        "matched comparison, and `unmatched_ft_global_still_lower_at_lowest_local` says how "
        "often FT's global loss is still the lower one at its lowest traced local loss.",
        "The closed form (LP-FT's OOD error is 0 at every step) and the conclusion (FT from a "
        "random head keeps a larger OOD error) are counted separately.",
    ],
    "kumar-thm-3.1": [
        "Checked form ([KUMAR] eq. 3.7 with Sigma_ood = I, B_0 = B*, so the feature error term "
        "is 0): sqrt(L_ood(FT_t)) >= cos theta_k(R, S^perp) / sqrt(k) * min(phi, phi^2/||w*||) "
        "/ (1 + ||w*||)^2, phi^2 = |(V_0^T V*)^2 - ||V*||^4|, R = rowspace(B_0), S = "
        "rowspace(X). The theorem is about gradient flow: the check runs 10 steps of eta/10 per "
        "configured step and tests the inequality at every iterate. `max_bound_over_measured` "
        "says how close the closest configuration came to violating it (1 = tight).",
    ],
    "kumar-thm-3.1-tight": [
        "An empirical finding of this toolkit, not the paper's theorem: the same bound with "
        "(1 + ||w*||) in place of (1 + ||w*||)^2 (stronger by the factor 1 + ||w*||) held on "
        "every audited flow. No proof is claimed.",
    ],
}


__all__ = ["DERIVED"]
