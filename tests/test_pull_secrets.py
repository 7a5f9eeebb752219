"""No secret anywhere: every pull (each success and each failure, from the CLI and from Dagster) leaves no token,
private key, assertion or access token in any output, the inbox, the pull state, the warehouse or Dagster's
storage."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from helpers import TEST_KEY, Generated, run_cli
from peers.bulk_peer import make_client_key
from peers.pull_peers import GROUP, REDCAP_TOKEN, pull_definitions, redcap_peer, seeded_bulk_peer
from peers.redcap_standin import make_token

JWT_START = "eyJ"  # base64url of '{"': the start of every JWT (a client assertion, an access token)


def key_lines(pem: Path) -> list[str]:
    """The private key's base64 lines: any one of them found anywhere is a leak."""
    return [line for line in pem.read_text().splitlines() if line and not line.startswith("-----")]


def test_no_token_key_assertion_or_access_token_is_printed_or_written(demo_clean: Generated, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("rh", "aauh"))
    stranger_pem, stranger_kid, _ = make_client_key(tmp_path / "stranger", "ES384")
    unknown_token = make_token("never-registered")
    outputs: list[str] = []

    def cli(*args: str, expect: int, **env: str) -> None:
        done = run_cli(*args, **env)
        assert done.returncode == expect, (args, done.stderr)
        outputs.extend([done.stdout, done.stderr])

    with redcap_peer(demo_clean.folder("rh")) as redcap, seeded_bulk_peer(tmp_path / "bulk",
                                                                           demo_clean.folder("aauh")) as bulk:
        red = ("pull", "redcap", "--inbox", str(inbox), "--url", redcap.url)
        cli(*red, expect=0, DRG_ETL_REDCAP_TOKEN=REDCAP_TOKEN)
        redcap.clock.advance(hours=3)
        redcap.project.set_value(redcap.project.records()[0], "screening_arm_1", None, None, "nrs_worst", "8")
        cli(*red, expect=0, DRG_ETL_REDCAP_TOKEN=REDCAP_TOKEN)
        cli(*red, expect=2, DRG_ETL_REDCAP_TOKEN=unknown_token)
        redcap.faults.fail_next(503, times=2)
        redcap.faults.fail_next(400, html=False, content="record")  # REDCap's error: not asked again
        cli("--debug", *red, expect=1, DRG_ETL_REDCAP_TOKEN=REDCAP_TOKEN)  # a traceback: exit 1 from Python
        redcap.faults.clear()

        fhir = ("pull", "fhir", "--inbox", str(inbox), "--url", bulk.server.base_url, "--group", GROUP)
        wide = bulk.env("system/*.rs system/*.d")
        bulk.proxy.reject_token("file")
        bulk.proxy.server_error("token", status=503)
        cli(*fhir, expect=0, **wide)
        cli(*fhir, expect=0, **wide)
        cli(*fhir, expect=2, **wide | {"DRG_ETL_FHIR_KEY_FILE": str(stranger_pem), "DRG_ETL_FHIR_KEY_ID": stranger_kid})
        bulk.proxy.fatal_error("kickoff", status=400, code="invalid")
        cli(*fhir, expect=2, **wide)
        cli("--debug", *fhir, expect=1, **wide)
        bulk.proxy.reset()

        dagster_home = tmp_path / "dagster-home"
        dagster_home.mkdir()
        for name, value in {"DRG_ETL_REDCAP_TOKEN": REDCAP_TOKEN, **wide}.items():
            monkeypatch.setenv(name, value)
        location = pull_definitions(inbox, tmp_path / "d.duckdb", redcap.url, bulk, TEST_KEY.decode())
        with dg.DagsterInstance.local_temp(str(dagster_home)) as instance:
            redcap.clock.advance(hours=25)
            for job, center in (("pull_rh", "rh"), ("pull_aauh", "aauh")):
                assert location.resolve_job_def(job).execute_in_process(partition_key=center,
                                                                         instance=instance).success
            monkeypatch.setenv("DRG_ETL_REDCAP_TOKEN", unknown_token)
            failed = location.resolve_job_def("pull_rh").execute_in_process(partition_key="rh", instance=instance,
                                                                             raise_on_error=False)
            assert not failed.success
            event_text = "\n".join(str(e) for e in instance.all_logs(failed.run_id))
            assert "DRG_ETL_REDCAP_TOKEN" in event_text
            outputs.append(event_text)

    warehouse = tmp_path / "w.duckdb"
    cli("load", str(inbox), "--warehouse", str(warehouse), expect=0)
    secrets = {"the REDCap token": REDCAP_TOKEN, "an unregistered REDCap token": unknown_token,
               "a JWT (assertion or access token)": JWT_START, "a bearer header": "Bearer "}
    secrets |= {f"a line of the client's key ({n})": line for n, line in enumerate(key_lines(bulk.pem))}
    secrets |= {f"a line of another key ({n})": line for n, line in enumerate(key_lines(stranger_pem))}
    places: dict[str, bytes] = {f"output {n}": text.encode() for n, text in enumerate(outputs)}
    for root in (inbox, dagster_home):
        places |= {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    places[str(warehouse)] = warehouse.read_bytes()
    assert any(".pull" in place for place in places) and any("pull.json" in place for place in places)
    assert any("dagster-home" in place for place in places)
    found = [(what, place) for what, secret in secrets.items() for place, data in places.items()
             if secret.encode() in data]
    assert found == []
