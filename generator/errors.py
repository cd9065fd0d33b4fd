"""User-facing errors: one line that names the problem and the fix."""


class UserError(Exception):
    """A problem with the user's input or environment, not a bug.

    The CLI prints ``error: <problem> (fix: <fix>)`` and exits 2, without a
    traceback. Stages raise it before they touch any published artifact.
    """

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.problem} (fix: {self.fix})" if self.fix else self.problem
