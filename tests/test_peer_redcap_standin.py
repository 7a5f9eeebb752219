"""The REDCap stand-in (tests/peers/redcap_standin.py) speaks REDCap's API: driven here with plain httpx POSTs.

Assertions never print row values (the rows hold CPR numbers): rows are compared as a whole and a mismatch
names where it is, not what it holds.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import Generated
from peers.redcap_standin import (
    API_TO_WEB,
    METADATA_COLUMNS,
    SERVER_ZONE,
    RedcapProject,
    RedcapStandin,
    TokenRights,
    make_token,
)

from drg_etl.core.formats import REDCAP_DICTIONARY_COLUMNS, REDCAP_KEYS

FULL = make_token("full")  # export and data access groups
PLAIN = make_token("plain")  # export only
NO_EXPORT = make_token("no-export")
TOKENS = {
    FULL: TokenRights(export=True, data_access_groups=True),
    PLAIN: TokenRights(export=True),
    NO_EXPORT: TokenRights(export=False),
}
RECORD_PARAMS = {"content": "record", "format": "csv", "type": "flat", "rawOrLabel": "raw"}


def read_csv(text: str) -> list[list[str]]:
    """CSV text as rows."""
    return list(csv.reader(io.StringIO(text)))


def delivery_rows(folder: Path) -> list[list[str]]:
    """The rows (header first) of a delivery's REDCap export."""
    (data,) = folder.glob("DRGDK_DATA_*.csv")
    return read_csv(data.read_text(encoding="utf-8-sig"))


def where_differs(got: list[list[str]], want: list[list[str]]) -> str:
    """Where two row lists differ, without their values."""
    if len(got) != len(want):
        return f"{len(got)} rows, not {len(want)}"
    n = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
    header = want[0]
    columns = [header[i] for i in range(min(len(got[n]), len(want[n]))) if got[n][i] != want[n][i]]
    return f"row {n + 1} differs (columns {columns}, {len(got[n])} values for {len(want[n])})"


def assert_same_rows(got: list[list[str]], want: list[list[str]]) -> None:
    """The same rows, reported without values."""
    same = got == want
    assert same, where_differs(got, want)


@pytest.fixture
def project(demo_clean: Generated) -> RedcapProject:
    """A fresh project built from the --clean demo's rh delivery."""
    return RedcapProject.from_delivery(demo_clean.folder("rh"))


@pytest.fixture
def server(project: RedcapProject) -> Iterator[RedcapStandin]:
    """The stand-in serving ``project``."""
    with RedcapStandin(project, TOKENS) as running:
        yield running
    assert not running.errors


def post(server: RedcapStandin, token: str | None = FULL, **params: str) -> httpx.Response:
    """A form-encoded POST to the API."""
    data = ({} if token is None else {"token": token}) | params
    return httpx.post(server.url, data=data, timeout=10)


def export(server: RedcapStandin, token: str = FULL, **params: str) -> list[list[str]]:
    """A flat CSV record export, parsed."""
    response = post(server, token, **(RECORD_PARAMS | params))
    assert response.status_code == 200, response.text[:200]
    return read_csv(response.text)


# -- the round trip ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inbox", ["demo_clean", "demo"])
def test_full_export_is_the_delivery(inbox: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A full export, written with a byte order mark as a delivery is, holds exactly the delivery's rows (in
    REDCap's order: the generator writes a defect's extra rows last, REDCap sorts them into their record)."""
    folder = request.getfixturevalue(inbox).folder("rh")
    with RedcapStandin(RedcapProject.from_delivery(folder), TOKENS) as server:
        response = post(server, **RECORD_PARAMS)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert not response.content.startswith(b"\xef\xbb\xbf")  # the API's CSV has no byte order mark
    written = tmp_path / "DRGDK_DATA.csv"
    written.write_bytes(b"\xef\xbb\xbf" + response.content)
    got, want = read_csv(written.read_text(encoding="utf-8-sig")), delivery_rows(folder)
    assert got[0] == want[0]
    if inbox == "demo_clean":
        assert_same_rows(got, want)
    else:
        assert_same_rows([got[0], *sorted(got[1:])], [want[0], *sorted(want[1:])])


def test_csv_is_written_as_php_writes_it(server: RedcapStandin, project: RedcapProject) -> None:
    """``\\n`` line ends, a value quoted only when it holds a delimiter, quote, space or line break."""
    reason = 'Lead moved, "again" after a fall\nsecond line'
    project.upsert_row("2", "events_arm_1", "surgery", 7, {"surg_date": "2019-01-02", "surg_reason": reason})
    response = post(server, **RECORD_PARAMS, records="2", forms="demographics,surgery")
    assert "\r" not in response.text and response.text.endswith("\n")
    assert '"Lead moved, ""again"" after a fall\nsecond line"' in response.text
    assert ",2019-01-02," in response.text  # no space, no quotes
    rows = read_csv(response.text)
    assert rows[-1][rows[0].index("surg_reason")] == reason


# -- tokens, methods, errors ----------------------------------------------------------------------------------


def test_refused_tokens(server: RedcapStandin) -> None:
    """401 for a missing, malformed or unknown token, 403 for a token without export rights, in REDCap's words."""
    for token in (None, "", FULL.lower(), FULL[:31], make_token("unknown")):
        response = post(server, token, content="version", returnFormat="json")
        assert response.status_code == 401
        assert response.json() == {"error": "You do not have permissions to use the API"}
    response = post(server, NO_EXPORT, content="record", format="csv", returnFormat="json")
    assert response.status_code == 403
    assert response.json() == {"error": "You do not have API Export privileges"}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_invalid_token_status_as_redcap_code_answers(project: RedcapProject) -> None:
    """REDCap's code answers 403 where its documentation says 401: the switch reproduces that."""
    with RedcapStandin(project, TOKENS, invalid_token_status=403) as server:
        assert post(server, make_token("unknown"), content="version").status_code == 403


