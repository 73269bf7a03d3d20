"""Errors that mean "the user asked for something that cannot be done", not "the code is wrong".

Jobs exit with status 2 and one line naming the problem for a :class:`UsageError` (as argparse
does for bad arguments), and with status 1 and a traceback for anything unexpected: a
``ValueError`` raised by a bug deep in numpy must not pass for a typo on the command line.
"""
from __future__ import annotations


class UsageError(ValueError):
    """A bad argument, input path, label file or setting; the message names it and says why.

    A ``ValueError`` subclass, so callers that catch ``ValueError`` keep working.
    """


class JobError(RuntimeError):
    """The job could not do its work (exit status 1, one line naming the cause): the warehouse is
    locked, counts do not add up, no usable model or training set. Not a bug: that is any other
    exception, logged with its traceback."""


class CountMismatch(JobError):
    """Per-file outcomes do not add up to the files seen: nothing is committed."""
