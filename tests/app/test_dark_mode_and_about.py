"""Dark mode follows the system palette; Help → About has the version, the paper, the model card, the licences."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from app_helpers import configure, fragments, run
from bd3lm_core import default_model_dir
from bd3lm_studio.views.about import version
from bd3lm_studio.rendering.palette import DARK, LIGHT
from bd3lm_studio.rendering.replay_page import replay_page


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in ((QPalette.Window, "#202124"), (QPalette.WindowText, "#e8eaed"), (QPalette.Base, "#181818"),
                         (QPalette.Text, "#e8eaed")):
        palette.setColor(role, QColor(colour))
    return palette


def test_the_view_turns_dark_with_the_system_and_back(window, qtbot):
    configure(window, tokens=16)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    view = window.view
    window.view.timeline.setValue(2)  # a block in progress, so masks and the newest tokens show
    light = QApplication.palette()
    try:
        QApplication.setPalette(dark_palette())  # what Qt does when the system switches to dark
        qtbot.waitUntil(lambda: view.text.colours == DARK, timeout=5_000)
        assert DARK.prompt in view.text.document().defaultStyleSheet()
        assert DARK.mask_bg in {bg for _, _, bg in fragments(view)}
        assert DARK.mask_bg in view.legend.text() and LIGHT.mask_bg not in view.legend.text()
    finally:
        QApplication.setPalette(light)
    qtbot.waitUntil(lambda: view.text.colours == LIGHT, timeout=5_000)
    assert LIGHT.mask_bg in {bg for _, _, bg in fragments(view)}


def test_the_replay_page_follows_the_browsers_dark_mode(window, qtbot):
    configure(window, tokens=8)
    run(window, qtbot)
    page = replay_page(window.trace)
    dark_rule = page[page.index("@media (prefers-color-scheme: dark)"):]
    assert f"--prompt: {DARK.prompt};" in dark_rule.split("}")[0]
    assert f"--prompt: {LIGHT.prompt};" in page


def test_about_shows_the_version_the_paper_the_model_card_and_the_licences(open_window, settings):
    window = open_window(None, settings)  # the shipped model, which has a card
    about = window.show_about()
    text = about.about.toPlainText()
    assert version() == importlib.metadata.version("bd3lm-studio") and f"BD3-LM Studio {version()}" in text
    assert "Arriola" in text and "ICLR 2025" in text and "arXiv:2503.09573" in text
    assert "https://arxiv.org/abs/2503.09573" in about.about.toHtml()
    card = (default_model_dir() / "README.md").read_text(encoding="utf-8")
    assert "TinyStories" in card and "TinyStories" in about.card.toPlainText()
    licences = about.licences.toPlainText()
    assert "MIT" in licences and "CDLA-Sharing-1.0" in licences and "LGPL" in licences
    assert [about.tabs.tabText(i) for i in range(about.tabs.count())] == ["About", "Model card", "Licences"]


def test_about_says_so_when_the_model_has_no_card(window):
    assert not (Path(window.model.path) / "README.md").exists()  # the test model has no card
    about = window.show_about()
    assert "has no model card" in about.card.toPlainText()
