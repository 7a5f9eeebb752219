"""The ``drg-etl`` command line (cli.md). Each command calls the library; nothing is done twice."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import duckdb
import typer

from drg_etl import __version__
from drg_etl.core.display import format_p
from drg_etl.core.errors import EXIT_USAGE, DrgEtlError, interrupted_by
from drg_etl.synth import DEFAULT_SEED

# Each command imports the library it calls inside its function: a command's start pays for its own modules
# only (analyze: no load, FHIR validation, plots, generator, pseudonym key or CPR scrubber, and with --json no
# Rich; issue 18).
if TYPE_CHECKING:
    from rich.console import Console

    from drg_etl.pipeline.load import LoadReport
    from drg_etl.pull.result import PullResult
    from drg_etl.synth.generate import GenerateResult

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="drg-etl: validated, standards-based loads of the Danish DRG-stimulation registry.")


class _LazyConsole:
    """A Rich console made on first use: importing Rich takes about 20 ms, and ``analyze --json`` prints nothing
    through one (each command's tables import Rich's Table and Text where they are made)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


# Nothing printed is ever read as Rich markup: names, paths and messages come from deliveries and users, and a
# "[/x]" in them must print as it is. Colour is given as a style, never as markup in the text.
console = _LazyConsole(markup=False)
errors = _LazyConsole(stderr=True, soft_wrap=True, markup=False)  # one line per error, never wrapped
DEBUG = {"on": False}


def _version(asked: bool) -> None:
    if asked:
        typer.echo(f"drg-etl {__version__}")
        raise typer.Exit(0)


@app.callback()
def options(debug: Annotated[bool, typer.Option("--debug", help="show stack traces of errors")] = False,
            version: Annotated[bool, typer.Option("--version", help="print the version and exit", is_eager=True,
                                                  callback=_version)] = False) -> None:
    """drg-etl: validated, standards-based loads of the Danish DRG-stimulation registry."""
    DEBUG["on"] = debug


@contextmanager
def _errors() -> Iterator[None]:
    """Every failure as one line on stderr with cli.md's exit code; the trace only with --debug."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        if (stop := interrupted_by()) is not None:  # a library turned Ctrl-C or SIGTERM into its own error
            raise stop from exc
        if DEBUG["on"]:
            raise
        if isinstance(exc, DrgEtlError):
            raise _fail(exc) from exc
        if isinstance(exc, duckdb.Error):
            _error_line(f"the warehouse: {str(exc).splitlines()[0]}")
        else:
            first = str(exc).splitlines()[0] if str(exc) else ""
            _error_line(f"{type(exc).__name__}: {first} (run with --debug for the trace)")
        raise typer.Exit(EXIT_USAGE) from exc


def _print_generated(result: GenerateResult, out: Path) -> None:
    from rich.table import Table

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
    model_failure_ratio: Annotated[float | None, typer.Option(
        help="patients whose course brings a lead defect get --failing-model R times as often "
             "as the other generator model (from 2017); default: no difference")] = None,
    failing_model: Annotated[str, typer.Option(help="the generator model that fails more often: "
                                                    "Axium or 'Proclaim DRG'")] = "Proclaim DRG",
) -> None:
    """Write the four centers' synthetic deliveries (extracts.md)."""
    if patients is not None and patients < 1:
        _error_line("--patients must be at least 1")
        raise typer.Exit(EXIT_USAGE)
    if model_failure_ratio is not None and not model_failure_ratio > 0:
        _error_line("--model-failure-ratio must be above 0")
        raise typer.Exit(EXIT_USAGE)
    if failing_model not in ("Axium", "Proclaim DRG"):
        _error_line("--failing-model must be Axium or 'Proclaim DRG'")
        raise typer.Exit(EXIT_USAGE)
    from drg_etl.synth.generate import generate

    with _errors():
        result = generate(out, seed=seed, patients=patients, clean=clean, truth=truth,
                          model_failure_ratio=model_failure_ratio,
                          failing_model=failing_model if model_failure_ratio is not None else None)
    _print_generated(result, out)
    if truth:
        console.print(f"Truth: {truth}")


def _error_line(message: str) -> None:
    """One line on stderr: ``error: <message>``, the message as plain text (never markup), no CPR number."""
    from rich.text import Text

    from drg_etl.core.cpr import scrub_cpr

    errors.print(Text.assemble(("error:", "red"), " ", scrub_cpr(message)), highlight=False)


def _fail(exc: DrgEtlError) -> typer.Exit:
    _error_line(str(exc))
    return typer.Exit(exc.exit_code)


