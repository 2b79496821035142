"""Save dialogs whose file name and filter agree, opening where the user saved last (else Documents)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget


def save_dialog(parent: QWidget, title: str, folder: Path, formats: dict[str, str], name: str) -> QFileDialog:
    """A save dialog in `folder` offering `formats` ({suffix: filter}), `name` under its own suffix's filter;
    choosing another filter gives the typed name that filter's suffix."""
    dialog = QFileDialog(parent, title, str(folder))
    dialog.setAcceptMode(QFileDialog.AcceptSave)
    dialog.setNameFilters(list(formats.values()))
    dialog.selectNameFilter(formats[Path(name).suffix])
    dialog.selectFile(name)
    dialog.filterSelected.connect(lambda chosen: _match_suffix(dialog, formats, chosen))
    return dialog


def chosen_path(dialog: QFileDialog, formats: dict[str, str]) -> Path | None:
    """Run the dialog; the path chosen (with the chosen filter's suffix if none was typed), or None."""
    if not dialog.exec() or not dialog.selectedFiles():
        return None
    path = Path(dialog.selectedFiles()[0])
    return path if path.suffix else path.with_suffix(_suffix_of(formats, dialog.selectedNameFilter()))


def _suffix_of(formats: dict[str, str], name_filter: str) -> str:
    return next((suffix for suffix, f in formats.items() if f == name_filter), next(iter(formats)))


def _match_suffix(dialog: QFileDialog, formats: dict[str, str], name_filter: str) -> None:
    files = dialog.selectedFiles()
    if files:
        dialog.selectFile(Path(files[0]).with_suffix(_suffix_of(formats, name_filter)).name)
