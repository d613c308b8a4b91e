"""nasattn: neural architecture search and ablation for attention CNNs."""

__version__ = "0.1.0"
