"""``semflow gui [GRAPH]``: open the editor (``python -m gui`` works too)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="semflow gui", description="semflow graph editor and live views")
    parser.add_argument("graph", nargs="?", help="graph YAML file to open")
    parser.add_argument("--out", help="folder for run directories (default runs/)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    from PySide6.QtWidgets import QApplication
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
