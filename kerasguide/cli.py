"""The `kerasguide` command line: one module, a function per subcommand, `main() -> int`.

Exit codes: 0 ok, 1 the run failed (or was interrupted / diverged),
2 bad input (config, paths), 3 a sanity check failed.

TensorFlow is imported only by the subcommands that train, so `--help`,
`config` and `runs` answer at once. The parser is `kerasguide.cli_args`'s
(TensorFlow-free, so the desktop app can read which commands exist without
importing this module); each subcommand's name maps to its `cmd_*` function
in `COMMANDS` below. A new subcommand adds its `_add_*` there and its
`cmd_*` here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from kerasguide._logging import configure_cli_output, get_logger
from kerasguide.cli_args import build_parser
from kerasguide.config import ConfigError, RunConfig, dump_config, load_config
from kerasguide.errors import CommandFailed, one_line
from kerasguide.interrupts import clear_interrupt_request, request_interrupt
from kerasguide.progress import Progress

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_CHECK_FAILED"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 3

logger = get_logger()

STATUS_EXIT = {
    "completed": EXIT_OK,
    "failed": EXIT_FAILED,
    "interrupted": EXIT_FAILED,
    "diverged": EXIT_FAILED,
    "checks_failed": EXIT_CHECK_FAILED,
    "pruned": EXIT_FAILED,  # stopped by the diagnosis (monitor.prune): a problem, as a divergence is
}


class CliError(Exception):
    """Bad input found by the CLI itself; printed as one line, exit 2."""


def _resolve_config(value: str | None) -> tuple[RunConfig, str | None]:
    """A config from a path, a run directory, a preset name, or the digits preset."""
    from kerasguide.config import DEFAULT_CONFIG_NAME
    from kerasguide.presets import preset_names, preset_path

    if value is None:
        # The bundled digits recipe (checks, LR range test, one-cycle), as
        # `make demo`, the README and each command's help promise.
        default = preset_path(DEFAULT_CONFIG_NAME)
        return load_config(default), str(default)
    path = Path(value)
    if not path.exists() and value in preset_names():
        path = preset_path(value)
    if not path.exists():
        raise ConfigError(
            f"{value}: no such config file or preset (presets: {', '.join(preset_names())})"
        )
    return load_config(path), str(path)


def _out_dir(value: str, option: str = "--out") -> None:
    """Create the output folder now, or say in one line (exit 2) why it cannot be: a file, under a file, not
    writable. Found at the end of a run's set-up, these were FileExistsError / NotADirectoryError /
    PermissionError tracebacks with exit 1."""
    path = Path(value).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CliError(f"{option} {value}: is a file, not a folder") from None
    except NotADirectoryError:
        above = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        raise CliError(f"{option} {value}: is under {above or 'a file'}, which is a file, not a folder") from None
    except OSError as error:
        raise CliError(f"{option} {value}: cannot create it: {error.strerror or error}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CliError(f"{option} {value}: not writable by this user")


def _install_sigterm() -> None:
    # SIGTERM is turned into KeyboardInterrupt so the run is recorded as interrupted and keeps what was
    # written, exactly as for Ctrl-C; both note the request first (an error it causes is still an interrupt).
    def handler(signum, frame):
        request_interrupt()
        raise KeyboardInterrupt

    clear_interrupt_request()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _prepare_tf_env(args=None) -> None:
    """Call before importing anything that imports TensorFlow: hides its start-up chatter."""
    from kerasguide._logging import import_tensorflow

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    import_tensorflow()


# ----------------------------------------------------------------- commands
def cmd_run(args) -> int:
    if args.resume is not None:
        return _resume(args)
    config, path = _resolve_config(args.config)
    if args.epochs is not None:
        if args.epochs < 1:
            raise CliError(f"--epochs must be >= 1. Received: {args.epochs}")
        config.train.epochs = args.epochs
    _out_dir(args.out)
    _prepare_tf_env(args)
    _install_sigterm()
    from kerasguide.spine import run

    result = run(config, out=args.out, json_progress=args.json_progress,
                 verbose=0 if args.quiet else 1, config_path=path)
    return _run_outcome(result, args)


def _resume(args) -> int:
    for given, flag in ((args.config, "a config"), (args.epochs, "--epochs")):
        if given is not None:
            raise CliError(f"--resume continues the config the run recorded: {flag} cannot go with it")
    _prepare_tf_env(args)
    _install_sigterm()
    from kerasguide.spine import resume

    return _run_outcome(resume(args.resume, json_progress=args.json_progress, verbose=0 if args.quiet else 1), args)


def _run_outcome(result, args) -> int:
    """The lines `run` ends with (its outcome, where its files are) and its exit code."""
    code = STATUS_EXIT.get(result.status, EXIT_FAILED)
    out = sys.stderr if args.json_progress else sys.stdout
    if result.status == "completed":
        metrics = result.final_metrics
        line = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("val_", "test_")))
        print(f"run completed: {line}", file=out)
    else:
        print(f"run {result.status}: {result.error or ''}".rstrip(": "), file=out)
    print(f"run directory: {result.path}", file=out)
    print(f"  report:      {result.path / 'report.md'}", file=out)
    print(f"  TensorBoard: {result.path / 'tb'}  (look: kerasguide board {result.path})", file=out)
    print("  desktop app: kerasguide gui", file=out)
    return code


def cmd_config(args) -> int:
    if args.schema:
        print(json.dumps(RunConfig.model_json_schema(), indent=2))
        return EXIT_OK
    config, _ = _resolve_config(args.config)
    print(dump_config(config), end="")
    return EXIT_OK


def cmd_presets(args) -> int:
    from kerasguide.presets import preset_names, preset_path

    for name in preset_names():
        config = load_config(preset_path(name))
        print(f"{name:20s} {config.description}")
    return EXIT_OK


def cmd_runs(args) -> int:
    from kerasguide.rundir import list_runs

    runs = list_runs(args.dir)
    if not runs:
        print(f"no runs in {args.dir}")
        return EXIT_OK
    for info in runs:
        status = "killed?" if info.status == "running" and info.is_stale() else info.status  # killed: gone from here
        best = info.best
        score = f"{best.get('metric')}={best.get('value'):.4f}@{best.get('epoch')}" if best.get("value") is not None else ""
        print(f"{info.path.name:50s} {status:13s} {score}")
    return EXIT_OK


def cmd_board(args) -> int:
    from kerasguide.board import start_tensorboard

    path = Path(args.path)
    if not path.exists():
        raise CliError(f"{path}: no such run directory or folder")
    _install_sigterm()  # SIGTERM, like Ctrl-C, stops the TensorBoard child too: no orphan
    # a bad or busy port, or TensorBoard's own error: board.BoardError, a ConfigError (one line, exit 2)
    server = start_tensorboard(path, port=args.port)  # a run directory, not its tb/ (board.logdir_args)
    print(f"TensorBoard for {path}: {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return EXIT_OK


# A headless install (`pip install kerasguide`, no [gui] extra) has no Qt; the app's own entry says the same.
GUI_MISSING = "kerasguide: the desktop app needs PySide6: pip install 'kerasguide[gui]'"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-removed install
        return False


def cmd_gui(args) -> int:
    # The app runs as its own process: the core never imports Qt (an import-linter contract).
    if not _importable("PySide6"):
        print(GUI_MISSING, file=sys.stderr)
        return EXIT_BAD_INPUT
    if not _importable("kerasguide_gui"):
        raise CliError("the desktop app is not available: no module kerasguide_gui; reinstall kerasguide[gui]")
    command = [sys.executable, "-m", "kerasguide_gui.app", *([args.config] if args.config else [])]
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_check(args) -> int:
    """Sanity checks of a config's model and data (recipes B5, D12-D15, A2); exit 3 on failure."""
    config, path = _resolve_config(args.config)
    _out_dir(args.out)
    _prepare_tf_env(args)
    _install_sigterm()
    from kerasguide.checks import failure_lines, format_table
    from kerasguide.spine import check_config

    run_dir, results = check_config(config, out=args.out, config_path=path, progress=Progress(args.json_progress))
    if args.json:
        print(run_dir.file("checks.json").read_text(encoding="utf-8"), end="")  # NaN already null
    else:
        # With --json-progress, stdout is the events' alone: the table goes to stderr.
        out = sys.stderr if args.json_progress else sys.stdout
        print(format_table(results), file=out)
        for line in failure_lines(results):
            print(line, file=out)
        print(f"checks.json: {run_dir.file('checks.json')}", file=out)
    return EXIT_OK if all(r.passed for r in results) else EXIT_CHECK_FAILED


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _tune_stop(args, config: RunConfig) -> int:
    """`tune CONFIG --stop`: the newest search of exactly this config under --out, asked to stop."""
    from kerasguide.search.status import request_stop

    out = Path(args.out)
    digest = _search_digest(config)
    found = sorted((p for p in out.glob("*-search") if _read_hash(p) == digest), key=lambda p: p.name)
    if not found:
        raise CliError(f"{out}: no search of {config.name} to stop (kerasguide tune starts one)")
    answer = request_stop(found[-1], now=args.now)
    if args.json:
        _print_json(dict(answer, search_dir=str(found[-1])))
    else:
        print(answer["message"])
    return EXIT_OK


