"""``sendkit-async demo``: a generated sample imported into an in-process fake server."""

from __future__ import annotations

import csv
import gzip
import random
import tempfile
from pathlib import Path
from typing import Final

import click
from rich.markup import escape

from ._dnc import import_file
from ._input import InputFile
from ._runner import (
    OutputPath,
    Settings,
    err,
    run,
)

__all__ = ["demo", "write_sample"]

DEMO_ENTRIES: Final = 200_000
INVALID_SHARE: Final = 0.01
REPEAT_SHARE: Final = 0.02
DOMAIN_SHARE: Final = 0.02


def write_sample(path: Path, count: int, *, seed: int = 7) -> None:
    """A CSV of ``count`` rows: mostly valid, about 1% invalid and 2% repeated."""
    rng = random.Random(seed)  # noqa: S311 - sample data
    reasons = ["bounce", "unsubscribe_link", "complaint", "manual", ""]
    with gzip.open(path, "wt", newline="") if path.suffix == ".gz" else path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "type", "reason", "source"])
        for i in range(count):
            roll = rng.random()
            if roll < INVALID_SHARE:
                writer.writerow(
                    [rng.choice(["not-an-email", "a@b", "x@@example.com", "@nodomain.com"]), "", "", "crm"]
                )
            elif roll < INVALID_SHARE + REPEAT_SHARE and i:
                writer.writerow([f"Lead{rng.randrange(i)}@Example.com", "email", "", "crm"])
            elif roll < INVALID_SHARE + REPEAT_SHARE + DOMAIN_SHARE:
                writer.writerow([f"blocked{i}.example.net", "domain", "manual", "crm"])
            else:
                writer.writerow([f"lead{i}@example.com", "email", rng.choice(reasons), "crm"])


@click.command()
@click.option(
    "--entries",
    type=click.IntRange(min=1),
    default=DEMO_ENTRIES,
    show_default=True,
    help="how many addresses the generated sample holds",
)
@click.option("--keep-sample", type=OutputPath(), help="write the generated sample here and keep it")
@click.pass_obj
def demo(settings: Settings, entries: int, keep_sample: str | None) -> None:
    """Import a generated sample into an in-process fake server (50 ms latency, 20 requests/s)."""
    settings.fake = True
    settings.fake_options = {"latency": 0.05, "rate_limit": 20, "seed": 1}
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(keep_sample) if keep_sample is not None else Path(folder) / "sample.csv"
        write_sample(sample, entries)
        where = str(sample) if keep_sample is not None else "a temporary file (--keep-sample FILE keeps it)"
        err.print(f"generated {entries:,} rows (with invalid entries and repeats) in {escape(where)}")
        source = InputFile(str(sample))
        run(settings, lambda: import_file(settings, source, rejects_expected=True))