def test_errors_come_in_the_return_format(server: RedcapStandin) -> None:
    """``returnFormat``, else ``format``, else XML (REDCap's API/index.php and RestUtility::sendResponse)."""
    csv_error = post(server, NO_EXPORT, content="record", format="csv")
    assert csv_error.text == "ERROR: You do not have API Export privileges"
    json_error = post(server, NO_EXPORT, content="record", format="csv", returnFormat="json")
    assert json_error.text == '{"error":"You do not have API Export privileges"}'
    xml_error = post(server, NO_EXPORT, content="record")
    assert xml_error.text == (
        '<?xml version="1.0" encoding="UTF-8" ?><hash><error>You do not have API Export privileges</error></hash>'
    )
    assert xml_error.headers["Content-Type"] == "text/xml; charset=utf-8"
    bad = post(server, content="nonsense", format="json")
    assert bad.status_code == 400
    assert bad.json() == {"error": 'The value of the parameter "content" is not valid'}


def test_only_a_form_post_to_api_is_served(server: RedcapStandin) -> None:
    """GET answers REDCap's 501; other paths are Apache's; a JSON body is no form (no token)."""
    get = httpx.get(server.url)
    assert get.status_code == 501
    assert get.text.endswith("<hash><error>The requested method is not implemented.</error></hash>")
    assert httpx.get(server.url.replace("/api/", "/elsewhere")).status_code == 404
    moved = httpx.post(server.url.rstrip("/"), data={"token": FULL, "content": "version"})
    assert moved.status_code == 301 and moved.headers["Location"] == "/api/"
    as_json = httpx.post(server.url, json={"token": FULL, "content": "version"})
    assert as_json.status_code == 401


# -- the design ------------------------------------------------------------------------------------------------


def test_version_and_project(server: RedcapStandin) -> None:
    """``content=version`` is the version's text; ``content=project`` says longitudinal with repeating forms."""
    assert post(server, content="version").text == server.version == "14.5.10"
    info = post(server, content="project", format="json").json()
    assert info["project_title"] == server.project_title
    assert info["is_longitudinal"] == 1 and info["has_repeating_instruments_or_events"] == 1
    as_csv = read_csv(post(server, content="project", format="csv").text)
    assert as_csv[0][:3] == ["project_id", "project_title", "creation_time"]
    assert dict(zip(*as_csv, strict=True))["project_id"] == str(info["project_id"])


def test_metadata_maps_one_to_one_onto_the_web_dictionary(server: RedcapStandin, demo_clean: Generated) -> None:
    """The API's metadata headers, column for column the web export's; the same rows."""
    rows = read_csv(post(server, content="metadata", format="csv").text)
    assert tuple(rows[0]) == METADATA_COLUMNS
    assert tuple(API_TO_WEB[c] for c in rows[0]) == REDCAP_DICTIONARY_COLUMNS
    web = read_csv((demo_clean.folder("rh") / "DRGDK_DataDictionary.csv").read_text(encoding="utf-8-sig"))
    assert rows[1:] == web[1:]
    as_json = post(server, content="metadata", format="json").json()
    assert [[item[c] for c in METADATA_COLUMNS] for item in as_json] == web[1:]
    only = post(server, content="metadata", format="json", **{"fields[0]": "sex", "forms[0]": "trial"}).json()
    assert [m["field_name"] for m in only] == ["sex", "trial_start", "trial_end", "trial_success"]


