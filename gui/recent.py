"""Recent files (File → Open recent), kept in the per-user state folder."""
from __future__ import annotations

import json
from pathlib import Path

from .model import state_dir

MAX_RECENT = 10


class RecentFiles:
    def __init__(self, store: Path | None = None):
        self.store = store or state_dir() / "recent.json"

    def paths(self) -> list[str]:
        try:
            items = json.loads(self.store.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [p for p in items if isinstance(p, str) and Path(p).is_file()]

    def add(self, path) -> None:
        p = str(Path(path).resolve())
        items = [p] + [q for q in self.paths() if q != p]
        self.store.parent.mkdir(parents=True, exist_ok=True)
        self.store.write_text(json.dumps(items[:MAX_RECENT], indent=0), encoding="utf-8")
