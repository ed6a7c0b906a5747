"""The one exception type the CLI turns into a one-line error and exit code 2."""


class NasqError(Exception):
    """Bad input from the user: a config, a profile, a path, a run directory.

    The message names what is wrong and what is allowed; the CLI prints it on one line.
    """


class EstimateError(FloatingPointError):
    """An accuracy estimate or a proxy that cannot score this candidate (NaN or infinite): the candidate is
    recorded as failed, with this message."""