def print_load(report: LoadReport) -> None:
    """The per-file table of a load, the rejected files with reasons, and the issues."""
    from rich.table import Table
    from rich.text import Text

    from drg_etl.pipeline.load import FOLDER

    table = Table(title="Load")
    for column in ("center", "delivery", "file", "read", "loaded", "quarantined", "outcome"):
        table.add_column(column, justify="right" if column in ("read", "loaded", "quarantined") else "left")
    for f in report.files:
        outcome = Text(f"rejected: {f.reason} [{f.rule_id}]", style="red") if f.rejected else "loaded"
        table.add_row(f.center, f.delivery, f.file, str(f.rows_read), str(f.rows_loaded), str(f.rows_quarantined),
                      outcome)
    if report.files:  # a load that found nothing new has no file to show: the line below says so
        console.print(table)
    shown = report.issues[:50]
    for issue in shown:
        console.print(f"  {issue.describe()}", highlight=False)
    if report.issue_total > len(shown):
        by_rule = ", ".join(f"{rule} {n}" for rule, n in report.issue_counts.items())
        console.print(f"  ... {report.issue_total} findings in all ({by_rule}): `drg-etl quality --warehouse ...`",
                      highlight=False)
    console.print(f"loaded {len(report.loaded)}, already loaded {len(report.skipped)}, "
                  f"rejected {len(report.rejected)} deliveries")
    odd = {f"{f.center}/{f.delivery}".rstrip("/"): f.reason for f in report.files if f.file == FOLDER}
    for label in report.rejected:
        if label in odd:
            console.print(f"not read: {label}: {odd[label]}", style="red", highlight=False)
        else:
            console.print(f"rejected {label}: the center's previous delivery stays in force", style="red",
                          highlight=False)


@app.command("load")
def load_command(
    inbox: Annotated[Path, typer.Argument(help="inbox folder of center deliveries", metavar="INBOX")],
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    strict: Annotated[bool, typer.Option("--strict", help="also validate every FHIR resource with fhir.resources "
                                                          "(slower; the R4 JSON Schema checks every resource anyway)")
                      ] = False,
    accept_quarantine: Annotated[bool, typer.Option(
        "--accept-quarantine", help="write a delivery that supersedes its center although most of its records go "
                                    "to quarantine (refused by default: read `drg-etl quality` first)")] = False,
) -> None:
    """Load every delivery under INBOX (INBOX/<center>/<YYYY-MM-DD>/) that the warehouse has not seen.

    CPR numbers are pseudonymised with the key in the environment variable DRG_ETL_PSEUDONYM_KEY (64 hex
    digits; make one with `python -c "import secrets; print(secrets.token_hex(32))"`); the warehouse keeps
    no CPR number. Exit 0: done; 1: done, but a delivery, file or folder was rejected (each named); 2: nothing
    was done (an empty inbox among others).
    """
    from drg_etl.core.pseudonym import key_from_environment
    from drg_etl.pipeline.load import load_inbox

    with _errors():
        key = key_from_environment()
        with console.status("loading") as status:
            report = load_inbox(inbox, warehouse, key, progress=lambda text: status.update(text), strict=strict,
                                accept_quarantine=accept_quarantine)
    print_load(report)
    raise typer.Exit(report.exit_code)


@app.command("rekey")
def rekey_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    inbox: Annotated[Path, typer.Option(help="the inbox holding every delivery the warehouse was loaded from "
                                             "(their CPR numbers give the new pseudonyms)")],
) -> None:
    """Rotate the pseudonym key: from DRG_ETL_OLD_PSEUDONYM_KEY to DRG_ETL_PSEUDONYM_KEY, in one transaction."""
    from drg_etl.core.pseudonym import KEY_VARIABLE, OLD_KEY_VARIABLE, key_from_environment
    from drg_etl.pipeline.rekey import rekey

    with _errors():
        old, new = key_from_environment(OLD_KEY_VARIABLE), key_from_environment()
        with console.status("re-pseudonymising"):
            changed = rekey(warehouse, inbox, old, new)
    console.print(f"{changed} pseudonyms rotated; the warehouse now answers to the key in {KEY_VARIABLE}.")


pull_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Pull a center's delivery from its system into the inbox (pull.md).")
app.add_typer(pull_app, name="pull")