def _search_digest(config: RunConfig) -> str:
    import hashlib

    # kerasguide.search.runner._search_hash, without importing the runner (it loads keras-tuner)
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _read_hash(path: Path) -> str | None:
    from kerasguide.rundir import read_json

    state = read_json(path / "search.json", default=None)
    return state.get("config_hash") if isinstance(state, dict) else None


def cmd_tune(args) -> int:
    """Hyperparameter search, coarse to fine (recipes H25-H31); exit 0 completed or stopped on request, 1 failed or
    interrupted."""
    import time

    if args.now and not args.stop:
        raise CliError("--now goes with --stop")
    if args.json and not (args.dry_run or args.stop):
        raise CliError("--json goes with --dry-run or --stop (a search's own JSON lines: --json-progress)")
    config, path = _resolve_config(args.config)
    from kerasguide.search.space import resolve_space

    resolve_space(config)  # a bad space is one line and exit 2, before TensorFlow loads
    if args.stop:
        return _tune_stop(args, config)
    if not args.dry_run:
        _out_dir(args.out)
    started = time.perf_counter()
    _prepare_tf_env(args)
    _install_sigterm()
    if args.dry_run:
        # What the search's start (and each worker process) pays: timed for the estimate, nothing run.
        import kerasguide.search.runner  # noqa: F401
        import kerasguide.spine  # noqa: F401
        from kerasguide.search.budget import estimate_budget, format_budget

        budget = estimate_budget(config, import_seconds=time.perf_counter() - started)
        if args.json:
            _print_json(budget.to_dict())
        else:
            print(format_budget(budget))
        return EXIT_OK
    from kerasguide.search.runner import tune

    result = tune(config, out=args.out, json_progress=args.json_progress, new=args.new, config_path=path)
    out = sys.stderr if args.json_progress else sys.stdout
    best = result.best
    if result.status == "completed" and best:
        values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["values"].items())
        print(f"search completed: best {best['metric']} {best['score']:.4f} after {best['epochs']} epochs: {values}", file=out)
    else:
        print(f"search {result.status}: {result.error or ''}".rstrip(": "), file=out)
    if result.status == "stopped":
        print(f"  resume:      kerasguide tune {path or 'CONFIG'} --out {args.out}", file=out)
    for warning in result.warnings:
        print(f"warning: {warning}", file=out)
    print(f"search directory: {result.path}", file=out)
    print(f"  report:      {result.path / 'search.md'}", file=out)
    if result.best_config is not None:
        print(f"  best config: {result.best_config}  (kerasguide run {result.best_config})", file=out)
    if result.best_model is not None:
        print(f"  best model:  {result.best_model}  (kerasguide predict {result.path} INPUT)", file=out)
    # A stop asked for (search-status --stop) is an outcome, not a failure: the search resumes where it stopped.
    return EXIT_OK if result.status in ("completed", "stopped") else EXIT_FAILED


