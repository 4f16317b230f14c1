"""The one exception type users see: a single line naming the problem and the fix."""


class WeakliftError(Exception):
    """Bad input or configuration. The CLI prints ``str(err)`` on one line and exits with code 2."""

    def __init__(self, problem: str, fix: str | None = None):
        message = problem if fix is None else f"{problem}; fix: {fix}"
        super().__init__(message.replace("\n", " "))
