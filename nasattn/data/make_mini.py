"""Rebuild the bundled ``eurosat-mini`` sample: ``python -m nasattn.data.make_mini EuroSAT_RGB.zip``.

Draws a fixed number of images per class (default 50) at random with a fixed seed from the official
EuroSAT RGB zip and copies the JPEG files unchanged into ``nasattn/data/eurosat_mini/<Class>/``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

from nasattn.data.sources import MINI_DIR


def make_mini(zip_path: Path, out: Path = MINI_DIR, per_class: int = 50, seed: int = 0) -> dict[str, int]:
    by_class: dict[str, list[str]] = defaultdict(list)
    with zipfile.ZipFile(zip_path) as zf:
        for name in sorted(zf.namelist()):
            parts = Path(name).parts
            if name.lower().endswith(".jpg") and len(parts) >= 2:
                by_class[parts[-2]].append(name)
        rng = random.Random(seed)
        for cls, names in sorted(by_class.items()):
            dest = out / cls
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for name in sorted(rng.sample(names, per_class)):
                (dest / Path(name).name).write_bytes(zf.read(name))
    return {cls: per_class for cls in sorted(by_class)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("zip", type=Path)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(make_mini(a.zip, per_class=a.per_class, seed=a.seed))


if __name__ == "__main__":
    main()
