"""How far a search's cheap ranking can be trusted: training-free scores and the fidelity study."""

from nasattn.engine.zero_cost import ZC_COLUMNS, gradnorm_score, naswot_score, score_batch, synflow_score, zero_cost_scores

__all__ = ["gradnorm_score", "naswot_score", "score_batch", "synflow_score", "zero_cost_scores", "ZC_COLUMNS"]
