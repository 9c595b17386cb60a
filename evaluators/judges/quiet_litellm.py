"""Import litellm lazily (5 s of import time) and once, with its console banners off."""

from functools import cache
from types import ModuleType

import evaluators.offline  # noqa: F401  (offline env before litellm reads it)


@cache
def litellm_module() -> ModuleType:
    import litellm

    litellm.suppress_debug_info = True  # its "Give Feedback" banners would break JSON output
    litellm.telemetry = False
    return litellm
