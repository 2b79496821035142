"""Self-contained HTML files that replay runs in any browser (no network, no files): one run, or a comparison.

A page draws a frame by the same rule as the app (`trace_view.py`): the text
before the current block, then the block as a row of fixed cells with its
masks and its newest tokens. What the rule needs that is not in the trace
(where the text ends, how many steps a block can take) and every colour, in
its light and dark versions, are computed here in Python by the code the
app uses, and injected, so the two drawings cannot drift apart on a
constant. Both pages share one drawing script and one player script.
"""

from __future__ import annotations

import html
import json
import re

from ..records.comparison import FIGURES, best, figures, label
from ..records.trace import Trace
from . import palette
from .paces import DEFAULT_PACE, PACES, pace_name

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
 .prompt { font-weight: bold; color: var(--prompt); }
 .latest { background: var(--latest); font-weight: bold; }
 .latest-tinted { font-weight: bold; text-decoration: underline; }
 .mask { background: var(--mask-bg); color: var(--mask-fg); }
 .eos { color: var(--mask-fg); font-style: italic; }
 .blockbox { display: grid; border: 2px solid var(--block-edge); background: var(--block); margin-top: 0.4em; }
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

# The drawing rule (the same as trace_view.py) and the player (the same as pace.py), shared by both pages.
_SCRIPT = r"""
"use strict";
const V = JSON.parse(document.getElementById("view").textContent);
const dark = typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
const C = dark ? V.dark : V.light;
const $ = (id) => document.getElementById(id);
const counted = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
function el(tag, text, cls, title) {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  if (title) e.title = title;
  return e;
}
function makeRun(T, R, box) {
  const S = T.settings, end = R.end, steps = R.steps_per_block;
  const tokens = new Map();
  T.prompt_tokens.forEach(([id, text], pos) => tokens.set(pos, {id, text, frame: -1}));
  T.frames.forEach((f, k) => f.revealed.forEach(([pos, id, text, p, c, alts]) =>
    tokens.set(pos, {id, text, frame: k, block: f.block, step: f.step, p,
                     c: c === undefined ? null : c, alts: alts || []})));
  function tip(pos, t) {
    if (t.frame < 0) return `prompt token ${t.id} ${JSON.stringify(t.text)}`;
    let s = `${JSON.stringify(t.text)}  (token ${t.id}, position ${pos})\n` +
      `revealed at block ${t.block}, step ${t.step} of at most ${steps}\n` +
      `model's probability: ${t.c === null ? "not recorded (a trace from an older version)" : t.c.toFixed(3)}` +
      ` (its confidence: temperature 1, before top-p)\n` +
      `drawn with probability: ${t.p.toFixed(3)} (after temperature ${S.temperature} and top-p ${S.top_p})`;
    if (t.alts.length) {
      s += `\nthe model's top ${t.alts.length} here:` +
        t.alts.map(([id, text, p]) => `\n  ${p.toFixed(3)}  ${JSON.stringify(text)}`).join("");
    }
    return s;
  }
  function tint(t, colouring) {
    if (colouring === "step") return C.steps[Math.min(t.step, steps) - 1];
    if (colouring === "confidence" && t.c !== null) return C.confidence[Math.round(t.c * 100)];
    return "";
  }
  function tokenSpan(pos, t, latest, colouring, inCell = false) {
    if (t.frame < 0) return el("span", t.text, "prompt", tip(pos, t));
    if (t.id === T.eos_id) return el("span", V.eos_text, "eos", tip(pos, t));
    let cls = latest ? "latest" : "";
    const text = inCell ? t.text.replace(/\n/g, V.newline_glyph) : t.text;  // a newline in a cell shows
    const s = el("span", text, cls, tip(pos, t));
    if (colouring !== "plain") {
      s.className = latest ? "latest-tinted" : "";
      const bg = tint(t, colouring);
      if (bg) s.style.background = bg;
    }
    return s;
  }
  function render(k, final, colouring) {
    const f = T.frames[k];
    const live = f !== undefined && !final;
    const cut = Math.min(live ? f.start : (f !== undefined ? end : T.prompt_tokens.length), end);
    box.replaceChildren();
    for (let pos = 0; pos < cut; pos++) {
      const t = tokens.get(pos);
      if (t && t.frame <= k && t.text) box.append(tokenSpan(pos, t, false, colouring));
    }
    if (!live || f.start >= end) return;
    const columns = Math.min(V.cells_per_row, S.block_size);
    const grid = el("div", "", "blockbox");
    grid.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
    grid.style.width = `${100 * columns / V.cells_per_row}%`;
    f.masked.forEach((masked, off) => {
      const pos = f.start + off;
      if (pos >= end) return;
      const t = tokens.get(pos);
      const cell = el("div", "", "cell");
      if (masked || !t || t.frame > k) {
        cell.style.background = C.mask_bg;
        cell.append(el("span", V.mask_glyph, "mask", `masked: position ${pos}, block ${f.block}, not revealed yet`));
      } else {
        const latest = t.frame === k;
        cell.style.background = latest && colouring === "plain" ? C.latest : (tint(t, colouring) || C.block);
        cell.append(tokenSpan(pos, t, latest, colouring, true));
      }
      grid.append(cell);
    });
    box.append(grid);
  }
  return {frames: T.frames.length, times: (k) => T.frames[k].elapsed, render};
}
function makePlayer(count, times, show) {
  const play = $("play"), slider = $("timeline"), pace = $("pace");
  slider.max = Math.max(0, count - 1);
  let timer = null, origin = 0;
  function stop() { clearInterval(timer); timer = null; play.textContent = "Play"; }
  function go(k) { slider.value = k; show(k); }
  function tick() {
    const k = +slider.value;
    if (k >= count - 1) return stop();
    let next = k + 1;
    if (+pace.value === 0) {  // real time: as far as the run's own clock has got
      const now = (performance.now() - origin) / 1000;
      while (next < count - 1 && times(next + 1) <= now) next++;
    }
    go(next);
  }
  function start() {
    origin = performance.now() - 1000 * times(Math.max(0, +slider.value));
    timer = setInterval(tick, +pace.value ? 1000 / +pace.value : 16);
    play.textContent = "Pause";
  }
  play.onclick = () => {
    if (timer) return stop();
    if (+slider.value >= count - 1) go(0);
    start();
  };
  pace.onchange = () => { if (timer) { clearInterval(timer); start(); } };
  $("back").onclick = () => { stop(); go(Math.max(0, +slider.value - 1)); };
  $("forward").onclick = () => { stop(); go(Math.min(count - 1, +slider.value + 1)); };
  slider.oninput = () => { stop(); show(+slider.value); };
  $("colour").onchange = () => show(+slider.value);
  go(count - 1);
}
"""

