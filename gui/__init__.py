"""semflow's Qt editor and live views (``semflow gui``).

Layering (DESIGN.md): this package imports ``flowgraph`` and talks to it only through
its public API (GraphSpec editing, compile_graph, Runner, Scheduler) and taps;
``flowgraph`` never imports Qt. The editor model (:mod:`gui.model`) holds no widgets,
so it is scriptable and testable without a window.
"""
