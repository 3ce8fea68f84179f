"""``semflow gui [GRAPH]``: open the editor (``python -m gui`` works too)."""
from __future__ import annotations

import argparse
import os
import sys

XCB_HINT = ("semflow gui: the Qt 'xcb' platform plugin could not start; it needs an X display and the "
            "Debian/Ubuntu packages libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 "
            "libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libegl1 "
            "(apt-get install ...); without a display run with QT_QPA_PLATFORM=offscreen")


def _install_platform_hint():
    """Qt aborts the process when no platform plugin loads; say in one line what to install."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    def handler(kind, _context, message):
        sys.stderr.write(message + "\n")
        if kind == QtMsgType.QtFatalMsg and "platform plugin" in message:
            sys.stderr.write(XCB_HINT + "\n")
            sys.stderr.flush()
            os._exit(1)

    qInstallMessageHandler(handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="semflow gui", description="semflow graph editor and live views")
    parser.add_argument("graph", nargs="?", help="graph YAML file to open")
    parser.add_argument("--out", help="folder for run directories (default runs/)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    from PySide6.QtWidgets import QApplication
    _install_platform_hint()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("semflow")
    from .window import MainWindow
    win = MainWindow(out_root=args.out)
    if args.graph and not win.open_file(args.graph):
        return 1
    if not args.graph:
        win.offer_untitled_recovery()
    win.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