_SINGLE = """<div class="meta" id="meta"></div>
__CONTROLS__
<div id="text" class="text"></div>
<script type="application/json" id="trace">__TRACE__</script>
<script type="application/json" id="view">__VIEW__</script>
<script>
__SCRIPT__
const T = JSON.parse($("trace").textContent);
const S = T.settings;
$("meta").textContent =
  `${T.model} on ${T.device} (${T.dtype}) · block size ${S.block_size} · ${S.sampler} · ` +
  `steps ${S.steps} · top-p ${S.top_p} · temperature ${S.temperature} · seed ${S.seed} · ` +
  `${counted(T.frames.length, "step")}, ${counted(T.nfe, "forward")}, ` +
  `${T.seconds === null ? "" : T.seconds.toFixed(2) + " s"} · stopped: ${T.reason}` +
  (T.judgement ? ` · Gen PPL ${T.judgement.gen_ppl.toFixed(1)}, entropy ${T.judgement.entropy.toFixed(2)}` : "");
const run = makeRun(T, V.runs[0], $("text"));
function render(k) {
  const f = T.frames[k];
  run.render(k, k === T.frames.length - 1, $("colour").value);
  $("where").textContent = f ? `step ${k + 1} of ${T.frames.length}: block ${f.block}, step ${f.step}` : "no steps";
}
makePlayer(T.frames.length, run.times, render);
</script>
</body>
</html>
"""

_COMPARISON = """<p class="meta">Prompt: <b id="prompt"></b> · the same seed for every run · best figure of each kind in bold with &#9733;</p>
__FIGURES__
__CONTROLS__
<div id="columns" style="grid-template-columns: repeat(__COUNT__, minmax(0, 1fr))">__COLUMNS__</div>
<script type="application/json" id="traces">__TRACES__</script>
<script type="application/json" id="view">__VIEW__</script>
<script>
__SCRIPT__
const traces = JSON.parse($("traces").textContent);
$("prompt").textContent = traces.length ? traces[0].prompt : "";
const runs = traces.map((T, i) => makeRun(T, V.runs[i], $(`text${i}`)));
const longest = runs.reduce((a, b) => (b.frames > a.frames ? b : a));
function render(k) {
  runs.forEach((r) => r.render(Math.min(k, r.frames - 1), k >= r.frames - 1, $("colour").value));
  $("where").textContent = `step ${k + 1} of ${longest.frames}`;
}
makePlayer(longest.frames, longest.times, render);
</script>
</body>
</html>
"""


