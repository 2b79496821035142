"""Self-contained HTML files that replay runs in any browser (no network, no files): one run, or a comparison.

A page shows what the window shows: every frame, its text, cells, tooltips
and colours (light and dark) are worked out here by `frames.py`, the rule
the window paints by, and embedded as data; the page's script
(`replay.js`, inlined so that the page needs no other file) only paints
them and plays them. The data is kept small: each distinct token drawing,
tooltip and look is stored once, and a frame lists only the cells that
changed since the frame before, except where a block's drawing begins.
"""

from __future__ import annotations

import bisect
import html
import json
import re
from collections.abc import Sequence
from importlib.resources import files

from bd3lm_core.formatting import counted

from ..records.comparison import FIGURES, best, figures, label, summary
from ..records.trace import Trace
from . import frames, palette
from .paces import DEFAULT_PACE, PACES, pace_name

SCRIPT = files(__package__).joinpath("replay.js").read_text(encoding="utf-8")  # shipped beside this module

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="color-scheme" content="light dark">
<title>__TITLE__</title>
<style>
 :root { __LIGHT__ }
 @media (prefers-color-scheme: dark) { :root { __DARK__ } }
 body { font: 16px/1.6 system-ui, sans-serif; max-width: __WIDTH__; margin: 2em auto; padding: 0 1em;
        color: var(--text); background: var(--page); }
 h1 { font-size: 1.3em; margin-bottom: 0.2em; }
 h2 { font-size: 1em; margin: 0 0 0.3em; }
 .meta { opacity: 0.75; font-size: 0.9em; }
 #controls { display: flex; gap: 0.6em; align-items: center; margin: 1em 0; flex-wrap: wrap; }
 #timeline { flex: 1; min-width: 10em; }
 .text { white-space: pre-wrap; border: 1px solid var(--mask-bg); border-radius: 6px; padding: 1em; min-height: 8em; }
 .seedtext { white-space: pre-wrap; overflow-wrap: break-word; margin: 0.2em 0 0.6em; }
__CLASSES__ .blockbox { display: grid; border: 2px solid var(--block-edge); background: var(--block); margin-top: 0.4em; }
 .cell { border: 1px solid var(--block-edge); padding: 0.1em 0.3em; min-height: 1.6em; overflow-wrap: break-word; }
 .legend span { padding: 0 0.3em; }
 table.figures { border-collapse: collapse; margin: 0.5em 0; }
 table.figures td, table.figures th { padding: 0.1em 0.6em; text-align: right; }
 .best { font-weight: bold; }
 #columns { display: grid; gap: 1em; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
"""

_CONTROLS = """<div id="controls">
 <button id="play">Play</button>
 <button id="back" title="one step back">&#9664;</button>
 <button id="forward" title="one step forward">&#9654;</button>
 <select id="pace" title="denoising steps shown per second">__PACES__</select>
 <input type="range" id="timeline" min="0" value="0">
 <span id="where"></span>
 <label>Colour <select id="colour">__COLOURINGS__</select></label>
</div>
<div class="legend meta"><span class="mask">__MASK_GLYPH__</span> masked
 <span class="latest">new</span> revealed this step <span class="blockbox" style="display:inline">cells</span>
 current block &middot; hover a token for its step, the model's probability and its top alternatives</div>
"""

_SINGLE = """<div class="meta" id="meta">__META__</div>
__CONTROLS__
<div id="text" class="text"></div>
"""

_COMPARISON = """<p class="meta">Prompt: <b>__PROMPT__</b> · __SEEDS__ · best figure of each kind in bold with &#9733;</p>
__FIGURES__
__CONTROLS__
<div id="columns" style="grid-template-columns: repeat(__COUNT__, minmax(0, 1fr))">__COLUMNS__</div>
"""

_TAIL = """<script type="application/json" id="replay">__REPLAY__</script>
<script>
__SCRIPT__</script>
</body>
</html>
"""


def _script_json(value: object) -> str:
    """JSON to embed in a <script> element: every `<` escaped, so that no text can close the script."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _css_vars(c: palette.Colours) -> str:
    names = ("text", "page", "prompt", "latest", "block", "block_edge", "mask_bg", "mask_fg")
    return " ".join(f"--{name.replace('_', '-')}: {getattr(c, name)};" for name in names)


def _fill(template: str, fills: dict[str, str]) -> str:
    # one pass, so that nothing filled in (a prompt, a model name) is ever read as a marker
    return re.sub(r"__[A-Z_]+__", lambda m: fills[m[0]], template)