def print_pull(result: PullResult) -> None:
    """What a pull wrote (or that nothing changed), file by file, and what it noticed."""
    if result.written:
        verb = "replaced the day's delivery" if result.replaced else "wrote"
        console.print(f"{result.center}: {verb} {result.folder} ({result.mode} pull)", highlight=False)
        for name, count in result.counts.items():
            console.print(f"  {name}: {count} records", highlight=False)
    for note in result.notes:
        console.print(f"{result.center}: {note}", highlight=False)


@pull_app.command("redcap")
def pull_redcap_command(
    inbox: Annotated[Path, typer.Option(help="the inbox to write the delivery into")],
    url: Annotated[str, typer.Option(help="REDCap's API URL (ends in /api/)")],
    center: Annotated[str, typer.Option(help="the center whose project this is")] = "rh",
    full: Annotated[bool, typer.Option("--full", help="export every record, not only what changed")] = False,
) -> None:
    """Pull the center's REDCap project through its API (token in DRG_ETL_REDCAP_TOKEN) into INBOX/<center>/<cutoff>/.

    Exit 0: a delivery was written, or nothing changed since today's; 2: nothing was written (a refused
    token, a server error after retries, a wrong URL), with one line that says which.
    """
    from drg_etl.pull.redcap import pull_redcap, token_from_environment

    with _errors():
        token = token_from_environment()
        result = pull_redcap(inbox, url, token, full=full, center=center)
    print_pull(result)


@pull_app.command("fhir")
def pull_fhir_command(
    inbox: Annotated[Path, typer.Option(help="the inbox to write the delivery into")],
    url: Annotated[str, typer.Option(help="the FHIR server's base URL")],
    center: Annotated[str, typer.Option(help="the center whose server this is")] = "aauh",
    group: Annotated[str | None, typer.Option(help="the Group whose members are the registry's patients")] = None,
    full: Annotated[bool, typer.Option("--full", help="export everything, not only what changed (_since)")] = False,
) -> None:
    """Pull the center's FHIR server by Bulk Data $export into INBOX/<center>/<cutoff>/.

    The client signs in by SMART Backend Services: DRG_ETL_FHIR_CLIENT_ID, DRG_ETL_FHIR_KEY_FILE (PEM, EC P-384
    or RSA), DRG_ETL_FHIR_KEY_ID (the key's kid in the JWKS the server holds), optionally DRG_ETL_FHIR_SCOPE
    (default system/*.rs). Exit 0: a delivery was written, or nothing changed since today's; 2: nothing was
    written, with one line that says why.
    """
    from drg_etl.pull.bulk import pull_fhir
    from drg_etl.pull.smart import BackendCredentials

    with _errors():
        credentials = BackendCredentials.from_environment()
        with console.status("pulling"):
            result = pull_fhir(inbox, url, credentials, group=group, full=full, center=center)
    print_pull(result)


@app.command("report")
def report_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")],
    publish: Annotated[bool, typer.Option("--publish", help="mask counts 1-4 as \"<5\", as analyze does")] = False,
) -> None:
    """One self-contained HTML page: cohort flow, outcomes, survival, complications, centers, data quality."""
    from drg_etl.report.data import read_report_data
    from drg_etl.report.html import write_report

    with _reading(warehouse) as con:
        page = write_report(read_report_data(con, publish=publish), out)
    console.print(f"report: {page}")


@app.command("fhir-package")
def fhir_package_command(
    out: Annotated[Path, typer.Option(help="folder to write the FHIR package into (as out/package/ and "
                                             "out/<name>-<version>.tgz)")],
) -> None:
    """The project's FHIR package: profiles, extensions, code systems, value sets, concept maps, SQL-on-FHIR views."""
    with _errors():
        from drg_etl.fhir.package import write_package  # its URLs come from the canonical base, checked here

        files = write_package(out)
    console.print(f"{len(files) - 1} files in {out / 'package'}, and {files[-1].name}")


@app.command("quality")
def quality_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
) -> None:
    """The data-quality report: per file and rule, the counts, Kahn category, severity and examples."""
    from rich.table import Table

    from drg_etl.pipeline.warehouse import connect
    from drg_etl.quality.report import quality_report

    with _errors():
        con = connect(warehouse, read_only=True)
        try:
            report = quality_report(con)
        finally:
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


