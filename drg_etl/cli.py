"""The ``drg-etl`` command line (cli.md). Each command calls the library; nothing is done twice."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from drg_etl.errors import EXIT_USAGE
from drg_etl.synth.generate import DEFAULT_SEED, GenerateResult, generate

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="drg-etl: validated, standards-based loads of the Danish DRG-stimulation registry.")
console = Console()


def _print_generated(result: GenerateResult, out: Path) -> None:
    table = Table(title=f"Deliveries written under {out}")
    for column in ("center", "file", "records"):
        table.add_column(column, justify="right" if column == "records" else "left")
    for center, counts in result.record_counts.items():
        for name, count in counts.items():
            table.add_row(center, name, str(count))
    console.print(table)
    console.print(f"{result.persons} persons; {result.defects} injected defects "
                  f"({'none: --clean' if result.defects == 0 else 'listed in the truth file with --truth'}).")


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option("--out", help="inbox folder to write the deliveries into")],
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same bytes")] = DEFAULT_SEED,
    patients: Annotated[int | None, typer.Option(help="scale to N trial patients (default: the demo cohort)")] = None,
    clean: Annotated[bool, typer.Option("--clean", help="write no injected defects")] = False,
    truth: Annotated[Path | None, typer.Option(help="write the generator's truth (JSON) here")] = None,
) -> None:
    """Write the four centers' synthetic deliveries (extracts.md)."""
    if patients is not None and patients < 1:
        console.print("[red]--patients must be at least 1[/red]")
        raise typer.Exit(EXIT_USAGE)
    result = generate(out, seed=seed, patients=patients, clean=clean, truth=truth)
    _print_generated(result, out)
    if truth:
        console.print(f"Truth: {truth}")


@app.command("demo")
def demo_command(
    workdir: Annotated[Path, typer.Option(help="work folder, made afresh")] = Path("drg-demo"),
) -> None:
    """Generate the demo cohort's deliveries in a fresh work folder and list them."""
    inbox = workdir / "inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    workdir.mkdir(parents=True, exist_ok=True)
    truth = workdir / "truth.json"
    result = generate(inbox, truth=truth)
    _print_generated(result, inbox)
    console.print(f"The generator's truth (per-patient histories, injected defects): {truth}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
