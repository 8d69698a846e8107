"""User-facing error types.

Every error a user can cause (bad config, bad media, bad weights, bad corpus) is raised as a
subclass of ``PPGanError`` with a one-line message saying what is wrong, where, and what to do.
Command-line tools catch ``PPGanError`` (see ``ppgan.utils.cli``), print that line and exit
non-zero, so users never see a traceback for their own mistakes.
"""


class PPGanError(Exception):
    """Base class for errors caused by user input, reported as one line."""


class ConfigError(PPGanError):
    """A config file, key, value or registry name is wrong."""


class MediaError(PPGanError):
    """An audio, video or image file is missing, unreadable or unsuitable."""


class WeightsError(PPGanError):
    """A weights or checkpoint file is missing, corrupt, unsafe or for another network."""


class DataError(PPGanError):
    """A corpus, filelist or split is missing, empty or malformed."""


class TrainingError(PPGanError):
    """Training cannot go on (for example a NaN loss)."""


class OutputError(PPGanError):
    """An output file cannot be written (full disk, no permission, a file where a folder belongs)."""
