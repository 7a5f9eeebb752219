"""The bulk-data test peers themselves (tests/peers/bulk_peer.py), driven by hand with httpx and PyJWT.

sekmet-fhir as a SMART-protected ``$export`` server seeded with the clean demo aauh delivery (what it answers,
what it does to the stored resources, which scopes it wants, how ``_since`` compares), and the fault proxy in
front of it: every switch does what it says, once or as many times as it is told, and then gets out of the way.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from helpers import Generated
from peers.bulk_peer import (
    FaultProxy,
    SeedResult,
    SekmetServer,
    TokenError,
    delete_resource,
    http_date,
    jwk_thumbprint,
    make_client_key,
    merge_jwks,
    normalize_instant,
    put_resource,
    read_resource,
    request_token,
    running_proxied_sekmet,
    running_sekmet,
    seed_resources,
    set_group_members,
    sign_assertion,
)

CLIENT_ID = "drg-etl-test"
AAUH_TYPES = ["Patient", "Condition", "Procedure", "Device", "Observation"]
TYPES = ",".join(AAUH_TYPES)
GROUP_EXPORT = "Group/drg-registry/$export"
READ_SCOPE = "system/*.rs"
JsonDict = dict[str, Any]


# -- fixtures ---------------------------------------------------------------------------------------------------------


@dataclass
class Keys:
    """Two client keys: ES384 (registered with the module's servers) and RS384 (with their JWK Sets)."""

    es_pem: Path
    es_kid: str
    es_jwks: JsonDict
    rs_pem: Path
    rs_kid: str
    rs_jwks: JsonDict


@dataclass
class Peer:
    """A seeded sekmet (with its proxy when there is one) and a seeding token (``system/*.cruds``)."""

    server: SekmetServer
    seed: SeedResult
    admin: str
    keys: Keys
    proxy: FaultProxy | None = None

    def token(self, scope: str = READ_SCOPE, *, via: str | None = None) -> str:
        """A token as the client would get it: from the public token URL (through the proxy when proxied)."""
        answer = request_token(
            self.server.token_url,
            client_id=CLIENT_ID,
            private_pem=self.keys.es_pem,
            kid=self.keys.es_kid,
            scope=scope,
            post_url=via,
        )
        return str(answer["access_token"])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """An ES384 and an RS384 key."""
    folder = tmp_path_factory.mktemp("client-keys")
    return Keys(*make_client_key(folder, "ES384"), *make_client_key(folder, "RS384"))


@pytest.fixture(scope="module")
def aauh(demo_clean: Generated) -> Path:
    """The clean demo aauh delivery: one NDJSON file per resource type."""
    return demo_clean.folder("aauh")


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory, keys: Keys, aauh: Path) -> Iterator[Peer]:
    """sekmet on its own, seeded with the aauh delivery."""
    with running_sekmet(
        tmp_path_factory.mktemp("sekmet"), client_id=CLIENT_ID, jwks=keys.es_jwks, scopes="system/*.*"
    ) as server:
        admin = server.token(keys.es_pem, keys.es_kid)
        yield Peer(server, seed_resources(server, aauh, token=admin), admin, keys)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, keys: Keys, aauh: Path) -> Iterator[Peer]:
    """sekmet behind the fault proxy, seeded with the aauh delivery."""
    workdir = tmp_path_factory.mktemp("sekmet-proxied")
    with running_proxied_sekmet(workdir, client_id=CLIENT_ID, jwks=keys.es_jwks, scopes="system/*.*") as (
        server,
        proxy,
    ):
        admin = server.token(keys.es_pem, keys.es_kid)
        yield Peer(server, seed_resources(server, aauh, token=admin), admin, keys, proxy)


@pytest.fixture
def proxy(proxied: Peer) -> Iterator[FaultProxy]:
    """The proxy with every switch off and an empty log; switched off again after the test."""
    assert proxied.proxy is not None
    proxied.proxy.reset()
    proxied.proxy.clear_log()
    yield proxied.proxy
    proxied.proxy.reset()


