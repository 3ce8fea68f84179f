"""Help → Keys and gestures: what the canvas and the window answer to."""
from __future__ import annotations

import html


KEYS = [
    ("Canvas", [
        ("drag a palette entry onto the canvas, or Enter in the palette", "add a block"),
        ("double-click empty canvas", "fuzzy block search: type, Enter adds the block there"),
        ("drag from a port to a port", "connect (refused with the reason when kinds or shapes do not fit)"),
        ("drop a wire on empty canvas", "offers the blocks with a fitting port and connects the one chosen"),
        ("middle-drag, or hold Space and drag", "pan"),
        ("wheel, Ctrl + / Ctrl − / Ctrl 0", "zoom in / out / 100 %"),
        ("F", "fit the graph in the view"),
        ("arrow keys (Shift: ×5)", "nudge the selected blocks by one grid step"),
        ("E / D / B", "enable / disable / bypass the selected blocks"),
        ("Ctrl+F", "find a block by name or type"),
        ("Delete", "delete the selection (blocks and wires)"),
        ("Ctrl+C / Ctrl+V", "copy / paste blocks with the wires among them"),
        ("Ctrl+G", "make a graph block (sub-graph file) from the selection"),
        ("double-click a graph block", "open its sub-graph in a tab"),
        ("double-click a block", "its properties"),
    ]),
    ("Window", [
        ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo (every edit)"),
        ("Ctrl+N / Ctrl+O / Ctrl+S / Ctrl+Shift+S", "new / open / save / save as"),
        ("F5 / F6 / Shift+F5", "run / pause or resume / stop"),
        ("F1", "this help"),
    ]),
]


def help_html() -> str:
    e = html.escape
    parts = ["<h3>semflow editor: keys and gestures</h3>"]
    for title, rows in KEYS:
        parts.append(f"<h4>{e(title)}</h4><table cellspacing=4>")
        parts += [f"<tr><td><b>{e(k)}</b></td><td>{e(v)}</td></tr>" for k, v in rows]
        parts.append("</table>")
    parts.append("<p>More in docs/gui.md.</p>")
    return "".join(parts)


def show_help(parent=None):
    from .palette import html_dialog
    return html_dialog("semflow — keys and gestures", help_html(), parent, (620, 560))
