"""Peers for testing the FHIR Bulk Data (``$export``, Bulk Data Access IG v2) client with SMART Backend Services.

Three pieces, each usable alone:

- **sekmet**: a real sekmet-fhir server in a subprocess on 127.0.0.1 (``running_sekmet``), with SMART Backend
  Services auth for one client, its data and log kept in a work folder; ``seed_resources`` loads a delivery's
  NDJSON into it keeping the ids, plus a ``Group`` of all its Patients; ``put_resource`` / ``delete_resource`` /
  ``set_group_members`` change it afterwards (for incremental exports).
- **keys and tokens** (test side only): ``make_client_key`` (ES384 or RS384, a JWK Set with kid/alg/use),
  ``sign_assertion`` and ``request_token`` (SMART ``client_credentials`` with a ``private_key_jwt`` assertion).
- **the fault proxy** (``FaultProxy``, ``running_fault_proxy``): a reverse proxy in front of sekmet that forwards
  everything and, when a test flips a switch, answers what sekmet never does: 429 with ``Retry-After`` (seconds or
  an HTTP date), transient 5xx and ``transient`` OperationOutcomes, fatal errors, expired jobs and files, a
  truncated or corrupt file, a 401 on a file although the token is good, and an IG v2 ``deleted`` output
  (computed from sekmet's history, or listed by the test). ``running_proxied_sekmet`` starts both, sekmet's
  ``base_url`` being the proxy's, so that every URL a client sees (status, files, token endpoint) is the proxy's.

Nothing here logs or records an ``Authorization`` header, an assertion or a token: sekmet runs with its traffic
log off (``log_inbound: false``), its own log (uvicorn's access lines: method, path and query) goes to a file in
the work folder, and the proxy records method, path, query and status only.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JsonDict = dict[str, Any]
Alg = Literal["ES384", "RS384"]
Target = Literal["kickoff", "status", "file", "token", "other"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SEED_SCOPE = "system/*.cruds"  # what the seeding helpers ask for: read, search, create, update, delete
FHIR_JSON = "application/fhir+json"
NDJSON = "application/fhir+ndjson"
DEFAULT_GROUP = "drg-registry"
LOCALHOST = "127.0.0.1"

# Headers a proxy does not pass on (RFC 9110 7.6.1), plus the ones it recomputes itself.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "content-length"}
)
_NOT_FORWARDED_REQUEST = _HOP_BY_HOP | {"accept-encoding"}
_NOT_FORWARDED_RESPONSE = _HOP_BY_HOP | {"content-encoding", "date", "server"}


# -- small helpers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def http_date(offset_seconds: float = 0.0) -> str:
    """An HTTP date (RFC 9110 IMF-fixdate) ``offset_seconds`` from now, e.g. for ``Retry-After`` or ``Expires``."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return email.utils.format_datetime(when, usegmt=True)