def cmd_search_status(args) -> int:
    """A search seen from outside: running trials, epochs, scores, best, ETA; `--stop` asks it to stop."""
    from kerasguide.search.status import NotASearch, format_status, request_stop, search_status

    if args.now and not args.stop:
        raise CliError("--now goes with --stop")
    try:
        if args.stop:
            answer = request_stop(args.search_dir, now=args.now)
            if args.json:
                _print_json(answer)
            else:
                print(answer["message"])
            return EXIT_OK
        status = search_status(args.search_dir)
    except NotASearch as error:
        raise CliError(str(error)) from None
    if args.json:
        _print_json(status)
    else:
        print(format_status(status))
    return EXIT_OK


def cmd_ensemble(args) -> int:
    """Ensembles, averaged predictions and distillation (recipes J34, J36); exit 0 ok, 1 a member failed."""
    sources = sum(bool(s) for s in (args.runs, args.snapshots))
    if sources > 1:
        raise CliError("give either --runs or --snapshots, not both")
    if args.members is not None and args.members < 1:
        raise CliError(f"--members must be >= 1. Received: {args.members}")
    for value in [*(args.runs or []), *([args.snapshots] if args.snapshots else [])]:
        path = Path(value)
        if not path.is_dir():
            raise CliError(f"{value}: no such run directory")
        if not ((path / "run.json").is_file() or (path / "search.json").is_file()):
            raise CliError(f"{value}: not a kerasguide run or search directory (no run.json or search.json)")
    config, path = (None, None)
    if args.config is not None or not sources:
        config, path = _resolve_config(args.config)
    if args.temperature is not None and not args.temperature > 0:
        raise CliError(f"--temperature must be > 0. Received: {args.temperature}")
    if args.alpha is not None and not 0 <= args.alpha <= 1:
        raise CliError(f"--alpha must be in [0, 1]. Received: {args.alpha}")
    if args.epochs is not None and args.epochs < 1:
        raise CliError(f"--epochs must be >= 1. Received: {args.epochs}")
    _out_dir(args.out)
    _prepare_tf_env(args)
    _install_sigterm()
    from kerasguide.ensemble import MemberFailed, run_ensemble

    try:
        result = run_ensemble(
            config, members=args.members, runs=args.runs, snapshots=args.snapshots, out=args.out,
            distill=args.distill, json_progress=args.json_progress, verbose=0 if args.quiet else 1,
            overrides={k: v for k, v in (("ensemble.temperature", args.temperature), ("ensemble.alpha", args.alpha),
                                          ("train.epochs", args.epochs)) if v is not None},
        )
    except MemberFailed as error:
        print(f"kerasguide: ensemble failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    out = sys.stderr if args.json_progress else sys.stdout
    for split, metrics in (("validation", result.validation), ("test", result.test)):
        if not metrics:
            continue
        print(f"{split + ' (' + str(metrics['examples']) + ' examples)':52s} accuracy  log-loss", file=out)
        for m in metrics["members"]:
            print(f"  {m['name']:50s} {m['accuracy']:.4f}    {m['log_loss']:.4f}", file=out)
        for key in ("mean_member", "ensemble"):
            m = metrics[key]
            print(f"  {key.replace('_', ' '):50s} {m['accuracy']:.4f}    {m['log_loss']:.4f}", file=out)
    if result.student:
        s, a = result.student["student"], result.student["alone"]
        print(f"distilled student val accuracy {s['val_accuracy']:.4f} (same size trained alone "
              f"{a['val_accuracy']:.4f})", file=out)
    print(f"ensemble directory: {result.path}", file=out)
    print(f"  report: {result.path / 'ensemble.md'}", file=out)
    print(f"  model:  {result.path / 'ensemble.keras'}", file=out)
    return EXIT_OK


def cmd_lr_find(args) -> int:
    """The LR range test (recipe G24) on a config's data and fresh model; exit 0 found, 1 no rate found."""
    config, path = _resolve_config(args.config)
    if args.steps is not None:
        if args.steps < 2:
            raise CliError(f"--steps must be >= 2. Received: {args.steps}")
        config.lr_find.steps = args.steps
    _out_dir(args.out)
    _prepare_tf_env(args)
    _install_sigterm()
    from kerasguide.spine import lr_find_config

    run_dir, result = lr_find_config(config, out=args.out, config_path=path, progress=Progress(args.json_progress))
    if args.json:
        print(run_dir.file("lr_find.json").read_text(encoding="utf-8"), end="")  # NaN already null
    else:
        # With --json-progress, stdout is the events' alone: the summary goes to stderr.
        out = sys.stderr if args.json_progress else sys.stdout
        for rule, lr in result.suggestions.items():
            mark = "  <- chosen" if rule == result.chosen_rule else ""
            print(f"{rule:16s} {'—' if lr is None else f'{lr:.3g}'}{mark}", file=out)
        # Found: the rate and why; not: one line, "No usable rate: why ...; what to do; falling back to 1e-3."
        print(f"chosen: {result.chosen:.3g}. {result.reason}" if result.found else result.reason, file=out)
        sweep = result.extra.get("sweep") or {}
        over = (f" over {sweep['epochs']:g} epoch(s) of {sweep['batches_per_epoch']} batches"
                if sweep.get("epochs") is not None else "")
        print(f"{result.steps} steps{over} in {result.seconds:.1f}s ({result.stop_reason})", file=out)
        if sweep.get("extended"):
            print(f"  {sweep['extended']}", file=out)
        print(f"lr_find.json: {run_dir.file('lr_find.json')}", file=out)
        print(f"lr_find.png:  {run_dir.file('lr_find.png')}", file=out)
    return EXIT_OK if result.found else EXIT_FAILED


def cmd_diagnose(args) -> int:
    """What is wrong with a run (recipes E16-E20): print the findings, write diagnosis.json."""
    from kerasguide.diagnosis import format_findings, write_diagnosis

    path = Path(args.run_dir)
    try:
        findings = write_diagnosis(path)
    except FileNotFoundError as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"{path}: cannot write diagnosis.json: {error.strerror or error}") from None
    if args.json:
        print((path / "diagnosis.json").read_text(encoding="utf-8"), end="")
    else:
        print(format_findings(findings))
        print(f"diagnosis.json: {path / 'diagnosis.json'}")
    return EXIT_OK


