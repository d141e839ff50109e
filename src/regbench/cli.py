"""``regbench why``: which runs a config change would retrain, and which config key changed.

Snakemake's dry run says *that* a job's params changed; this names the key.
Each finished run keeps the spec it was trained with, and the seeds its cell
trained together, in its ``metrics.json``, so comparing them with what the
config gives now is exact. A cell's seeds train in one job, so a run also
retrains when its cell gains or loses a seed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from regbench.config import ConfigError, RunKey, load_config_file, load_study
from regbench.fingerprint import TRAINING_MODULES, code_digest

__all__ = ["diff_specs", "explain", "main"]

# What ``regbench --help`` prints: plain text (the module docstring is reStructuredText).
_DESCRIPTION = "Tools for a regbench study."
_WHY_DESCRIPTION = (
    "Say which runs of a study would train again, and for each the config key that changed "
    "(or its cell's seeds, or the training code), by comparing the spec every finished run "
    "kept in its metrics.json with what the config gives now."
)

# Where each part of a run spec lives in the config.
_SECTIONS = {"dataset": "datasets", "model": "models", "regularizer": "regularizers"}


def diff_specs(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every (dotted path, old value, new value) where two specs differ."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            yield from diff_specs(old.get(key), new.get(key), f"{path}.{key}" if path else key)
    elif old != new:
        yield path, old, new


def _config_key(key: RunKey, path: str) -> str:
    """Translate a run-spec path (``regularizer.kernel.l2``) into its config key."""
    section, _, rest = path.partition(".")
    if section in _SECTIONS:
        name = getattr(key, section)
        return f"{_SECTIONS[section]}.{name}" + (f".{rest}" if rest else "")
    return "seeds" if section == "seed" else path


def explain(
    study_root: Path, raw_config: Mapping[str, Any], code_dirs: Sequence[Path] = ()
) -> list[str]:
    """One line per run that would (re)train, saying why.

    ``code_dirs``: where the study's own functions are looked up first (its file's folder).
    """
    study = load_study(raw_config, code_dirs)
    code = code_digest(TRAINING_MODULES)
    lines = []
    for key in study.runs:
        metrics_path = study_root / key.output("metrics.json")
        if not metrics_path.exists():
            lines.append(f"{key.path}: not trained yet")
            continue
        stored = json.loads(metrics_path.read_text(encoding="utf-8"))
        if "spec" not in stored:
            lines.append(f"{key.path}: trained by an older regbench that kept no spec")
            continue
        changes = [
            f"{_config_key(key, path)} changed from {json.dumps(old)} to {json.dumps(new)}"
            for path, old, new in diff_specs(stored["spec"], study.run_spec(key))
        ]
        if stored.get("code") not in (None, code):
            changes.append(f"training code changed ({', '.join(TRAINING_MODULES)})")
        if stored.get("cell_seeds", study.seeds) != study.seeds:
            changes.append(
                f"its cell's seeds changed from {json.dumps(stored['cell_seeds'])} "
                f"to {json.dumps(study.seeds)}"
            )
        if changes:
            lines.append(f"{key.path}: " + "; ".join(changes))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regbench`` command."""
    parser = argparse.ArgumentParser(prog="regbench", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    why = commands.add_parser(
        "why", help="say which runs would retrain and why", description=_WHY_DESCRIPTION
    )
    why.add_argument("--configfile", default="config.yaml", help="the study (default config.yaml)")
    why.add_argument("--directory", default=".", help="where the study's results/ are")
    args = parser.parse_args(argv)
    try:
        raw = load_config_file(args.configfile)
        lines = explain(Path(args.directory), raw, [Path(args.configfile).parent])
    except ConfigError as error:
        print(f"regbench: {error}", file=sys.stderr)
        return 2
    try:
        print("\n".join(lines) if lines else "Every run is up to date with the config.")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`regbench why | head`): nothing more to say, and no traceback.
        # Python would try to flush stdout again at exit, so it is pointed at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
