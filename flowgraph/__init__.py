"""semflow engine: typed blocks, YAML graphs, validation, scheduler, training, runs, taps.

Headless by design: nothing here imports Qt or the block library.
"""
from .block import Block, Param, Port, Sink, Source, STAGES, tensor_kind
from .errors import (BlockError, ExpressionError, GraphError, NonFiniteError, RegistryError,
                     SemflowError, ValidationError)
from .registry import register

__version__ = "0.1.0"

__all__ = ["Block", "Param", "Port", "Sink", "Source", "STAGES", "tensor_kind", "register",
           "SemflowError", "GraphError", "ExpressionError", "RegistryError",
           "ValidationError", "NonFiniteError", "BlockError", "__version__"]