# -- an export by hand --------------------------------------------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def kick_off(base_url: str, token: str, path: str = GROUP_EXPORT, **params: str) -> httpx.Response:
    """GET kick-off with ``Prefer: respond-async``."""
    headers = auth(token) | {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    return httpx.get(f"{base_url}/{path}", params=params, headers=headers)


def poll(status_url: str, token: str, timeout: float = 20.0) -> tuple[httpx.Response, list[httpx.Response]]:
    """Poll until the answer is not 202: the final answer and the 202s before it."""
    waiting: list[httpx.Response] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(status_url, headers=auth(token))
        if answer.status_code != 202:
            return answer, waiting
        waiting.append(answer)
        time.sleep(0.05)
    raise TimeoutError(status_url)


def export(base_url: str, token: str, path: str = GROUP_EXPORT, **params: str) -> tuple[str, JsonDict]:
    """A whole export: the status URL and the manifest."""
    started = kick_off(base_url, token, path, **params)
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    final, _ = poll(status_url, token)
    assert final.status_code == 200, final.text
    return status_url, final.json()


def lines_of(text: str) -> list[str]:
    """The non-empty lines of an NDJSON body."""
    return [line for line in text.split("\n") if line]


def output_url(manifest: JsonDict, rtype: str) -> str:
    """The URL of the manifest's output file of ``rtype``."""
    return next(o["url"] for o in manifest["output"] if o["type"] == rtype)


# -- keys and tokens ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_make_client_key_writes_a_pem_and_a_jwk_set(tmp_path: Path, alg: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    pem, kid, jwks = make_client_key(tmp_path, alg)  # type: ignore[arg-type]
    key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    (jwk,) = jwks["keys"]
    assert jwk["kid"] == kid == jwk_thumbprint(jwk)
    assert (jwk["alg"], jwk["use"]) == (alg, "sig")
    assert "d" not in jwk  # public only
    assert pem.stat().st_mode & 0o777 == 0o600
    if alg == "ES384":
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
        assert (jwk["kty"], jwk["crv"]) == ("EC", "P-384")
    else:
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
        assert jwk["kty"] == "RSA"
    assertion = sign_assertion(pem, client_id="c", token_url="http://x/auth/token", kid=kid)
    assert jwt.get_unverified_header(assertion)["kid"] == kid
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["iss"] == claims["sub"] == "c" and claims["aud"] == "http://x/auth/token"
    assert 0 < claims["exp"] - time.time() <= 300 and claims["jti"]


def test_smart_configuration_and_tokens(direct: Peer, tmp_path: Path) -> None:
    server = direct.server
    config = httpx.get(f"{server.base_url}/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == server.token_url == f"{server.root_url}/auth/token"
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert {"ES384", "RS384"} <= set(config["token_endpoint_auth_signing_alg_values_supported"])
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert httpx.get(f"{server.root_url}/.well-known/smart-configuration").json() == config
    keys = direct.keys
    answer = request_token(
        server.token_url, client_id=CLIENT_ID, private_pem=keys.es_pem, kid=keys.es_kid, scope=READ_SCOPE
    )
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 300
    assert answer["scope"] == READ_SCOPE  # what was asked, as far as the registration allows
    stranger_pem, stranger_kid, _ = make_client_key(tmp_path, "ES384")
    with pytest.raises(TokenError) as unknown:  # a key that is not registered
        request_token(server.token_url, client_id=CLIENT_ID, private_pem=stranger_pem, kid=stranger_kid)
    assert (unknown.value.status, unknown.value.error) == (401, "invalid_client")
    with pytest.raises(TokenError) as crashed:  # an RS384 assertion against an EC key: sekmet fails with 500
        request_token(server.token_url, client_id=CLIENT_ID, private_pem=keys.rs_pem, kid=keys.rs_kid)
    assert crashed.value.status == 500


def test_token_endpoint_refuses_bad_assertions(direct: Peer) -> None:
    server, keys = direct.server, direct.keys

    def post(assertion: str) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "scope": READ_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        return httpx.post(server.token_url, data=form)

    def signed(**kwargs: Any) -> str:
        return sign_assertion(keys.es_pem, client_id=CLIENT_ID, kid=keys.es_kid, **kwargs)

    wrong_aud = post(signed(token_url=f"{server.base_url}/auth/token"))
    too_long = post(signed(token_url=server.token_url, lifetime=600))
    once = signed(token_url=server.token_url)
    first, again = post(once), post(once)
    assert (wrong_aud.status_code, wrong_aud.json()["error"]) == (401, "invalid_client")
    assert (too_long.status_code, too_long.json()["error"]) == (401, "invalid_client")
    assert first.status_code == 200
    assert (again.status_code, again.json()["error_description"]) == (401, "jti has already been used")
    with pytest.raises(TokenError) as refused:
        request_token(server.token_url, client_id="stranger", private_pem=keys.es_pem, kid=keys.es_kid)
    assert (refused.value.status, refused.value.error) == (401, "invalid_client")


# -- sekmet as an export server -----------------------------------------------------------------------------------


def test_seed_keeps_ids_and_makes_a_group_of_every_patient(direct: Peer, aauh: Path) -> None:
    seed, server = direct.seed, direct.server
    for rtype in AAUH_TYPES:
        assert seed.counts[rtype] == len(lines_of((aauh / f"{rtype}.ndjson").read_text())) > 0
    group = read_resource(server, "Group", "drg-registry", token=direct.admin)
    assert group is not None and (group["type"], group["actual"]) == ("person", True)
    assert {m["entity"]["reference"] for m in group["member"]} >= {f"Patient/{p}" for p in seed.ids["Patient"]}
    procedure = seed.ids["Procedure"][0]
    stored = read_resource(server, "Procedure", procedure, token=direct.admin)
    assert stored is not None
    assert {k: v for k, v in stored.items() if k != "meta"} == seed.resource(f"Procedure/{procedure}")


def test_group_export_by_hand(direct: Peer) -> None:
    server, token = direct.server, direct.token()
    started = kick_off(server.base_url, token, _type=TYPES)
    assert started.status_code == 202 and not started.content
    status_url = started.headers["Content-Location"]
    assert status_url.startswith(f"{server.base_url}/bulk-status/")
    final, waiting = poll(status_url, token)
    assert waiting, "a job stays in progress for export_delay"
    assert all(w.headers["Retry-After"] == "1" and w.headers["X-Progress"] for w in waiting)
    assert final.status_code == 200 and final.headers["Expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    manifest = final.json()
    assert manifest["transactionTime"] == normalize_instant(manifest["transactionTime"])  # 2024-..T..:..:...123Z
    assert manifest["request"] == str(started.request.url)
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == [] and "deleted" not in manifest
    assert {o["type"] for o in manifest["output"]} == set(AAUH_TYPES)
    for item in manifest["output"]:
        assert item["url"].startswith(f"{server.base_url}/bulk-files/")
        answer = httpx.get(item["url"], headers=auth(token))
        assert answer.headers["Content-Type"] == "application/fhir+ndjson"
        assert answer.text.endswith("\n")
        lines = lines_of(answer.text)
        assert len(lines) == item["count"]
        for line in lines:
            resource = json.loads(line)
            ref = f"{resource['resourceType']}/{resource['id']}"
            if resource["meta"]["versionId"] != "1":
                continue  # changed by a test that ran before
            seeded = direct.seed.resource(ref)
            # what sekmet does to a stored resource: `meta` (versionId, lastUpdated) added at the end, key order
            # kept, no reference rewritten; written with ensure_ascii, so `højre` comes back as `h\u00f8jre`
            assert list(resource) == [*seeded, "meta"]
            assert {k: v for k, v in resource.items() if k != "meta"} == seeded
            assert set(resource["meta"]) == {"versionId", "lastUpdated"}
            assert line == json.dumps(resource, separators=(",", ":"))
    devices = httpx.get(output_url(manifest, "Device"), headers=auth(token)).text
    assert "h\\u00f8jre" in devices and "højre" not in devices
    assert httpx.get(manifest["output"][0]["url"]).status_code == 401  # no token
    assert httpx.delete(status_url, headers=auth(direct.admin)).status_code == 202


def test_patient_export_with_type_and_kickoff_errors(direct: Peer) -> None:
    server, token = direct.server, direct.token()
    _, manifest = export(server.base_url, token, "Patient/$export", _type="Patient,Observation")
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert set(counts) == {"Patient", "Observation"} and counts["Patient"] >= direct.seed.counts["Patient"]
    no_prefer = httpx.get(f"{server.base_url}/Patient/$export", headers=auth(token))
    assert no_prefer.status_code == 400 and no_prefer.json()["issue"][0]["code"] == "invalid"
    unknown = kick_off(server.base_url, token, "Group/nobody/$export")
    assert unknown.status_code == 404
    unsupported = kick_off(server.base_url, token, "Patient/$export", _elements="id")
    assert unsupported.status_code == 202  # an unknown parameter is ignored and reported in an `error` file
    final, _ = poll(unsupported.headers["Content-Location"], token)
    (error,) = final.json()["error"]
    assert error["type"] == "OperationOutcome"
    assert "_elements" in httpx.get(error["url"], headers=auth(token)).text


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("system/*.cruds", True),
        ("system/*.*", True),
        ("system/*.write", True),
        ("system/*.d", True),
        ("system/*.rs", False),
        ("system/*.read", False),
        ("system/Group.cruds system/Patient.cruds", False),
    ],
)
def test_deleting_a_job_needs_a_d_scope_on_every_type(direct: Peer, scope: str, allowed: bool) -> None:
    server, reader = direct.server, direct.token()
    status_url, manifest = export(server.base_url, reader, _type="Patient")
    answer = httpx.delete(status_url, headers=auth(direct.token(scope)))
    if allowed:
        assert answer.status_code == 202
        assert httpx.get(status_url, headers=auth(reader)).status_code == 404
        assert httpx.get(manifest["output"][0]["url"], headers=auth(reader)).status_code == 404
    else:
        assert answer.status_code == 403 and answer.json()["issue"][0]["code"] == "forbidden"
        assert httpx.get(status_url, headers=auth(reader)).status_code == 200


def test_status_and_files_need_a_wildcard_read_scope(direct: Peer) -> None:
    server = direct.server
    typed = direct.token("system/Group.rs system/Patient.rs")
    started = kick_off(server.base_url, typed, _type="Patient")
    assert started.status_code == 202  # the kick-off only needs the Group (Patient/$export: Patient) scope
    refused = httpx.get(started.headers["Content-Location"], headers=auth(typed))
    assert refused.status_code == 403  # bulk-status is no resource type: it takes system/*.rs
    final, _ = poll(started.headers["Content-Location"], direct.token())
    assert httpx.get(final.json()["output"][0]["url"], headers=auth(typed)).status_code == 403


def test_incremental_export_and_how_since_compares(direct: Peer) -> None:
    server, token, admin = direct.server, direct.token(), direct.admin
    _, first = export(server.base_url, token, _type=TYPES)
    since = first["transactionTime"]
    observation = direct.seed.resource(f"Observation/{direct.seed.ids['Observation'][0]}")
    changed = put_resource(
        server, {**observation, "valueQuantity": {**observation["valueQuantity"], "value": 9}}, token=admin
    )
    newcomer = {"resourceType": "Patient", "id": "new-patient-1", "gender": "female", "birthDate": "1970-01-01"}
    put_resource(server, newcomer, token=admin)
    set_group_members(server, "drg-registry", [*direct.seed.ids["Patient"], "new-patient-1"], token=admin)
    gone = direct.seed.ids["Condition"][0]
    delete_resource(server, "Condition", gone, token=admin)
    assert changed["meta"]["versionId"] == "2" and changed["meta"]["lastUpdated"] >= since

    _, second = export(server.base_url, token, _type=TYPES, _since=since)
    got = {o["type"]: lines_of(httpx.get(o["url"], headers=auth(token)).text) for o in second["output"]}
    assert {t: [json.loads(line)["id"] for line in lines] for t, lines in got.items()} == {
        "Observation": [observation["id"]],
        "Patient": ["new-patient-1"],
    }
    assert "deleted" not in second  # sekmet never reports deletions
    assert read_resource(server, "Condition", gone, token=admin) is None

    # _since is compared as a string with meta.lastUpdated ("2024-05-01T10:00:00.523Z"): right for sekmet's own
    # format (transactionTime), for +00:00 and for a date; wrong for whole seconds with Z and for other offsets
    last = changed["meta"]["lastUpdated"]
    before = normalize_instant(last)[:19]

    def observations(since_value: str) -> int:
        _, manifest = export(server.base_url, token, "Patient/$export", _type="Observation", _since=since_value)
        return sum(o["count"] for o in manifest["output"])

    assert observations(last) == 1
    assert observations(last.replace("Z", "+00:00")) == 1
    assert observations(before + "+00:00") == 1
    assert observations(last[:10]) >= 1
    assert observations(before + "Z") == 0  # an earlier instant, but "." < "Z": the change is missed
    hour_before_in_cest = f"{before[:11]}{(int(before[11:13]) + 1) % 24:02d}{before[13:]}+02:00"
    if before[11:13] != "23":
        assert observations(hour_before_in_cest) == 0  # an hour earlier, but compares as later


def test_rs384_keys_and_an_expired_token(tmp_path: Path, keys: Keys, aauh: Path) -> None:
    # sekmet ignores the assertion's kid and tries every registered key: a key of another type first makes it
    # answer 500 (PyJWT's TypeError escapes), so register one key type per client
    jwks = merge_jwks(keys.rs_jwks, keys.es_jwks)
    with running_sekmet(tmp_path, client_id=CLIENT_ID, jwks=jwks, token_lifetime=4) as server:
        token = server.token(keys.rs_pem, keys.rs_kid, READ_SCOPE)
        with pytest.raises(TokenError) as crashed:
            server.token(keys.es_pem, keys.es_kid, READ_SCOPE)
        assert crashed.value.status == 500
        seed_resources(server, aauh, token=server.token(keys.rs_pem, keys.rs_kid), types=["Patient"])
        status_url, manifest = export(server.base_url, token, _type="Patient")
        time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] + 1.05 - time.time()))
        for url in (status_url, manifest["output"][0]["url"], f"{server.base_url}/Patient"):
            answer = httpx.get(url, headers=auth(token))
            assert answer.status_code == 401
            assert answer.json()["issue"][0]["code"] == "expired"
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_sekmet_keeps_no_token_and_writes_only_into_its_workdir(direct: Peer) -> None:
    server, token = direct.server, direct.token()
    export(server.base_url, token, _type="Patient")
    log = server.log_text()
    assert '"GET /fhir/bulk-status/' in log  # uvicorn's access lines: method, path, query, status
    for secret in (token, direct.admin, "Bearer", "eyJ", "client_assertion"):
        assert secret not in log
    with sqlite3.connect(server.data_dir / "sekmet.db") as db:
        assert db.execute("SELECT COUNT(*) FROM traffic").fetchone() == (0,)
    written = {p.relative_to(server.workdir).parts[0] for p in server.workdir.rglob("*")}
    assert written <= {"settings.yaml", "sekmet.log", "data", "keys"}


