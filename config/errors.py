"""Start-up configuration problems."""


class ConfigError(Exception):
    """Raised at start-up; the message names every problem found."""
