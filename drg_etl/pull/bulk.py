"""``drg-etl pull fhir``: aauh's delivery by FHIR Bulk Data ``$export`` (Bulk Data Access IG v2), pull.md.

Kick-off (``Group/[id]/$export`` or ``Patient/$export``, ``_type`` the delivery's resource types,
``_since`` the last export's ``transactionTime``), polling that honours ``Retry-After``, streamed and
checked downloads, ``deleted`` entries, and the job deleted only once the delivery is in the inbox.
The status URL is saved the moment the server gives it: an interrupted pull resumes that job; an
expired job (404/410, or past ``Expires``) starts again from kick-off with the same ``_since``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

from drg_etl import __version__
from drg_etl.core.cpr import scrub_cpr
from drg_etl.core.delivery import REGISTRY_ZONE
from drg_etl.core.formats import FORMATS
from drg_etl.pull.http import (
    CredentialRefused,
    PullError,
    Retryable,
    RetryBudget,
    http_date,
    new_client,
    public_url,
    with_retries,
)
from drg_etl.pull.result import PullResult
from drg_etl.pull.smart import SCOPE, BackendAuth, BackendCredentials, token_endpoint
from drg_etl.pull.snapshot import Landed, Snapshot, describe, land, write_text_file
from drg_etl.pull.state import PullState, pull_lock

CENTER = "aauh"
FHIR_JSON = "application/fhir+json"
DOWNLOAD_ATTEMPTS = 3
KICKOFF_RESTARTS = 3
LONGEST_POLL = 6 * 3600.0  # seconds a job may run before the pull gives up on it


class ServerFailed(PullError):
    """The server said the export (or one of its files) failed for good: the job is dropped, not resumed."""


class Expired(Exception):
    """The job or one of its files is gone (404/410, or past ``Expires``): start again from kick-off."""


def resource_types(center: str = CENTER) -> list[str]:
    """The resource types of the center's delivery (extracts.md), in its file order."""
    return [f.resource_type for f in FORMATS[center].files if f.resource_type]


