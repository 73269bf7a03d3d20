"""spectraldl: find H-alpha emission-line stars in LAMOST spectra with Spark, Horovod and a 1-D CNN.

The built package is a complete install: besides the library it carries the default model, the
report templates, the configuration defaults and the job entry points. ``conf/`` and ``jobs/`` in
the repository stay the only sources of the last two: the build copies them into the package as
``spectraldl/_conf`` and ``spectraldl/_jobs`` (nothing is committed twice).
"""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Repository folder -> (package subfolder, file patterns) copied into the built package.
BUNDLED = {"conf": ("_conf", ("*.toml", "log4j2.properties")), "jobs": ("_jobs", ("*.py",))}


class BuildWithConfAndJobs(build_py):
    """``build_py`` plus copies of ``conf/`` and ``jobs/`` into the built package (not in editable
    installs: a checkout reads them in place)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for src, (dst, patterns) in BUNDLED.items():
            target = Path(self.build_lib) / "spectraldl" / dst
            if target.exists():
                shutil.rmtree(target)  # files removed from conf/ or jobs/ must not linger in the build
            target.mkdir(parents=True)
            for pattern in patterns:
                for f in sorted((ROOT / src).glob(pattern)):
                    shutil.copy2(f, target / f.name)


setup(
    name="spectraldl",
    version="0.1.0",
    description="Find H-alpha emission-line stars in whole spectral archives (LAMOST) on Spark",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"spectraldl": ["models/default/*", "report/templates/*"]},
    cmdclass={"build_py": BuildWithConfAndJobs},
    entry_points={"console_scripts": ["spectraldl = spectraldl.__main__:main"]},
    python_requires=">=3.11,<3.12",
    # The pinned stack lives in requirements.txt (installed by ./spark-submit.sh setup);
    # here only what the library imports, unpinned, so a cluster image can supply it.
    install_requires=["numpy", "pandas", "pyarrow", "pyarrow-hotfix", "astropy", "isal", "scipy"],
)
