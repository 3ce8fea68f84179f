"""Errors the engine raises. Each renders as one line a user can act on."""
import difflib


def did_you_mean(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelt ``name``, else ''."""
    if len(str(name)) > 100:
        return ""         # no real typo is this long, and difflib is quadratic in it
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class SemflowError(Exception):
    """Base class: the CLI prints ``semflow: error: <message>`` and exits non-zero."""


class RegistryError(SemflowError):
    """Unknown or duplicate block type id."""


class GraphError(SemflowError):
    """A graph file cannot be read (missing file, bad YAML, wrong structure)."""


class ExpressionError(SemflowError):
    """An expression refers to something unknown or uses a forbidden construct."""


class ValidationError(SemflowError):
    """A graph failed validation; ``problems`` holds every one-line message."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NonFiniteError(SemflowError):
    """A tensor became NaN/Inf; the message names the block and port that first produced it."""

    def __init__(self, block, port, where=""):
        self.block, self.port = block, port
        super().__init__(f"non-finite value (NaN/Inf) first produced by block '{block}' at port '{port}'"
                         + (f" ({where})" if where else ""))


class BlockError(SemflowError):
    """A block's forward raised; the message names the block, its type and where."""

    def __init__(self, block, type_id, exc, where=""):
        self.block, self.type_id, self.original = block, type_id, exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        super().__init__(f"block '{block}' ({type_id}) failed" + (f" ({where})" if where else "")
                         + f": {type(exc).__name__}: {first}")


def brief(value, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to a short prefix with its length when long.

    Error messages echo bad values; a 1 MB string must not become a 1 MB line."""
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
