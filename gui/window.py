"""The main window: canvas in the middle, palette left, properties / variables / problems
right, run panel and live views below. Wiring only; behaviour lives in the parts."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QListWidget, QMainWindow,
                               QMessageBox, QTabBar, QTabWidget, QToolButton)

from .canvas import GraphScene, GraphView
from .model import EditorModel, discard_autosave, recovery_for
from .palette import Palette
from .properties import PropertyPanel
from .recent import RecentFiles
from .run_panel import RunPanel
from .tapbridge import TapBridge
from .variables import VariablesPanel
from .views import ALL_VIEWS, ControlView

FILE_FILTER = "semflow graphs (*.yaml *.yml)"


class MainWindow(QMainWindow):
    def __init__(self, out_root: str | None = None, autosave_ms: int = 30_000, graph_dirs=("graphs",)):
        super().__init__()
        self.model = EditorModel(self)
        self.scene = GraphScene(self.model, self)
        self.view = GraphView(self.scene)
        self.canvas_tabs = QTabWidget()              # the graph, then sub-graphs opened from it
        self.canvas_tabs.addTab(self.view, "graph")
        self.setCentralWidget(self.canvas_tabs)
        #: asks the user a yes/no/cancel question; tests replace it
        self.ask = self._ask_box
        self.recent = RecentFiles()

        self.blocks_palette = Palette(graph_dirs)
        self.properties = PropertyPanel(self.model)
        self.variables = VariablesPanel(self.model)
        self.problems = QListWidget()
        self.problems.setWordWrap(True)                   # long validate lines are read whole
        self.problems.setTextElideMode(Qt.ElideNone)
        self.bridge = TapBridge(parent=self)
        self.run_panel = RunPanel(self.model, self.bridge, out_root)
        self.views = {cls.title: cls(self.model) for cls in ALL_VIEWS}
        self.control = ControlView(self.model)
        self.view_tabs = QTabWidget()
        for title, v in self.views.items():
            self.view_tabs.addTab(v, title)
            self._watch(v)
            v.tapsChanged.connect(lambda v=v: (v.clear(), self._watch(v)))   # old tap's data goes

        self.docks = {}
        self._dock("Blocks", self.blocks_palette, Qt.LeftDockWidgetArea)
        right = QTabWidget()
        right.addTab(self.properties, "Properties")
        right.addTab(self.variables, "Variables")
        right.addTab(self.problems, "Problems")
        from .stages import StageEditor, StudyEditor
        self.stage_editor = StageEditor(self.model, self.scene)
        self.study_editor = StudyEditor(self.model)
        right.addTab(self.stage_editor, "Train")
        right.addTab(self.study_editor, "Evaluate / presets")
        self.side_tabs = right
        self._dock("Edit", right, Qt.RightDockWidgetArea)
        self._dock("Run", self.run_panel, Qt.BottomDockWidgetArea)
        self._dock("Live views", self.view_tabs, Qt.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["Run"], self.docks["Live views"], Qt.Horizontal)
        self._dock("Runtime control", self.control, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["Run"], self.docks["Runtime control"])
        from .runs import RunHistory
        self.run_history = RunHistory([out_root or "runs"])
        self._dock("Runs", self.run_history, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["Run"], self.docks["Runs"])
        self.run_history.openRequested.connect(self.open_run)
        self.run_history.overlayRequested.connect(lambda dirs: (self.views["PSNR vs SNR"].set_overlays(dirs),
                                                                self.view_tabs.setCurrentWidget(
                                                                    self.views["PSNR vs SNR"])))
        self.run_panel.runFinished.connect(self.run_history.refresh)
        self.docks["Run"].raise_()
        self.resizeDocks([self.docks["Run"], self.docks["Live views"]], [600, 700], Qt.Horizontal)
        self.resizeDocks([self.docks["Live views"]], [380], Qt.Vertical)
        self.resizeDocks([self.docks["Blocks"], self.docks["Edit"]], [220, 380], Qt.Horizontal)
        self.problem_label = QLabel()
        self.statusBar().addPermanentWidget(self.problem_label)

        self._menus()
        self.model.validated.connect(self._show_problems)
        self.model.changed.connect(self._on_model_changed)
        self.model.dirtyChanged.connect(lambda _d: self._update_title())
        self.scene.selectionChanged.connect(self._on_selection)
        self.scene.blockActivated.connect(self._activate_block)
        self.scene.emptyDoubleClicked.connect(self.block_search)
        self.scene.wireDropped.connect(self.offer_fitting_blocks)
        self.scene.variableActivated.connect(self.edit_variable)
        self.scene.message.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        self.blocks_palette.addRequested.connect(self.add_block_at_center)
        self.problems.itemDoubleClicked.connect(self._select_problem_block)
        self.control.variableChanged.connect(self.run_panel.set_variable)
        self.run_panel.stageProgress.connect(self._on_stage_progress)
        self.bridge.watch("live.frame", self.control.on_frame, 0.0)
        self.run_panel.runStarted.connect(lambda: [v.clear() for v in self.views.values()])
        self.autosave_timer = QTimer(self, interval=autosave_ms)
        self.autosave_timer.timeout.connect(self._autosave)
        self.autosave_timer.start()
        self._show_problems()
        self._update_title()
        self.resize(1500, 950)

    # ---- construction ----------------------------------------------------------------------
    def _dock(self, title, widget, area):
        d = QDockWidget(title, self)
        d.setObjectName(title)
        d.setWidget(widget)
        self.addDockWidget(area, d)
        self.docks[title] = d
        return d

    def _watch(self, view):
        self.bridge.unwatch(view.on_tap)
        for name, interval in view.wanted().items():
            self.bridge.watch(name, view.on_tap, interval)

    def _action(self, menu, text, slot, shortcut=None, widget=None):
        a = QAction(text, widget or self)
        if shortcut is not None:
            a.setShortcut(shortcut)
        a.triggered.connect(slot)
        if widget is not None:                      # canvas-only keys leave text fields alone
            a.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            widget.addAction(a)
        menu.addAction(a)
        return a

    def _menus(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "New", self.new_file, QKeySequence.New)
        self._action(f, "Open…", lambda: self.open_file(), QKeySequence.Open)
        self._action(f, "Save", self.save, QKeySequence.Save)
        self._action(f, "Save as…", self.save_as, QKeySequence.SaveAs)
        self.recent_menu = f.addMenu("Open recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        f.addSeparator()
        self._action(f, "Quit", self.close, QKeySequence.Quit)
        e = mb.addMenu("&Edit")
        undo = self.model.undo.createUndoAction(self, "Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.model.undo.createRedoAction(self, "Redo")
        redo.setShortcut(QKeySequence.Redo)
        e.addActions([undo, redo])
        e.addSeparator()
        self._action(e, "Copy", self.copy, QKeySequence.Copy, self.view)
        self._action(e, "Paste", self.paste, QKeySequence.Paste, self.view)
        self._action(e, "Delete", self.scene.delete_selected, QKeySequence.Delete, self.view)
        self._action(e, "Select all", lambda: [i.setSelected(True) for i in self.scene.blocks.values()],
                     QKeySequence.SelectAll, self.view)
        e.addSeparator()
        self._action(e, "Make graph block from selection…", lambda: self.make_subgraph(), "Ctrl+G", self.view)
        self._action(e, "Find block…", self.find_block, QKeySequence.Find)
        e.addSeparator()
        self._action(e, "Auto layout", self.model.relayout)
        self._action(e, "Fit view", self.view.fit, "F")
        z = mb.addMenu("&Zoom")
        zin = self._action(z, "Zoom in", lambda: self.view.zoom(1.25))
        zin.setShortcuts([QKeySequence("Ctrl++"), QKeySequence("Ctrl+=")])
        self._action(z, "Zoom out", lambda: self.view.zoom(0.8), QKeySequence.ZoomOut)
        self._action(z, "Zoom 100 %", lambda: self.view.zoom(None), "Ctrl+0")
        snap = self._action(z, "Snap to grid", lambda on: setattr(self.scene, "snap", on))
        snap.setCheckable(True)
        snap.setChecked(True)
        r = mb.addMenu("&Run")
        self._action(r, "Run", lambda: self.run_panel.start(), "F5")
        self._action(r, "Pause / resume", lambda: self.run_panel.pause_btn.toggle(), "F6")
        self._action(r, "Stop", self.run_panel.stop, "Shift+F5")
        v = mb.addMenu("&View")
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        h = mb.addMenu("&Help")
        self._action(h, "Keys and gestures", self.show_help, QKeySequence.HelpContents)
        self._action(h, "Block documentation", self._doc_of_selection)
        self._action(h, "Live demo: PSNR follows the SNR slider", self.start_demo)
        tb = self.addToolBar("Run")               # always visible: Stop never hides behind a tab
        tb.setObjectName("run-toolbar")
        self.run_action = tb.addAction("▶ Run", lambda: self.run_panel.start())
        self.pause_action = tb.addAction("❚❚ Pause")
        self.pause_action.setCheckable(True)
        self.pause_action.toggled.connect(self.run_panel.pause_btn.setChecked)
        self.run_panel.pause_btn.toggled.connect(self.pause_action.setChecked)
        self.run_panel.pause_btn.toggled.connect(
            lambda on: self.pause_action.setText("▶ Resume" if on else "❚❚ Pause"))
        self.stop_action = tb.addAction("■ Stop", self.run_panel.stop)
        self.run_panel.runningChanged.connect(self._on_running)
        self._on_running(False)

    def _on_stage_progress(self, stage: str, fraction: float):
        """Highlight what the running stage trains (the metric sinks while evaluating)."""
        if not stage:
            self.scene.set_running(())
            return
        if stage == "eval":
            from .views.plots import metric_names
            blocks = [n for n in metric_names(self.model) if n in self.model.spec.blocks]
        else:
            st = next((s for i, s in enumerate(self.model.spec.train)
                       if str(s.get("stage", f"stage{i + 1}")) == stage), {})
            blocks = list(st.get("trainable") or [])
        self.scene.set_running(blocks, fraction)

    def _on_running(self, on: bool):
        self.run_action.setEnabled(not on)
        self.pause_action.setEnabled(on)
        self.stop_action.setEnabled(on)

    def _fill_recent(self):
        self.recent_menu.clear()
        for p in self.recent.paths():
            self.recent_menu.addAction(p, lambda p=p: self.open_file(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def start_demo(self, overrides=None, **live_kwargs):
        from .demo import start_demo
        return start_demo(self, overrides, **live_kwargs)

    def show_help(self):
        from .help import show_help
        return show_help(self)

    def _doc_of_selection(self):
        from .palette import show_doc
        names = self.scene.selected_blocks()
        if names:
            show_doc(self.model.spec.blocks[names[0]].type, self)

    # ---- files ----------------------------------------------------------------------------
    def _ask_box(self, title: str, text: str, buttons=("yes", "no", "cancel")) -> str:
        std = {"yes": QMessageBox.Yes, "no": QMessageBox.No, "cancel": QMessageBox.Cancel,
               "save": QMessageBox.Save, "discard": QMessageBox.Discard}
        flags = QMessageBox.NoButton
        for b in buttons:
            flags |= std[b]
        answer = QMessageBox.question(self, title, text, flags)
        return next((b for b in buttons if std[b] == answer), "cancel")

    def _autosave(self):
        # never while a dialog is up: the user is answering "save / discard?" or picking a
        # file, and a recovery file written then would outlive the answer
        if QApplication.activeModalWidget() is None:
            self.model.autosave()

    def maybe_save(self) -> bool:
        """Prompt for unsaved changes; False means the user cancelled."""
        if not self.model.dirty:
            return True
        answer = self.ask("Unsaved changes", f"Save changes to {self.model.title.rstrip(' *')}?",
                          ("save", "discard", "cancel"))
        if answer == "save":
            return self.save()
        if answer == "discard":
            self.model.discard_changes()
        return answer == "discard"

    def maybe_stop_run(self) -> bool:
        """A run belongs to the graph it started from: stop it (after asking) before that
        graph goes away. False means the user chose to keep it running."""
        if not self.run_panel.running:
            return True
        if self.ask("A run is in progress", f"Stop the run of {self.run_panel.run_graph_name}?",
                    ("yes", "cancel")) != "yes":
            return False
        self.run_panel.stop_and_wait()
        return True

    def new_file(self):
        if self.maybe_stop_run() and self.maybe_save():
            self.model.new_graph()

    def open_file(self, path=None) -> bool:
        if path is None:            # pick first: a cancelled dialog changes nothing
            path, _ = QFileDialog.getOpenFileName(self, "Open graph", "graphs", FILE_FILTER)
            if not path:
                return False
        if not self.maybe_stop_run() or not self.maybe_save():
            return False
        recover = False
        if recovery_for(path) is not None:
            recover = self.ask("Recover unsaved changes",
                               f"An autosave of {Path(path).name} is newer than the file (the editor may have "
                               "crashed). Recover it?", ("yes", "no")) == "yes"
            if not recover:
                discard_autosave(path)
        try:
            self.model.open(path, recover=recover)
        except Exception as exc:
            QMessageBox.warning(self, "Cannot open", str(exc))
            return False
        self.recent.add(path)
        return True

    def offer_untitled_recovery(self) -> bool:
        """At start-up without a file: recover an untitled graph a crash left behind."""
        if recovery_for(None) is None:
            return False
        if self.ask("Recover unsaved changes", "An untitled graph was not saved when the editor last "
                    "closed. Recover it?", ("yes", "no")) == "yes":
            self.model.recover_untitled()
            return True
        discard_autosave(None)
        return False

    def save(self) -> bool:
        if self.model.path is None:
            return self.save_as()
        self.model.save()
        self.statusBar().showMessage(f"saved {self.model.path}", 4000)
        return True

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save graph as", str(self.model.path or "graphs/untitled.yaml"),
                                              FILE_FILTER)
        if not path:
            return False
        self.model.save(path)
        return True

    def closeEvent(self, event):
        if self.maybe_stop_run() and self.maybe_save():
            discard_autosave(self.model.path)
            event.accept()
        else:
            event.ignore()

    # ---- editing --------------------------------------------------------------------------
    def copy(self):
        names = self.scene.selected_blocks()
        if names:
            QApplication.clipboard().setText(self.model.copy_blocks(names))

    def paste(self):
        new = self.model.paste(QApplication.clipboard().text())
        self.scene.clearSelection()
        for n in new:
            self.scene.blocks[n].setSelected(True)

    def add_block_at_center(self, type_id: str):
        c: QPointF = self.view.mapToScene(self.view.viewport().rect().center())
        try:
            name = self.model.add_block(type_id, pos=(c.x(), c.y()))
        except Exception as exc:
            self.statusBar().showMessage(str(exc), 8000)
            return
        self.scene.clearSelection()
        self.scene.blocks[name].setSelected(True)

    # ---- reactions ------------------------------------------------------------------------
    def _on_model_changed(self, what: str):
        if what == "file":
            for v in self.views.values():             # data of the previous graph
                v.clear()
            self.control.readout.clear()
            self._update_title()
            QTimer.singleShot(0, self.view.fit)     # after the docks settled the view's size

    def showEvent(self, event):
        super().showEvent(event)
        QTimer.singleShot(0, self.view.fit)

    def _update_title(self):
        self.setWindowTitle(f"{self.model.title} — semflow")

    def _show_problems(self):
        self.problems.clear()
        lines = [str(p) for p in self.model.problems]
        self.problems.addItems(lines)
        for i, line in enumerate(lines):
            self.problems.item(i).setToolTip(line)
        n = len(lines)
        self.problem_label.setText("<span style='color:#2e7d32'>valid ✓</span>" if not n else
                                   f"<span style='color:#c62828'>{n} problem{'s' * (n != 1)}</span>")
        self.side_tabs.setTabText(2, f"Problems ({n})" if n else "Problems")

    def _on_selection(self):
        names = self.scene.selected_blocks()
        if len(names) == 1:
            self.properties.show_block(names[0])
        elif not names:
            self.properties.show_block(None)

    # ---- runs -------------------------------------------------------------------------------
    def open_run(self, run_dir) -> bool:
        """Load RUN/graph.yaml and RUN/metrics.json; evaluate / live inference then use the
        run's weights (RUN/checkpoints/last.pt)."""
        import json
        run_dir = Path(run_dir)
        if not self.open_file(run_dir / "graph.yaml"):
            return False
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = {}
        try:
            info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        preset = info.get("preset") or metrics.get("preset")
        if preset and self.run_panel.preset.findText(preset) >= 0:
            self.run_panel.preset.setCurrentText(preset)
        self.run_panel.last_run = run_dir
        self.run_panel.last_run_graph = (self.model.spec.name, self.run_panel.preset.currentText())
        sweep = self.views["PSNR vs SNR"]
        sweep.show_rows(metrics.get("rows") or [])
        self.view_tabs.setCurrentWidget(sweep)
        self.statusBar().showMessage(f"opened run {run_dir}", 8000)
        return True

    # ---- searching ----------------------------------------------------------------------------
    def _popup(self, title, items, at=None):
        from .search import SearchPopup
        if getattr(self, "popup", None) is not None:
            self.popup.deleteLater()
        self.popup = SearchPopup(title, items, self)
        if at is not None:
            self.popup.move(self.view.mapToGlobal(self.view.mapFromScene(at)))
        self.popup.show()
        self.popup.edit.setFocus()
        return self.popup

    def block_search(self, at: QPointF):
        """Double-click on empty canvas: type part of a block's name, Enter adds it there."""
        from flowgraph import registry
        items = [(f"{t}   — {(c.__doc__ or '').strip().splitlines()[0] if c.__doc__ else ''}", t, t)
                 for t, c in registry.all_types().items()]
        pop = self._popup("add block: type to search", items, at)
        pop.chosen.connect(lambda t: self._add_at(t, at))
        return pop

    def _add_at(self, type_id, at: QPointF):
        name = self.model.add_block(type_id, pos=(at.x(), at.y()))
        self.scene.clearSelection()
        self.scene.blocks[name].setSelected(True)

    def offer_fitting_blocks(self, port, at: QPointF):
        """A wire dropped on empty canvas: the blocks with a port that fits, connected on choice."""
        fits = self.scene.fitting_blocks(port)
        items = [(f"{t}.{pn}", t, (t, pn)) for t, pn in fits]
        pop = self._popup(f"connect {port.block.name}.{port.name} to…", items, at)
        pop.chosen.connect(lambda choice: self.scene.connect_new_block(port, choice[0], choice[1], at))
        return pop

    def edit_variable(self, name: str):
        from PySide6.QtWidgets import QInputDialog

        from .values import format_value, parse_text
        text, ok = QInputDialog.getText(self, "Variable", f"{name} =",
                                        text=format_value(self.model.spec.variables.get(name)))
        if ok:
            self.model.set_variable(name, parse_text(text))

    def find_block(self):
        """Ctrl+F: find a block of this graph by name or type; Enter selects and centres it."""
        items = [(f"{n}   ({b.type})", f"{n} {b.type}", n) for n, b in self.model.spec.blocks.items()]
        pop = self._popup("find block", items)
        pop.chosen.connect(self.show_block)
        return pop

    def show_block(self, name: str):
        self.canvas_tabs.setCurrentIndex(0)
        self.scene.clearSelection()
        self.scene.blocks[name].setSelected(True)
        self.view.centerOn(self.scene.blocks[name])
        self.properties.show_block(name)

    # ---- hierarchical blocks -----------------------------------------------------------------
    def open_subgraph(self, name: str):
        """Open the file of graph block ``name`` in its own tab (or switch to it)."""
        path = self.model.graph_file(self.model.spec.blocks[name].type)
        if path is None:
            self.statusBar().showMessage(f"{name}: sub-graph file not found", 8000)
            return None
        from .subgraph import SubgraphTab
        for i in range(1, self.canvas_tabs.count()):
            tab = self.canvas_tabs.widget(i)
            if tab.path.resolve() == path.resolve():
                self.canvas_tabs.setCurrentIndex(i)
                return tab
        tab = SubgraphTab(path, self)
        tab.saved.connect(self._subgraph_saved)
        i = self.canvas_tabs.addTab(tab, f"{name}: {path.name}")
        close = QToolButton(text="✕", toolTip="close this sub-graph", autoRaise=True)
        close.clicked.connect(lambda: self.close_subgraph(self.canvas_tabs.indexOf(tab)))
        self.canvas_tabs.tabBar().setTabButton(i, QTabBar.RightSide, close)
        self.canvas_tabs.setCurrentWidget(tab)
        tab.view.fit()
        return tab

    def close_subgraph(self, index: int):
        tab = self.canvas_tabs.widget(index)
        if index == 0 or tab is None:
            return
        if tab.model.dirty and self.ask("Unsaved changes", f"Save changes to {tab.path.name}?",
                                        ("save", "discard", "cancel")) == "save":
            tab.save()
        self.canvas_tabs.removeTab(index)
        tab.deleteLater()

    def _subgraph_saved(self, _path: str):
        self.model._port_cache.clear()          # its ports may have changed: re-read, re-check
        self.model.revalidate()
        self.model.changed.emit("structure")

    def make_subgraph(self, path=None):
        names = self.scene.selected_blocks()
        if not names:
            self.statusBar().showMessage("select the blocks to put into a graph block first", 8000)
            return None
        if path is None:
            start = str((self.model.path.parent if self.model.path else Path("graphs")) / "parts" / "part.yaml")
            path, _ = QFileDialog.getSaveFileName(self, "Sub-graph file", start, FILE_FILTER)
            if not path:
                return None
        try:
            name = self.model.make_subgraph(names, path)
        except Exception as exc:
            QMessageBox.warning(self, "Cannot make a graph block", str(exc))
            return None
        self.scene.clearSelection()
        self.scene.blocks[name].setSelected(True)
        return name

    def _activate_block(self, name: str):
        if self.model.spec.blocks[name].is_graph:
            self.open_subgraph(name)
            return
        self.properties.show_block(name)
        self.side_tabs.setCurrentWidget(self.properties)
        self.docks["Edit"].raise_()

    def _select_problem_block(self, item):
        p = self.model.problems[self.problems.row(item)]
        if p.block and p.block.split("/")[0] in self.scene.blocks:
            name = p.block.split("/")[0]
            self.scene.clearSelection()
            self.scene.blocks[name].setSelected(True)
            self.view.centerOn(self.scene.blocks[name])
