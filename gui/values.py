"""Text <-> value for editable cells: YAML literals, with expressions kept as text."""
from __future__ import annotations

import yaml

from flowgraph.expr import is_expression
from flowgraph.yamlio import plain


def parse_text(text: str):
    """``"10"`` -> 10, ``"1e-3"`` -> 0.001, ``"[0, 5]"`` -> [0, 5], ``"$c * 2"`` stays text."""
    text = text.strip()
    if text[:1] in "[{":                  # a list of expressions stays a list: [$tokens, $c_out]
        try:
            value = yaml.safe_load(text)
            if isinstance(value, (list, dict)):
                return value
        except yaml.YAMLError:
            pass
    if not text or is_expression(text):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:                          # YAML 1.1 reads "1e-3" as a string; we mean the number
            return float(value) if any(ch.isdigit() for ch in value) else value
        except ValueError:
            return value
    return value


def format_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):     # plain(): loaded lists are LineLists, which
        return yaml.safe_dump(plain(value), default_flow_style=True, width=10**6).strip()   # safe_dump refuses
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