def _outcome_text(response: httpx.Response) -> str:
    """The diagnostics of an OperationOutcome answer (CPR numbers scrubbed), or the status."""
    try:
        body = response.json()
        issues = body.get("issue", []) if isinstance(body, dict) else []
        texts = [str(i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code")) for i in issues]
        if texts:
            return scrub_cpr("; ".join(texts))[:400]
    except (ValueError, AttributeError):
        pass
    return f"HTTP {response.status_code}"


def _outcome_codes(response: httpx.Response) -> set[str]:
    try:
        body = response.json()
        return {str(i.get("code")) for i in body.get("issue", [])} if isinstance(body, dict) else set()
    except (ValueError, AttributeError):
        return set()


def _transient(response: httpx.Response) -> None:
    """Sort an error answer by its OperationOutcome: ``transient`` is asked again; any other code on a 5xx is
    the server's final word (a bare 5xx without an OperationOutcome is retried by its status)."""
    if response.status_code < 400 or response.status_code in (401, 403, 404, 410, 429):
        return
    response.read()
    codes = _outcome_codes(response)
    if "transient" in codes or "throttled" in codes:
        raise Retryable(response, f"HTTP {response.status_code} (transient: {_outcome_text(response)})")
    if codes and response.status_code >= 500:
        raise ServerFailed(f"the FHIR server failed: HTTP {response.status_code}: {_outcome_text(response)}; "
                        "nothing was written")


@dataclass
class BulkExport:
    """One pull of a FHIR server by ``$export``: the settings, the client and the waits."""

    base_url: str
    credentials: BackendCredentials
    group: str | None = None
    budget: RetryBudget = field(default_factory=RetryBudget)
    clock: Any = time.time
    http: httpx.Client = field(default_factory=new_client)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.auth: BackendAuth | None = None

    # -- the conversation -------------------------------------------------------------------------
    def sign_in(self) -> None:
        """Find the token endpoint; the first token is asked for with the first request."""
        self.auth = BackendAuth(self.credentials, token_endpoint(self.http, self.base_url), clock=self.clock)

    def _send(self, method: str, url: str, what: str, *, stream: bool = False,
              headers: dict[str, str] | None = None, auth: bool = True) -> httpx.Response:
        def call() -> httpx.Response:
            request = self.http.build_request(method, url, headers={"Accept": FHIR_JSON, **(headers or {})})
            return self.http.send(request, auth=self.auth if auth else None, stream=stream)

        response = with_retries(call, self.budget, what, check=_transient)
        if response.status_code in (401, 403):
            response.read()
            raise CredentialRefused(
                f"{what}: the FHIR server refused the access token (HTTP {response.status_code}: "
                f"{_outcome_text(response)}); check that the client may export (scope, {SCOPE})")
        return response

    def server_version(self) -> dict[str, Any]:
        """The server's software and FHIR version from its CapabilityStatement (empty when it gives none)."""
        try:
            response = self._send("GET", f"{self.base_url}/metadata", "the CapabilityStatement")
            body = response.json() if response.status_code == 200 else {}
        except (PullError, ValueError):
            return {}
        software = body.get("software") or {}
        return {k: v for k, v in {"software": software.get("name"), "version": software.get("version"),
                                  "fhirVersion": body.get("fhirVersion")}.items() if v}

    def kickoff_url(self, since: str | None) -> str:
        """The kick-off request: the group's or all patients' export of the delivery's types."""
        path = f"Group/{self.group}/$export" if self.group else "Patient/$export"
        params = {"_type": ",".join(resource_types())}
        if since:
            params["_since"] = since
        return f"{self.base_url}/{path}?{urlencode(params, safe=',:$')}"

    def kick_off(self, since: str | None) -> dict[str, Any]:
        """Start an export; the job (status URL, request, ``_since``) to poll."""
        url = self.kickoff_url(since)
        response = self._send("GET", url, "the $export kick-off", headers={"Prefer": "respond-async"})
        response.read()
        if response.status_code != 202 or not response.headers.get("Content-Location"):
            raise PullError(f"the $export kick-off was refused: HTTP {response.status_code}: "
                            f"{_outcome_text(response)}; nothing was written")
        status = str(httpx.URL(url).join(response.headers["Content-Location"]))
        return {"status_url": public_url(status), "request": public_url(url), "since": since,
                "base_url": public_url(self.base_url),
                "group": self.group, "kicked_off": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

    def poll(self, job: dict[str, Any]) -> dict[str, Any]:
        """Poll the status URL until the manifest; raise :class:`Expired` when the job is gone."""
        started, attempt = self.clock(), 0
        while True:
            response = self._send("GET", job["status_url"], "the export's status")
            response.read()
            if response.status_code in (404, 410):
                raise Expired(f"the export job is gone (HTTP {response.status_code})")
            if response.status_code == 200:
                return self._manifest(response)
            if response.status_code != 202:
                raise ServerFailed(f"the export failed: HTTP {response.status_code}: {_outcome_text(response)}; "
                                "nothing was written")
            attempt += 1
            asked = Retryable(response, "in progress").wait
            wait = min(self.budget.longest_wait, asked) if asked is not None else \
                min(self.budget.backoff_cap, self.budget.backoff_base * 2 ** min(attempt - 1, 10))
            if self.clock() - started + wait > LONGEST_POLL:
                raise PullError(f"the export is still running after {LONGEST_POLL / 3600:.0f} hours; its status "
                                "URL is kept and the next pull resumes it")
            self.budget.waits.append(wait)
            self.budget.sleep(wait)

    def _manifest(self, response: httpx.Response) -> dict[str, Any]:
        try:
            manifest = response.json()
            manifest["transactionTime"], manifest["output"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PullError("the export's manifest is not the Bulk Data IG's JSON (transactionTime, output)") from exc
        expires = http_date(response.headers.get("Expires"))
        if expires is not None and expires.timestamp() < time.time():
            raise Expired("the manifest has expired")
        return manifest

    def download(self, entry: dict[str, Any], into: Path, requires_token: bool, kind: str) -> tuple[Path, str]:
        """Stream one manifest file to disk and check it: every line one resource of its type, the count right.

        A short or corrupt file is fetched again; a gone file raises :class:`Expired`. Returns the
        file and its SHA-256.
        """
        url, rtype = entry.get("url"), entry.get("type")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PullError(f"the manifest's {kind} entry for {rtype} has no absolute url")
        if requires_token and urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            raise PullError(f"the manifest asks for the access token at another host ({urlsplit(url).netloc}); "
                            "it is only ever sent to the FHIR server")
        problem = ""
        for _attempt in range(DOWNLOAD_ATTEMPTS):
            path = into / f"{kind}-{len(list(into.iterdir()))}.ndjson"
            try:
                digest = self._stream_to(url, path, requires_token)
            except httpx.TransportError as exc:
                problem = f"the download broke off ({type(exc).__name__})"
                path.unlink(missing_ok=True)
                continue
            problem = check_ndjson(path, rtype, entry.get("count"), kind)
            if not problem:
                return path, digest
            path.unlink(missing_ok=True)
        raise PullError(f"{rtype} ({kind}): {problem} in {DOWNLOAD_ATTEMPTS} downloads; nothing was written")

    def _stream_to(self, url: str, path: Path, requires_token: bool) -> str:
        digest = hashlib.sha256()
        response = self._send("GET", url, "a download", stream=True, auth=requires_token,
                              headers={"Accept": "application/fhir+ndjson"})
        try:
            if response.status_code in (404, 410):
                raise Expired(f"an export file is gone (HTTP {response.status_code})")
            if response.status_code != 200:
                response.read()
                raise PullError(f"a download failed: HTTP {response.status_code}: {_outcome_text(response)}")
            with path.open("wb") as out:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        finally:
            response.close()
        return digest.hexdigest()

    def delete_job(self, job: dict[str, Any]) -> str:
        """Delete the finished job on the server (a courtesy: the files are safe); what became of it."""
        try:
            response = self._send("DELETE", job["status_url"], "deleting the export job")
            response.read()
        except CredentialRefused:
            return "the server did not let the client delete the finished export job (it expires by itself)"
        except PullError as exc:
            return f"the finished export job was not deleted ({exc})"
        if response.status_code in (200, 202, 204, 404):
            return "the export job was deleted on the server"
        return f"the finished export job was not deleted (HTTP {response.status_code})"


def check_ndjson(path: Path, rtype: str | None, count: object, kind: str) -> str:
    """Why a downloaded file is not whole (empty string: it is): a broken line, another type, a wrong count."""
    lines = 0
    expected_type = "Bundle" if kind == "deleted" else ("OperationOutcome" if kind == "error" else rtype)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n") and not raw.strip():
                continue
            try:
                resource = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return f"line {number} is not whole JSON (a short or corrupt file)"
            if not isinstance(resource, dict) or (expected_type and resource.get("resourceType") != expected_type):
                return f"line {number} is not a {expected_type} resource"
            lines += 1
    if isinstance(count, int) and count != lines:
        return f"{lines} lines where the manifest counts {count}"
    return ""


def _lines(path: Path) -> Iterator[tuple[str, str]]:
    """(id, line) of each resource in an NDJSON file, the line as the server wrote it (without its line end)."""
    with path.open("r", encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\r\n")
            if line.strip():
                yield str(orjson.loads(line).get("id", "")), line


def _deleted(path: Path) -> Iterator[tuple[str, str]]:
    """(type, id) of each DELETE entry in a ``deleted`` file (Bundles of the IG v2)."""
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            for entry in orjson.loads(raw).get("entry", []):
                request = entry.get("request") or {}
                if str(request.get("method", "")).upper() == "DELETE":
                    rtype, _, rid = str(request.get("url", "")).strip("/").rpartition("/")
                    rtype = rtype.rpartition("/")[2]
                    if rtype and rid:
                        yield rtype, rid


def cutoff_of(transaction_time: str) -> dt.date:
    """The delivery's cutoff: the Copenhagen date of the snapshot's ``transactionTime``."""
    when = dt.datetime.fromisoformat(transaction_time.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(REGISTRY_ZONE).date()


def pull_fhir(inbox: Path, base_url: str, credentials: BackendCredentials, *, group: str | None = None,
              full: bool = False, center: str = CENTER, budget: RetryBudget | None = None) -> PullResult:
    """Pull the center's FHIR server into ``INBOX/<center>/<cutoff>/``, whole, incrementally where it can."""
    if center != CENTER:
        raise PullError(f"the FHIR pull writes {CENTER}'s delivery (extracts.md); {center} delivers otherwise")
    with pull_lock(inbox, center) as work, new_client() as http:
        state = PullState.load(inbox, center)
        source = {"url": public_url(base_url.rstrip("/")), "group": group}
        base = None if full or state.source != source else state.base_folder(inbox)
        export = BulkExport(base_url, credentials, group, budget or RetryBudget(), http=http)
        export.sign_in()
        job = state.job if state.job and state.job.get("base_url") == source["url"] and \
            state.job.get("group") == group else None
        if job is not None and job.get("since") and base is None:
            job = None  # an incremental job whose base delivery is gone cannot be merged: pull in full
        notes = ["resumed the unfinished export job"] if job else []
        since = job["since"] if job else (state.watermark if base is not None else None)
        received = work / "received"
        for restart in range(KICKOFF_RESTARTS + 1):
            if job is None:
                job = export.kick_off(since)
                state.job = job
                state.save(inbox)
            try:
                manifest = export.poll(job)
                files = _download_all(export, manifest, received)
                break
            except ServerFailed:
                state.job = None  # a failed job is not resumed: the next pull kicks off anew
                state.save(inbox)
                raise
            except Expired as gone:
                notes.append(f"{gone}: started again from kick-off with the same _since")
                state.job, job = None, None
                state.save(inbox)
                if restart == KICKOFF_RESTARTS:
                    raise PullError(f"the export expired {KICKOFF_RESTARTS + 1} times; nothing was written") from gone
        mode = "incremental" if since else "full"
        record, counts, staged = _build(export, work, manifest, files, base if since else None, job, mode)
        landed: Landed = land(staged, inbox, center, cutoff_of(manifest["transactionTime"]), record,
                              list(counts))
        if not landed.written:
            notes.append(f"nothing changed since the delivery of {landed.folder.name}: nothing was written")
        state.watermark = manifest["transactionTime"]
        state.cutoff = landed.folder.name
        state.files = {w.name: w.sha256 for w in describe(landed.folder, counts, counts)}
        state.source, state.job = source, None
        state.save(inbox)
        notes.append(export.delete_job(job))
        return PullResult(center, landed.folder, landed.written, landed.replaced, mode, counts, record, notes)


def _download_all(export: BulkExport, manifest: dict[str, Any], into: Path) -> dict[str, list[tuple]]:
    """Every output, deleted and error file of the manifest, downloaded and checked."""
    import shutil

    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    token = bool(manifest.get("requiresAccessToken", False))
    wanted = set(resource_types())
    files: dict[str, list[tuple]] = {"output": [], "deleted": [], "error": [], "ignored": []}
    for kind in ("output", "deleted", "error"):
        for entry in manifest.get(kind) or []:
            if kind == "output" and entry.get("type") not in wanted:
                files["ignored"].append((entry.get("type"), entry.get("count")))
                continue
            path, digest = export.download(entry, into, token, kind)
            files[kind].append((entry.get("type"), path, digest, entry.get("count")))
    return files


def _build(export: BulkExport, work: Path, manifest: dict[str, Any], files: dict[str, list[tuple]],
           base: Path | None, job: dict[str, Any], mode: str) -> tuple[dict[str, Any], dict[str, int], Path]:
    """Merge what was received into the base snapshot and write the delivery's files; its ``pull.json``."""
    types = resource_types()
    names = {f.resource_type: f.name for f in FORMATS[CENTER].files}
    snapshot = Snapshot(work / "snapshot.duckdb")
    try:
        if base is not None:
            for rtype in types:
                if (base / names[rtype]).exists():
                    snapshot.add((rtype, rid, rid, line) for rid, line in _lines(base / names[rtype]))
        staged_lines = [snapshot.stage((rtype, rid, rid, line) for rid, line in _lines(path))
                        for rtype, path, _digest, _count in files["output"]]
        deleted = [key for _t, path, _d, _c in files["deleted"] for key in _deleted(path)]
        changes = snapshot.apply(deleted)
        if twice := snapshot.duplicates():
            raise PullError(f"the server sent one resource twice ({twice[0][0]}/{twice[0][1]}); nothing was written")
        staged = work / "delivery"
        staged.mkdir()
        counts = {}
        for rtype in types:
            write_text_file(staged / names[rtype], snapshot.lines(rtype))
            counts[names[rtype]] = snapshot.count(rtype)
    finally:
        snapshot.close()
    errors = []
    for _t, path, _d, _c in files["error"]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                for issue in orjson.loads(line).get("issue", []):
                    errors.append({k: scrub_cpr(str(issue[k]))[:300] for k in ("severity", "code", "diagnostics")
                                   if k in issue})
    written = describe(staged, counts, counts)
    record = {
        "center": CENTER, "kind": "fhir-bulk-export", "drg_etl": __version__,
        "source": {"url": public_url(export.base_url), "group": export.group, "server": export.server_version()},
        "request": {"kickoff": job["request"], "_type": ",".join(types), "_since": job.get("since")},
        "mode": mode, "transactionTime": manifest["transactionTime"],
        "pulled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "received": {
            "output": [{"type": t, "count": c, "lines": n, "sha256": d}
                       for (t, _p, d, c), n in zip(files["output"], staged_lines, strict=True)],
            "deleted": len(deleted), "error": errors,
            "ignored": [{"type": t, "count": c} for t, c in files["ignored"]],
        },
        "changes": changes if mode == "incremental" else None,
        "files": {w.name: {"records": w.records, "sha256": w.sha256} for w in written},
        "retry_waits": len(export.budget.waits),
    }
    return record, counts, staged
