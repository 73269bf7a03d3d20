"""spectraldl: find H-alpha emission-line stars in LAMOST with a CNN trained on Ondřejov spectra."""
import pyarrow_hotfix  # noqa: F401  (CVE-2023-47248)

__version__ = "0.1.0"
