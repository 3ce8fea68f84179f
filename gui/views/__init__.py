"""Live views fed by taps (see base.py)."""
from .beams import BeamPatternView
from .constellation import ConstellationView
from .control import ControlView
from .images import ImageGridView
from .maps import HeatmapView, MaskView
from .plots import CurvesView, SweepView
from .segmentation import SegmentationView

ALL_VIEWS = (ConstellationView, MaskView, CurvesView, SweepView, ImageGridView, HeatmapView, SegmentationView,
             BeamPatternView)

__all__ = ["ALL_VIEWS", "BeamPatternView", "ConstellationView", "ControlView", "CurvesView", "HeatmapView", "ImageGridView",
           "MaskView", "SegmentationView", "SweepView"]
