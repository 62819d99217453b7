"""The recipe codes that help texts, messages and reports cite (B5, D12, G24, J34, ...), with their titles.

A code is a family letter and the recipe's number (numbered through, 1 to
36, across the families A to J). `kerasguide recipes [CODE ...]` prints the
table. Plain Python, no TensorFlow: any layer may import it.

Example:

```python
>>> from kerasguide.recipes import format_recipes
>>> print(format_recipes(["G24"]))
G  Learning-rate schedules and the range test
  G24  LR range test: the learning rate swept 1e-7..10 on a log scale, picked where the loss falls fastest

```
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["FAMILIES", "RECIPES", "UnknownRecipe", "expand_codes", "format_recipes"]

FAMILIES = {
    "A": "Data",
    "B": "Initialization",
    "C": "Regularization",
    "D": "Loss and sanity checks before learning",
    "E": "Babysitting the learning process",
    "F": "Parameter updates",
    "G": "Learning-rate schedules and the range test",
    "H": "Hyperparameter search",
    "I": "Logging and review",
    "J": "Evaluation and ensembles",
}

# code -> one-line title, in the order of the recipes.
RECIPES = {
    "A1": "Mean subtraction, per-feature normalization, PCA and whitening (epsilon 1e-5), PCA to k dimensions",
    "A2": "Preprocessing statistics fitted on the training split only, then applied to validation and test",
    "A3": "One validation split of respectable size rather than k-fold",
    "B4": "Kaiming/He (sqrt(2/fan_in), ReLU) and Xavier/Glorot (sqrt(1/fan_in)) initialization",
    "B5": "Never all-zero weights (no symmetry breaking); too small random weights starve deep nets",
    "B6": "Sparse initialization: each unit connected to about 10 random inputs",
    "B7": "Biases at 0, optionally 0.01 for ReLU units",
    "B8": "Batch normalization after dense/conv and before the nonlinearity",
    "C9": "L2, L1 and elastic-net regularization, usually not on biases",
    "C10": "Max-norm constraint ||w||_2 < c, c about 3 or 4",
    "C11": "Dropout (p = 0.5) and DropConnect, inverted scaling",
    "D12": "Initial loss at chance: ln C for softmax, C - 1 for a multiclass SVM",
    "D13": "Raising the regularization strength raises the loss",
    "D14": "Overfit a tiny subset to ~100 % train accuracy, regularization off",
    "D15": "Gradient check: centered difference, relative error, float64, every parameter tensor",
    "E16": "Loss per batch: its shape tells the learning rate, its wiggle the batch size",
    "E17": "Train vs validation accuracy: a big gap is overfitting, none at low accuracy too little capacity",
    "E18": "Update:weight ratio per parameter tensor, about 1e-3",
    "E19": "Activation and gradient histograms per layer: dead ReLUs, saturated units",
    "E20": "First-layer weights as images",
    "F21": "Parameter updates: SGD, momentum, Nesterov, Adagrad, RMSprop, Adam",
    "G22": "Learning-rate decay: step, exponential, 1/t, reduce on validation plateau",
    "G23": "Warm-up then decay; cyclical schedules; one-cycle",
    "G24": "LR range test: the learning rate swept 1e-7..10 on a log scale, picked where the loss falls fastest",
    "H25": "What matters most: the initial learning rate, its decay, the regularization strength",
    "H26": "Grid, random (preferred) and Bayesian search; Hyperband-style early stopping",
    "H27": "Learning rate and regularization sampled on a log scale",
    "H28": "Best value on the border of its range: warn, search again with the range widened",
    "H29": "Coarse to fine: a broad range with short trials, then narrower ranges with longer ones",
    "H30": "Workers that train and checkpoint with the validation score in the file name, and a master",
    "H31": "Start from hyperparameters published in the literature",
    "I32": "Every experiment recorded so that it can be repeated",
    "I33": "TensorBoard (scalars, histograms, images, hyperparameters); MLflow as an alternative",
    "J34": "Ensembles: seeds, top models of the search, checkpoints of one run; averaged predictions",
    "J35": "Running (exponential) average of the weights during training",
    "J36": "Distillation of an ensemble back into one model (dark knowledge)",
}

_CODE = re.compile(r"([A-Za-z])(\d{1,2})")
_RANGE = re.compile(r"([A-Za-z]\d{1,2})-([A-Za-z]\d{1,2})")


class UnknownRecipe(ValueError):
    """Codes that name no recipe; `codes` lists them as given."""

    def __init__(self, codes: list[str]):
        self.codes = codes
        super().__init__(f"unknown recipe code{'s' if len(codes) > 1 else ''}: {', '.join(codes)} "
                         f"(known: {next(iter(RECIPES))}..{next(reversed(RECIPES))}, or a family letter "
                         f"{next(iter(FAMILIES))}..{next(reversed(FAMILIES))})")


def _canonical(code: str) -> str | None:
    match = _CODE.fullmatch(code.strip())
    if match is None:
        return None
    code = match.group(1).upper() + str(int(match.group(2)))
    return code if code in RECIPES else None


def expand_codes(items: Iterable[str]) -> list[str]:
    """The recipe codes that `items` name, in table order, each once.

    An item is a code (`"G24"`, case-insensitive), a range as help texts
    cite them (`"D12-D15"`) or a family letter (`"D"`).

    Raises:
        UnknownRecipe: naming every item that names no recipe.
    """
    order = list(RECIPES)
    wanted: set[str] = set()
    unknown: list[str] = []
    for item in items:
        text = item.strip()
        if text.upper() in FAMILIES:
            wanted.update(c for c in order if c[0] == text.upper())
            continue
        match = _RANGE.fullmatch(text)
        if match:
            first, last = _canonical(match.group(1)), _canonical(match.group(2))
            if first is None or last is None or order.index(first) > order.index(last):
                unknown.append(item)
                continue
            wanted.update(order[order.index(first): order.index(last) + 1])
            continue
        code = _canonical(text)
        if code is None:
            unknown.append(item)
        else:
            wanted.add(code)
    if unknown:
        raise UnknownRecipe(unknown)
    return [c for c in order if c in wanted]


def format_recipes(codes: Iterable[str] | None = None) -> str:
    """The table of recipes as text, grouped by family: all of them, or those `codes` name.

    Args:
        codes: Codes, ranges or family letters, as `expand_codes` takes them;
            `None` for the whole table. Defaults to `None`.

    Raises:
        UnknownRecipe: naming every item that names no recipe.
    """
    selected = list(RECIPES) if codes is None else expand_codes(codes)
    lines: list[str] = []
    family = None
    for code in selected:
        if code[0] != family:
            family = code[0]
            lines.append(f"{family}  {FAMILIES[family]}")
        lines.append(f"  {code:<4s} {RECIPES[code]}")
    return "\n".join(lines)