@app.command("dictionary")
def dictionary_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    fmt: Annotated[str, typer.Option("--format", help="md (a section per table), csv (a row per column) or json")]
    = "md",
) -> None:
    """The data dictionary: every table, view and column with its description and codes, as the warehouse holds
    them (COMMENTs)."""
    from drg_etl.core.dictionary import undocumented
    from drg_etl.pipeline.dictionary_document import FORMATS, dictionary_document
    from drg_etl.pipeline.warehouse import connect

    if fmt not in FORMATS:
        _error_line(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        raise typer.Exit(EXIT_USAGE)
    with _errors():
        con = connect(warehouse, read_only=True)
        try:
            document, missing = dictionary_document(con, fmt), undocumented(con)
        finally:
            con.close()
    typer.echo(document, nl=False)
    if missing:
        _error_line(f"{len(missing)} tables or columns have no description (first: {missing[0]}); a load, or any "
                    f"command that writes to {warehouse}, writes them")


@app.command("release")
def release_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    out: Annotated[Path, typer.Option(help="folder for the Parquet, CSV and Stata files and datapackage.json")],
) -> None:
    """The analysts' release: every mart and flat table as Parquet, CSV and Stata .dta with labels, and a
    datapackage.json; pseudonymised, no free text."""
    from drg_etl.pipeline.analyst_release import write_release

    with _reading(warehouse) as con:
        release = write_release(con, out)
    for table in release.tables:
        left_out = f"  (left out: {', '.join(table.left_out)})" if table.left_out else ""
        console.print(f"{table.rows:>8}  {table.source}: {', '.join(table.files.values())}{left_out}")
    if release.absent:
        console.print(f"not in this warehouse (not released): {', '.join(release.absent)}")
    console.print(f"datapackage: {release.package}")


