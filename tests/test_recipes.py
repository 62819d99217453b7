"""The recipe codes: every code the package cites is in the table, and `kerasguide recipes` prints it."""

from __future__ import annotations

import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

from kerasguide.cli import main
from kerasguide.recipes import FAMILIES, RECIPES, UnknownRecipe, expand_codes, format_recipes

PACKAGE = Path(__file__).resolve().parent.parent / "kerasguide"

# A family letter and a number, standing alone: "B5", "D12-D15", "(recipe G24)"; not "x.A1", "A1b", "0x1F2".
_CITED = re.compile(r"(?<![\w.])[A-K]\d{1,2}\b")
_TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT} | (
    {tokenize.FSTRING_MIDDLE} if sys.version_info >= (3, 12) else set()
)


def cited_codes(source: str) -> set[str]:
    """The recipe-like codes in a Python source's string literals (help texts, messages, docstrings) and comments."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {code for tok in tokens if tok.type in _TEXT_TOKENS for code in _CITED.findall(tok.string)}


def uncited_codes(folder: Path) -> dict[str, set[str]]:
    """File -> the codes it cites that the table lacks; files that cite only known codes left out."""
    missing = {}
    for path in sorted(folder.rglob("*.py")):
        unknown = cited_codes(path.read_text(encoding="utf-8")) - RECIPES.keys()
        if unknown:
            missing[str(path.relative_to(folder.parent))] = unknown
    return missing


def test_every_code_the_package_cites_is_in_the_table():
    assert uncited_codes(PACKAGE) == {}


def test_the_package_cites_codes_at_all():
    """The scan sees the help texts (a scan that found nothing would pass the test above vacuously)."""
    cited = cited_codes((PACKAGE / "cli_args.py").read_text(encoding="utf-8"))
    assert {"J34", "J36", "E16", "E20"} <= cited


def test_a_planted_unknown_code_is_caught(tmp_path):
    sample = 'def f():\n    """Weight decay (recipe C9)."""\n    raise ValueError("see recipes D12-D15 and D99")\n'
    assert cited_codes(sample) == {"C9", "D12", "D15", "D99"}
    package = tmp_path / "kerasguide"
    package.mkdir()
    (package / "clean.py").write_text("HELP = 'the LR range test (G24)'  # G23 too\n")
    (package / "planted.py").write_text(sample)
    assert uncited_codes(package) == {"kerasguide/planted.py": {"D99"}}


def test_not_every_letter_and_digit_is_a_code():
    assert cited_codes("x = 'version 1.A1, A1b, 0xA1, kerasguide.B5, E123'\n") == set()
    assert cited_codes("x = 1  # plain code, no strings\n") == set()


def test_the_table_is_numbered_through_by_family():
    numbers = [int(code[1:]) for code in RECIPES]
    assert numbers == list(range(1, len(RECIPES) + 1))
    assert {code[0] for code in RECIPES} == set(FAMILIES)
    assert [code[0] for code in RECIPES] == sorted(code[0] for code in RECIPES)
    for code, title in RECIPES.items():
        assert title.strip() and "\n" not in title, code


def test_expand_codes():
    assert expand_codes(["g24", "D12-D14", "J"]) == ["D12", "D13", "D14", "G24", "J34", "J35", "J36"]
    assert expand_codes(["B05", "B5"]) == ["B5"]
    with pytest.raises(UnknownRecipe) as info:
        expand_codes(["G24", "Z9", "D15-D12", "D12-D99"])
    assert info.value.codes == ["Z9", "D15-D12", "D12-D99"]


def test_format_recipes_groups_by_family():
    text = format_recipes(["G24", "A2"])
    assert text.splitlines() == [
        "A  Data",
        f"  A2   {RECIPES['A2']}",
        "G  Learning-rate schedules and the range test",
        f"  G24  {RECIPES['G24']}",
    ]
    assert len(format_recipes().splitlines()) == len(RECIPES) + len(FAMILIES)


def test_cli_recipes_prints_the_table(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for code, title in RECIPES.items():
        assert f"{code:<4s} {title}" in out


def test_cli_recipes_named(capsys):
    assert main(["recipes", "G24", "d12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("  ")] == ["D12", "G24"]


def test_cli_recipes_unknown_code_is_one_line_exit_2(capsys):
    assert main(["recipes", "G24", "Q7"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.count("\n") == 0 and "unknown recipe code: Q7 " in err


def test_the_module_example_runs():
    import doctest

    import kerasguide.recipes

    assert doctest.testmod(kerasguide.recipes).failed == 0
