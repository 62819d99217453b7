"""The `kerasguide` command line's argument parser: every subcommand, its options and help texts.

No handlers and no TensorFlow here, nor anything that imports it: the
desktop app's command probe (`kerasguide_gui.commands`) reads which
subcommands and options exist from `build_parser()`, and the
import-linter contract "The desktop app never imports TensorFlow" holds
only while this module stays light. `kerasguide.cli` maps each
subcommand's name to its function. A new subcommand adds its `_add_*`
function to `_COMMANDS` here and its `cmd_*` to `kerasguide.cli.COMMANDS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from kerasguide import __version__

__all__ = ["build_parser"]


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run a config: data, model, checks, training, diagnosis, report",
                       description="Run a config end to end and record it in a new run directory; "
                                   "--resume continues a killed, interrupted or failed run in its own.")
    p.add_argument("config", nargs="?", help="TOML config, run directory or preset name (default: digits)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue this killed, interrupted or failed run from its last backup (weights, "
                        "optimizer state, epoch), in its own directory, on the config it recorded")
    p.add_argument("--out", default="runs", help="folder for the run directory (default: runs)")
    p.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_config(sub) -> None:
    p = sub.add_parser("config", help="print a config resolved with every default (or the schema)")
    p.add_argument("config", nargs="?", help="TOML config, run directory or preset name (default: digits)")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of the config")


def _add_presets(sub) -> None:
    sub.add_parser("presets", help="list the bundled example configs")


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="list the runs in a folder")
    p.add_argument("dir", nargs="?", default="runs", help="folder of run directories (default: runs)")


def _add_board(sub) -> None:
    p = sub.add_parser("board", help="start TensorBoard on 127.0.0.1 for a run or a folder of runs")
    p.add_argument("path", help="a run directory or a folder of runs")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")


def _add_gui(sub) -> None:
    p = sub.add_parser("gui", help="start the desktop app")
    p.add_argument("config", nargs="?", help="a config to open")


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="sanity checks before training: initial loss, overfit, gradients, ...",
                       description="Run the sanity checks on a config's fresh model and data and write "
                       "checks.json into a new run directory. Ctrl-C or SIGTERM marks the run interrupted "
                       "and keeps the checks done so far. Exit 0 all pass, 1 interrupted, 2 bad input, "
                       "3 a check failed.")
    p.add_argument("config", nargs="?", help="TOML config, run directory or preset name (default: digits)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--out", default="runs", help="folder for the run directory (default: runs)")
    p.add_argument("--json-progress", action="store_true",
                   help="one JSON object per line on stdout (a check and a step event per check done)")


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="hyperparameter search, coarse to fine: random/grid/bayesian/hyperband",
                       description="Search the config's [search.space] in [[search.stages]] (coarse to fine), "
                       "each trial a recorded run; write search.json, search.md and best.toml into a search "
                       "directory. Running it again on the same config and --out resumes an unfinished search. "
                       "Exit 0 completed, 1 failed, interrupted or stopped, 2 bad input. --dry-run: the budget only; "
                       "--stop: stop the running search of this config (see also kerasguide search-status).")
    p.add_argument("config", nargs="?", help="TOML config, run directory or preset name (default: digits)")
    p.add_argument("--out", default="runs", help="folder for the search directory (default: runs)")
    p.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout")
    p.add_argument("--new", action="store_true", help="start a new search instead of resuming one")
    p.add_argument("--dry-run", action="store_true",
                   help="print the budget and stop: trials x epochs per stage (Hyperband: per round), the total "
                   "epochs and a time estimated from a few real training steps of the config's model; nothing "
                   "trains and nothing is written")
    p.add_argument("--json", action="store_true", help="with --dry-run or --stop: the answer as one JSON object")
    p.add_argument("--stop", action="store_true",
                   help="ask the running search of this config (under --out) to stop gracefully: its running "
                   "trials finish, no new one starts, it is recorded as stopped; running tune again resumes it")
    p.add_argument("--now", action="store_true",
                   help="with --stop: also SIGTERM the search's master, interrupting its running trials "
                   "(they run again on resume)")


def _add_search_status(sub) -> None:
    p = sub.add_parser("search-status", help="what a running search is doing (trials, epochs, scores, ETA); --stop",
                       description="Read a search directory while (or after) its search runs: the trials running "
                       "and where (worker pid, or in the master), their epoch, the scores so far, the best, and an "
                       "ETA from the finished trials' speed and the remaining plan. Exit 0, 2 not a search directory.")
    p.add_argument("search_dir", help="a search directory (kerasguide tune's <out>/<time>-<name>-search)")
    p.add_argument("--json", action="store_true", help="the status as one JSON object")
    p.add_argument("--stop", action="store_true",
                   help="ask the search to stop gracefully (a stop-request file its master reads after each "
                   "trial): recorded as stopped, resumed by running the same tune again")
    p.add_argument("--now", action="store_true",
                   help="with --stop: also SIGTERM the master, interrupting the running trials")


def _add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="ensemble of seeds, run directories or snapshots; distill it into one model",
                       description="Average the predicted probabilities of several models (recipe J34): the "
                       "config trained with --members seeds (each a recorded run), the best checkpoints of "
                       "--runs (run or search directories), or one run's --snapshots. Reports each member and "
                       "the ensemble on the validation (and test) split and writes ensemble.json, ensemble.md "
                       "and ensemble.keras into a new ensemble directory; --distill also trains one student on "
                       "the ensemble's softened predictions (J36). Exit 0 ok, 1 a member failed, 2 bad input.")
    p.add_argument("config", nargs="?", help="TOML config, run directory or preset name (default: digits)")
    p.add_argument("--members", type=int, help="seeds to train (default: ensemble.members); with --runs: "
                   "trials taken from a search directory")
    p.add_argument("--runs", nargs="+", metavar="DIR", help="run directories (best checkpoints) or search directories")
    p.add_argument("--snapshots", metavar="RUN_DIR", help="a run trained with [ensemble] snapshots = K")
    p.add_argument("--distill", action="store_true", help="train one student on the ensemble's soft targets")
    p.add_argument("--temperature", type=float, help="distillation temperature T (default: ensemble.temperature)")
    p.add_argument("--alpha", type=float, help="weight of the hard labels in [0, 1] (default: ensemble.alpha)")
    p.add_argument("--epochs", type=int, help="override train.epochs (members and student)")
    p.add_argument("--out", default="runs", help="folder for the ensemble directory (default: runs)")
    p.add_argument("--json-progress", action="store_true", help="members' runs emit JSON lines on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_lr_find(sub) -> None:
    p = sub.add_parser("lr-find", help="LR range test: sweep the learning rate 1e-7..10, suggest one",
                       description="Run the LR range test on a config's training data and fresh model "
                       "(sweep from lr_find.start_lr to lr_find.end_lr, at most lr_find.steps steps and "
                       "lr_find.max_epochs epochs) and write lr_find.json and lr_find.png into a new run "
                       "directory. Ctrl-C or SIGTERM marks the run interrupted. Exit 0 a rate was found, "
                       "1 none was (or interrupted), 2 bad input.")
    p.add_argument("config", nargs="?", help="TOML config, run directory or preset name (default: digits)")
    p.add_argument("--out", default="runs", help="folder for the run directory (default: runs)")
    p.add_argument("--json", action="store_true", help="print lr_find.json instead of a summary")
    p.add_argument("--steps", type=int, help="override lr_find.steps")
    p.add_argument("--json-progress", action="store_true",
                   help="one JSON object per line on stdout (step events of the sweep, with an ETA)")


def _add_diagnose(sub) -> None:
    p = sub.add_parser("diagnose", help="say what is wrong with a run, with numbers and advice (E16-E20)",
                       description="Read a run directory's metrics, monitors and checks, print the findings "
                       "(code, severity, evidence, advice) and write diagnosis.json. Exit 2 on a bad path.")
    p.add_argument("run_dir", help="a run directory")
    p.add_argument("--json", action="store_true", help="print diagnosis.json instead of text")


def _add_recipes(sub) -> None:
    p = sub.add_parser("recipes", help="the recipe codes cited in help texts and messages, with their titles",
                       description="Print the recipes kerasguide implements, by code (A1..J36), grouped by "
                       "family: all of them, or the ones named. Exit 2 on an unknown code.")
    p.add_argument("codes", nargs="*", metavar="CODE",
                   help="recipe codes (G24), ranges (D12-D15) or family letters (D); default: all")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predictions of a run's best checkpoint for an npz, csv or image folder",
                       description="Apply a run's saved preprocessing and its best checkpoint to new inputs "
                       "(an .npz with x, a .csv with the training columns, or a folder of images) and write "
                       "one CSV row per example: the predicted class and each class's probability, or the "
                       "predicted values (regression). Exit 0 ok, 2 bad input (a shape the model does not take).")
    p.add_argument("run_dir", help="a run directory (or a search directory: its best model)")
    p.add_argument("input", help="an .npz file (array x), a .csv file, or a folder of images")
    p.add_argument("--out", help="the CSV to write (default: predictions-<input>.csv in the run directory)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint (default: best)")
    p.add_argument("--batch-size", type=int, default=256, help="examples per batch (default: 256)")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run's best model: keras, savedmodel or tflite",
                       description="Write a run's best checkpoint, with its preprocessing built in so that it "
                       "takes raw inputs like `kerasguide predict`, as a .keras file, a TensorFlow SavedModel "
                       "(model.export) or a TFLite flatbuffer (the TFLite converter). Exit 0 ok, 2 bad input "
                       "(a format the model cannot take).")
    p.add_argument("run_dir", help="a run directory (or a search directory: its best model)")
    p.add_argument("--format", choices=("keras", "savedmodel", "tflite"), default="keras",
                   help="what to write (default: keras)")
    p.add_argument("--out", help="where (default: export/model.keras, export/savedmodel or export/model.tflite "
                   "in the run directory)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (default: best)")


def _add_fix(sub) -> None:
    p = sub.add_parser("fix", help="repair a run: its findings as config changes, re-run, before and after",
                       description="Read a run's diagnosis, turn each finding into a config change (the LR range "
                       "test's rate for a too-high or too-low one, He/Glorot initialization and zero biases for "
                       "dead or saturated units, batch normalization, wider layers or less regularization for "
                       "underfitting, more for overfitting, a larger batch for a noisy loss), run the changed "
                       "config, and repeat until no warning remains or --rounds are spent. Each repaired run's "
                       "run.json names its parent and the change; the last one holds fix.md, fix.json and "
                       "fix.png (metrics side by side, the configs' diff, the curves overlaid). What no config "
                       "change can do (more data, the labels, your own builder's code) is said, not guessed. "
                       "Exit 0 done (also: nothing to fix), 1 a repaired run failed or was interrupted, "
                       "2 bad input.")
    p.add_argument("run_dir", help="a run directory (with its config.toml)")
    p.add_argument("--rounds", type=int, default=2, help="at most this many repaired runs (default: 2)")
    p.add_argument("--out", help="folder for the repaired runs (default: beside RUN_DIR)")
    p.add_argument("--json-progress", action="store_true", help="the runs' JSON events on stdout, text on stderr")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


_COMMANDS: list[Callable] = [_add_run, _add_config, _add_presets, _add_runs, _add_board, _add_gui, _add_check,
                             _add_tune, _add_search_status, _add_ensemble, _add_lr_find, _add_diagnose, _add_fix,
                             _add_predict, _add_export, _add_recipes]


def build_parser() -> argparse.ArgumentParser:
    """The `kerasguide` parser; `args.command` names the subcommand (`None` when none was given)."""
    parser = argparse.ArgumentParser(
        prog="kerasguide",
        description="Training recipes for Keras: sanity checks, LR range test, schedules, "
        "monitors, diagnosis, search, ensembles; every run recorded.",
        epilog="Exit codes: 0 ok, 1 run failed, 2 bad input, 3 a check failed. Recipe codes (B5, D12, G24, ...): "
        "kerasguide recipes.",
    )
    parser.add_argument("--version", action="version", version=f"kerasguide {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser
