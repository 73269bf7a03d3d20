"""spectraldl: find H-alpha emission-line stars in LAMOST with a CNN trained on Ondřejov spectra."""
__version__ = "0.1.0"
