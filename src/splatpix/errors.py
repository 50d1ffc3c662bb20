"""User-facing errors. The CLI prints these as one line on stderr and exits non-zero."""


class SplatpixError(Exception):
    """An error caused by the user's input (bad file, bad option, diverged training...)."""
