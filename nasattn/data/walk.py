"""Listing an image folder as torchvision's ImageFolder does, without following links out of it or round it.

``torchvision.datasets.folder.make_dataset`` walks with ``os.walk(followlinks=True)``: a link loop
(``b/loop -> ..``) repeats the whole tree under another class, and a class folder linked to ``/`` walks
the disk. Here the order is the same (sorted classes, ``sorted(os.walk(...))``, sorted file names), but
a linked folder is followed only when its real path lies inside the root and was not walked already, and
each real file is listed once (its first path in that order). What was left out is said in notes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


class _Walk:
    """The state of one listing: real folders and files seen, and what was left out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.seen_dirs: set[str] = {self.root_real}
        self.seen_files: set[str] = set()
        self.outside: list[str] = []
        self.repeated: list[str] = []
        self.duplicates = 0

    def enter(self, path: str) -> bool:
        """Whether to walk the folder at ``path`` (recording why not)."""
        real = os.path.realpath(path)
        rel = os.path.relpath(path, self.root)
        if not _inside(real, self.root_real):
            self.outside.append(f"{rel} -> {real}")
            return False
        if real in self.seen_dirs:
            self.repeated.append(rel)
            return False
        self.seen_dirs.add(real)
        return True

    def files(self, folder: str, is_image: Callable[[str], bool]) -> list[str]:
        """The image files of one class folder in ImageFolder's order, each real file once."""
        walked = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = [d for d in dirnames if self.enter(os.path.join(dirpath, d))]
            walked.append((dirpath, dirnames, filenames))
        out = []
        for dirpath, _, filenames in sorted(walked):
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if not is_image(name):
                    continue
                real = os.path.realpath(path)
                if real in self.seen_files:
                    self.duplicates += 1
                    continue
                self.seen_files.add(real)
                out.append(path)
        return out

    def notes(self) -> list[str]:
        name, notes = self.root.name, []
        if self.outside:
            notes.append(f"{name}: not followed: {len(self.outside)} linked folder(s) outside the dataset folder "
                         f"({', '.join(self.outside[:5])}{', ...' if len(self.outside) > 5 else ''})")
        if self.repeated:
            notes.append(f"{name}: not followed: {len(self.repeated)} linked folder(s) already walked, a link loop or "
                         f"a second path to one folder ({', '.join(self.repeated[:5])}{', ...' if len(self.repeated) > 5 else ''})")
        if self.duplicates:
            notes.append(f"{name}: {self.duplicates} file(s) reached by a second path (a link) counted once")
        return notes


def walk_classes(root: Path, classes: list[str], is_image: Callable[[str], bool]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(class, path)`` for every image under ``root/<class>`` in ImageFolder's order, and notes on what
    links were not followed. A class folder that is a link out of ``root`` (or to a folder already
    listed) contributes nothing."""
    walk = _Walk(root)
    walked = [cls for cls in classes if walk.enter(os.path.join(root, cls))]  # every class folder is claimed first
    pairs = [(cls, f) for cls in walked for f in walk.files(os.path.join(root, cls), is_image)]
    return pairs, walk.notes()
