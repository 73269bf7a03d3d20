"""Synthetic LAMOST and Ondřejov archives with known truth, for tests, demos and benchmarks.

The generator writes spectra in every layout the readers in :mod:`spectraldl.io` know, with the
header drift and the habits of the real releases (ivar zeroed on emission peaks, dead fibres,
sky residuals, gzip under a plain ``.fits`` name), with a fraction ``synth.mrs_fraction`` of
medium-resolution (MRS) files if set, and a truth table saying what each file (each red-arm table
of an MRS file) holds.

>>> from spectraldl.synth import SynthConfig, make_spectrum
>>> s = make_spectrum(0, seed=1, kind="lamost", cfg=SynthConfig.defaults())
>>> s.truth["class"] in {"absorption", "emission", "double_peak", "galaxy", "qso", "unknown"}
True

``spark-submit.sh synth`` (jobs/synth.py, :func:`spectraldl.synth.job.run_synth`) spreads the
work over Spark tasks; the output is the same whatever the partitioning.
"""
from .generate import LABEL_CODES, TRUTH_COLUMNS, Synth, SynthConfig, generate_indices, make_spectrum, write_spectrum

__all__ = ["LABEL_CODES", "TRUTH_COLUMNS", "Synth", "SynthConfig", "generate_indices", "make_spectrum",
           "write_spectrum"]