def cmd_fix(args) -> int:
    """Auto-repair (issue 13): the run's findings as config changes, re-run until no warning remains."""
    if args.rounds < 1:
        raise CliError(f"--rounds must be >= 1. Received: {args.rounds}")
    path = Path(args.run_dir)
    if not path.is_dir():
        raise CliError(f"{path}: no such run directory")
    for name, what in (("run.json", "not a kerasguide run directory"), ("config.toml", "no config.toml to repair")):
        if not (path / name).is_file():
            raise CliError(f"{path}: {what} (no {name})")
    if args.out is not None:
        _out_dir(args.out)
    _prepare_tf_env(args)
    _install_sigterm()
    from kerasguide.repair import RepairError, fix_run

    out = sys.stderr if args.json_progress else sys.stdout
    try:
        result = fix_run(path, rounds=args.rounds, out=args.out, progress=lambda line: print(line, file=out, flush=True),
                         json_progress=args.json_progress, verbose=0 if args.quiet or args.json_progress else 1)
    except RepairError as error:
        raise CliError(str(error)) from None
    if result.outcome == "nothing_to_fix":
        print(f"nothing to fix: {path.name} has no warning or error in its diagnosis", file=out)
        return EXIT_OK
    for line in result.cannot:
        print(f"cannot: {line}", file=out)
    print(f"fix {result.outcome}: {result.message}", file=out)
    if result.rounds:
        print(f"run directory: {result.last}", file=out)
        print(f"  before/after: {result.report}", file=out)
    return EXIT_FAILED if result.outcome in ("failed", "interrupted") else EXIT_OK


