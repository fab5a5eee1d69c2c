"""Help and output that fit: every option has help text, and tables printed at 60, 80, 120 and 200 columns never
split a number, a status or an id (a table below its words' width becomes one record per block)."""
import argparse
import io
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from parity.checks import CheckResult
from parity.cli import check, parser
from parity.cli import common as cli_common
from support import REGISTRY

WIDTHS = (60, 80, 120, 200)
BORDER = r"\s│┃|╇╋┡┩┏┓┗┛━─"


def every_action(p: argparse.ArgumentParser, name: str = "mbv2-parity"):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in a._choices_actions}
            for cmd, sp in a.choices.items():
                yield f"{name} {cmd}", None, helps.get(cmd), sp
                yield from every_action(sp, f"{name} {cmd}")
        else:
            yield name, a, a.help, p


def test_every_option_of_every_command_has_help_text():
    missing = [f"{where} {a.option_strings or a.dest}" if a is not None else f"{where} (the command itself)"
               for where, a, help_text, _p in every_action(parser()) if not help_text]
    assert missing == []


def test_every_command_help_opens_with_what_it_does_and_the_top_level_help_is_not_a_docstring():
    for where, a, _h, p in every_action(parser()):
        if a is None:
            assert p.description, where
    top = subprocess.run([sys.executable, "-m", "parity.cli", "-h"], capture_output=True, text=True,
                         env=dict(os.environ, COLUMNS="80"))
    assert top.returncode == 0 and "``" not in top.stdout and "one module per command" not in top.stdout
    assert "MobileNetV2" in top.stdout and "Exit codes" in top.stdout
    assert max(len(line) for line in top.stdout.splitlines()) <= 80


