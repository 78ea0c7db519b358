"""Eclipse Aidge's `aidge_backend_cpu`: importing it makes the CPU kernels available (they are registered when the
engine loads, so this module only has to load it)."""

import aidge  # noqa: F401
