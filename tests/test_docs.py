"""The documentation site's command pages are generated from the argparse parsers: every option of every command is
on its page (`python -m parity.cli.docs` rewrites them, `--check` is what `tox -e docs` runs)."""
import argparse
import re
import subprocess
import sys

from parity.cli import docs, parser


def options_on_page(text: str) -> set[str]:
    """The option strings and positionals named in the first cell of each row of a page's option table."""
    out = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            out.update(re.findall(r"`([^`]+)`", line.split(" | ")[0]))
    return out


def test_every_option_of_every_command_is_on_its_page():
    cmds = docs.commands(parser())
    assert {f"{docs.slug(c)}.md" for c in cmds} | {"index.md"} == {f.name for f in docs.DOCS.glob("*.md")}
    for command, (p, _help) in cmds.items():
        on_page = options_on_page((docs.DOCS / f"{docs.slug(command)}.md").read_text())
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            names = a.option_strings or [a.metavar or a.dest.upper()]
            assert set(names) <= on_page, f"{command}: {names} missing from docs/commands/{docs.slug(command)}.md " \
                                          "(run `python -m parity.cli.docs`)"
            assert (a.help or "") and (a.help.split()[0] in (docs.DOCS / f"{docs.slug(command)}.md").read_text())


def test_the_pages_are_what_the_generator_writes():
    p = subprocess.run([sys.executable, "-m", "parity.cli.docs", "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_the_check_names_a_stale_page(tmp_path):
    out = tmp_path / "commands"
    assert docs.main(["--out", str(out)]) == 0
    page = out / "doctor.md"
    page.write_text(page.read_text() + "| `--stale` |  | gone |\n")
    p = subprocess.run([sys.executable, "-m", "parity.cli.docs", "--check", "--out", str(out)], capture_output=True,
                       text=True)
    assert p.returncode == 1 and "doctor.md" in p.stderr and p.stderr.count("\n") == 1


def test_the_readme_stays_a_newcomers_page():
    """README: at most 200 lines (the reference lives in docs/), and every docs page it links to exists."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert links and [p for p in links if not (root / p).is_file()] == []
