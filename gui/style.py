"""Colours: ports by dtype kind (GNU Radio's convention: complex blue, real orange,
int green), block headers by stage."""
from PySide6.QtGui import QColor

KIND_COLORS = {"complex": "#1f6fd1", "real": "#f08a24", "int": "#2e9e44", "bool": "#8e5cc9", "any": "#8c8c8c"}

STAGE_COLORS = {"source": "#5b8def", "extractor": "#7c5cd6", "csirs": "#c05cd6", "estimator": "#d65c9e",
                "precoder": "#d6675c", "channel": "#c9a227", "combiner": "#7fae3f", "decoder": "#3fae8c",
                "sink": "#3f8fae", "classical": "#b5803c", "graph": "#4a6378", "variable": "#7a8a99"}

PROBLEM = QColor("#d62728")
SELECTED = QColor("#ffb000")


def kind_color(kind: str) -> QColor:
    return QColor(KIND_COLORS.get(kind, KIND_COLORS["any"]))


def stage_color(stage: str) -> QColor:
    return QColor(STAGE_COLORS.get(stage, "#6b6b6b"))
