"""The semflow block library, grouped by stage family.

Importing this package imports every module below it, and each module registers its
blocks with ``@register("stage.name")``. The engine reaches it through the
``semflow.blocks`` entry point, exactly as it reaches third-party block packages.
"""
import pkgutil
from importlib import import_module

for _info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
    if not _info.name.rsplit(".", 1)[-1].startswith("_"):
        import_module(_info.name)