# -- the fault proxy ---------------------------------------------------------------------------------------------


def test_through_the_proxy_every_url_is_the_proxys(proxied: Peer, proxy: FaultProxy) -> None:
    server = proxied.server
    assert server.base_url == proxy.base_url
    config = httpx.get(f"{proxy.base_url}/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == f"{proxy.root_url}/auth/token"
    token = request_token(
        config["token_endpoint"],
        client_id=CLIENT_ID,
        private_pem=proxied.keys.es_pem,
        kid=proxied.keys.es_kid,
        scope=READ_SCOPE,
    )["access_token"]
    with pytest.raises(TokenError):  # the assertion's aud must be the public (proxy) token URL
        request_token(
            f"{server.direct_root_url}/auth/token",
            client_id=CLIENT_ID,
            private_pem=proxied.keys.es_pem,
            kid=proxied.keys.es_kid,
        )
    status_url, manifest = export(proxy.base_url, token, _type=TYPES, _since="2000-01-01T00:00:00Z")
    assert status_url.startswith(f"{proxy.base_url}/bulk-status/")
    assert manifest["request"].startswith(f"{proxy.base_url}/Group/drg-registry/$export")
    assert all(o["url"].startswith(f"{proxy.base_url}/bulk-files/") for o in manifest["output"])
    for item in manifest["output"]:
        assert len(lines_of(httpx.get(item["url"], headers=auth(token)).text)) == item["count"]
    assert httpx.delete(status_url, headers=auth(proxied.admin)).status_code == 202
    (kickoff,) = proxy.requests_to("kickoff")
    assert kickoff.params == {"_type": TYPES, "_since": "2000-01-01T00:00:00Z"}
    assert [e.status for e in proxy.requests_to("status", "DELETE")] == [202]
    assert [e.status for e in proxy.requests_to("token")] == [200]
    assert all(e.fault is None or e.fault == "manifest" for e in proxy.requests)
    assert token not in repr(proxy.requests) and "Bearer" not in repr(proxy.requests)


def test_429_with_retry_after_in_seconds_and_as_a_date(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    proxy.rate_limit("kickoff", times=2, retry_after=3)
    proxy.rate_limit("status", retry_after=2, as_http_date=True, skip=1)
    for _ in range(2):
        refused = kick_off(proxy.base_url, token, _type="Patient")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
    started = kick_off(proxy.base_url, token, _type="Patient")
    assert started.status_code == 202
    first = httpx.get(started.headers["Content-Location"], headers=auth(token))
    second = httpx.get(started.headers["Content-Location"], headers=auth(token))
    assert first.status_code in (200, 202) and second.status_code == 429
    from email.utils import parsedate_to_datetime

    wait = parsedate_to_datetime(second.headers["Retry-After"]).timestamp() - time.time()
    assert 0 < wait <= 2
    assert poll(started.headers["Content-Location"], token)[0].status_code == 200
    assert proxy.pending_faults == []
    assert [e.fault for e in proxy.requests_to("kickoff")] == ["rate_limit", "rate_limit", None]


def test_transient_500s_and_transient_outcomes(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    proxy.server_error("status", times=2)
    proxy.transient_error("file", status=503, retry_after=1, resource_type="Patient")
    started = kick_off(proxy.base_url, token, _type="Patient,Device")
    status_url = started.headers["Content-Location"]
    bare = [httpx.get(status_url, headers=auth(token)) for _ in range(2)]
    assert [b.status_code for b in bare] == [500, 500] and all(b.text == "Internal Server Error" for b in bare)
    final, _ = poll(status_url, token)
    manifest = final.json()
    assert httpx.get(output_url(manifest, "Device"), headers=auth(token)).status_code == 200  # not this file
    hiccup = httpx.get(output_url(manifest, "Patient"), headers=auth(token))
    assert hiccup.status_code == 503 and hiccup.headers["Retry-After"] == "1"
    assert hiccup.json()["issue"][0]["code"] == "transient"
    again = httpx.get(output_url(manifest, "Patient"), headers=auth(token))
    assert again.status_code == 200
    assert len(lines_of(again.text)) == next(o["count"] for o in manifest["output"] if o["type"] == "Patient")


def test_a_job_that_expires_under_the_client(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    proxy.expire_job("file", status=410, resource_type="Device")
    status_url, manifest = export(proxy.base_url, token, _type="Patient,Device")
    assert httpx.get(output_url(manifest, "Patient"), headers=auth(token)).status_code == 200
    assert httpx.get(output_url(manifest, "Device"), headers=auth(token)).status_code == 410
    assert httpx.get(output_url(manifest, "Patient"), headers=auth(token)).status_code == 410  # the whole job
    assert httpx.get(status_url, headers=auth(token)).status_code == 410
    fresh_url, fresh = export(proxy.base_url, token, _type="Patient,Device")  # starting again from kick-off works
    assert httpx.get(output_url(fresh, "Device"), headers=auth(token)).status_code == 200
    assert fresh_url.rsplit("/", 1)[1] in proxy.expire_jobs(status=404, files=False)  # every job seen so far
    assert httpx.get(output_url(fresh, "Device"), headers=auth(token)).status_code == 200  # files still there
    gone = httpx.get(fresh_url, headers=auth(token))
    assert gone.status_code == 404 and gone.json()["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize("mode", ["close", "short"])
def test_a_truncated_file_once(proxied: Peer, proxy: FaultProxy, mode: str) -> None:
    token = proxied.token()
    _, manifest = export(proxy.base_url, token, _type="Observation")
    url, count = manifest["output"][0]["url"], manifest["output"][0]["count"]
    proxy.truncate_file(mode=mode)  # type: ignore[arg-type]
    if mode == "close":
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url, headers=auth(token))
    else:
        short = httpx.get(url, headers=auth(token))
        assert short.status_code == 200 and not short.text.endswith("\n")
        lines = lines_of(short.text)
        assert 0 < len(lines) < count
        with pytest.raises(json.JSONDecodeError):
            json.loads(lines[-1])
    whole = httpx.get(url, headers=auth(token))
    assert len(lines_of(whole.text)) == count and whole.text.endswith("\n")
    assert sorted(e.fault or "" for e in proxy.requests_to("file")) == ["", f"truncate:{mode}"]


def test_a_corrupt_file_once(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    proxy.corrupt_file(resource_type="Observation")
    _, manifest = export(proxy.base_url, token, _type="Patient,Observation")
    patients = httpx.get(output_url(manifest, "Patient"), headers=auth(token)).text
    assert all(json.loads(line) for line in lines_of(patients))
    corrupt = lines_of(httpx.get(output_url(manifest, "Observation"), headers=auth(token)).text)
    count = next(o["count"] for o in manifest["output"] if o["type"] == "Observation")
    assert len(corrupt) == count  # the count still matches: only parsing shows it
    bad = []
    for line in corrupt:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            bad.append(line)
    assert len(bad) == 1
    whole = lines_of(httpx.get(output_url(manifest, "Observation"), headers=auth(token)).text)
    assert len(whole) == count and all(json.loads(line) for line in whole)


def test_a_token_that_expires_during_a_download(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    proxy.reject_token("file", times=1)
    _, manifest = export(proxy.base_url, token, _type="Patient")
    refused = httpx.get(manifest["output"][0]["url"], headers=auth(token))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    renewed = proxied.token()
    assert httpx.get(manifest["output"][0]["url"], headers=auth(renewed)).status_code == 200


def test_deleted_output_from_sekmets_history(proxied: Peer, proxy: FaultProxy) -> None:
    server, token, admin = proxied.server, proxied.token(), proxied.admin
    _, before = export(proxy.base_url, token, _type=TYPES)
    since = before["transactionTime"]
    assert "deleted" not in before  # no _since: nothing to say
    seed = proxied.seed
    condition, observation, device = seed.ids["Condition"][1], seed.ids["Observation"][1], seed.ids["Device"][1]
    delete_resource(server, "Condition", condition, token=admin)
    delete_resource(server, "Observation", observation, token=admin)
    delete_resource(server, "Device", device, token=admin)
    put_resource(server, seed.resource(f"Device/{device}"), token=admin)  # deleted, then back: not deleted
    status_url, manifest = export(
        proxy.base_url, token, "Patient/$export", _type="Condition,Observation,Device", _since=since
    )
    (item,) = manifest["deleted"]
    assert item["type"] == "Bundle" and item["count"] == 2
    assert item["url"].startswith(f"{proxy.base_url}/bulk-peer/")
    assert httpx.get(item["url"]).status_code == 401  # the token is checked by sekmet
    bundles = [json.loads(line) for line in lines_of(httpx.get(item["url"], headers=auth(token)).text)]
    assert all(b["resourceType"] == "Bundle" and b["type"] == "transaction" for b in bundles)
    requests = [e["request"] for b in bundles for e in b["entry"]]
    assert requests == [
        {"method": "DELETE", "url": f"Condition/{condition}"},
        {"method": "DELETE", "url": f"Observation/{observation}"},
    ]
    assert {o["type"] for o in manifest["output"]} == {"Device"}  # the recreated one
    assert httpx.get(status_url, headers=auth(token)).json() == manifest  # the same each time it is asked
    _, typed = export(proxy.base_url, token, "Patient/$export", _type="Patient", _since=since)
    assert typed["deleted"] == []  # _since, but nothing of these types deleted

    proxy.report_deleted("list", ["Patient/p1", "Patient/p2", "Observation/o3"], per_bundle=2)
    _, listed = export(proxy.base_url, token, _type="Patient")
    lines = lines_of(httpx.get(listed["deleted"][0]["url"], headers=auth(token)).text)
    assert [len(json.loads(line)["entry"]) for line in lines] == [2, 1] and listed["deleted"][0]["count"] == 2
    proxy.report_deleted("off")
    _, plain = export(proxy.base_url, token, "Patient/$export", _type="Condition", _since=since)
    assert "deleted" not in plain


def test_a_posted_kickoff_needs_a_c_scope_and_the_proxy_reads_its_parameters(proxied: Peer, proxy: FaultProxy) -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "_since", "valueInstant": "2001-01-01T00:00:00.000Z"},
        ],
    }
    headers = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}
    url = f"{proxy.base_url}/{GROUP_EXPORT}"
    refused = httpx.post(url, json=parameters, headers=headers | auth(proxied.token()))
    assert refused.status_code == 403  # sekmet takes POST .../$export for a create: system/*.rs is not enough
    started = httpx.post(url, json=parameters, headers=headers | auth(proxied.token("system/*.rs system/*.c")))
    assert started.status_code == 202
    job = proxy.jobs[started.headers["Content-Location"].rsplit("/", 1)[1]]
    assert (job.level, job.since, job.types) == ("group", "2001-01-01T00:00:00.000Z", ["Patient"])
    final, _ = poll(started.headers["Content-Location"], proxied.token())
    assert [o["type"] for o in final.json()["output"]] == ["Patient"] and "deleted" in final.json()


def test_fatal_errors_on_kickoff_and_status(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    proxy.fatal_error("kickoff", status=400, code="invalid", diagnostics="Unknown group")
    for _ in range(2):  # by default on every kick-off
        refused = kick_off(proxy.base_url, token, _type="Patient")
        assert refused.status_code == 400
        assert refused.json()["issue"][0] == {"severity": "fatal", "code": "invalid", "diagnostics": "Unknown group"}
    proxy.reset()
    proxy.fatal_error("status", status=500, code="exception", times=1)
    started = kick_off(proxy.base_url, token, _type="Patient")
    failed = httpx.get(started.headers["Content-Location"], headers=auth(token))
    assert failed.status_code == 500 and failed.json()["issue"][0]["code"] == "exception"


def test_expires_header_and_error_file(proxied: Peer, proxy: FaultProxy) -> None:
    token = proxied.token()
    past = http_date(-60)
    proxy.set_manifest_expires(past)
    proxy.add_error_file(["Observation/x: value out of range", "Device/y: unknown model"])
    status_url, manifest = export(proxy.base_url, token, _type="Patient")
    final = httpx.get(status_url, headers=auth(token))
    assert final.headers["Expires"] == past
    (error,) = manifest["error"]
    assert (error["type"], error["count"]) == ("OperationOutcome", 2)
    outcomes = [json.loads(line) for line in lines_of(httpx.get(error["url"], headers=auth(token)).text)]
    assert [o["issue"][0]["diagnostics"] for o in outcomes] == [
        "Observation/x: value out of range",
        "Device/y: unknown model",
    ]
