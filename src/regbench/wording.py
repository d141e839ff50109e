"""How the report writes numbers and metric names: one place for units, digits and labels.

Proportions (accuracy, F1, ROC AUC and their gaps) are printed in percent and
their differences in percentage points, in tables and sentences alike; losses
and counts as plain numbers. Statistics hand raw floats to the report layer;
nothing is rounded before it reaches these functions.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from regbench.stats import NOT_COMPARABLE, UNDERTRAINED

__all__ = [
    "MINUS",
    "PIECE_METHODS",
    "VERDICT_STYLES",
    "MetricStyle",
    "VerdictStyle",
    "breakable",
    "column_labels",
    "format_diff",
    "format_interval",
    "format_number",
    "format_p",
    "format_percent",
    "format_value",
    "is_missing",
    "join_names",
    "metric_style",
    "plural",
    "verdict_legend",
]


#: How each regularizer piece that is not a plain penalty or dropout acts, for the Method
#: section of a study that uses it (regbench.models builds them so).
PIECE_METHODS = {
    "weight_decay": (
        "Weight decay is decoupled, as in AdamW (the Keras optimizer's weight_decay): after each "
        "step the optimizer shrinks the chosen kernels by learning rate × rate × weight. Unlike "
        "an L2 penalty it is not part of the objective and its gradient, so adaptive optimizers "
        "(Adam, RMSprop) do not rescale it per weight and the reported objective leaves it out; "
        "only with plain SGD does a rate r equal an L2 penalty of r/2."
    ),
    "max_norm": (
        "A max-norm constraint (Keras's MaxNorm) rescales, after each step, every unit's incoming "
        "kernel weights to an L2 norm of at most the value; it adds nothing to the objective."
    ),
    "gaussian_noise": (
        "Gaussian noise (Keras's GaussianNoise) is added to the inputs or hidden activations "
        "while training only, drawn from each seed's own generator."
    ),
    "spatial_dropout": (
        "Spatial dropout (Keras's SpatialDropout2D) drops whole feature maps of convolutional "
        "layers while training only."
    ),
    "label_smoothing": (
        "Label smoothing trains on Keras's cross-entropy with targets smoothed towards the "
        "uniform distribution; the loss the report compares stays the unsmoothed cross-entropy, "
        "so its verdicts remain comparable with the other regularizers'."
    ),
    "augmentation": (
        "Augmentation (Keras's random flip, rotation, zoom and translation layers) transforms "
        "each training image afresh at every step, for image datasets only; evaluation sees "
        "the images unchanged."
    ),
    "custom": (
        "A study's own penalty is added to the objective for each chosen layer, as a Keras "
        "regularizer's is; the source of its module is part of each run's spec."
    ),
}

#: The typographic minus sign: it reads better than a hyphen in running text and tables.
MINUS = "\u2212"


@dataclass(frozen=True)
class VerdictStyle:
    """How one verdict is shown: a symbol and a marker shape (for grayscale print), and colours.

    ``meaning`` says in a few words what the verdict means, for legends and captions.
    """

    symbol: str  # In tables, sentences and captions.
    marker: str  # The matplotlib marker of the same shape, one per verdict.
    color: str
    background: str  # Behind a table cell that carries the verdict.
    filled: bool
    meaning: str


#: One look per verdict of ``comparisons.csv`` (:data:`regbench.stats.VERDICTS`, in its
#: order), shared by the figures and the report's tables: the only place a verdict's
#: symbol and meaning are written. Blue and orange stay apart for red-green colour
#: blindness; shapes carry the verdict in grayscale. A verdict added here (and in stats)
#: appears in every legend and caption.
VERDICT_STYLES: dict[str, VerdictStyle] = {
    "better": VerdictStyle(
        "▲", "^", "#0b4f8a", "#d4e6f6", True, "better by at least the smallest effect"
    ),
    "worse": VerdictStyle(
        "▼", "v", "#9a4a00", "#fbe0c8", True, "worse by at least the smallest effect"
    ),
    "underfitting": VerdictStyle(
        "◁", "<", "#9a4a00", "#fdf0e4", False, "a smaller gap, but a worse test score"
    ),
    "negligible": VerdictStyle(
        "◇", "D", "#404040", "#f2f2f2", False, "significant, but smaller than the smallest effect"
    ),
    "equivalent": VerdictStyle(
        "■", "s", "#404040", "#ffffff", True, "within the smallest effect (equivalence tests)"
    ),
    "inconclusive": VerdictStyle(
        "○", "o", "#404040", "#ffffff", False, "neither a difference nor equivalence shown"
    ),
    "saturated": VerdictStyle(
        "☆", "*", "#808080", "#ffffff", False, "every run at the metric's bound: cannot tell"
    ),
    NOT_COMPARABLE: VerdictStyle("×", "x", "#808080", "#ffffff", True, "fewer than two pairs"),
    # Withheld: a run of the pair had not converged by the training protocol.
    UNDERTRAINED: VerdictStyle(
        "†", "d", "#7a5c00", "#f3f0e6", False, "a run of the pair had not converged: withheld"
    ),
}


def verdict_legend(verdicts: Sequence[str] | None = None, *, meanings: bool = True) -> str:
    """``▲ better: better by at least ...; ▼ worse: ...`` for the given verdicts (all by default).

    Without ``meanings``, only symbols and names: ``▲ better, ▼ worse``.
    """
    chosen = [v for v in VERDICT_STYLES if verdicts is None or v in verdicts]
    if not meanings:
        return ", ".join(f"{VERDICT_STYLES[v].symbol} {v}" for v in chosen)
    return "; ".join(f"{VERDICT_STYLES[v].symbol} {v}: {VERDICT_STYLES[v].meaning}" for v in chosen)


@dataclass(frozen=True)
class MetricStyle:
    """How one metric is named and printed.

    ``label`` names it inside a sentence, ``heading`` in a table header;
    ``proportion`` metrics print in percent (values) and points (differences);
    ``better``/``worse`` are the comparatives a sentence uses for a verdict.
    """

    label: str
    heading: str
    proportion: bool
    digits: int = 3
    better: str = "higher"
    worse: str = "lower"


_STYLES = {
    "test_accuracy": MetricStyle("test accuracy", "Test accuracy (%)", True),
    "test_loss": MetricStyle("test loss", "Test loss", False, better="lower", worse="higher"),
    "test_objective": MetricStyle(
        "test objective (loss + penalties)", "Test objective", False, better="lower", worse="higher"
    ),
    "test_f1_macro": MetricStyle("test macro-F1", "Macro F1 (%)", True),
    "test_roc_auc": MetricStyle("test ROC AUC", "ROC AUC (%)", True),
    "gap_accuracy": MetricStyle(
        "the train–test accuracy gap", "Gap (points)", True, better="smaller", worse="larger"
    ),
    "gap_loss": MetricStyle(
        "the train–test loss gap", "Loss gap", False, better="smaller", worse="larger"
    ),
    "epochs_run": MetricStyle("epochs run", "Epochs", False, digits=1),
    "best_val_loss": MetricStyle(
        "best validation loss", "Best val. loss", False, better="lower", worse="higher"
    ),
    "val_accuracy": MetricStyle("validation accuracy", "Val. accuracy (%)", True),
    "val_loss": MetricStyle("validation loss", "Val. loss", False, better="lower", worse="higher"),
}


def metric_style(metric: str) -> MetricStyle:
    """The style of ``metric``; an unknown metric is named after its column, as a plain number."""
    return _STYLES.get(metric) or MetricStyle(metric.replace("_", " "), metric, False)


def is_missing(value: Any) -> bool:
    """Whether a table value is absent (None, NaN, infinite or pandas' NA)."""
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def format_number(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; an en dash for a missing value."""
    if is_missing(value):
        return "–"
    return f"{float(value):.{digits}f}"


def format_percent(value: Any, digits: int = 1) -> str:
    """A proportion in percent, without the sign: 0.9561 -> ``95.6``."""
    return "–" if is_missing(value) else format_number(100.0 * float(value), digits)


def format_value(value: Any, metric: str) -> str:
    """A metric's value as tables print it: percent for proportions, else its digits."""
    style = metric_style(metric)
    return format_percent(value) if style.proportion else format_number(value, style.digits)


def format_diff(
    value: Any, metric: str, *, signed: bool = True, unit: bool = False, compact: bool = False
) -> str:
    """A difference: points for proportions (``+1.4``), three significant digits otherwise.

    Points below one get two decimals so that a small real difference does not
    print as ``0.0`` (``compact``: always one decimal, two significant digits
    for other metrics); an exact zero prints as ``0``; ``unit`` appends
    `` points`` for proportions.
    """
    if is_missing(value):
        return "–"
    number = float(value)
    style = metric_style(metric)
    if number == 0.0:
        text = "0"
    elif style.proportion:
        points = 100.0 * number
        text = f"{points:+.1f}" if compact or abs(points) >= 1.0 else f"{points:+.2f}"
    elif compact:
        text = f"{number:+.2g}"
    else:
        text = f"{number:+.2g}" if abs(number) < 0.01 else f"{number:+.3f}"
    if not signed:
        text = text.lstrip("+-")
    text = text.replace("-", MINUS)
    return f"{text} points" if unit and style.proportion else text


def format_interval(low: Any, high: Any, metric: str) -> str:
    """A difference's interval as ``low to high`` in the metric's difference units."""
    if is_missing(low) or is_missing(high):
        return "–"
    return f"{format_diff(low, metric)} to {format_diff(high, metric)}"


def format_p(value: Any) -> str:
    """A p-value as ``= 0.0069`` or ``< 0.001``."""
    if is_missing(value):
        return "–"
    number = float(value)
    return "< 0.001" if number < 0.001 else f"= {number:.2g}"


def breakable(name: str) -> str:
    """A name that may wrap after ``_`` and ``-`` (a zero-width space), for narrow columns.

    Never after ``.``: a break there would split a number (``dropout_0.`` / ``2``).
    """
    return re.sub(r"([_-])", "\\1\u200b", name)


#: A column label of the verdict matrix is its variant's name where every name of the
#: matrix fits in LABEL_LINES lines, broken after ``_`` and ``-``, of its column's share of
#: the LABEL_ROW characters a header row holds (at least LABEL_WIDTH).
LABEL_LINES, LABEL_WIDTH, LABEL_ROW = 2, 9, 90


def _fits(name: str, width: int) -> bool:
    """Whether ``name`` fits :data:`LABEL_LINES` lines of ``width`` characters."""
    lines = [""]
    for piece in re.findall(r"[^_-]*[_-]?", name):
        if len(piece) > width:
            return False
        if len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return len(lines) <= LABEL_LINES


def _letters(index: int) -> str:
    """``A``, ``B``, ..., ``Z``, ``AA``, ``AB``: a column's code, as spreadsheets name them."""
    code = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        code = string.ascii_uppercase[rest] + code
    return code


def column_labels(names: Sequence[str]) -> list[str]:
    """The matrix's column labels: the names themselves where all fit, else letter codes.

    Either every column is named or every column has a code, so a reader never
    mistakes a code for a name; with codes, the report prints a legend.
    """
    width = max(LABEL_WIDTH, LABEL_ROW // max(len(names), 1))
    if all(_fits(name, width) for name in names):
        return [breakable(name) for name in names]
    return [_letters(i) for i in range(len(names))]


def join_names(names: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 seed``, ``5 seeds``."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"