@contextmanager
def _reading(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a loaded warehouse with a current FHIR layer; else one line and exit 2."""
    from drg_etl.pipeline.warehouse import connect, require_current

    with _errors():
        con = connect(warehouse, read_only=True)
        try:
            require_current(con, warehouse)
            yield con
        finally:
            con.close()


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        _error_line(f"--observation-end {text!r} is not a date YYYY-MM-DD")
        raise typer.Exit(EXIT_USAGE) from exc


def _p_text(value: object) -> str:
    """"= 0.0039" or "< 0.001" (core/display.py's convention, the report's too)."""
    text = format_p(value)
    return text if text.startswith("<") else f"= {text}"


def print_figures(figures: dict) -> None:
    """The national analysis as readable tables."""
    from rich.table import Table

    c = figures["cohort"]
    table = Table(title=f"National analysis, observation end {figures['observation_end']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [("trial patients", c["trial_patients"]), ("implanted patients", c["implanted_patients"]),
            ("still implanted", f"{c['still_implanted']} ({c['still_implanted_pct']}%)"),
            ("fully functional", f"{c['fully_functional']} ({c['fully_functional_pct']}%)")]
    rows += [(f"pain location: {k.replace('_', ' ')}", f"{v['n']} ({v['pct']}%)")
             for k, v in figures["pain_location"].items()]
    for measure, o in figures["outcomes_12m"].items():
        rows.append((f"{measure.replace('_', ' ')}: baseline -> 12 months (n={o['n']})",
                     f"{o['baseline_mean']} -> {o['month12_mean']}, p {_p_text(o['p_value'])}"))
    k = figures["complications"]
    rows += [("lead-defect complication", f"{k['lead_defect_patients']} ({k['lead_defect_pct']}%)"),
             ("retained lead fragments", f"{k['retained_fragment_patients']} ({k['retained_fragment_pct']}%)"),
             ("permanent nerve damage", str(k["permanent_nerve_damage_patients"]))]
    rows += [(f"{center}: trial / implanted", f"{v['trial_patients']} / {v['implanted_patients']}")
             for center, v in figures["by_center"].items()]
    for name, curve in ((n, figures.get("survival", {}).get(n)) for n in ("lead_defect_free", "system_explant_free")):
        for day, point in (curve or {}).get("at_days", {}).items():
            rows.append((f"{name.replace('_', ' ')} at {day} days",
                         "nobody at risk" if point is None else
                         f"{point['s']} ({point['lo']}-{point['hi']}), {point['at_risk']} at risk"))
    for timepoint, cell in {k: v for k, v in figures.get("follow_up", {}).items() if k != "by_center"}.items():
        share = "" if cell["pct"] is None else f" ({cell['pct']}%)"
        rows.append((f"follow-up {timepoint.replace('_', ' ')}: assessed / due", f"{cell['assessed']} / {cell['due']}"
                                                                                  f"{share}"))
    if leads := figures.get("survival", {}).get("leads"):
        rows.append(("leads placed / revised / faulty at the end",
                     f"{leads['placed']} / {leads['revised']} / {leads['faulty_at_end']}"))
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)


@app.command("analyze")
def analyze_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    as_json: Annotated[bool, typer.Option("--json", help="print analysis.md's JSON")] = False,
    publish: Annotated[bool, typer.Option("--publish", help="mask counts 1-4 as \"<5\"")] = False,
    observation_end: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default: the latest cutoff")] = None,
) -> None:
    """The national analysis (analysis.md), by SQL over the warehouse's FHIR layer."""
    from drg_etl.analysis.national import national_analysis, publishable

    end = _date(observation_end)
    with _reading(warehouse) as con:
        figures = national_analysis(con, end)
    if publish:
        figures = publishable(figures)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_figures(figures)


@app.command("export-fhir")
def export_fhir_command(
    warehouse: Annotated[Path, typer.Option(help="the DuckDB warehouse file")],
    out: Annotated[Path, typer.Option(help="folder for the NDJSON files and manifest.json")],
    base_url: Annotated[str | None, typer.Option(
        help="absolute URL the files will be served under (the manifest's output[].url and request); "
             "default the folder's file:// URL")] = None,
) -> None:
    """FHIR R4 Bulk Data NDJSON, one file per resource type, with the Bulk Data manifest.json."""
    from drg_etl.fhir.export import export_fhir

    with _reading(warehouse) as con:
        manifest = export_fhir(con, out, base_url)
    for entry in manifest["output"]:
        console.print(f"{entry['count']:>8}  {out / entry['url'].rsplit('/', 1)[-1]}")
    console.print(f"manifest: {out / 'manifest.json'}")


def print_comparison(figures: dict) -> bool:
    """The computed figures beside the paper's, each marked as matching at the paper's rounding."""
    from rich.table import Table
    from rich.text import Text

    from drg_etl.reference.compare import compare_with_paper

    table = Table(title="drg-etl beside Horan et al. 2021 (at the paper's rounding)")
    for column in ("figure", "paper", "drg-etl", "match"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    rows = compare_with_paper(figures)
    for row in rows:
        computed = format_p(row.computed, floor=None) if row.key.endswith("p_value") else str(row.computed)
        table.add_row(row.label, str(row.published), computed,
                      Text("yes", style="green") if row.matches else Text("no", style="red"))
    console.print(table)
    matched = sum(r.matches for r in rows)
    console.print(f"{matched} of {len(rows)} published figures reproduced from the deliveries.")
    return matched == len(rows)


@app.command("demo")
def demo_command(
    workdir: Annotated[Path, typer.Option(help="work folder, made afresh")] = Path("drg-demo"),
) -> None:
    """Generate, load, analyze and export in a fresh work folder; compare the figures with the paper's."""
    from drg_etl.analysis.national import national_analysis
    from drg_etl.core.pseudonym import DEMO_KEY, KEY_VARIABLE
    from drg_etl.fhir.export import export_fhir
    from drg_etl.pipeline.load import load_inbox
    from drg_etl.pipeline.warehouse import connect
    from drg_etl.report.data import read_report_data
    from drg_etl.report.html import write_report
    from drg_etl.synth.generate import generate

    with _errors():
        inbox, warehouse = workdir / "inbox", workdir / "warehouse.duckdb"
        for stale in (inbox, warehouse, workdir / "warehouse.duckdb.wal", workdir / "fhir", workdir / "report.html"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        workdir.mkdir(parents=True, exist_ok=True)
        truth = workdir / "truth.json"
        result = generate(inbox, truth=truth)
        _print_generated(result, inbox)
        console.print(f"The demo pseudonymises CPR numbers with a fixed demo key, not a secret one; "
                      f"real loads take the key from {KEY_VARIABLE}.", style="yellow")
        report = load_inbox(inbox, warehouse, DEMO_KEY.encode())
        print_load(report)
        con = connect(warehouse, read_only=True)
        try:
            figures = national_analysis(con)
            export_fhir(con, workdir / "fhir")
        finally:
            con.close()
        print_figures(figures)
        all_match = print_comparison(figures)
        con = connect(warehouse, read_only=True)
        try:
            page = write_report(read_report_data(con), workdir / "report.html")
        finally:
            con.close()
        console.print(f"Warehouse: {warehouse}")
        console.print(f"HTML report: {page}")
        console.print(f"Data-quality report: drg-etl quality --warehouse {warehouse}")
        console.print(f"FHIR R4 bulk export: {workdir / 'fhir'} (manifest.json)")
        console.print(f"The generator's truth (per-patient histories, injected defects): {truth}")
        if not all_match:
            raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
