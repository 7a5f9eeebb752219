"""The pulls' pieces without a server: Retry-After, the retry budget, the snapshot merge, file checks, keys, state."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from drg_etl.core.delivery import PULL_FOLDER, PULL_RECORD, Delivery, registry_today
from drg_etl.core.errors import UsageError
from drg_etl.pull.bulk import check_ndjson, cutoff_of
from drg_etl.pull.http import PullError, RetryBudget, public_url, retry_after, with_retries
from drg_etl.pull.redcap import format_row, token_from_environment
from drg_etl.pull.smart import BackendAuth, BackendCredentials
from drg_etl.pull.snapshot import Snapshot, land
from drg_etl.pull.state import PullState, pull_lock
from drg_etl.sources.deliveries import survey


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://127.0.0.1/x"))


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after(_response(429, **{"Retry-After": "7"})) == 7.0
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    date = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert retry_after(_response(503, **{"Retry-After": date}), now=now) == 90.0
    assert retry_after(_response(503, **{"Retry-After": "soon"})) is None
    assert retry_after(_response(503)) is None


def test_retries_honour_the_server_then_back_off_and_give_up_with_what_it_said() -> None:
    answers = iter([_response(429, **{"Retry-After": "3"}), _response(503), _response(200)])
    budget = RetryBudget(sleep=lambda _s: None)
    assert with_retries(lambda: next(answers), budget, "the test").status_code == 200
    assert budget.waits == [3.0, 2.0]  # the server's wait, then the backoff of the second attempt
    budget = RetryBudget(attempts=3, sleep=lambda _s: None)
    with pytest.raises(PullError, match="still answered HTTP 500 after 3 attempts"):
        with_retries(lambda: _response(500), budget, "the test")


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_client_error_is_never_retried(status: int) -> None:
    calls = []
    budget = RetryBudget(sleep=lambda _s: None)
    response = with_retries(lambda: calls.append(1) or _response(status), budget, "the test")
    assert response.status_code == status and len(calls) == 1


def test_a_merge_replaces_changed_keys_whole_removes_deleted_and_orders_canonically(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path / "s.duckdb")
    snapshot.add([("p", "1", "a1", "one-a"), ("p", "1", "a2", "one-b"), ("p", "2", "b", "two"),
                  ("p", "3", "c", "three")])
    snapshot.stage([("p", "1", "a1", "one-new"), ("p", "4", "0", "four")])
    assert snapshot.apply([("p", "2"), ("p", "9")]) == {"keys_changed": 2, "keys_deleted": 1}
    assert list(snapshot.lines("p")) == ["four", "one-new", "three"]  # key 1's second row went with the change
    snapshot.close()


def test_a_downloaded_file_must_be_whole_of_its_type_and_count(tmp_path: Path) -> None:
    good = tmp_path / "good.ndjson"
    good.write_text('{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n')
    assert check_ndjson(good, "Patient", 2, "output") == ""
    assert "counts 3" in check_ndjson(good, "Patient", 3, "output")
    assert "not a Device" in check_ndjson(good, "Device", None, "output")
    cut = tmp_path / "cut.ndjson"
    cut.write_text('{"resourceType":"Patient","id":"a"}\n{"resourceType":"Pat')
    assert "not whole JSON" in check_ndjson(cut, "Patient", None, "output")


def test_the_cutoff_is_the_copenhagen_date_of_the_snapshot() -> None:
    assert cutoff_of("2026-11-30T23:30:00Z") == dt.date(2026, 12, 1)
    assert cutoff_of("2026-11-30T10:00:00+00:00") == dt.date(2026, 11, 30)


def test_a_load_takes_the_delivery_a_pull_wrote_tonight_whatever_the_machines_clock_zone(tmp_path: Path) -> None:
    """At 23:30 UTC it is already tomorrow in Denmark: the pull names its folder so, and the load agrees."""
    tonight = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
    assert registry_today(tonight) == cutoff_of(tonight.isoformat()) == dt.date(2026, 12, 1)
    folder = tmp_path / "rh" / registry_today().isoformat()  # what a pull writes at this moment
    folder.mkdir(parents=True)
    (folder / f"DRGDK_DATA_{folder.name}.csv").write_text("record_id\n")
    deliveries, problems = survey(tmp_path)
    assert [d.label for d in deliveries] == [f"rh/{folder.name}"] and problems == []


def test_the_survey_passes_over_the_pull_folder_and_pull_json_is_no_part_of_a_delivery(tmp_path: Path) -> None:
    (tmp_path / PULL_FOLDER / "work-rh-x").mkdir(parents=True)
    folder = tmp_path / "rh" / "2026-11-30"
    folder.mkdir(parents=True)
    (folder / "DRGDK_DATA_2026-11-30.csv").write_text("record_id\n")
    deliveries, problems = survey(tmp_path, today=dt.date(2026, 12, 1))
    assert [d.label for d in deliveries] == ["rh/2026-11-30"] and problems == []
    before = Delivery("rh", dt.date(2026, 11, 30), folder).content_id()
    (folder / PULL_RECORD).write_text("{}")
    assert Delivery("rh", dt.date(2026, 11, 30), folder).content_id() == before
    assert PULL_RECORD not in Delivery("rh", dt.date(2026, 11, 30), folder).file_hashes()


def test_landing_writes_whole_then_nothing_for_the_same_bytes_and_replaces_the_days_other_bytes(
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"

    def staged(text: str) -> Path:
        folder = tmp_path / f"staged-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "Patient.ndjson").write_text(text)
        return folder

    day = dt.date(2026, 11, 30)
    first = land(staged("a\n"), inbox, "aauh", day, {"n": 1}, ["Patient.ndjson"])
    assert first.written and json.loads((first.folder / PULL_RECORD).read_text()) == {"n": 1}
    again = land(staged("a\n"), inbox, "aauh", day, {"n": 2}, ["Patient.ndjson"])
    assert not again.written and json.loads((first.folder / PULL_RECORD).read_text()) == {"n": 1}
    other = land(staged("b\n"), inbox, "aauh", day, {"n": 3}, ["Patient.ndjson"])
    assert other.written and other.replaced and (other.folder / "Patient.ndjson").read_text() == "b\n"
    assert [p.name for p in (inbox / "aauh").iterdir()] == ["2026-11-30"]


def test_state_is_atomic_and_a_second_pull_of_a_center_is_refused(tmp_path: Path) -> None:
    state = PullState("rh", watermark="2026-11-30T10:00:00+00:00", cutoff="2026-11-30", files={"x": "0"})
    state.save(tmp_path)
    assert PullState.load(tmp_path, "rh") == state
    assert [p.name for p in (tmp_path / PULL_FOLDER).iterdir()] == ["rh.json"]
    with pull_lock(tmp_path, "rh") as work:
        assert work.is_dir() and work.parent == tmp_path / PULL_FOLDER
        with pytest.raises(PullError, match="another pull of rh"), pull_lock(tmp_path, "rh"):
            pass
    assert not work.exists()
    assert state.base_folder(tmp_path) is None  # the delivery it names is not there: pull in full


def _key(tmp_path: Path, key: object) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def test_keys_sign_es384_or_rs384_and_anything_else_is_named(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    credentials = BackendCredentials.from_key_file("client", _key(tmp_path, ec_key), "kid-1")
    assert credentials.algorithm == "ES384" and "key=" not in repr(credentials)
    claims = jwt.decode(credentials.assertion("http://127.0.0.1/token"), ec_key.public_key(), algorithms=["ES384"],
                        audience="http://127.0.0.1/token")
    assert claims["iss"] == claims["sub"] == "client" and claims["exp"] - claims["iat"] <= 300
    assert jwt.get_unverified_header(credentials.assertion("http://127.0.0.1/token"))["kid"] == "kid-1"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert BackendCredentials.from_key_file("c", _key(tmp_path, rsa_key), "k").algorithm == "RS384"
    with pytest.raises(UsageError, match="EC P-384 key"):
        BackendCredentials.from_key_file("c", _key(tmp_path, ec.generate_private_key(ec.SECP256R1())), "k")
    with pytest.raises(UsageError, match="DRG_ETL_FHIR_KEY_FILE"):
        BackendCredentials.from_key_file("c", tmp_path / "absent.pem", "k")
    with pytest.raises(UsageError, match="DRG_ETL_FHIR_CLIENT_ID, DRG_ETL_FHIR_KEY_FILE, DRG_ETL_FHIR_KEY_ID"):
        BackendCredentials.from_environment({})


def test_the_redcap_token_is_checked_and_never_echoed() -> None:
    with pytest.raises(UsageError, match="set DRG_ETL_REDCAP_TOKEN"):
        token_from_environment({})
    with pytest.raises(UsageError) as refused:
        token_from_environment({"DRG_ETL_REDCAP_TOKEN": "not-a-token-0123"})
    assert "not-a-token" not in str(refused.value)
    assert token_from_environment({"DRG_ETL_REDCAP_TOKEN": "A" * 32}) == "A" * 32


def test_rows_are_written_with_minimal_quoting() -> None:
    assert format_row(["1", "a,b", 'say "x"', ""]) == '1,"a,b","say ""x""",'


