"""The errors a user can fix (a bad parameter, missing data, a damaged checkpoint, a full disk, a diverged run):
each message names the problem and the fix, and a notebook shows it as that one line instead of a traceback."""


class UserError(Exception):
    """Base of the project's errors whose message is the whole story."""

    def _render_traceback_(self) -> list[str]:  # IPython (Jupyter, papermill) shows this instead of the traceback
        return [f"{type(self).__name__}: {self}"]


class ParameterError(UserError, ValueError):
    """A notebook parameter has a value that cannot work, or is not a parameter; the message names it and the fix."""
