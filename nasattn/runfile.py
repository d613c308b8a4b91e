"""The fields shared by the files that launch Ray runs of trials: a search study and an ablation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nasattn.tune.resources import RayConfig, Resources


class StrictModel(BaseModel):
    """A config section that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid")


class RunFile(StrictModel):
    """Name, data, per-trial resources, Ray cluster, output folder and report of a study or ablation file.

    Subclasses set their own ``name`` and ``output`` defaults.
    """

    name: str = "run"
    description: str = ""
    data: str | None = Field(None, description="Dataset folder/zip, or 'eurosat-mini'; None: $NASATTN_DATA.")
    subset: float | None = Field(None, gt=0, le=1, description="Stratified fraction of the dataset to use.")
    download: bool = False
    resources: Resources = Field(default_factory=Resources)
    ray: RayConfig = Field(default_factory=RayConfig)
    output: str = Field("runs", description="Output folder (relative to the working directory).")
    report: bool = True
