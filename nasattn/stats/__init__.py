"""Statistics: tests, intervals, corrections and correlations (scipy/statsmodels); no I/O.

Public API (import from here):

* runs and pairs: :func:`summarize`, :func:`compare` (paired over runs), :func:`sign_flip_p`,
  :func:`sign_count`, :func:`resolution`, :func:`improvement_probability`, :func:`two_level_ci`;
* corrections: :func:`adjust_pvalues`, :class:`Family`;
* McNemar per run: :func:`mcnemar_exact`, :func:`mcnemar_from_predictions`;
* correlations: :func:`correlation`, :func:`top_k_overlap`, :func:`regret`;
* an ablation's table: :func:`analyze` (one summary row per variant);
* sentences: :func:`verdict`, :func:`rediscovery_verdict`.
"""

from nasattn.stats.bootstrap import BootstrapCI, two_level_ci, two_level_resamples
from nasattn.stats.correlation import Correlation, correlation, not_retrained, regret, top_k_overlap
from nasattn.stats.mcnemar import MODEL_LEVEL, McNemar, mcnemar_exact, mcnemar_from_predictions, paired_correct
from nasattn.stats.multitest import CORRECTIONS, Family, adjust_pvalues
from nasattn.stats.paired import MIN_SEEDS, Comparison, Summary, compare, summarize
from nasattn.stats.runs import MIN_RUNS, improvement_probability, resolution, sign_count, sign_flip_p
from nasattn.stats.study import DEFAULT_PRIMARY, METRICS, PRIMARY_METRICS, analyze
from nasattn.stats.verdict import rediscovery_verdict, significant, verdict

__all__ = [
    "CORRECTIONS", "DEFAULT_PRIMARY", "METRICS", "MIN_RUNS", "MIN_SEEDS", "MODEL_LEVEL", "PRIMARY_METRICS",
    "BootstrapCI", "Comparison", "Correlation", "Family", "McNemar", "Summary",
    "adjust_pvalues", "analyze", "compare", "correlation", "improvement_probability", "mcnemar_exact",
    "mcnemar_from_predictions", "not_retrained", "paired_correct", "rediscovery_verdict", "regret", "resolution", "sign_count",
    "sign_flip_p", "significant", "summarize", "top_k_overlap", "two_level_ci", "two_level_resamples", "verdict",
]
