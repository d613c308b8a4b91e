"""The bad-input corpus (tests/cases/*.yaml) through the CLI: the exit code and the words of the message."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
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
            arr = rng.integers(0, 255, (h, w, channels), dtype=np.uint8) if spec.get("noise", True) else \
                np.zeros((h, w, channels), dtype=np.uint8)
            img = Image.fromarray(arr[..., 0] if channels == 1 else arr, spec["mode"])
        img.save(folder / f"img{i}.png")


def _fill(value: Any, tmp: Path) -> Any:
    return value.replace("{dir}", str(tmp)) if isinstance(value, str) else value


def _alias_bomb(levels: int) -> str:
    """A YAML value of ``levels`` nested 9-fold aliases: 9**levels strings once expanded, a few lines of text."""
    lines = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "[" + ", ".join(lines) + "]"


def _text(text: str, tmp: Path) -> str:
    """A case's file text: ``{dir}`` filled in, ``{bomb:N}`` replaced by an N-level alias bomb."""
    import re

    return re.sub(r"\{bomb:(\d+)\}", lambda m: _alias_bomb(int(m.group(1))), _fill(text, tmp))


@contextlib.contextmanager
def _disk(spec: dict[str, Any] | None, tmp: Path) -> Iterator[None]:
    """Mount a small tmpfs at ``{dir}/disk`` for a fault case (skipped where mounting is not allowed)."""
    if not spec:
        yield
        return
    mnt = tmp / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spec.get('size', '4m')}",
                        f"nasattn-case-{uuid.uuid4().hex[:6]}", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip()}): fault cases need root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fault(spec: dict[str, Any] | None, tmp: Path) -> None:
    """Fill the case's disk to ``leave`` free bytes, and/or remount it read-only."""
    import shutil

    if not spec:
        return
    mnt = tmp / "disk"
    if "leave" in spec:
        (mnt / "filler").write_bytes(b"\0" * max(0, shutil.disk_usage(mnt).free - int(spec["leave"])))
    if spec.get("readonly"):
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


@pytest.mark.parametrize("case", _load())
def test_case(case, tmp_path, monkeypatch):
    if case.get("needs") == "no-gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("needs a machine without a GPU")
    monkeypatch.setenv("NASATTN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NASATTN_DATA", raising=False)
    for name, value in (case.get("env") or {}).items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(tmp_path)
    with _disk(case.get("disk"), tmp_path):
        for name, text in (case.get("files") or {}).items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(_text(text, tmp_path))
        for i, spec in enumerate(case.get("images") or []):
            _images(tmp_path, spec, seed=i)
        for name, target in (case.get("links") or {}).items():
            (tmp_path / name).symlink_to(_fill(target, tmp_path))
        _fault(case.get("disk"), tmp_path)
        args = [str(_text(a, tmp_path)) for a in case["args"]]
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, args)
        seconds = time.perf_counter() - t0
        leftovers = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.name.endswith(".tmp")
                           or ".new-" in p.name or ".old-" in p.name)
    output = res.output
    assert res.exit_code == case["exit"], f"{args}\n{output}\n{res.exception!r}"
    assert "Traceback" not in output
    for word in case["words"]:
        assert str(_fill(word, tmp_path)).lower() in output.lower(), f"{word!r} not in:\n{output}"
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    if case.get("seconds"):
        assert seconds < case["seconds"], f"took {seconds:.1f} s (limit {case['seconds']} s)"
