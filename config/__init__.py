"""Settings and the token package catalog, both validated at start-up."""

from config.catalog import Catalog, Pack, load_catalog
from config.errors import ConfigError
from config.settings import Settings, load_settings

__all__ = ["Catalog", "ConfigError", "Pack", "Settings", "load_catalog", "load_settings"]
