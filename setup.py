"""spectraldl: find H-alpha emission-line stars in LAMOST spectra with Spark, Horovod and a 1-D CNN."""
from setuptools import find_packages, setup

setup(
    name="spectraldl",
    version="0.1.0",
    description="Find H-alpha emission-line stars in whole spectral archives (LAMOST) on Spark",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"spectraldl": ["models/default/*", "report/templates/*", "conf/*.toml"]},
    python_requires=">=3.11,<3.12",
    # The pinned stack lives in requirements.txt (installed by ./spark-submit.sh setup);
    # here only what the library imports, unpinned, so a cluster image can supply it.
    install_requires=["numpy", "pandas", "pyarrow", "pyarrow-hotfix", "astropy", "isal"],
)
