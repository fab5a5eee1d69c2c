"""Print the mutation score of the last `mutmut run` (``tox -e mutation``), from mutmut's own CI/CD stats
(``mutants/mutmut-cicd-stats.json``, written by ``mutmut export-cicd-stats``).

Score = (killed + timeout) / mutants run (mutmut's badge formula, without the mutants a partial run did not run);
the surviving mutants are listed by
``mutmut results`` (run after this by tox), each shown with ``mutmut show NAME``."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    path = Path("mutants/mutmut-cicd-stats.json")
    if not path.is_file():
        print(f"no mutation stats at {path} (hint: run `mutmut run` then `mutmut export-cicd-stats`)", file=sys.stderr)
        return 2
    s = json.loads(path.read_text())
    caught = int(s["killed"]) + int(s["timeout"])
    # mutants that ran (mutmut counts the mutants of a partial run, `mutmut run NAME-GLOB`, in its total)
    tested = caught + int(s["survived"]) + int(s["no_tests"]) + int(s["suspicious"]) + int(s["segfault"])
    score = 100.0 * caught / tested if tested else 0.0
    print(f"mutation score {score:.1f} %: {caught} of {tested} mutants run were killed (timeouts {s['timeout']}), "
          f"{s['survived']} survived, {s['no_tests']} not covered by a judging test, {s['suspicious']} suspicious; "
          f"{int(s['total']) - tested - int(s['skipped'])} of {s['total']} generated not run, {s['skipped']} skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