def test_events_forms_and_repeating_forms(server: RedcapStandin) -> None:
    """The rh format's events and their forms; lead, surgery and complication repeat in events_arm_1."""
    mapping = read_csv(post(server, content="formEventMapping", format="csv").text)
    assert mapping[0] == ["arm_num", "unique_event_name", "form"]
    assert ["1", "screening_arm_1", "demographics"] in mapping and ["1", "month_12_arm_1", "prom"] in mapping
    repeating = post(server, content="repeatingFormsEvents", format="json").json()
    assert repeating == [
        {"event_name": "events_arm_1", "form_name": form, "custom_form_label": ""}
        for form in ("lead", "surgery", "complication")
    ]
    events = [e["unique_event_name"] for e in post(server, content="event", format="json").json()]
    assert events[0] == "screening_arm_1" and events[-1] == "events_arm_1"
    assert post(server, content="arm", format="json").json() == [{"arm_num": 1, "name": "Arm 1"}]


# -- record export parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fields", "forms", "events", "records"])
def test_both_array_syntaxes(server: RedcapStandin, name: str) -> None:
    """``name[0]=a&name[1]=b`` and ``name=a,b`` ask the same."""
    values = {
        "fields": ["record_id", "sex", "lead_level"],
        "forms": ["demographics", "complication"],
        "events": ["screening_arm_1", "events_arm_1"],
        "records": ["2", "3"],
    }[name]
    indexed = export(server, **{f"{name}[{i}]": v for i, v in enumerate(values)})
    joined = export(server, **{name: ",".join(values)})
    assert indexed == joined and len(indexed) > 1
    assert [r.params for r in server.requests[-2:]][1][name] == ",".join(values)


def test_narrowed_exports(server: RedcapStandin) -> None:
    """A checkbox exports a column per choice; the keys come only with the record id field (REDCap 6.0 on)."""
    rows = export(server, fields="record_id,comp_type")
    assert rows[0] == [*REDCAP_KEYS, *(f"comp_type___{n}" for n in range(1, 10))]
    assert {r[2] for r in rows[1:]} == {"complication"}
    without_id = export(server, fields="sex")
    assert without_id[0] == ["sex"]
    unknown = post(server, **RECORD_PARAMS, fields="sex,nonsense", returnFormat="json")
    assert unknown.status_code == 400 and "nonsense" in unknown.json()["error"]


def test_data_access_groups(server: RedcapStandin) -> None:
    """``redcap_data_access_group`` after the keys, when asked and allowed; a token without the right gets 400."""
    rows = export(server, exportDataAccessGroups="true")
    assert rows[0][:5] == [*REDCAP_KEYS, "redcap_data_access_group"]
    assert {r[4] for r in rows[1:]} == {"rigshospitalet"}
    assert export(server, PLAIN)[0][4] != "redcap_data_access_group"
    refused = post(server, PLAIN, **RECORD_PARAMS, exportDataAccessGroups="true", returnFormat="json")
    assert refused.status_code == 400
    assert "'Data Access Groups' privileges" in refused.json()["error"]


