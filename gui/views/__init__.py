"""Live views fed by taps (see base.py)."""
from .constellation import ConstellationView
from .control import ControlView
from .images import ImageGridView
from .maps import HeatmapView, MaskView
from .plots import CurvesView, SweepView

ALL_VIEWS = (ConstellationView, MaskView, CurvesView, SweepView, ImageGridView, HeatmapView)

__all__ = ["ALL_VIEWS", "ConstellationView", "ControlView", "CurvesView", "HeatmapView", "ImageGridView",
           "MaskView", "SweepView"]