def parse_instant(value: str) -> dt.datetime:
    """A FHIR instant/dateTime (``Z`` or an offset; a bare date or naive time is taken as UTC) as an aware datetime."""
    parsed = dt.datetime.fromisoformat(value.strip().replace(" ", "+"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def normalize_instant(value: str) -> str:
    """``value`` in sekmet's own instant format: UTC, milliseconds, ``Z`` (``2024-05-01T10:00:00.123Z``)."""
    utc = parse_instant(value).astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> JsonDict:
    """A one-issue OperationOutcome."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def read_ndjson(path: Path) -> list[tuple[str, JsonDict]]:
    """The non-empty lines of an NDJSON file, each with its parsed resource."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append((line, json.loads(line)))
    return out


# -- client keys and tokens (test side) ---------------------------------------------------------------------------


class TokenError(RuntimeError):
    """The token endpoint refused: HTTP status and the OAuth ``error`` / ``error_description``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"token endpoint answered {status}: {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public RSA or EC JWK."""
    names = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in names}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def make_client_key(tmpdir: Path, alg: Alg = "ES384") -> tuple[Path, str, JsonDict]:
    """A new backend-client key pair: ``(private PEM path, kid, public JWK Set)``.

    ES384 is EC P-384, RS384 RSA 2048; the PEM (PKCS#8, unencrypted, mode 0600) is written into ``tmpdir``; the JWK
    Set holds one key with ``kid`` (its RFC 7638 thumbprint), ``alg``, ``use: sig`` and ``key_ops: [verify]``.
    """
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if alg == "ES384":
        private_key = ec.generate_private_key(ec.SECP384R1())
        jwk: JsonDict = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
    elif alg == "RS384":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    else:
        raise ValueError(f"unsupported alg {alg!r} (ES384 or RS384)")
    kid = jwk_thumbprint(jwk)
    jwk.update({"kid": kid, "alg": alg, "use": "sig", "key_ops": ["verify"]})
    tmpdir.mkdir(parents=True, exist_ok=True)
    path = tmpdir / f"client-{alg.lower()}-{kid[:12]}.pem"
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path, kid, {"keys": [jwk]}


def merge_jwks(*sets: Mapping[str, Any]) -> JsonDict:
    """One JWK Set holding the keys of several (to register more than one key for a client)."""
    return {"keys": [key for s in sets for key in s.get("keys", [])]}


def sign_assertion(
    private_pem: Path,
    *,
    client_id: str,
    token_url: str,
    kid: str,
    lifetime: int = 240,
    jti: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A SMART Backend Services client assertion: ``iss`` = ``sub`` = client id, ``aud`` = the token URL, ``exp``
    ``lifetime`` seconds ahead (the IG allows at most 300), a fresh ``jti``; the header carries ``kid``, the
    algorithm follows the key (ES384 for EC, RS384 for RSA). ``extra_claims`` override (for negative tests)."""
    key = serialization.load_pem_private_key(private_pem.read_bytes(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = "ES384"
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = "RS384"
    else:
        raise ValueError(f"{private_pem.name}: neither an EC nor an RSA private key")
    now = int(time.time())
    claims: JsonDict = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or uuid.uuid4().hex,
    }
    claims.update(extra_claims or {})
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def request_token(
    token_url: str,
    *,
    client_id: str,
    private_pem: Path,
    kid: str,
    scope: str = SEED_SCOPE,
    post_url: str | None = None,
    timeout: float = 10.0,
) -> JsonDict:
    """Ask ``token_url`` for an access token (``client_credentials`` + ``private_key_jwt``); the token response.

    The assertion's ``aud`` is ``token_url``; the form is posted to ``post_url`` when given (e.g. sekmet's own port
    while its public URL is the proxy's). Raises ``TokenError`` when refused (its message never holds the assertion).
    """
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign_assertion(private_pem, client_id=client_id, token_url=token_url, kid=kid),
    }
    response = httpx.post(post_url or token_url, data=form, timeout=timeout)
    if response.status_code != 200:
        try:
            body = response.json()
        except ValueError:
            body = {}
        raise TokenError(response.status_code, str(body.get("error", "?")), str(body.get("error_description", "")))
    token: JsonDict = response.json()
    return token


# -- the sekmet server ----------------------------------------------------------------------------------------------


@dataclass
class SekmetServer:
    """A running sekmet-fhir subprocess.

    ``base_url`` / ``root_url`` are its public URLs (what it writes into status, file and token URLs and checks the
    access token's audience against: the proxy's when proxied); ``direct_base_url`` / ``direct_root_url`` reach the
    process itself on ``port``.
    """

    workdir: Path
    port: int
    base_url: str
    root_url: str
    client_id: str
    log_path: Path
    config_path: Path
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def direct_root_url(self) -> str:
        """sekmet's own root, on its own port."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def direct_base_url(self) -> str:
        """sekmet's FHIR base on its own port."""
        return f"{self.direct_root_url}/fhir"

    @property
    def token_url(self) -> str:
        """The public SMART token endpoint (the ``aud`` of a client assertion)."""
        return f"{self.root_url}/auth/token"

    def direct(self, url: str) -> str:
        """A public URL (status, file, ...) rewritten to reach sekmet itself, bypassing a proxy."""
        return self.direct_root_url + url[len(self.root_url) :] if url.startswith(self.root_url) else url

    def token(self, private_pem: Path, kid: str, scope: str = SEED_SCOPE) -> str:
        """An access token for this server's client (the assertion's ``aud`` is the public token URL; the request
        goes to sekmet's own port)."""
        answer = request_token(
            self.token_url,
            client_id=self.client_id,
            private_pem=private_pem,
            kid=kid,
            scope=scope,
            post_url=f"{self.direct_root_url}/auth/token",
        )
        return str(answer["access_token"])

    def log_text(self) -> str:
        """sekmet's log so far (stdout and stderr of the process)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def sekmet_settings(
    workdir: Path,
    port: int,
    *,
    client_id: str,
    jwks: Mapping[str, Any],
    scopes: str,
    token_lifetime: int,
    base_url: str | None,
    validation: str,
    export_delay: float,
) -> JsonDict:
    """The settings file of a test sekmet (written as JSON, which YAML reads)."""
    return {
        "base_url": base_url or f"http://{LOCALHOST}:{port}/fhir",
        "host": LOCALHOST,
        "port": port,
        "data_dir": str(workdir / "data"),
        "own_private_key_path": str(workdir / "keys" / "sekmet_private.pem"),
        "server_auth": {
            "types": ["smart"],
            "smart_clients": [{"client_id": client_id, "jwks": dict(jwks), "scopes": scopes}],
            "token_lifetime": token_lifetime,
            "enforce_scopes": True,
        },
        "validation": {"inbound": validation},
        # the simulator reacts to orders etc., never needed here; its delay_seconds is also how long (capped at 1 s)
        # a bulk job stays "in progress" before completing
        "simulator": {"enabled": False, "delay_seconds": export_delay},
        # the traffic log would keep every request and response body (token requests, assertions, tokens) in
        # sekmet's database: off
        "log_inbound": False,
    }


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """End the process and its group: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    """Poll ``url`` until it answers 200 (True), the process exits (False) or ``timeout`` passes (TimeoutError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"sekmet did not answer {url} within {timeout:.0f} s")


@contextmanager
def running_sekmet(
    workdir: Path,
    *,
    client_id: str,
    jwks: Mapping[str, Any],
    scopes: str = "system/*.*",
    token_lifetime: int = 300,
    base_url: str | None = None,
    validation: Literal["strict", "warn", "off"] = "off",
    export_delay: float = 0.2,
    startup_timeout: float = 30.0,
) -> Iterator[SekmetServer]:
    """Run sekmet-fhir on 127.0.0.1 (a free port) for the ``with`` block; kill its process group after.

    One SMART backend client ``client_id`` with public keys ``jwks`` may be granted ``scopes`` (a token request
    gets the requested scopes these cover); access tokens live ``token_lifetime`` seconds. ``base_url`` is the
    public FHIR base (default: its own ``http://127.0.0.1:<port>/fhir``). Settings, database, bulk files and the
    log (``sekmet.log``) stay in ``workdir``; a bulk job is "in progress" for ``export_delay`` seconds (at most 1).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_path, config_path = workdir / "sekmet.log", workdir / "settings.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
    env |= {"SEKMET_CONFIG": str(config_path), "PYTHONUNBUFFERED": "1"}
    for _attempt in range(3):  # a free port can be taken between the look-up and uvicorn's bind
        port = free_port()
        settings = sekmet_settings(
            workdir,
            port,
            client_id=client_id,
            jwks=jwks,
            scopes=scopes,
            token_lifetime=token_lifetime,
            base_url=base_url,
            validation=validation,
            export_delay=export_delay,
        )
        config_path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
        command = [sys.executable, "-m", "uvicorn", "--factory", "sekmet.main:app_factory"]
        command += ["--host", LOCALHOST, "--port", str(port), "--log-level", "info"]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            if not _wait_until_up(process, f"http://{LOCALHOST}:{port}/fhir/metadata", startup_timeout):
                if "address already in use" in log_path.read_text(errors="replace").lower():
                    continue
                raise RuntimeError(f"sekmet exited with {process.returncode}; see {log_path}")
            public = (base_url or f"http://{LOCALHOST}:{port}/fhir").rstrip("/")
            root = public[: -len("/fhir")] if public.endswith("/fhir") else public
            yield SekmetServer(
                workdir=workdir,
                port=port,
                base_url=public,
                root_url=root,
                client_id=client_id,
                log_path=log_path,
                config_path=config_path,
                data_dir=workdir / "data",
                process=process,
            )
            return
        finally:
            _stop_process_group(process)
    raise RuntimeError(f"sekmet could not bind a port in 3 attempts; see {log_path}")


# -- seeding and changing sekmet's data -------------------------------------------------------------------------------


@dataclass
class SeedResult:
    """What ``seed_resources`` loaded."""

    group_id: str
    ids: dict[str, list[str]]  # resource type -> ids, in file order
    lines: dict[str, str]  # "Type/id" -> the line as it was in the NDJSON file
    seconds: float  # how long the load took

    @property
    def counts(self) -> dict[str, int]:
        """Resources per type (the Group not counted)."""
        return {rtype: len(ids) for rtype, ids in self.ids.items()}

    def resource(self, reference: str) -> JsonDict:
        """The seeded resource ``Type/id`` as it was in the file."""
        parsed: JsonDict = json.loads(self.lines[reference])
        return parsed


def _fhir_client(server: SekmetServer, token: str) -> httpx.Client:
    """An httpx client on sekmet's own port (never through a proxy), with the token."""
    return httpx.Client(
        base_url=server.direct_base_url,
        headers={"Authorization": f"Bearer {token}", "Accept": FHIR_JSON},
        timeout=30.0,
    )


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")


def group_resource(group_id: str, patient_ids: Iterable[str], name: str = "DRG registry") -> JsonDict:
    """A ``Group`` (type person, actual) of the Patients ``patient_ids``."""
    members = [{"entity": {"reference": f"Patient/{pid}"}} for pid in patient_ids]
    return {
        "resourceType": "Group",
        "id": group_id,
        "type": "person",
        "actual": True,
        "name": name,
        "quantity": len(members),
        "member": members,
    }


def seed_resources(
    server: SekmetServer,
    folder: Path,
    *,
    group_id: str = DEFAULT_GROUP,
    token: str,
    types: Sequence[str] | None = None,
) -> SeedResult:
    """Load the ``<Type>.ndjson`` files of ``folder`` (all, or ``types``) into sekmet keeping their ids, plus a Group
    ``group_id`` whose members are all the Patients: one transaction Bundle of PUT entries, on sekmet's own port.

    ``token`` needs create and update on every type (e.g. ``system/*.cruds``).
    """
    started = time.perf_counter()
    files = [folder / f"{t}.ndjson" for t in types] if types else sorted(folder.glob("*.ndjson"))
    ids: dict[str, list[str]] = {}
    lines: dict[str, str] = {}
    entries: list[JsonDict] = []
    for path in files:
        for line, resource in read_ndjson(path):
            rtype, rid = resource["resourceType"], resource["id"]
            ids.setdefault(rtype, []).append(rid)
            lines[f"{rtype}/{rid}"] = line
            entries.append(
                {
                    "fullUrl": f"{server.base_url}/{rtype}/{rid}",
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
                }
            )
    group = group_resource(group_id, ids.get("Patient", []))
    entries.append(
        {
            "fullUrl": f"{server.base_url}/Group/{group_id}",
            "resource": group,
            "request": {"method": "PUT", "url": f"Group/{group_id}"},
        }
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    with _fhir_client(server, token) as client:
        response = client.post(
            "", json=bundle, headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"}, timeout=120.0
        )
    _check(response, "seeding transaction")
    bad = [e for e in response.json().get("entry", []) if not e["response"]["status"].startswith(("200", "201"))]
    if bad:
        raise RuntimeError(f"seeding: {len(bad)} entries failed, first: {bad[0]}")
    return SeedResult(group_id=group_id, ids=ids, lines=lines, seconds=time.perf_counter() - started)


def put_resource(server: SekmetServer, resource: Mapping[str, Any], *, token: str) -> JsonDict:
    """Create or update ``resource`` (PUT ``Type/id``, its id kept); the stored resource, with sekmet's ``meta``."""
    rtype, rid = resource["resourceType"], resource["id"]
    with _fhir_client(server, token) as client:
        response = client.put(f"/{rtype}/{rid}", json=dict(resource), headers={"Content-Type": FHIR_JSON})
    _check(response, f"PUT {rtype}/{rid}")
    stored: JsonDict = response.json()
    return stored


def delete_resource(server: SekmetServer, resource_type: str, resource_id: str, *, token: str) -> None:
    """Delete ``Type/id`` (a history entry with method DELETE stays behind)."""
    with _fhir_client(server, token) as client:
        response = client.delete(f"/{resource_type}/{resource_id}")
    _check(response, f"DELETE {resource_type}/{resource_id}")


def read_resource(server: SekmetServer, resource_type: str, resource_id: str, *, token: str) -> JsonDict | None:
    """The current ``Type/id``, or None when it does not exist or was deleted."""
    with _fhir_client(server, token) as client:
        response = client.get(f"/{resource_type}/{resource_id}")
    if response.status_code in (404, 410):
        return None
    _check(response, f"GET {resource_type}/{resource_id}")
    found: JsonDict = response.json()
    return found


def set_group_members(server: SekmetServer, group_id: str, patient_ids: Iterable[str], *, token: str) -> JsonDict:
    """Replace the Group's members with ``patient_ids`` (e.g. after adding a Patient); the stored Group."""
    return put_resource(server, group_resource(group_id, patient_ids), token=token)


def history_deletions(
    direct_base_url: str,
    authorization: str,
    *,
    since: str,
    until: str | None = None,
    types: Iterable[str] | None = None,
) -> list[str]:
    """``Type/id`` of the resources whose latest change in ``[since, until)`` is a deletion, from sekmet's system
    ``_history`` (asked on ``direct_base_url`` with the ``Authorization`` header value ``authorization``).

    Both bounds are compared as instants (normalized to sekmet's UTC millisecond format first); ``types`` narrows.
    """
    since_n = normalize_instant(since)
    until_n = normalize_instant(until) if until else None
    wanted = set(types or ())
    latest: dict[str, str] = {}  # Type/id -> method of its newest change in the window
    offset, page = 0, 1000
    with httpx.Client(timeout=30.0, headers={"Authorization": authorization, "Accept": FHIR_JSON}) as client:
        while True:
            response = client.get(
                f"{direct_base_url}/_history", params={"_since": since_n, "_count": page, "_offset": offset}
            )
            _check(response, "GET _history")
            bundle = response.json()
            entries = bundle.get("entry", [])
            for entry in entries:  # newest first
                modified = entry.get("response", {}).get("lastModified", "")
                if until_n and modified >= until_n:
                    continue
                rtype, rid = entry["fullUrl"].rstrip("/").split("/")[-2:]
                if wanted and rtype not in wanted:
                    continue
                latest.setdefault(f"{rtype}/{rid}", entry.get("request", {}).get("method", ""))
            offset += page
            if not entries or offset >= int(bundle.get("total", 0)):
                break
    return sorted(ref for ref, method in latest.items() if method == "DELETE")


def deleted_bundles(references: Sequence[str], per_bundle: int = 1) -> list[JsonDict]:
    """IG v2 ``deleted`` output: Bundles of type transaction, each of up to ``per_bundle`` DELETE entries."""
    size = max(1, per_bundle)
    out = []
    for start in range(0, len(references), size):
        chunk = references[start : start + size]
        out.append(
            {
                "resourceType": "Bundle",
                "id": uuid.uuid4().hex,
                "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": ref}} for ref in chunk],
            }
        )
    return out


# -- the fault proxy -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request that passed the proxy: never its headers or body."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    target: str  # kickoff | status | file | token | other
    job_id: str | None
    file_name: str | None
    fault: str | None  # the switch that answered or changed it, None when passed through untouched

    @property
    def params(self) -> dict[str, str]:
        """The query as a dict (the last value of a repeated name)."""
        return dict(self.query)


@dataclass
class ExportJob:
    """What the proxy knows of an export job (from its kick-off, status answers and switches)."""

    job_id: str
    level: str | None = None  # group | patient | system (None: kicked off around the proxy)
    kickoff_path: str | None = None
    since: str | None = None
    types: list[str] = field(default_factory=list)
    transaction_time: str | None = None
    expired_status: int | None = None  # the status URL answers this from now on
    expired_files: int | None = None  # its files answer this from now on
    extras_done: bool = False  # the proxy's additions to the manifest have been computed
    deleted: list[str] = field(default_factory=list)  # Type/id listed in the deleted output
    peer_files: dict[str, bytes] = field(default_factory=dict)  # files the proxy itself serves for this job
    manifest_extras: JsonDict = field(default_factory=dict)  # keys the proxy adds or replaces in the manifest


@dataclass
class _Rule:
    """A fault switch: fires on the matching requests after ``skip`` of them, ``times`` times (None: always)."""

    kind: str
    target: str
    times: int | None
    skip: int
    method: str | None
    resource_type: str | None
    options: JsonDict
    seen: int = 0
    fired: int = 0

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, target: str, resource_type: str | None) -> bool:
        if self.exhausted() or target != self.target:
            return False
        wanted_method = self.method or ("GET" if target in ("status", "file") else None)
        if wanted_method and method != wanted_method:
            return False
        return self.resource_type is None or self.resource_type == resource_type

    def describe(self) -> str:
        left = "always" if self.times is None else f"{self.times - self.fired} left"
        narrowed = f" ({self.resource_type})" if self.resource_type else ""
        return f"{self.kind} on {self.target}{narrowed}: {left}"


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    declared_length: int | None = None  # Content-Length to announce when it is not len(body) (truncation)
    close: bool = False  # close the connection after the answer


