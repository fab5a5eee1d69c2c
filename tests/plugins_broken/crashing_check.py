"""A plug-in check with a bug: its result is an error naming the bug, never a pass."""
from parity import checks
from parity.checks import Check, CheckResult


@checks.register
class Broken(Check):
    kind = "demo-broken"
    standard = True

    def run(self, h, card, **params) -> CheckResult:
        return 1 / 0
