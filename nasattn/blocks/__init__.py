"""Built-in blocks. Importing this package registers them (see :mod:`nasattn.registry`)."""

from nasattn.blocks import cbam, conv, coord, dropblock, fusion, heads, se, stem  # noqa: F401
from nasattn.blocks.identity import Identity  # noqa: F401
