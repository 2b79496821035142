"""Helpers shared by the app's tests: driving runs, reading the view, a stand-in judge."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import threading
from types import SimpleNamespace

import pytest

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QMessageBox

import bd3lm_studio.engine.worker as worker_module


def configure(window, tokens: int, **choices) -> None:
    c = window.controls
    c.tokens.set_value(tokens)
    c.stop_at_eos.setChecked(choices.get("stop_at_eos", False))
    c.seed.setValue(choices.get("seed", 7))
    if "sampler" in choices:
        c.sampler.setCurrentIndex(c.sampler.findData(choices["sampler"]))


def run(window, qtbot, timeout: int = 60_000) -> None:
    """Generate and wait for the end of the run and for the judge's judgement on it (which comes after)."""
    window.generate()
    assert window.running
    qtbot.waitUntil(lambda: not window.running, timeout=timeout)
    qtbot.waitUntil(lambda: "judging" not in window.status_labels["judgement"].text(), timeout=timeout)


def error_boxes(window) -> list[str]:
    return [box.text() for box in window.findChildren(QMessageBox) if box.isVisible()]


def fragments(view) -> list[tuple[str, str, str]]:
    """(text, tooltip, background colour) of every run of text in the view, the block's cells included."""
    out = []
    block = view.text.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            f = it.fragment()
            out.append((f.text(), f.charFormat().toolTip(), f.charFormat().background().color().name()))
            it += 1
        block = block.next()
    return out


def view_parts(view) -> dict:
    """What the view shows: the flowing text, and the current block's cells one by one."""
    text, cells = [], []
    block = getattr(view, "text", view).document().begin()  # the main window's view, or a compare column's
    while block.isValid():
        (text if QTextCursor(block).currentTable() is None else cells).append(block.text())
        block = block.next()
    return {"text": "".join(text), "cells": cells}


class FakeJudge:
    """Stands in for `bd3lm_core.load_judge(...)`'s judge: figures that follow the text, and where it ran."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.texts: list[str] = []
        self.prompts: list[str] = []

    def score(self, text: str, token_ids=None, prompt: str = ""):
        self.threads.append(threading.current_thread())
        self.texts.append(text)
        self.prompts.append(prompt)
        ids = list(token_ids)
        return SimpleNamespace(tokens=len(ids), gen_ppl=10.0 + len(set(ids)), entropy=len(set(ids)) / 10,
                               judge="fake-judge")


def install_fake_judge(monkeypatch) -> FakeJudge:
    judge = FakeJudge()
    monkeypatch.setattr(worker_module, "load_judge", lambda **kwargs: judge)
    return judge


NODE_DOM = """
const els = {};
class El {
  constructor(id) {
    this.id = id; this.children = []; this.textContent = ""; this.value = "0"; this.max = "0"; this.style = {};
  }
  replaceChildren() { this.children = []; }
  append(...nodes) { this.children.push(...nodes); }
}
global.document = {
  getElementById: (id) => els[id] || (els[id] = new El(id)),
  createElement: () => new El(""),
};
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
for (const name in input) { els[name] = new El(name); els[name].textContent = input[name]; }
els.colour = new El("colour"); els.colour.value = "plain";
els.pace = new El("pace"); els.pace.value = "10";
global.setInterval = () => 0; global.clearInterval = () => {};
const text = (e) => e.children.length ? e.children.map(text).join("") : e.textContent;
// what a text box shows: the flowing text, and the current block's cells one by one
const shown = (id = "text") => {
  const box = document.getElementById(id);
  const grid = box.children.find((e) => e.className === "blockbox");
  return {text: box.children.filter((e) => e !== grid).map(text).join(""),
          cells: grid ? grid.children.map(text) : []};
};
"""


def embedded(page: str) -> dict:
    """The replay data a page embeds for its script."""
    return json.loads(re.search(r'<script type="application/json" id="replay">(.*?)</script>', page, re.S)[1])


def page_meta(page: str) -> str:
    """The line about the run at the top of a replay page."""
    return html.unescape(re.search(r'<div class="meta" id="meta">(.*?)</div>', page, re.S)[1])


def run_page_script(page: str, probe: str) -> dict:
    """Run the page's own script (with a minimal stand-in for the DOM, given the page's embedded data), then
    `probe`, which prints JSON."""
    if shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing: .ci/run installs it, and CI must run this test")
        pytest.skip("needs node (Debian package nodejs) to run the page's script")
    data = dict(re.findall(r'<script type="application/json" id="(\w+)">(.*?)</script>', page, re.S))
    script = re.search(r"<script>\n(.*?)</script>", page, re.S)[1]
    out = subprocess.run(
        ["node", "-e", NODE_DOM + script + probe], input=json.dumps(data), capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)