def test_date_range_returns_whole_records_changed_in_it(server: RedcapStandin, project: RedcapProject) -> None:
    """dateRangeBegin/End filter on each record's last change (server-local time); all its rows come back."""
    loaded = project.clock.now()
    project.clock.advance(hours=2)
    changed_at = project.clock.now()
    project.set_value("3", "screening_arm_1", None, None, "nrs_worst", "4")
    since = loaded.strftime("%Y-%m-%d %H:%M:%S")
    rows = export(server, dateRangeBegin=since)
    assert {r[0] for r in rows[1:]} == {"3"}
    assert rows[1:] == [r for r in export(server)[1:] if r[0] == "3"]
    before = (changed_at - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert len(export(server, dateRangeEnd=before)) == len(export(server)) - len(rows) + 1
    assert export(server, dateRangeBegin=changed_at.strftime("%Y-%m-%d %H:%M:%S"))[1:] == []
    bad = post(server, **RECORD_PARAMS, dateRangeBegin="2019-12-31T20:00:00", returnFormat="json")
    assert bad.status_code == 400 and "dateRangeBegin" in bad.json()["error"]


def test_date_header_is_the_servers_clock(server: RedcapStandin) -> None:
    """The HTTP Date says the stand-in's time, which the tests move."""
    server.clock.set(dt.datetime(2020, 3, 1, 9, 30))
    date = email.utils.parsedate_to_datetime(post(server, content="version").headers["Date"])
    assert date.astimezone(SERVER_ZONE).replace(tzinfo=None) == dt.datetime(2020, 3, 1, 9, 30)


def test_new_rows_take_their_place(server: RedcapStandin, project: RedcapProject) -> None:
    """An added record and a new repeat instance come back in REDCap's order: record, event, instrument,
    instance; a new row's checkboxes start unchecked."""
    project.upsert_row("2", "events_arm_1", "complication", 9, {"comp_date": "2019-05-05", "comp_type___4": 1})
    last = project.records()[-1]
    new = str(int(last) + 1)
    project.add_record(
        [
            {"record_id": new, "redcap_event_name": "screening_arm_1", "sex": "2", "demographics_complete": "2"},
            {
                "record_id": new,
                "redcap_event_name": "events_arm_1",
                "redcap_repeat_instrument": "lead",
                "redcap_repeat_instance": 1,
                "lead_level": "20",
            },
        ]
    )
    rows = export(server)
    header, keys = rows[0], [tuple(r[:4]) for r in rows[1:]]
    assert keys[-2:] == [(new, "screening_arm_1", "", ""), (new, "events_arm_1", "lead", "1")]
    two = [k for k in keys if k[0] == "2"]
    assert two[-1] == ("2", "events_arm_1", "complication", "9")
    added = next(r for r in rows if tuple(r[:4]) == two[-1])
    assert [added[header.index(f"comp_type___{n}")] for n in range(1, 10)] == ["0", "0", "0", "1", *["0"] * 5]


def test_deleted_records_leave_the_export_for_the_log(server: RedcapStandin, project: RedcapProject) -> None:
    """A deleted record is never exported; ``content=log`` with ``logtype=record_delete`` lists it."""
    project.clock.advance(minutes=30)
    project.delete_record("4")
    assert "4" not in {r[0] for r in export(server)[1:]}
    assert "4" not in {r[0] for r in export(server, records="4")[1:]}
    since = (project.clock.now() - dt.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M")
    entries = post(server, content="log", format="json", logtype="record_delete", beginTime=since).json()
    assert entries == [
        {
            "timestamp": project.clock.now().strftime("%Y-%m-%d %H:%M"),
            "username": project.username,
            "action": "Delete record 4",
            "details": "record_id = '4'",
            "record": "4",
        }
    ]
    later = (project.clock.now() + dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
    assert post(server, content="log", format="json", logtype="record_delete", beginTime=later).json() == []
    as_csv = read_csv(post(server, content="log", format="csv", logtype="record_delete").text)
    assert as_csv[0] == ["timestamp", "username", "action", "details", "record"] and as_csv[1][4] == "4"
    project.set_value("5", "screening_arm_1", None, None, "sex", "1")
    edits = post(server, content="log", format="json", logtype="record_delete").json()
    assert [e["record"] for e in edits] == ["4"]


# -- faults ----------------------------------------------------------------------------------------------------


def test_fail_next_with_an_html_page(server: RedcapStandin) -> None:
    """5xx with Apache's HTML page, ``times`` in a row, then REDCap answers again."""
    server.faults.fail_next(503, times=2)
    for _ in range(2):
        failed = post(server, content="version")
        assert failed.status_code == 503
        assert failed.headers["Content-Type"].startswith("text/html")
        assert failed.text.startswith("<!DOCTYPE HTML")
    assert post(server, content="version").status_code == 200
    assert [r.status for r in server.requests] == [503, 503, 200]


def test_fail_next_429_with_retry_after_and_scoped(server: RedcapStandin) -> None:
    """429 with ``Retry-After``, only for the ``content`` it is scoped to; a REDCap-shaped body on request."""
    server.faults.fail_next(429, retry_after=7, content="record")
    assert post(server, content="version").status_code == 200
    limited = post(server, **RECORD_PARAMS)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    server.faults.fail_next(500, html=False)
    broken = post(server, content="project", format="json")
    assert broken.status_code == 500
    assert broken.json() == {"error": "The server encountered an error processing your request."}
    assert server.faults.pending() == 0


def test_slow_next(server: RedcapStandin) -> None:
    """A slow answer comes late, or not before the client gives up."""
    server.faults.slow_next(0.5)
    started = time.monotonic()
    assert post(server, content="version").status_code == 200
    assert time.monotonic() - started >= 0.5
    server.faults.slow_next(2, content="version")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url, data={"token": FULL, "content": "version"}, timeout=0.3)


def test_cut_off_next(server: RedcapStandin) -> None:
    """The headers promise the whole body; half of it comes and the connection closes."""
    server.faults.cut_off_next(content="record")
    with pytest.raises(httpx.RemoteProtocolError):
        post(server, **RECORD_PARAMS)
    assert len(export(server)) > 1


def test_requests_are_recorded_without_the_token(server: RedcapStandin) -> None:
    """``server.requests``: content and parameters of each request, never the token."""
    export(server, **{"fields[0]": "sex"})
    post(server, content="version")
    assert server.contents() == ["record", "version"]
    recorded = server.requests[0]
    assert recorded.params == RECORD_PARAMS | {"fields[0]": "sex"}
    assert all(FULL not in repr(r) for r in server.requests) and FULL not in repr(server)
