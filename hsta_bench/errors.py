"""The one exception a user can cause.

Anything a user can get wrong (a path, an option, a sheet) raises `UserError` with one line that names
the file, row or option and what is wrong; the CLI prints that line and exits non-zero, never a traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