def cmd_predict(args) -> int:
    """A run's (or a search's best) predictions for an npz, csv or image folder; one CSV row per example."""
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1. Received: {args.batch_size}")
    for value, what in ((args.run_dir, "run directory"), (args.input, "input file or folder")):
        if not Path(value).exists():
            raise CliError(f"{value}: no such {what}")
    _prepare_tf_env(args)
    from kerasguide.inference import predict_to_csv

    result = predict_to_csv(args.run_dir, args.input, args.out, batch_size=args.batch_size, which=args.checkpoint)
    print(f"{result.rows} predictions written to {result.path}")
    return EXIT_OK


def cmd_export(args) -> int:
    """A run's (or a search's best) model with its preprocessing built in: .keras, SavedModel or TFLite."""
    if not Path(args.run_dir).is_dir():
        raise CliError(f"{args.run_dir}: no such run directory")
    _prepare_tf_env(args)
    from kerasguide.export import export_model

    result = export_model(args.run_dir, args.format, args.out, which=args.checkpoint)
    print(f"{result.format} model written to {result.path}")
    built_in = (f"raw inputs: its {result.preprocessing} preprocessing is built in" if result.preprocessing != "none"
                else "no preprocessing to build in: inputs as the model takes them")
    print(f"  input signature: {result.signature} ({built_in})")
    return EXIT_OK


def cmd_recipes(args) -> int:
    """The recipe codes that help texts and messages cite, with their titles; exit 2 on an unknown code."""
    from kerasguide.recipes import UnknownRecipe, format_recipes

    try:
        text = format_recipes(args.codes or None)
    except UnknownRecipe as error:
        raise CliError(str(error)) from None
    print(text)
    return EXIT_OK


# subcommand (as `cli_args.build_parser` names it) -> its function
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "config": cmd_config,
    "presets": cmd_presets,
    "runs": cmd_runs,
    "board": cmd_board,
    "gui": cmd_gui,
    "check": cmd_check,
    "tune": cmd_tune,
    "search-status": cmd_search_status,
    "ensemble": cmd_ensemble,
    "lr-find": cmd_lr_find,
    "diagnose": cmd_diagnose,
    "fix": cmd_fix,
    "predict": cmd_predict,
    "export": cmd_export,
    "recipes": cmd_recipes,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The library configures no output (a NullHandler); the command line does, once per process.
    configure_cli_output("DEBUG" if args.verbose else "INFO")
    command = COMMANDS.get(args.command) if args.command else None
    if command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return command(args)
    except (ConfigError, CliError) as error:
        print(one_line(f"kerasguide: error: {error}"), file=sys.stderr)  # one line of at most 300 characters
        return EXIT_BAD_INPUT
    except CommandFailed as failed:  # recorded as failed, traceback in error.txt: one line here
        print(one_line(f"kerasguide: {failed}", 1000), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("kerasguide: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # e.g. `kerasguide config | head`
        return EXIT_OK


def _entry() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