def render(renderable, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(renderable)
    return buf.getvalue().splitlines()


def whole(token: str, lines: list[str]) -> bool:
    """``token`` on one line, bounded by spaces or table borders (not a piece of a longer word; a list's comma may
    follow)."""
    pat = re.compile(rf"(?<![^{BORDER}]){re.escape(token)}(?![^{BORDER},;])")
    return any(pat.search(line) for line in lines)


def assert_fits(t, width: int) -> list[str]:
    lines = render(t, width)
    assert max(len(line) for line in lines) <= width, (width, lines)
    for row in t.rows:
        for cell in row:
            for token in cell.plain.split():
                assert whole(token, lines), (width, token, "\n".join(lines))
    return lines


def checks_table():
    reason = ("top1=1.00 top5=1.00 max_abs=2.6e-06 over 14 probe images; ort-opt-on 327.5 / 513.2 MFLOPs "
              "cosine_min=0.9999999 tolerances atol=1e-4 rtol=1e-3")
    results = []
    for card in ("timm/mobilenetv2_050.lamb_in1k", "torchvision/mobilenet_v2.IMAGENET1K_V1",
                 "mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af"):
        m = {rt: {"max_abs": 2.6e-06, "top1_agree": 1.0, "top5_agree": 1.0} for rt in ("ort-opt-off", "ort-opt-on")}
        results += [CheckResult(card, "onnx-opset17", "pass", reason, "seeded", m),
                    CheckResult(card, "deploy-ort-fp16", "fail", reason, "real", m),
                    CheckResult(card, "counts", "error", "pas", "-")]
    return results


@pytest.mark.parametrize("width", WIDTHS)
def test_check_table_fits_without_splitting_a_word(width):
    buf = io.StringIO()
    con = cli_common.console
    old = con._file, con.width    # _file, not file: file is sys.stdout of *this* test's capture when unset
    con.file, con.width = buf, width
    try:
        check.show(checks_table(), 12.3, 3)
    finally:
        con._file, con.width = old
    lines = buf.getvalue().splitlines()
    for token in ("timm/mobilenetv2_050.lamb_in1k", "mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af", "pass",
                  "fail", "error", "2.6e-06", "1.00", "deploy-ort-fp16", "327.5", "513.2", "cosine_min=0.9999999"):
        assert whole(token, lines), (width, token, "\n".join(lines))
    assert max(len(line) for line in lines) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_a_table_is_a_table_when_its_words_fit_and_blocks_below(width):
    t = cli_common.table("published cells reproduced",
                         ["card", "metric", "source", "published", "computed", "convention", "status", "residual"])
    for c in list(REGISTRY)[:6]:
        t.add_row(c.id, "flops", "timm-results", "327.5 MFLOPs", "327.4865 MFLOPs", "with_bn_stats",
                  "[yellow]within-tolerance[/]", "+0.004%")
    lines = assert_fits(t, width)
    table_width = len("within-tolerance") + len("mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af") + 60
    assert any("┃" in line for line in lines) == (width >= table_width), "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_list_fits_every_width_with_ids_whole(width):
    p = subprocess.run([sys.executable, "-m", "parity.cli", "list"], capture_output=True, text=True,
                       env=dict(os.environ, COLUMNS=str(width)))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    for c in REGISTRY:
        assert whole(c.id, lines), c.id
        for x in c.published:
            assert whole(f"{x.metric}={x.digits}{'' if x.unit == 'count' else x.unit}[{x.source}]", lines)
    # before: 1,122 lines at 80 columns (every published cell folded in a narrow column)
    assert len(lines) < 12 * len(REGISTRY)


def test_a_cut_reason_ends_at_a_space():
    assert cli_common.clip("top1=1.00 top5=1.00", 14) == "top1=1.00 …"
    assert cli_common.clip("short", 14) == "short"


def shown(results, width=120):
    buf = io.StringIO()
    con = cli_common.console
    old = con._file, con.width    # _file, not file: file is sys.stdout of *this* test's capture when unset
    con.file, con.width = buf, width
    try:
        check.show(results, 1.0, 1)
        lines = [check._line(r) for r in results if r.status != "skip"]
        lines += [check._skip_line(rs) for _w, rs in check.skip_groups(results)]
        con.print("\n".join(lines))
    finally:
        con._file, con.width = old
    return buf.getvalue().splitlines()


def test_identical_skips_of_a_card_are_one_line_and_one_row_and_all_kept():
    why = "pretrained weights unavailable: offline mode and not in the cache (url: https://example.org/w.pth)"
    card = "timm/mobilenetv2_050.lamb_in1k"
    rs = [CheckResult(card, f"deploy-rt{i}", "skip", why, "pretrained") for i in range(12)]
    rs += [CheckResult(card, "onnx-opset17", "skip", "another reason", "real"),
           CheckResult(card, "spec", "pass", "fine", "-")]
    lines = shown(rs)
    assert sum(why[:30] in line for line in lines) == 2          # the per-check line and the reason below the table
    assert sum("12 checks" in line for line in lines) == 3 and sum("another reason" in line for line in lines) == 2
    assert sum(card in line and "skip" in line for line in lines if "│" in line) == 2   # table rows: one per reason
    assert [len(g) for _w, g in check.skip_groups(rs)] == [12, 1]


@pytest.mark.parametrize("width", (60, 80, 120))
def test_a_per_check_line_is_one_line_cut_at_a_space(width):
    r = CheckResult("c", "onnx-opset17", "pass", "ort-opt-off: max_abs=5.76e-04 max_rel=1.84e-05 cos_min=1.0000000 "
                    "top1=1.000 top5=1.000 | ort-opt-on: max_abs=5.46e-04 top1=1.000 top5=1.000", "seeded")
    lines = shown([r], width)
    line = next(line for line in lines if line.startswith("  onnx-opset17"))
    assert len(line) <= width and line.endswith(" …")
    assert set(line.split()[3:-1]) <= set(r.reason.split())      # what is shown is whole words of the reason


def test_preprocess_runs_the_difference_matrix_only_when_asked():
    from parity.cli import namespace_for
    assert namespace_for(["preprocess", "keras/*"]).matrix == 0
    assert namespace_for(["preprocess", "keras/*", "--matrix", "100"]).matrix == 100


def test_eval_shows_the_published_deployed_numbers_of_what_was_evaluated_only():
    from parity.cli.eval import concerning
    from parity.deploy.published import table_rows
    every = table_rows(REGISTRY)
    assert len(every) >= 10
    shown_rows = concerning(every, [("tflite-int8", "int8")])
    assert shown_rows and {(r["runtime"], r["precision"]) for r in shown_rows} == {("tflite", "int8")}
    assert {(r["runtime"], r["precision"]) for r in concerning(every, [("torch-qnnpack", "int8")])} == \
        {("torch-qnnpack", "int8")}
    assert concerning(every, [("ort-fp16", "fp16"), ("openvino-int8", "int8")]) == []
    assert {r["precision"] for r in concerning(every, [("tflite", "fp32")])} == {"fp32"}


@pytest.mark.parametrize("width", WIDTHS)
def test_detail_columns_leave_the_table_before_it_becomes_blocks(width):
    pub = "; ".join(f"{s} 71.80 pass" for s in ("keras-docs", "keras-applications", "seed000", "seed004", "tflite-hosted"))
    t = cli_common.table("evaluation", ["card", "runtime", "precision", "images", "top-1 [95 % CI]", "top-5 [95 % CI]",
                                        "skipped", "img/s", "cache", "vs published"], details=("vs published",))
    for rt in ("native", "tflite-int8"):
        t.add_row("keras/mobilenet_v2_1.0_224.imagenet", rt, "fp32", "1000", "71.20 [68.2, 74.2]", "90.00 [88.0, 92.0]",
                  "0", "137", "hit", pub)
    lines = assert_fits(t, width)
    in_table = any("┃" in line and "runtime" in line for line in lines)
    assert in_table == (width >= 120) and any("vs published" in line for line in lines)
    if width == 120:   # the table without the details column, the details below it
        assert not any("vs published" in line and "┃" in line for line in lines)
