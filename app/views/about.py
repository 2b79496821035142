"""Help → About: the version, the paper, the loaded model's card and the licences, in three tabs."""

from __future__ import annotations

import html
import importlib.metadata
from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTabWidget, QTextBrowser, QVBoxLayout, QWidget

PAPER = (
    "Marianne Arriola, Aaron Gokaslan, Justin T. Chiu, Zhihan Yang, Zhixuan Qi, Jiaqi Han, "
    "Subham Sekhar Sahoo, Volodymyr Kuleshov. <i>Block Diffusion: Interpolating Between Autoregressive "
    "and Diffusion Language Models.</i> ICLR 2025. "
    '<a href="https://arxiv.org/abs/2503.09573">arXiv:2503.09573</a>'
)
LICENCES = """
<h3>Licences</h3>
<p><b>BD3-LM Studio</b> (this app, the <code>bd3lm</code> command and the <code>bd3lm_core</code> engine):
MIT licence.</p>
<p><b>The shipped model</b> (tinystories-bd3lm-bs2) is trained on TinyStories (Ronen Eldan and Yuanzhi Li,
2023) and shared under the same licence as its data, CDLA-Sharing-1.0; see its model card.</p>
<p><b>Published BD3-LM checkpoints</b> (kuleshov-group on the Hugging Face hub): the licence on each
model's hub page. <b>The GPT-2 tokenizer</b> they use: OpenAI, MIT licence.</p>
<p><b>Libraries</b>: Qt and PySide6 (LGPL-3.0), PyTorch (BSD-3-Clause), Hugging Face tokenizers,
safetensors and huggingface_hub (Apache-2.0), NumPy (BSD-3-Clause), platformdirs and filelock (MIT / Unlicense).</p>
"""
MAX_CARD_BYTES = 1_000_000


def version() -> str:
    try:
        return importlib.metadata.version("bd3lm-studio")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (run from a checkout that was never installed)"


def model_card(model_path: str | None) -> str | None:
    """The model folder's README.md (its card), if it has a readable one."""
    if model_path is None:
        return None
    card = Path(model_path) / "README.md"
    try:
        if card.is_file() and card.stat().st_size <= MAX_CARD_BYTES:
            return card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return None


def about_html(model_name: str | None) -> str:
    loaded = f"<p>Loaded model: <b>{html.escape(model_name)}</b>.</p>" if model_name else ""
    return (
        f"<h2>BD3-LM Studio {version()}</h2>"
        "<p>Watch, steer and compare block diffusion language models: a block of tokens at a time, "
        "left to right, each block unmasked over a few denoising steps.</p>"
        f"<p><b>The paper.</b> {PAPER}</p>{loaded}"
    )


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None, model_name: str | None, model_path: str | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About")  # Qt adds the application's name
        self.resize(640, 480)
        self.tabs = QTabWidget()
        self.about = self._page(about_html(model_name))
        self.tabs.addTab(self.about, "About")
        card = model_card(model_path)
        self.card = self._page("")
        if card is None:
            name = html.escape(model_name or "This model")
            self.card.setHtml(f"<p>{name} has no model card (README.md in its folder).</p>")
        else:
            self.card.setMarkdown(card)
        self.tabs.addTab(self.card, "Model card")
        self.licences = self._page(LICENCES)
        self.tabs.addTab(self.licences, "Licences")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)

    @staticmethod
    def _page(text: str) -> QTextBrowser:
        page = QTextBrowser()
        page.setOpenExternalLinks(True)
        page.setHtml(text)
        return page
