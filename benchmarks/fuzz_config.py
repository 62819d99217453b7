"""Bad input, fuzzed for longer (issue 15's quality bar): `kerasguide config FILE` on generated configs.

The strategies and the judge are `tests/test_fuzz_config.py`'s (the test suite runs them bounded): dicts
over the whole schema with values of every type, the default config with one key set to anything, byte mutations of the bundled presets, arrays and tables
nested up to 3000 deep, plus a few huge files (10 MB of unknown keys, a 10 MB name). Each input must end
with exit 0 (TOML that reads back the same) or exit 2 and one line of at most 300 characters.

    .venv/bin/python benchmarks/fuzz_config.py [--examples 3000]

Prints a table: inputs tried, accepted, refused, tracebacks, other exit codes, longest message, seconds.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.test_fuzz_config import (  # noqa: E402
    _FOLDER,
    deep_texts,
    mutated_presets,
    one_key_texts,
    schema_texts,
    try_config,
)


def huge_inputs() -> list[bytes]:
    return [
        "".join(f"key_{i} = {i}\n" for i in range(700_000)).encode(),  # about 10 MB of unknown keys
        b'name = "' + b"n" * 10_000_000 + b'"\n',
        b"[model]\n" + "".join(f"k{i} = {i}\n" for i in range(100_000)).encode(),
        b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    ]


def measure(name: str, strategy, examples: int, row: dict) -> None:
    outcomes: list = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(data):
        outcomes.append(try_config(data, _FOLDER))

    started = time.perf_counter()
    collect()
    _add(row, name, outcomes, time.perf_counter() - started)


def _add(row: dict, name: str, outcomes: list, seconds: float) -> None:
    codes = collections.Counter(o.code for o in outcomes)
    problems = [o.problem() for o in outcomes if o.problem()]
    row[name] = {
        "inputs": len(outcomes),
        "accepted": codes.get(0, 0),
        "refused": codes.get(2, 0),
        "tracebacks": sum(1 for o in outcomes if o.traceback),
        "bad exit codes": sum(1 for o in outcomes if not o.traceback and o.code not in (0, 2)),
        "bad messages": sum(1 for o in outcomes if o.code == 2 and o.problem()),
        "longest message": max((len(line) for o in outcomes for line in o.message.splitlines()), default=0),
        "seconds": seconds,
        "problems": problems[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="inputs per generated kind (default 3000)")
    args = parser.parse_args()
    rows: dict = {}
    measure("schema dicts", schema_texts(), args.examples, rows)
    measure("one key of the default config", one_key_texts(), args.examples, rows)
    measure("mutated presets", mutated_presets(), args.examples, rows)
    measure("deep nesting", deep_texts(), max(args.examples // 10, 10), rows)
    started = time.perf_counter()
    huge = [try_config(data, _FOLDER) for data in huge_inputs()]
    _add(rows, "huge files (10 MB)", huge, time.perf_counter() - started)
    columns = ["inputs", "accepted", "refused", "tracebacks", "bad exit codes", "bad messages", "longest message",
               "seconds"]
    print("| kind | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" if c == "seconds" else str(row[c]) for c in columns) + " |")
    total = {c: sum(r[c] for r in rows.values()) for c in ("inputs", "tracebacks", "bad exit codes", "bad messages")}
    print(f"\n{total['inputs']} inputs, {total['tracebacks']} tracebacks, {total['bad exit codes']} bad exit codes, "
          f"{total['bad messages']} bad messages (not one line of <= 300 characters), "
          f"longest message {max(r['longest message'] for r in rows.values())} characters")
    for name, row in rows.items():
        for problem in row["problems"]:
            print(f"  {name}: {problem}")
    return 1 if total["tracebacks"] or total["bad exit codes"] or total["bad messages"] else 0


if __name__ == "__main__":
    sys.exit(main())