class _Table:
    """Distinct values in the order first seen, each stored once and referred to by its index."""

    def __init__(self) -> None:
        self.indices: dict[object, int] = {}

    def __call__(self, value: object) -> int:
        return self.indices.setdefault(value, len(self.indices))

    def values(self) -> list:
        return list(self.indices)


class _Replay:
    """The data `replay.js` paints: the runs' frames as `frames.py` draws them (see the script's header)."""

    def __init__(self) -> None:
        self.tips, self.looks, self.items = _Table(), _Table(), _Table()
        self.known: dict[frames.Piece, int] = {}  # each piece's item, worked out once
        self.runs: list[dict[str, object]] = []

    def item(self, piece: frames.Piece) -> int:
        if piece not in self.known:
            looks = [
                self.looks(tuple(frames.look(piece, colouring, c) for c in (palette.LIGHT, palette.DARK)))
                for colouring in palette.COLOURINGS
            ]
            self.known[piece] = self.items((piece.text, self.tips(piece.tooltip), *looks))
        return self.known[piece]

    def add(self, trace: Trace, box: str, cells_per_row: int) -> None:
        """One run, drawn into the element `box`: its frames, the last one as the run's end state."""
        n = len(trace.frames)
        text = frames.text_pieces(trace, 0, trace.end)
        positions = [piece.position for piece in text]
        shown = []
        for k in range(n) if n else [-1]:
            final = k == n - 1
            count = bisect.bisect_left(positions, frames.text_end(trace, k, final))
            changes = frames.cell_changes(trace, k, final)
            if changes is not None:
                shown.append([count, {offset: self.item(piece) for offset, piece in changes.items()}])
            elif frames.current_block(trace, k, final):  # a block's drawing begins: every cell
                shown.append([count, [self.item(piece) for piece in frames.cells(trace, k)]])
            else:
                shown.append([count, []])
        columns = frames.columns(trace, cells_per_row)
        self.runs.append({
            "box": box, "columns": columns, "width": f"{100 * columns / cells_per_row:.4g}%",
            "text": [self.item(p) for p in text], "frames": shown,
        })

    def data(self, labels: list[str], times: list[float]) -> dict[str, object]:
        looks = self.looks.values()  # (light, dark) pairs
        return {
            "colourings": list(palette.COLOURINGS), "tips": self.tips.values(), "items": self.items.values(),
            "looks": {
                theme: [[look.css_class, look.background, look.fill] for look in (pair[i] for pair in looks)]
                for i, theme in enumerate(("light", "dark"))
            },
            "runs": self.runs, "labels": labels, "times": times,
        }


def _page(title: str, body: str, replay: dict[str, object], fills: dict[str, str], width: str) -> str:
    controls = _fill(_CONTROLS, {
        "__PACES__": "".join(
            f'<option value="{p}"{" selected" if p == DEFAULT_PACE else ""}>{pace_name(p)}</option>'
            for p in PACES
        ),
        "__COLOURINGS__": "".join(f'<option value="{k}">{v}</option>' for k, v in palette.COLOURINGS.items()),
        "__MASK_GLYPH__": html.escape(palette.MASK_GLYPH),
    })
    head = _fill(_HEAD, {
        "__TITLE__": html.escape(title), "__LIGHT__": _css_vars(palette.LIGHT), "__DARK__": _css_vars(palette.DARK),
        "__WIDTH__": width, "__CLASSES__": frames.class_rules(lambda name: f"var(--{name.replace('_', '-')})"),
    })
    tail = _fill(_TAIL, {"__REPLAY__": _script_json(replay), "__SCRIPT__": SCRIPT})
    return head + _fill(body, {**fills, "__CONTROLS__": controls}) + tail


def _times(trace: Trace) -> list[float]:
    return [round(f.elapsed, 3) for f in trace.frames] or [0.0]  # ms are plenty for the player


def meta(trace: Trace) -> str:
    """The run in one line, above its replay: the model, the settings, the figures."""
    s, out = trace.settings, trace.outcome
    line = (
        f"{trace.model} on {trace.device} ({trace.dtype}) · block size {s['block_size']} · {s['sampler']} · "
        f"steps {s['steps']} · top-p {s['top_p']:g} · temperature {s['temperature']:g} · seed {s['seed']} · "
        f"{counted(len(trace.frames), 'step')}"
    )
    if out is not None:
        line += f", {counted(out.nfe, 'forward')}, {out.seconds:.2f} s · stopped: {out.stop_reason}"
    if trace.judgement is not None:
        line += f" · Gen PPL {trace.judgement.gen_ppl:.1f}, entropy {trace.judgement.entropy:.2f}"
    return line


