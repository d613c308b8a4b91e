"""From an ArchSpec to a network: the builder, fusion-alpha readout and model profiling."""

from nasattn.models.builder import NasNet, build_model, fusion_alphas
from nasattn.models.profile import count_flops, profile_model

__all__ = ["NasNet", "build_model", "fusion_alphas", "count_flops", "profile_model"]