def _script_json(value: object) -> str:
    """JSON to embed in a <script> element: every `<` escaped, so no text can close the script; seeds as
    strings, since JavaScript's numbers lose integers above 2**53 (a 19-digit seed would be shown wrong)."""
    return json.dumps(_seeds_as_text(value), ensure_ascii=False).replace("<", "\\u003c")


def _seeds_as_text(value: object) -> object:
    if isinstance(value, dict):
        return {k: str(v) if k == "seed" and isinstance(v, int) else _seeds_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_seeds_as_text(v) for v in value]
    return value


def _css_vars(c: palette.Colours) -> str:
    names = ("text", "page", "prompt", "latest", "block", "block_edge", "mask_bg", "mask_fg")
    return " ".join(f"--{name.replace('_', '-')}: {getattr(c, name)};" for name in names)


def _tints(c: palette.Colours, steps: int) -> dict[str, object]:
    """Every colour the script can need: the step ramp for this many steps, the confidence ramp by 0.01."""
    return {
        "mask_bg": c.mask_bg, "latest": c.latest, "block": c.block,
        "steps": [c.step(s, steps) for s in range(1, steps + 1)],
        "confidence": [c.confidence(i / 100) for i in range(101)],
    }


def _fill(template: str, fills: dict[str, str]) -> str:
    # one pass, so that nothing filled in (a prompt, a model name) is ever read as a marker
    return re.sub(r"__[A-Z_]+__", lambda m: fills[m[0]], template)


def _page(title: str, body: str, traces: list[Trace], fills: dict[str, str], width: str,
          cells_per_row: int = palette.CELLS_PER_ROW) -> str:
    steps = max(t.steps_per_block for t in traces)
    view = {
        "runs": [{"end": t.end, "steps_per_block": t.steps_per_block} for t in traces],
        "mask_glyph": palette.MASK_GLYPH, "newline_glyph": palette.NEWLINE_GLYPH, "eos_text": palette.EOS_TEXT,
        "cells_per_row": cells_per_row,
        "light": _tints(palette.LIGHT, steps), "dark": _tints(palette.DARK, steps),
    }
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
        "__WIDTH__": width,
    })
    return head + _fill(body, {
        **fills, "__CONTROLS__": controls, "__SCRIPT__": _SCRIPT, "__VIEW__": _script_json(view),
    })


def replay_page(trace: Trace) -> str:
    """One run's page, with the trace and the drawing rule's numbers embedded as JSON."""
    return _page(
        f"BD3-LM Studio replay: {trace.model}", _SINGLE, [trace], {"__TRACE__": _script_json(trace.to_json())}, "60em",
    )


def comparison_page(traces: list[Trace]) -> str:
    """Several runs of one prompt side by side, replayed together, with their figures and the best marked."""
    marks = best(list(traces))
    rows = "".join(
        f"<tr><th>{html.escape(f.name)}</th>"
        + "".join(
            f'<td class="best">&#9733; {v:.{f.digits}f}</td>' if i in marks[f.key] and v is not None
            else f"<td>{'–' if v is None else f'{v:.{f.digits}f}'}</td>"
            for i, v in enumerate(figures(t)[f.key] for t in traces)
        )
        + f'<td class="meta" style="text-align:left">{html.escape(f.explain)}</td></tr>'
        for f in FIGURES
    )
    header = "".join(f"<th>{chr(65 + i)}</th>" for i in range(len(traces)))
    columns = "".join(
        f'<div><h2>{chr(65 + i)}: {html.escape(label(t.settings, t.model))}</h2><div id="text{i}" class="text"></div></div>'
        for i, t in enumerate(traces)
    )
    return _page(
        "BD3-LM Studio comparison", _COMPARISON, traces,
        {
            "__FIGURES__": f'<table class="figures"><tr><th></th>{header}<th></th></tr>{rows}</table>',
            "__COUNT__": str(len(traces)), "__COLUMNS__": columns,
            "__TRACES__": _script_json([t.to_json() for t in traces]),
        },
        "95em", cells_per_row=palette.COLUMN_CELLS_PER_ROW,  # as the compare window's columns
    )
