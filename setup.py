"""The wheel carries the built-in recipes, training configs and manifests.

They live at the top of the repository (pipelines/, configs/, manifests/), where users and
reviewers look for them; the build copies them into the package as mf2/_data/<kind>/ so that
`mf2 run 2mf2` or `mf2 fetch sample` work from a wheel installed anywhere (mf2.builtin reads
either place). Everything else is declared in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# kind -> (source folder, file suffix); mirrored in mf2/builtin.py
DATA = {"recipes": ("pipelines", ".yaml"), "configs": ("configs", ".yaml"), "manifests": ("manifests", ".csv")}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for kind, (folder, suffix) in DATA.items():
            src = ROOT / folder
            if not src.is_dir():  # a Docker build that forgot a COPY: fail, never ship a wheel without them
                raise FileNotFoundError(f"{src}: the built-in {kind} are missing from the source tree")
            dest = Path(self.build_lib) / "mf2" / "_data" / kind
            dest.mkdir(parents=True, exist_ok=True)
            for f in sorted(src.glob(f"*{suffix}")):
                shutil.copyfile(f, dest / f.name)


setup(cmdclass={"build_py": BuildWithData})
