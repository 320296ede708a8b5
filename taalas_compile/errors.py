"""Errors a user can cause and fix (bad recipe, missing file, model too big for the die, ...).

The CLI prints a ``UserError`` as one red line and exits with code 2; anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """An error the user can fix; the message is one line that says what is wrong and where."""