def replay_page(trace: Trace) -> str:
    """One run's page: its frames as the window draws them, embedded, and the script that plays them."""
    replay = _Replay()
    replay.add(trace, "text", palette.CELLS_PER_ROW)
    labels = [frames.where(trace, k) for k in range(len(trace.frames))] or [frames.where(trace, -1)]
    return _page(
        f"BD3-LM Studio replay: {trace.model}", _SINGLE, replay.data(labels, _times(trace)),
        {"__META__": html.escape(meta(trace))}, "60em",
    )


def _every_seed(runs: Sequence[Trace]) -> str:
    """A column's runs, one per seed, each with its figures and its whole text: the page replays only one of them,
    and the spread above is over all of them."""
    if len(runs) < 2:
        return ""
    items = "".join(
        f"<li><b>seed {t.settings['seed']}</b>: "
        + " · ".join(f"{f.name} {'–' if v is None else f'{v:.{f.digits}f}'}"
                     for f, v in ((f, figures(t)[f.key]) for f in FIGURES))
        + f'<div class="seedtext">{html.escape(t.outcome.text if t.outcome else "")}</div></li>'
        for t in runs
    )
    return f'<details class="meta"><summary>Every seed\'s run ({len(runs)})</summary><ul>{items}</ul></details>'


def comparison_page(columns: Sequence[Sequence[Trace]], shown: Sequence[int] | None = None) -> str:
    """Columns of runs of one prompt side by side, each replaying one of its runs (`shown`: which, else the first),
    replayed together, with each column's figures (mean ± standard deviation over its seeds) and the best marked."""
    groups = [list(runs) for runs in columns]
    traces = [runs[(shown or [0] * len(groups))[i]] for i, runs in enumerate(groups)]
    marks = best(groups)
    spreads = [summary(runs) for runs in groups]
    rows = "".join(
        f"<tr><th>{html.escape(f.name)}</th>"
        + "".join(
            f'<td class="best">&#9733; {v.shown(f.digits)}</td>' if i in marks[f.key] and v is not None
            else f"<td>{'–' if v is None else v.shown(f.digits)}</td>"
            for i, v in enumerate(s[f.key] for s in spreads)
        )
        + f'<td class="meta" style="text-align:left">{html.escape(f.explain)}</td></tr>'
        for f in FIGURES
    )
    header = "".join(
        f"<th>{chr(65 + i)}{f' ({len(runs)} seeds, mean &plusmn; sd)' if len(runs) > 1 else ''}</th>"
        for i, runs in enumerate(groups)
    )
    titles = [label(t.settings, t.model) + (f" · seed {t.settings['seed']}" if len(groups[i]) > 1 else "")
              for i, t in enumerate(traces)]
    columns_html = "".join(
        f'<div><h2>{chr(65 + i)}: {html.escape(title)}</h2><div id="text{i}" class="text"></div>'
        f"{_every_seed(groups[i])}</div>"
        for i, title in enumerate(titles)
    )
    n = max((len(runs) for runs in groups), default=1)
    seed = traces[0].settings["seed"] if traces else 0
    seeds = (f"seeds {seed} to {seed + n - 1} in every column, each column replaying one of them"
             if n > 1 else "the same seed for every run")
    replay = _Replay()
    for i, trace in enumerate(traces):
        replay.add(trace, f"text{i}", palette.COLUMN_CELLS_PER_ROW)  # as the compare window's columns
    longest = max(traces, key=lambda t: len(t.frames))
    labels = [f"step {k + 1} of {len(longest.frames)}" for k in range(len(longest.frames))] or ["no steps"]
    return _page(
        "BD3-LM Studio comparison", _COMPARISON, replay.data(labels, _times(longest)),
        {
            "__PROMPT__": html.escape(traces[0].prompt if traces else ""),
            "__FIGURES__": f'<table class="figures"><tr><th></th>{header}<th></th></tr>{rows}</table>',
            "__COUNT__": str(len(traces)), "__COLUMNS__": columns_html, "__SEEDS__": seeds,
        },
        "95em",
    )
