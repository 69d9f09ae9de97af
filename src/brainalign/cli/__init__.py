"""brainalign.cli: the ``brainalign`` command (``main``) and its ``cache`` subcommand (``cache``).

``brainalign.cli:app`` is the console script named in pyproject.toml.
"""
from brainalign.cli.main import app, demo_config_path

__all__ = ["app", "demo_config_path"]
