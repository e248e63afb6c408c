"""The one exception type that reaches the user as a single line.

Every stage raises `ReportgenError` for problems the user can fix (a wrong path, a foreign
checkpoint, a vocabulary that does not fit). The CLI prints its message on one line and exits
non-zero; anything else is a bug and shows a traceback only under `--debug`.
"""


class ReportgenError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""
