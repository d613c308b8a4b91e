"""The bad-input corpus (tests/cases/*.yaml) through the CLI: the exit code and the words of the message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nasattn.cli.main import app

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    params = []
    for file in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text()):
            marks = [pytest.mark.xfail(reason=case["xfail"], strict=False)] if case.get("xfail") else []
            params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def _images(root: Path, spec: dict[str, Any], seed: int) -> None:
    from PIL import Image

    folder = root / spec["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    w, h = spec["size"]
    rng = np.random.default_rng(seed)
    for i in range(spec["count"]):
        if spec["mode"] == "I;16":
            img = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
        else:
            channels = {"RGB": 3, "RGBA": 4, "L": 1}[spec["mode"]]
            arr = rng.integers(0, 255, (h, w, channels), dtype=np.uint8)
            img = Image.fromarray(arr[..., 0] if channels == 1 else arr, spec["mode"])
        img.save(folder / f"img{i}.png")


def _fill(value: Any, tmp: Path) -> Any:
    return value.replace("{dir}", str(tmp)) if isinstance(value, str) else value


@pytest.mark.parametrize("case", _load())
def test_case(case, tmp_path, monkeypatch):
    if case.get("needs") == "no-gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("needs a machine without a GPU")
    monkeypatch.setenv("NASATTN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NASATTN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    for name, text in (case.get("files") or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for i, spec in enumerate(case.get("images") or []):
        _images(tmp_path, spec, seed=i)
    args = [str(_fill(a, tmp_path)) for a in case["args"]]
    res = CliRunner().invoke(app, args)
    output = res.output
    assert res.exit_code == case["exit"], f"{args}\n{output}\n{res.exception!r}"
    assert "Traceback" not in output
    for word in case["words"]:
        assert str(_fill(word, tmp_path)).lower() in output.lower(), f"{word!r} not in:\n{output}"