def test_a_token_is_renewed_before_it_expires_and_once_on_a_401(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    credentials = BackendCredentials.from_key_file("client", _key(tmp_path, key), "kid-1")
    now = [1_000.0]
    issued: list[dict] = []
    refuse_next = [False]

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            issued.append(jwt.decode(form["client_assertion"], key.public_key(), algorithms=["ES384"],
                                     audience="http://ehr.test/token", options={"verify_exp": False}))
            return httpx.Response(200, json={"access_token": f"token-{len(issued)}", "expires_in": 300})
        if refuse_next[0]:
            refuse_next[0] = False
            return httpx.Response(401)
        return httpx.Response(200, json={"auth": request.headers["Authorization"]})

    auth = BackendAuth(credentials, "http://ehr.test/token", clock=lambda: now[0])
    with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
        assert client.get("http://ehr.test/fhir/a").json()["auth"] == "Bearer token-1"
        now[0] += 200  # 100 s left: still good
        assert client.get("http://ehr.test/fhir/a").json()["auth"] == "Bearer token-1"
        now[0] += 50  # 50 s left: renewed before it expires
        assert client.get("http://ehr.test/fhir/a").json()["auth"] == "Bearer token-2"
        refuse_next[0] = True  # the server has forgotten the token: a new one, the request again
        assert client.get("http://ehr.test/fhir/a").json()["auth"] == "Bearer token-3"
    assert len({claims["jti"] for claims in issued}) == 3, "a fresh assertion for every token"
    assert all(claims["iss"] == claims["sub"] == "client" for claims in issued)


def test_a_url_is_recorded_without_its_user_and_password() -> None:
    assert public_url("https://registry:s3cret@redcap.example/api/") == "https://redcap.example/api/"
    assert public_url("https://ehr.example/fhir") == "https://ehr.example/fhir"