_PRE_FORWARD = ("rate_limit", "server_error", "transient", "fatal", "reject_token", "expire")
_POST_FORWARD = ("truncate", "corrupt")


def _json_reply(status: int, body: JsonDict, headers: Sequence[tuple[str, str]] = ()) -> _Reply:
    return _Reply(status, [("Content-Type", FHIR_JSON), *headers], json.dumps(body).encode())


def classify(path: str) -> tuple[str, str | None, str | None]:
    """``(target, job id, file name)`` of a request path the proxy sees."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "fhir" and parts[1] == "bulk-status":
        return "status", parts[2], None
    if len(parts) >= 4 and parts[0] == "fhir" and parts[1] in ("bulk-files", "bulk-peer"):
        return "file", parts[2], parts[3]
    if parts and parts[-1] == "$export":
        return "kickoff", None, None
    if parts[-2:] == ["auth", "token"]:
        return "token", None, None
    return "other", None, None


def file_resource_type(name: str | None) -> str | None:
    """The manifest type of a bulk file by its name (``Observation.ndjson`` -> Observation)."""
    if not name:
        return None
    stem = name.split(".", 1)[0]
    return {"errors": "OperationOutcome", "peer-errors": "OperationOutcome", "deleted": "Bundle"}.get(stem, stem)


def _cut_mid_line(body: bytes) -> int:
    """A byte offset inside a line in the second half of ``body`` (never right after a newline)."""
    lines = body.splitlines(keepends=True)
    if len(lines) <= 1:
        return max(1, len(body) // 2)
    index = len(lines) // 2
    start = sum(len(line) for line in lines[:index])
    return start + max(1, len(lines[index].rstrip(b"\n")) // 2)


def _corrupt(body: bytes) -> bytes:
    """``body`` with its middle line replaced by one that is not JSON (the line count unchanged)."""
    lines = body.splitlines(keepends=True)
    if not lines:
        return b"this is not JSON\n"
    index = len(lines) // 2
    original = lines[index].rstrip(b"\n")
    lines[index] = original[: max(1, len(original) // 2)] + b' <<corrupt>> "\n'
    return b"".join(lines)


def _kickoff_params(query: Sequence[tuple[str, str]], body: bytes) -> tuple[str | None, list[str]]:
    """``(_since, _type list)`` of a kick-off, from its query or a POSTed Parameters resource."""
    pairs = list(query)
    if body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("resourceType") == "Parameters":
            for p in parsed.get("parameter", []):
                value = next((v for k, v in p.items() if k.startswith("value")), None)
                if value is not None:
                    pairs.append((p.get("name", ""), str(value)))
    since = next((v for k, v in reversed(pairs) if k == "_since"), None)
    types = [t for k, v in pairs if k == "_type" for t in v.split(",") if t]
    return since, types


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the proxy that owns this handler class."""

    protocol_version = "HTTP/1.1"
    server_version = "bulk-fault-proxy"
    proxy: FaultProxy

    def _dispatch(self) -> None:
        self.proxy._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def log_message(self, *args: Any) -> None:
        """Quiet: the proxy records exchanges itself (and never their headers)."""


