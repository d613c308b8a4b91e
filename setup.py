"""Build step: the wheel carries the top-level studies/ and search_spaces/ as nasattn/examples/ (one source)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLES = ("studies", "search_spaces")


class BuildPyWithExamples(build_py):
    """``build_py`` that also copies studies/*.yaml and search_spaces/*.yaml into nasattn/examples/."""

    def run(self) -> None:
        super().run()
        here = Path(__file__).resolve().parent
        for folder in EXAMPLES:
            dest = Path(self.build_lib) / "nasattn" / "examples" / folder
            dest.mkdir(parents=True, exist_ok=True)
            for src in sorted((here / folder).glob("*.yaml")):
                shutil.copyfile(src, dest / src.name)


setup(cmdclass={"build_py": BuildPyWithExamples})
