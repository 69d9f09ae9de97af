"""Former home of the tiny-model builders, kept importable for its importers: see :mod:`brainalign.features.tiny`."""
from .tiny.models import *  # noqa: F401,F403
from .tiny.models import __all__  # noqa: F401
