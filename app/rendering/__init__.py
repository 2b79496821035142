"""How a run looks outside a widget: colours, glyphs, paces, the replay page and the export files."""
