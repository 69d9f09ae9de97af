"""Former home of the tiny video-LLaVA / IDEFICS builders, kept importable: see :mod:`.tiny.extra`."""
from .tiny.extra import *  # noqa: F401,F403
from .tiny.extra import __all__  # noqa: F401
