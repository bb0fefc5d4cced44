"""User-facing errors: one clear line naming the flag or file and what to do."""


class ConfigError(ValueError):
    """Bad flags, data or run directory; reported as one line, exit status 2.

    Raised before anything under --model_dir is written or overwritten.
    """