class _ProxyServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up mid-answer."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore a client that went away; report anything else as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of sekmet, with thread-safe fault switches.

    Start it before sekmet (``running_fault_proxy``), give sekmet ``base_url = proxy.base_url`` and set
    ``proxy.upstream`` to sekmet's own root: then sekmet writes the proxy's URLs into status, file and token URLs.

    Targets (what a switch applies to): ``kickoff`` (any ``$export``), ``status`` (``/fhir/bulk-status/<job>``),
    ``file`` (``/fhir/bulk-files/<job>/<name>`` and the files the proxy serves itself), ``token`` (``/auth/token``),
    ``other``. A status or file switch applies to GET unless ``method`` says otherwise; ``resource_type`` narrows a
    file switch to one file (the manifest ``type``: ``Observation``, ``Bundle`` for deleted, ...). Every switch lets
    ``skip`` matching requests pass first, then fires ``times`` times (None: on every one after). One pre-forward
    switch (answered by the proxy, not forwarded) and one post-forward switch (truncate, corrupt: applied to a
    forwarded 200) fire per request at most, the earliest set first.

    By default the proxy adds an IG v2 ``deleted`` output to a completed manifest whose kick-off had ``_since``
    (``report_deleted``): the resources whose latest change between ``_since`` and ``transactionTime`` is a
    deletion in sekmet's ``_history`` (of the kick-off's ``_type`` types when given).
    """

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream  # sekmet's own root, e.g. http://127.0.0.1:8123
        self._lock = threading.RLock()
        self._rules: list[_Rule] = []
        self._jobs: dict[str, ExportJob] = {}
        self._log: list[Exchange] = []
        self._deleted_mode: str = "history"
        self._deleted_entries: list[str] = []
        self._deleted_per_bundle = 1
        self._error_diagnostics: list[str] = []
        self._expires: str | None = None
        handler = type("_BoundHandler", (_Handler,), {"proxy": self})
        self._server = _ProxyServer((LOCALHOST, 0), handler)
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=60.0, follow_redirects=False)

    # -- life cycle and addresses

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base the proxy serves (``root_url`` + ``/fhir``): sekmet's public base_url."""
        return f"{self.root_url}/fhir"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="bulk-fault-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the listening socket and the upstream client."""
        self._server.shutdown()
        self._server.server_close()
        self._http.close()
        if self._thread:
            self._thread.join(timeout=5)

    # -- switches

    def _add(
        self,
        kind: str,
        target: str,
        *,
        times: int | None,
        skip: int = 0,
        method: str | None = None,
        resource_type: str | None = None,
        **options: Any,
    ) -> None:
        if target not in ("kickoff", "status", "file", "token", "other"):
            raise ValueError(f"unknown target {target!r}")
        rule = _Rule(kind, target, times, skip, method.upper() if method else None, resource_type, options)
        with self._lock:
            self._rules.append(rule)

    def rate_limit(
        self,
        target: Target = "status",
        *,
        times: int | None = 1,
        retry_after: int = 1,
        as_http_date: bool = False,
        skip: int = 0,
        method: str | None = None,
    ) -> None:
        """Answer 429 Too Many Requests with ``Retry-After``: ``retry_after`` seconds, or as an HTTP date that
        many seconds ahead (``as_http_date``; an HTTP date has whole seconds, so the wait is up to 1 s shorter)."""
        self._add(
            "rate_limit",
            target,
            times=times,
            skip=skip,
            method=method,
            retry_after=retry_after,
            as_http_date=as_http_date,
        )

    def server_error(
        self,
        target: Target = "status",
        *,
        status: int = 500,
        times: int | None = 1,
        skip: int = 0,
        method: str | None = None,
        resource_type: str | None = None,
    ) -> None:
        """Answer a bare 5xx (``status``) with a text/plain body and no OperationOutcome: a transient hiccup."""
        self._add(
            "server_error", target, times=times, skip=skip, method=method, resource_type=resource_type, status=status
        )

    def transient_error(
        self,
        target: Target = "status",
        *,
        status: int = 503,
        times: int | None = 1,
        retry_after: int | None = None,
        skip: int = 0,
        method: str | None = None,
        resource_type: str | None = None,
    ) -> None:
        """Answer ``status`` (500 or 503) with an OperationOutcome whose ``issue[0].code`` is ``transient`` (and a
        ``Retry-After`` in seconds when given)."""
        self._add(
            "transient",
            target,
            times=times,
            skip=skip,
            method=method,
            resource_type=resource_type,
            status=status,
            retry_after=retry_after,
        )

    def fatal_error(
        self,
        target: Target = "kickoff",
        *,
        status: int = 400,
        code: str = "invalid",
        diagnostics: str | None = None,
        times: int | None = None,
        skip: int = 0,
        method: str | None = None,
    ) -> None:
        """Answer ``status`` (400, 500, ...) with an OperationOutcome, severity ``fatal``, code ``code``
        (``invalid``, ``exception``, ...): an error the client must not retry. By default on every request."""
        text = diagnostics or f"The export failed: {code} (fault proxy)"
        self._add("fatal", target, times=times, skip=skip, method=method, status=status, code=code, diagnostics=text)

    def reject_token(
        self,
        target: Target = "file",
        *,
        times: int | None = 1,
        skip: int = 0,
        method: str | None = None,
        resource_type: str | None = None,
    ) -> None:
        """Answer 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` although the token is good (it
        "expired during the download"): the client must get a new token and ask again."""
        self._add("reject_token", target, times=times, skip=skip, method=method, resource_type=resource_type)

    def expire_job(
        self,
        target: Target = "file",
        *,
        status: int = 404,
        times: int | None = 1,
        skip: int = 0,
        resource_type: str | None = None,
        status_url: bool = True,
        files: bool = True,
    ) -> None:
        """When a matching status or file request comes, the job expires there and then: that request and, from
        then on, its status URL (``status_url``) and its files (``files``) answer ``status`` (404 or 410) with an
        OperationOutcome. Jobs kicked off later are not affected (unless the switch fires again)."""
        if target not in ("status", "file"):
            raise ValueError("expire_job applies to a status or file request")
        self._add(
            "expire",
            target,
            times=times,
            skip=skip,
            resource_type=resource_type,
            status=status,
            status_url=status_url,
            files=files,
        )

    def expire_jobs(
        self, job_id: str | None = None, *, status: int = 404, status_url: bool = True, files: bool = True
    ) -> list[str]:
        """Expire now: the job ``job_id`` (or every job the proxy has seen); their status URL and/or files answer
        ``status`` from now on. The job ids expired."""
        with self._lock:
            jobs = [self._job(job_id)] if job_id else list(self._jobs.values())
            for job in jobs:
                if status_url:
                    job.expired_status = status
                if files:
                    job.expired_files = status
            return [job.job_id for job in jobs]

    def truncate_file(
        self,
        *,
        times: int | None = 1,
        resource_type: str | None = None,
        mode: Literal["close", "short"] = "close",
        skip: int = 0,
    ) -> None:
        """Send only part of a file, cut in the middle of a line. ``close``: announce the whole Content-Length,
        send part, close the connection (the client's HTTP library sees an incomplete body); ``short``: announce
        and send the part (a well-formed answer whose last line is cut: only the content shows it)."""
        self._add("truncate", "file", times=times, skip=skip, resource_type=resource_type, mode=mode)

    def corrupt_file(self, *, times: int | None = 1, resource_type: str | None = None, skip: int = 0) -> None:
        """Send a file whose middle line is not JSON (same number of lines, so ``count`` still matches)."""
        self._add("corrupt", "file", times=times, skip=skip, resource_type=resource_type)

    def report_deleted(
        self,
        mode: Literal["history", "list", "off"] = "history",
        entries: Iterable[str] = (),
        *,
        per_bundle: int = 1,
    ) -> None:
        """How a completed manifest gets its IG v2 ``deleted`` output (NDJSON of transaction Bundles with
        ``request: {method: DELETE, url: "Type/id"}``, ``per_bundle`` entries each), served by the proxy:

        - ``history`` (default): when the kick-off had ``_since``, the resources deleted in sekmet between it and
          the manifest's ``transactionTime`` (``deleted`` is ``[]`` when there are none); nothing without ``_since``;
        - ``list``: ``entries`` (``Type/id``) on every completed manifest, with or without ``_since``;
        - ``off``: sekmet's manifest as it is (sekmet never reports deletions).

        Applies to manifests completed after the call (a job's manifest is worked out once, at its first 200).
        """
        with self._lock:
            self._deleted_mode = mode
            self._deleted_entries = list(entries)
            self._deleted_per_bundle = per_bundle

    def add_error_file(self, diagnostics: Sequence[str]) -> None:
        """Add an ``error`` file (NDJSON of OperationOutcomes, one per text) to manifests completed after the call;
        an empty sequence stops it."""
        with self._lock:
            self._error_diagnostics = list(diagnostics)

    def set_manifest_expires(self, value: str | None) -> None:
        """Replace the manifest's ``Expires`` header (sekmet always sends 2030) with ``value``, e.g.
        ``http_date(-60)`` for a job already past its time; None: sekmet's own."""
        with self._lock:
            self._expires = value

    def reset(self) -> None:
        """Every switch off and the defaults back (``report_deleted("history")``); jobs and the log are kept."""
        with self._lock:
            self._rules.clear()
            self._deleted_mode, self._deleted_entries, self._deleted_per_bundle = "history", [], 1
            self._error_diagnostics = []
            self._expires = None
            for job in self._jobs.values():
                job.expired_status = job.expired_files = None

    def clear_log(self) -> None:
        """Forget the recorded exchanges."""
        with self._lock:
            self._log.clear()

    # -- what the tests look at

    @property
    def requests(self) -> list[Exchange]:
        """The exchanges so far, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_to(self, target: Target, method: str | None = None) -> list[Exchange]:
        """The exchanges with ``target`` (and ``method``)."""
        return [e for e in self.requests if e.target == target and (method is None or e.method == method)]

    @property
    def jobs(self) -> dict[str, ExportJob]:
        """The export jobs the proxy has seen, by id."""
        with self._lock:
            return dict(self._jobs)

    @property
    def pending_faults(self) -> list[str]:
        """The switches that have not fired all their times yet (``always`` ones included)."""
        with self._lock:
            return [r.describe() for r in self._rules if not r.exhausted()]

    # -- the request path

    def _job(self, job_id: str) -> ExportJob:
        with self._lock:
            return self._jobs.setdefault(job_id, ExportJob(job_id))

    def _take_rule(self, kinds: Sequence[str], method: str, target: str, resource_type: str | None) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and rule.matches(method, target, resource_type):
                    rule.seen += 1
                    if rule.seen > rule.skip:
                        rule.fired += 1
                        return rule
            return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        query = tuple(parse_qsl(split.query, keep_blank_values=True))
        target, job_id, file_name = classify(split.path)
        try:
            body = _read_body(handler)
            reply, fault = self._respond(
                handler, method, split.path, split.query, query, body, target, job_id, file_name
            )
        except Exception as exc:  # the proxy always answers, and says where it failed
            reply, fault = _Reply(502, [("Content-Type", "text/plain")], f"fault proxy: {exc!r}".encode()), "error"
        # logged before the answer goes out: a client that has its answer finds the exchange in the log
        record = Exchange(method, split.path, query, reply.status, target, job_id, file_name, fault)
        with self._lock:
            self._log.append(record)
        _send(handler, method, reply)

    def _respond(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        raw_query: str,
        query: tuple[tuple[str, str], ...],
        body: bytes,
        target: str,
        job_id: str | None,
        file_name: str | None,
    ) -> tuple[_Reply, str | None]:
        resource_type = file_resource_type(file_name)
        job = self._job(job_id) if job_id else None
        if job is not None:
            expired = job.expired_status if target == "status" else job.expired_files
            if expired:
                return self._expired_reply(job, expired), "expired"
        rule = self._take_rule(_PRE_FORWARD, method, target, resource_type)
        if rule is not None:
            return self._fault_reply(rule, job), rule.kind
        if self.upstream is None:
            return _Reply(503, [("Content-Type", "text/plain")], b"fault proxy: no upstream yet"), "error"
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in _NOT_FORWARDED_REQUEST]
        if path.startswith("/fhir/bulk-peer/") and job is not None and file_name:
            return self._peer_file(job, file_name, handler.headers.get("Authorization"))
        url = f"{self.upstream}{path}" + (f"?{raw_query}" if raw_query else "")
        upstream = self._http.request(method, url, headers=headers, content=body or None)
        reply = _Reply(
            upstream.status_code,
            [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _NOT_FORWARDED_RESPONSE],
            upstream.content,
        )
        fault: str | None = None
        if target == "kickoff" and upstream.status_code == 202:
            self._note_kickoff(path, query, body, upstream.headers.get("Content-Location", ""))
        elif target == "status" and method == "GET" and upstream.status_code == 200 and job is not None:
            reply, fault = self._manifest(job, reply, handler.headers.get("Authorization"))
        elif target == "file" and method == "GET" and upstream.status_code == 200:
            post = self._take_rule(_POST_FORWARD, method, target, resource_type)
            if post is not None:
                reply, fault = _mangle(post, reply), f"{post.kind}:{post.options.get('mode', '')}".rstrip(":")
        return reply, fault

    def _note_kickoff(self, path: str, query: Sequence[tuple[str, str]], body: bytes, location: str) -> None:
        if "/bulk-status/" not in location:
            return
        since, types = _kickoff_params(query, body)
        parts = [p for p in path.split("/") if p]
        level = "group" if "Group" in parts else "patient" if "Patient" in parts else "system"
        job = self._job(location.rstrip("/").rsplit("/", 1)[-1])
        with self._lock:
            job.level, job.kickoff_path, job.since, job.types = level, path, since, types

    def _expired_reply(self, job: ExportJob, status: int) -> _Reply:
        outcome = operation_outcome("not-found", f"Export {job.job_id} has expired or was removed (fault proxy)")
        return _json_reply(status, outcome)

    def _fault_reply(self, rule: _Rule, job: ExportJob | None) -> _Reply:
        opts = rule.options
        if rule.kind == "rate_limit":
            wait = int(opts["retry_after"])
            value = http_date(wait) if opts["as_http_date"] else str(wait)
            return _json_reply(
                429, operation_outcome("throttled", "Too many requests (fault proxy)"), [("Retry-After", value)]
            )
        if rule.kind == "server_error":
            return _Reply(int(opts["status"]), [("Content-Type", "text/plain")], b"Internal Server Error")
        if rule.kind == "transient":
            extra = [("Retry-After", str(opts["retry_after"]))] if opts.get("retry_after") is not None else []
            outcome = operation_outcome("transient", "Temporary failure, try again (fault proxy)")
            return _json_reply(int(opts["status"]), outcome, extra)
        if rule.kind == "fatal":
            outcome = operation_outcome(str(opts["code"]), str(opts["diagnostics"]), severity="fatal")
            return _json_reply(int(opts["status"]), outcome)
        if rule.kind == "reject_token":
            challenge = 'Bearer realm="fault-proxy", error="invalid_token", '
            challenge += 'error_description="The access token expired"'
            outcome = operation_outcome("expired", "Access token expired (fault proxy)")
            return _json_reply(401, outcome, [("WWW-Authenticate", challenge)])
        if rule.kind == "expire":
            status = int(opts["status"])
            if job is not None:
                with self._lock:
                    if opts["status_url"]:
                        job.expired_status = status
                    if opts["files"]:
                        job.expired_files = status
                return self._expired_reply(job, status)
            return _json_reply(status, operation_outcome("not-found", "Expired (fault proxy)"))
        raise AssertionError(f"unknown pre-forward fault {rule.kind}")

    def _manifest(self, job: ExportJob, reply: _Reply, authorization: str | None) -> tuple[_Reply, str | None]:
        """sekmet's manifest with the proxy's additions (deleted, error) and ``Expires`` override."""
        try:
            manifest: JsonDict = json.loads(reply.body)
        except ValueError:
            return reply, None
        if "output" not in manifest:
            return reply, None
        with self._lock:
            mode, entries, per_bundle = self._deleted_mode, list(self._deleted_entries), self._deleted_per_bundle
            diagnostics, expires = list(self._error_diagnostics), self._expires
            done = job.extras_done
        changed = False
        if not done:
            extras = self._extras(job, manifest, mode, entries, per_bundle, diagnostics, authorization)
            with self._lock:
                job.manifest_extras, job.extras_done = extras, True
        extras = job.manifest_extras
        if extras:
            manifest.update({k: v for k, v in extras.items() if k != "error"})
            if "error" in extras:
                manifest["error"] = [*manifest.get("error", []), *extras["error"]]
            changed = True
        headers = [(k, v) for k, v in reply.headers if k.lower() != "expires"] if expires else reply.headers
        if expires:
            headers = [*headers, ("Expires", expires)]
            changed = True
        if not changed:
            return reply, None
        return _Reply(200, headers, json.dumps(manifest).encode()), "manifest"

    def _extras(
        self,
        job: ExportJob,
        manifest: JsonDict,
        mode: str,
        entries: list[str],
        per_bundle: int,
        diagnostics: list[str],
        authorization: str | None,
    ) -> JsonDict:
        transaction_time = str(manifest.get("transactionTime", ""))
        with self._lock:
            job.transaction_time = transaction_time or None
        extras: JsonDict = {}
        deleted: list[str] | None = None
        if mode == "list":
            deleted = entries
        elif mode == "history" and job.since and authorization and self.upstream:
            deleted = history_deletions(
                f"{self.upstream}/fhir",
                authorization,
                since=job.since,
                until=transaction_time or None,
                types=job.types or None,
            )
        if deleted is not None:
            extras["deleted"] = []
            if deleted:
                lines = [json.dumps(b) for b in deleted_bundles(deleted, per_bundle)]
                content = ("\n".join(lines) + "\n").encode()
                with self._lock:
                    job.deleted = list(deleted)
                    job.peer_files["deleted.ndjson"] = content
                url = f"{self.base_url}/bulk-peer/{job.job_id}/deleted.ndjson"
                extras["deleted"] = [{"type": "Bundle", "url": url, "count": len(lines)}]
        if diagnostics:
            lines = [json.dumps(operation_outcome("processing", text, severity="warning")) for text in diagnostics]
            with self._lock:
                job.peer_files["peer-errors.ndjson"] = ("\n".join(lines) + "\n").encode()
            url = f"{self.base_url}/bulk-peer/{job.job_id}/peer-errors.ndjson"
            extras["error"] = [{"type": "OperationOutcome", "url": url, "count": len(lines)}]
        return extras

    def _peer_file(self, job: ExportJob, name: str, authorization: str | None) -> tuple[_Reply, str | None]:
        """A file the proxy serves itself, after sekmet has accepted the request's token (on its ``_history``)."""
        headers = [("Authorization", authorization)] if authorization else []
        check = self._http.get(f"{self.upstream}/fhir/_history", params={"_count": 0}, headers=headers)
        if check.status_code != 200:
            kept = [(k, v) for k, v in check.headers.multi_items() if k.lower() not in _NOT_FORWARDED_RESPONSE]
            return _Reply(check.status_code, kept, check.content), None
        with self._lock:
            content = job.peer_files.get(name)
        if content is None:
            return _json_reply(404, operation_outcome("not-found", "No such file")), None
        post = self._take_rule(_POST_FORWARD, "GET", "file", file_resource_type(name))
        reply = _Reply(200, [("Content-Type", NDJSON)], content)
        if post is not None:
            return _mangle(post, reply), f"{post.kind}:{post.options.get('mode', '')}".rstrip(":")
        return reply, None


