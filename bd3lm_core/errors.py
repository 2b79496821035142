"""The one exception type users see.

Anything that is the user's to fix (a wrong folder, a corrupt file, no network)
is raised as `BD3LMError` with a message that says what is wrong and what to
do. The CLI prints it on one line and exits with status 2; the app shows it in
a dialog. Anything else is a bug: `failures.describe` writes its traceback to
a report file and gives the one line to show (status 1).
"""


class BD3LMError(Exception):
    """A problem the user can fix; `str(err)` is the message to show them."""


def one_line(detail: object, limit: int = 200) -> str:
    """A library's message (often several lines) squeezed into a short clause of a BD3LMError."""
    text = " ".join(str(detail).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
