"""The suite's error family and its exit codes. Framework-free.

Every error a user can cause (a bad argument, a missing file, a wrong label file, a weight file that does not
fit) is a ``ParityError``: the CLI prints it as one line with its ``hint`` and exits with its ``exit_code``.
Anything else that escapes is a bug: the CLI prints a one-line summary, writes the traceback to the run's log and
exits with ``EXIT_INTERNAL`` -- a programming error is never disguised as a user error.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1        # a check failed or errored: the suite has evidence of a difference (or a broken step)
EXIT_USAGE = 2         # bad input, refused before any work (argument, path, registry id, data, weight file)
EXIT_NOTHING = 3       # nothing was checked: every check skipped, zero images evaluated, no results to report
EXIT_INTERNAL = 4      # a bug in the suite: one-line summary on screen, traceback in the run's log
EXIT_DIFFS = 10        # `watch`: upstream changed (diffs found and filed): an outcome, not a failure
EXIT_INTERRUPTED = 130  # Ctrl-C: partial results written and marked partial
EXIT_TERMINATED = 143   # SIGTERM (a CI runner's cancel or timeout): handled as Ctrl-C is, 128 + 15 as a shell reports it

EXIT_CODES = {
    EXIT_OK: "everything that ran passed (skips only where a check could not run here, each with its reason)",
    EXIT_FAILED: "a check failed or errored, a published cell mismatched, or a step of the run failed",
    EXIT_USAGE: "bad input refused before any work: argument, path, model id, dataset, label file, weight file",
    EXIT_NOTHING: "nothing was checked: every check skipped, zero images evaluated, or no results to report",
    EXIT_INTERNAL: "a bug in mbv2-parity: one-line summary, full traceback in WORKDIR/mbv2-parity.log",
    EXIT_DIFFS: "`watch` found upstream changes (and filed them unless --dry-run)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): partial results written and marked partial",
    EXIT_TERMINATED: "terminated (SIGTERM, e.g. a CI cancel or timeout): as 130, workers stopped, partial results written",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler: a KeyboardInterrupt, so every path that writes partial
    results and stops workers and decoders on Ctrl-C does the same for it."""


class ParityError(Exception):
    """A user-facing error: one line (``str(e)``) plus a ``hint``; the CLI exits with ``exit_code``."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        msg = " ".join(str(self).split())
        return msg + (f" (hint: {self.hint})" if self.hint else "")


class UsageError(ParityError):
    """A command-line argument or path that cannot work, refused before any worker starts."""


class RuntimeRefused(ParityError):
    """A third-party runtime refused or failed on a file the suite made (a session that cannot be created): the check
    fails naming the runtime, its version, what it said and any known upstream report -- a finding about the runtime,
    never "internal error (a bug)" of the suite."""

    exit_code = EXIT_FAILED


class NothingChecked(ParityError):
    """A run that would otherwise exit 0 having checked nothing."""

    exit_code = EXIT_NOTHING