def _mangle(rule: _Rule, reply: _Reply) -> _Reply:
    """A file answer truncated or corrupted as the rule says."""
    if rule.kind == "corrupt":
        return _Reply(reply.status, reply.headers, _corrupt(reply.body))
    cut = _cut_mid_line(reply.body)
    if rule.options.get("mode") == "short":
        return _Reply(reply.status, reply.headers, reply.body[:cut])
    return _Reply(reply.status, reply.headers, reply.body[:cut], declared_length=len(reply.body), close=True)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body (Content-Length or chunked)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _send(handler: BaseHTTPRequestHandler, method: str, reply: _Reply) -> None:
    handler.send_response(reply.status)
    for name, value in reply.headers:
        handler.send_header(name, value)
    length = reply.declared_length if reply.declared_length is not None else len(reply.body)
    handler.send_header("Content-Length", str(length))
    if reply.close:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if method != "HEAD" and reply.body:
        handler.wfile.write(reply.body)
    handler.wfile.flush()
    if reply.close:
        handler.close_connection = True


@contextmanager
def running_fault_proxy(upstream: str | None = None) -> Iterator[FaultProxy]:
    """A ``FaultProxy`` serving on 127.0.0.1 for the ``with`` block (set ``upstream`` later if not known yet)."""
    proxy = FaultProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@contextmanager
def running_proxied_sekmet(
    workdir: Path,
    *,
    client_id: str,
    jwks: Mapping[str, Any],
    scopes: str = "system/*.*",
    token_lifetime: int = 300,
    validation: Literal["strict", "warn", "off"] = "off",
    export_delay: float = 0.2,
) -> Iterator[tuple[SekmetServer, FaultProxy]]:
    """sekmet behind a ``FaultProxy``: the proxy starts first, sekmet's public ``base_url`` is the proxy's, so
    status, file and token URLs (and the access token's audience) are the proxy's. ``server.base_url`` is the URL
    a client is given; seeding helpers still go to sekmet's own port."""
    with ExitStack() as stack:
        proxy = stack.enter_context(running_fault_proxy())
        server = stack.enter_context(
            running_sekmet(
                workdir,
                client_id=client_id,
                jwks=jwks,
                scopes=scopes,
                token_lifetime=token_lifetime,
                base_url=proxy.base_url,
                validation=validation,
                export_delay=export_delay,
            )
        )
        proxy.upstream = server.direct_root_url
        yield server, proxy
