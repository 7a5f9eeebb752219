"""The ``drg-etl`` command line (cli.md). Each command calls the library; nothing is done twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from drg_etl.errors import EXIT_USAGE, DrgEtlError
from drg_etl.load import LoadReport, load_inbox
from drg_etl.pseudonym import DEMO_KEY, KEY_VARIABLE, key_from_environment
from drg_etl.quality.report import quality_report
from drg_etl.synth.generate import DEFAULT_SEED, GenerateResult, generate
from drg_etl.warehouse import connect

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


def _fail(exc: DrgEtlError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(exc.exit_code)


def print_load(report: LoadReport) -> None:
    """The per-file table of a load, the rejected files with reasons, and the issues."""
    table = Table(title="Load")
    for column in ("center", "delivery", "file", "read", "loaded", "quarantined", "outcome"):
        table.add_column(column, justify="right" if column in ("read", "loaded", "quarantined") else "left")
    for f in report.files:
        outcome = f"[red]rejected: {f.reason} [{f.rule_id}][/red]" if f.rejected else "loaded"
        table.add_row(f.center, f.delivery, f.file, str(f.rows_read), str(f.rows_loaded), str(f.rows_quarantined),
                      outcome)
    console.print(table)
    for issue in report.issues[:50]:
        console.print(f"  {issue.describe()}", markup=False, highlight=False)
    if len(report.issues) > 50:
        console.print(f"  ... and {len(report.issues) - 50} more: `drg-etl quality --warehouse ...`")
    console.print(f"loaded {len(report.loaded)}, already loaded {len(report.skipped)}, "
                  f"rejected {len(report.rejected)} deliveries")
    for label in report.rejected:
        console.print(f"[red]rejected {label}: the center's previous delivery stays in force[/red]")


@app.command("load")
def load_command(
    inbox: Annotated[Path, typer.Argument(help="inbox folder of center deliveries")],
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
) -> None:
    """Load every delivery under INBOX that the warehouse has not seen."""
    try:
        key = key_from_environment()
        with console.status("loading") as status:
            report = load_inbox(inbox, warehouse, key, progress=lambda text: status.update(text))
    except DrgEtlError as exc:
        raise _fail(exc) from exc
    print_load(report)
    raise typer.Exit(report.exit_code)


@app.command("quality")
def quality_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
) -> None:
    """The data-quality report: per file and rule, the counts, Kahn category, severity and examples."""
    try:
        con = connect(warehouse, read_only=True)
    except DrgEtlError as exc:
        raise _fail(exc) from exc
    report = quality_report(con)
    con.close()
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    files = Table(title="Files")
    for column in ("center", "delivery", "file", "read", "loaded", "quarantined", "status"):
        files.add_column(column)
    for f in report["files"]:
        status = f"rejected: {f['reason']}" if f["rejected"] else f["status"]
        files.add_row(f["center"], f["delivery"], f["file"], *(str(f[k]) for k in
                      ("rows_read", "rows_loaded", "rows_quarantined")), status)
    console.print(files)
    rules = Table(title="Rules")
    for column in ("rule", "severity", "Kahn category", "count", "example"):
        rules.add_column(column)
    for r in report["rules"]:
        example = r["examples"][0] if r["examples"] else {}
        where = f"{example.get('center')}/{example.get('delivery')} {example.get('file')} row {example.get('row')}"
        rules.add_row(r["rule_id"], r["severity"], r["kahn_category"], str(r["count"]),
                      f"{where}: {example.get('message')}")
    console.print(rules)
    rec = report["reconciliation"]
    console.print(f"rows read {rec['rows_read']} = loaded {rec['rows_loaded']} + quarantined "
                  f"{rec['rows_quarantined']}: {'balanced' if rec['balanced'] else 'OUT OF BALANCE'}")


@app.command("demo")
def demo_command(
    workdir: Annotated[Path, typer.Option(help="work folder, made afresh")] = Path("drg-demo"),
) -> None:
    """Generate the demo cohort's deliveries in a fresh work folder, load them, and report quality."""
    inbox, warehouse = workdir / "inbox", workdir / "warehouse.duckdb"
    for stale in (inbox, warehouse, workdir / "warehouse.duckdb.wal"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    truth = workdir / "truth.json"
    result = generate(inbox, truth=truth)
    _print_generated(result, inbox)
    console.print(f"[yellow]The demo pseudonymises CPR numbers with a fixed demo key, not a secret one; "
                  f"real loads take the key from {KEY_VARIABLE}.[/yellow]")
    report = load_inbox(inbox, warehouse, DEMO_KEY.encode())
    print_load(report)
    console.print(f"Warehouse: {warehouse}")
    console.print(f"Data-quality report: drg-etl quality --warehouse {warehouse}")
    console.print(f"The generator's truth (per-patient histories, injected defects): {truth}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
