"""One self-contained HTML file that replays a run's unmasking in any browser (no network, no files).

The page draws a frame by the same rule as the live view (`live_view.py`):
the text before the current block, then the block with its masks and its
newest tokens. What the rule needs that is not in the trace itself (where the
text ends, how many steps a block can take) and the palette are computed
here in Python from the same code the app uses, and injected, so the two
drawings cannot drift apart on a constant.
"""

from __future__ import annotations

import html
import json
import re

from . import palette
from .trace import Trace

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
 body { font: 16px/1.6 system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: __TEXT__; }
 h1 { font-size: 1.3em; margin-bottom: 0.2em; }
 .meta { color: #555; font-size: 0.9em; }
 #controls { display: flex; gap: 0.8em; align-items: center; margin: 1em 0; }
 #timeline { flex: 1; }
 #text { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 6px; padding: 1em; min-height: 8em; }
 .prompt { font-weight: bold; color: __PROMPT__; }
 .block { background: __BLOCK__; }
 .latest { background: __LATEST__; font-weight: bold; }
 .mask { background: __MASK_BG__; color: __MASK_FG__; }
 .eos { color: __MASK_FG__; font-style: italic; }
 .legend span { padding: 0 0.3em; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<div class="meta" id="meta"></div>
<div id="controls">
 <button id="play">Play</button>
 <input type="range" id="timeline" min="0" value="0">
 <span id="where"></span>
</div>
<div class="legend meta"><span class="mask">__MASK_GLYPH__</span> masked
 <span class="latest">new</span> revealed this step <span class="block">token</span> current block
 &middot; hover a token for its block, step and probability</div>
<div id="text"></div>
<script type="application/json" id="trace">__TRACE__</script>
<script type="application/json" id="view">__VIEW__</script>
<script>
"use strict";
const T = JSON.parse(document.getElementById("trace").textContent);
const V = JSON.parse(document.getElementById("view").textContent);
const S = T.settings;
const end = V.end, stepsPerBlock = V.steps_per_block;
const tokens = new Map();
T.prompt_tokens.forEach(([id, text], pos) => tokens.set(pos, {id, text, frame: -1}));
T.frames.forEach((f, k) => f.revealed.forEach(([pos, id, text, p]) =>
  tokens.set(pos, {id, text, frame: k, block: f.block, step: f.step, p})));
document.getElementById("meta").textContent =
  `${T.model} on ${T.device} (${T.dtype}) · block size ${S.block_size} · ${S.sampler} · ` +
  `steps ${S.steps} · top-p ${S.top_p} · seed ${S.seed} · ${T.frames.length} steps, ${T.nfe} forwards, ` +
  `${T.seconds === null ? "" : T.seconds.toFixed(2) + " s"} · stopped: ${T.reason}`;
const box = document.getElementById("text");
const slider = document.getElementById("timeline");
slider.max = Math.max(0, T.frames.length - 1);

function span(text, cls, title) {
  const s = document.createElement("span");
  s.textContent = text;
  if (cls) s.className = cls;
  if (title) s.title = title;
  return s;
}
function tokenSpan(pos, t, cls) {
  if (t.frame < 0) return span(pos === 0 ? "" : t.text, "prompt", `prompt token ${t.id}`);
  const eos = t.id === T.eos_id;
  return span(eos ? " \\u27e8end of text\\u27e9 " : t.text, eos ? "eos" : cls,
    `token ${t.id} ${JSON.stringify(t.text)}\\nblock ${t.block}, step ${t.step} of ${stepsPerBlock}\\n` +
    `probability ${t.p.toFixed(3)}`);
}
function render(k) {
  const f = T.frames[k];
  const last = k === T.frames.length - 1;
  const live = f !== undefined && !(last && T.reason !== "cancelled");
  const cut = Math.min(live ? f.start : end, end);
  box.replaceChildren();
  for (let pos = 0; pos < cut; pos++) {
    const t = tokens.get(pos);
    if (t && t.frame <= k) box.append(tokenSpan(pos, t, ""));
  }
  if (live) {
    f.masked.forEach((masked, off) => {
      const pos = f.start + off;
      if (pos < cut || pos >= end) return;
      const t = tokens.get(pos);
      if (masked || !t || t.frame > k) {
        box.append(span(V.mask_glyph, "mask", `masked: block ${f.block}`), span(" ", "block"));
      } else {
        box.append(tokenSpan(pos, t, t.frame === k ? "latest" : "block"));
      }
    });
  }
  document.getElementById("where").textContent = f ?
    `step ${k + 1} of ${T.frames.length}: block ${f.block}, step ${f.step}` : "no steps";
}
let timer = null;
const play = document.getElementById("play");
function stop() { clearInterval(timer); timer = null; play.textContent = "Play"; }
play.onclick = () => {
  if (timer) return stop();
  if (+slider.value >= +slider.max) { slider.value = 0; render(0); }  // from the start: step 1 first
  play.textContent = "Pause";
  timer = setInterval(() => {
    if (+slider.value >= +slider.max) return stop();
    slider.value = +slider.value + 1;
    render(+slider.value);
  }, 120);
};
slider.oninput = () => { stop(); render(+slider.value); };
slider.value = slider.max;
render(T.frames.length - 1);
</script>
</body>
</html>
"""


def _script_json(value: object) -> str:
    """JSON to embed in a <script> element: every `<` escaped, so no text can close the script."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def replay_page(trace: Trace) -> str:
    """The page, with the trace and the drawing rule's numbers embedded as JSON."""
    view = {"end": trace.end, "steps_per_block": trace.steps_per_block, "mask_glyph": palette.MASK_GLYPH}
    fills = {
        "__TITLE__": html.escape(f"BD3-LM Studio replay: {trace.model}"),
        "__TRACE__": _script_json(trace.to_json()),
        "__VIEW__": _script_json(view),
        "__MASK_GLYPH__": html.escape(palette.MASK_GLYPH),
        **{f"__{name}__": getattr(palette, name) for name in ("TEXT", "PROMPT", "BLOCK", "LATEST", "MASK_BG", "MASK_FG")},
    }
    # one pass over the template, so that nothing filled in (a prompt, a model name) is ever read as a marker
    return re.sub(r"__[A-Z_]+__", lambda m: fills[m[0]], _PAGE)
