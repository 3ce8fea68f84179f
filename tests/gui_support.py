"""Fixtures shared by the GUI tests (import them into a test module to use them)."""
import gc

import pytest

TIMEOUT_MS = 120_000          # the CPU may be shared; runs themselves take seconds


@pytest.fixture(autouse=True)
def gui_state(tmp_path, monkeypatch):
    """Autosaves and recent files go to a per-test state folder, never the user's.

    PySide6 can crash (abort, segfault) when the cyclic garbage collector frees Qt
    wrappers that refer to each other (a window's panels, a scene's items), and tests
    leave many behind. No collection during a GUI test; what it left is frozen, never freed.
    """
    monkeypatch.setenv("SEMFLOW_STATE_DIR", str(tmp_path / "state"))
    gc.disable()
    yield
    gc.freeze()
    gc.enable()


@pytest.fixture
def window(qtbot, tmp_path):
    """A main window writing runs under tmp_path; prompts answer "discard"; runs stopped after."""
    from gui.window import MainWindow
    w = MainWindow(out_root=str(tmp_path / "runs"), autosave_ms=10**7)
    w.ask = lambda *a: "discard"
    qtbot.addWidget(w)
    yield w
    if w.run_panel.running:
        w.run_panel.stop_and_wait()
