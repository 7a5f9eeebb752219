"""``drg-etl pull fhir`` against a real Bulk Data server (sekmet-fhir on 127.0.0.1) behind the fault proxy.

The server is seeded with the clean demo's aauh delivery. A pulled delivery loads to the same figures as the
generated files; an incremental pull after changes gives a full pull's bytes; every fault the IG lets a server
produce is survived (or ends the pull with the server's word and nothing written); a killed pull leaves no
half delivery and the next one finishes; the job is deleted where the server allows it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TEST_KEY, Generated, reading, run_cli
from peers.bulk_peer import delete_resource, http_date, make_client_key, put_resource
from peers.pull_peers import GROUP, REDCAP_TOKEN, BulkPeer, redcap_peer, seeded_bulk_peer

from drg_etl.analysis.national import national_analysis
from drg_etl.core.delivery import PULL_FOLDER, PULL_RECORD
from drg_etl.pipeline.load import load_inbox
from drg_etl.pull.http import CredentialRefused, PullError
from drg_etl.pull.redcap import pull_redcap
from drg_etl.pull.state import PullState

DATA_FILES = ["Patient.ndjson", "Condition.ndjson", "Procedure.ndjson", "Device.ndjson", "Observation.ndjson"]
END = dt.date(2019, 12, 31)  # the generated deliveries' cutoff: the observation end the figures are compared at
CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_deliveries.py"


@pytest.fixture
def peer(tmp_path: Path, demo_clean: Generated) -> Iterator[BulkPeer]:
    """A fresh sekmet (behind the proxy) seeded with the clean demo's aauh resources and a Group of its patients."""
    with seeded_bulk_peer(tmp_path, demo_clean.folder("aauh")) as running:
        yield running


def data_bytes(folder: Path) -> dict[str, bytes]:
    """The delivery's data files, byte for byte."""
    return {name: (folder / name).read_bytes() for name in DATA_FILES}


def no_half_delivery(inbox: Path) -> None:
    """Every aauh folder in the inbox is a whole pulled delivery: each data file and its pull.json."""
    for folder in (inbox / "aauh").iterdir() if (inbox / "aauh").exists() else []:
        assert sorted(p.name for p in folder.iterdir()) == sorted([*DATA_FILES, PULL_RECORD]), folder


def figures(inbox: Path, warehouse: Path) -> dict:
    """Load the inbox and give the national figures at the generated deliveries' cutoff, and aauh's file counts."""
    load_inbox(inbox, warehouse, TEST_KEY)
    with reading(warehouse) as con:
        analysis = national_analysis(con, observation_end=END)
        files = sorted(con.execute("""select f.file, f.rows_read, f.rows_loaded, f.rows_quarantined
            from quality.delivery_files f join quality.deliveries d using (delivery_id)
            where d.center = 'aauh'""").fetchall())
    return {"analysis": analysis, "aauh files": files}


def test_a_pulled_delivery_loads_to_the_same_figures_as_the_generated_files(peer: BulkPeer, demo_clean: Generated,
                                                                           tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("aauh"))
    done = run_cli("pull", "fhir", "--center", "aauh", "--inbox", str(inbox), "--url", peer.server.base_url,
                   "--group", GROUP, **peer.env())
    assert done.returncode == 0, done.stderr
    (folder,) = (inbox / "aauh").iterdir()
    assert f"wrote {folder}" in done.stdout and "Observation.ndjson" in done.stdout
    record = json.loads((folder / PULL_RECORD).read_text())
    assert record["mode"] == "full" and record["request"]["_since"] is None
    kickoff = record["request"]["kickoff"]
    assert f"/Group/{GROUP}/$export?_type=Patient,Condition,Procedure,Device,Observation" in kickoff
    assert folder.name == record["transactionTime"][:10] or folder.name > record["transactionTime"][:10]
    for name in DATA_FILES:
        lines = (folder / name).read_text().splitlines()
        assert record["files"][name]["records"] == len(lines) == len(list(
            (demo_clean.folder("aauh") / name).read_text().splitlines()))
        ids = [json.loads(line)["id"] for line in lines]
        assert ids == sorted(ids), "a canonical order: by id"
    pulled = figures(inbox, tmp_path / "pulled.duckdb")
    generated = figures(demo_clean.inbox, tmp_path / "generated.duckdb")
    assert pulled == generated
    assert [r.target for r in peer.proxy.requests_to("status", "DELETE")] == ["status"] or \
        "did not let the client delete" in done.stdout


def test_an_incremental_pull_after_changes_gives_a_full_pulls_bytes(peer: BulkPeer, tmp_path: Path) -> None:
    inbox, fresh = tmp_path / "inbox", tmp_path / "fresh"
    first = peer.pull(inbox)
    assert first.written and first.mode == "full"
    observation = next(json.loads(v) for k, v in peer.lines.items() if k.startswith("Observation/"))
    observation["valueQuantity"]["value"] = 9.9
    put_resource(peer.server, observation, token=peer.admin)
    new = dict(observation, id="a-new-observation")
    put_resource(peer.server, new, token=peer.admin)
    condition = next(k for k in peer.lines if k.startswith("Condition/")).split("/")[1]
    delete_resource(peer.server, "Condition", condition, token=peer.admin)
    second = peer.pull(inbox)
    assert second.mode == "incremental" and second.written and second.replaced
    kickoffs = peer.proxy.requests_to("kickoff")
    assert kickoffs[-1].params["_since"] == first.record["transactionTime"], "_since is the server's own time"
    assert second.record["received"]["deleted"] == 1 and second.record["changes"]["keys_changed"] == 2
    full = peer.pull(fresh, full=True)
    assert full.mode == "full"
    assert data_bytes(second.folder) == data_bytes(full.folder)
    text = (second.folder / "Observation.ndjson").read_text()
    assert "a-new-observation" in text and '"value":9.9' in text
    assert condition not in (second.folder / "Condition.ndjson").read_text()


def test_a_second_pull_the_same_day_with_nothing_changed_writes_nothing(peer: BulkPeer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    first = peer.pull(inbox)
    before = {p: p.stat().st_mtime_ns for p in first.folder.iterdir()}
    again = run_cli("pull", "fhir", "--inbox", str(inbox), "--url", peer.server.base_url, "--group", GROUP,
                    **peer.env())
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout and "wrote" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in first.folder.iterdir()} == before
    assert PullState.load(inbox, "aauh").job is None


def test_retry_after_in_seconds_and_as_a_date_transient_errors_and_a_bare_500_are_waited_out(peer: BulkPeer,
                                                                                           tmp_path: Path) -> None:
    peer.proxy.rate_limit("kickoff", retry_after=2)
    peer.proxy.rate_limit("status", retry_after=4, as_http_date=True)
    peer.proxy.transient_error("status", times=2)
    peer.proxy.server_error("file", status=503)
    result = peer.pull(tmp_path / "inbox")
    assert result.written
    assert 2.0 in peer.waits and any(2.0 <= w <= 5.0 for w in peer.waits[1:]), peer.waits
    assert peer.proxy.pending_faults == []
    assert [e.status for e in peer.proxy.requests_to("kickoff")][:2] == [429, 202]


def test_an_expired_job_starts_again_from_kick_off_with_the_same_since(peer: BulkPeer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    first = peer.pull(inbox)
    observation = next(json.loads(v) for k, v in peer.lines.items() if k.startswith("Observation/"))
    put_resource(peer.server, dict(observation, status="amended"), token=peer.admin)  # a file to expire
    peer.proxy.clear_log()
    peer.proxy.expire_job("file", status=410)
    second = peer.pull(inbox)
    kickoffs = peer.proxy.requests_to("kickoff")
    assert len(kickoffs) == 2 and {k.params["_since"] for k in kickoffs} == {first.record["transactionTime"]}
    assert any("started again from kick-off" in note for note in second.notes)
    peer.proxy.clear_log()
    peer.proxy.expire_job("status", status=404)
    third = peer.pull(inbox)
    assert len(peer.proxy.requests_to("kickoff")) == 2 and not third.written


@pytest.mark.parametrize("fault", ["close", "short", "corrupt", "token"])
def test_a_broken_download_or_a_token_expiring_during_it_is_fetched_again(peer: BulkPeer, tmp_path: Path,
                                                                         fault: str) -> None:
    reference = peer.pull(tmp_path / "reference")
    peer.proxy.clear_log()
    if fault == "corrupt":
        peer.proxy.corrupt_file(resource_type="Observation")
    elif fault == "token":
        peer.proxy.reject_token("file")
    else:
        peer.proxy.truncate_file(mode=fault, resource_type="Observation")
    result = peer.pull(tmp_path / "inbox")
    assert data_bytes(result.folder) == data_bytes(reference.folder)
    files = peer.proxy.requests_to("file")
    assert len(files) == 6 and peer.proxy.pending_faults == []  # five files, one of them twice
    if fault == "token":
        assert [e.status for e in files].count(401) == 1


def test_an_interrupted_pull_resumes_its_job_instead_of_starting_another(peer: BulkPeer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    peer.proxy.server_error("status", status=502, times=None)
    with pytest.raises(PullError, match="HTTP 502 after 2 attempts"):
        peer.pull(inbox, attempts=2)
    assert not (inbox / "aauh").exists()
    job = PullState.load(inbox, "aauh").job
    assert job is not None and job["status_url"].startswith(peer.server.base_url)
    peer.proxy.reset()
    result = peer.pull(inbox)
    assert result.written and "resumed the unfinished export job" in result.notes
    assert len(peer.proxy.requests_to("kickoff")) == 1


def test_a_fatal_error_ends_the_pull_with_the_servers_word_and_nothing_written(peer: BulkPeer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    peer.proxy.fatal_error("kickoff", status=400, code="invalid")
    refused = run_cli("pull", "fhir", "--inbox", str(inbox), "--url", peer.server.base_url, "--group", GROUP,
                      **peer.env())
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: the $export kick-off was refused: HTTP 400") and "Traceback" not in \
        refused.stderr
    assert not (inbox / "aauh").exists()
    peer.proxy.reset()
    peer.proxy.fatal_error("status", status=500, code="exception")
    with pytest.raises(PullError, match="the FHIR server failed: HTTP 500"):
        peer.pull(inbox)
    assert len(peer.proxy.requests_to("status")) == 1, "a 500 that says it is final is not asked again"
    assert not (inbox / "aauh").exists()
    assert PullState.load(inbox, "aauh").job is None, "a failed job is not resumed"
    peer.proxy.reset()
    assert peer.pull(inbox).written and len(peer.proxy.requests_to("kickoff")) == 3


def test_a_refused_credential_exits_2_naming_the_settings(peer: BulkPeer, tmp_path: Path) -> None:
    stranger, kid, _jwks = make_client_key(tmp_path / "other", "ES384")
    env = peer.env() | {"DRG_ETL_FHIR_KEY_FILE": str(stranger), "DRG_ETL_FHIR_KEY_ID": kid}
    refused = run_cli("pull", "fhir", "--inbox", str(tmp_path / "inbox"), "--url", peer.server.base_url, **env)
    assert refused.returncode == 2, refused.stderr
    assert "the token endpoint refused the client" in refused.stderr
    assert "DRG_ETL_FHIR_CLIENT_ID" in refused.stderr and "DRG_ETL_FHIR_KEY_FILE" in refused.stderr
    with pytest.raises(CredentialRefused, match="DRG_ETL_FHIR_SCOPE"):
        peer.pull(tmp_path / "inbox", scope="user/*.rs")


def test_the_job_is_deleted_when_the_scope_allows_it_and_noted_when_not(peer: BulkPeer, tmp_path: Path) -> None:
    narrow = peer.pull(tmp_path / "a")
    assert any("did not let the client delete" in note for note in narrow.notes)
    peer.proxy.clear_log()
    wide = peer.pull(tmp_path / "b", scope="system/*.rs system/*.d")
    assert "the export job was deleted on the server" in wide.notes
    (deleted,) = peer.proxy.requests_to("status", "DELETE")
    assert deleted.status in (200, 202, 204)
    files_before = [e for e in peer.proxy.requests if e.target == "file"]
    assert files_before and peer.proxy.requests.index(deleted) > peer.proxy.requests.index(files_before[-1])


def test_a_patient_export_without_a_group(peer: BulkPeer, tmp_path: Path) -> None:
    result = peer.pull(tmp_path / "inbox", group=None)
    assert "/Patient/$export?" in result.record["request"]["kickoff"]
    assert result.counts["Patient.ndjson"] == sum(1 for k in peer.lines if k.startswith("Patient/"))


def test_a_pull_killed_at_random_moments_leaves_no_half_delivery_and_the_next_completes(
        peer: BulkPeer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    reference = peer.pull(tmp_path / "reference")
    env = {k: v for k, v in os.environ.items()} | peer.env() | {"COLUMNS": "250"}
    command = [sys.executable, "-m", "drg_etl.entry", "pull", "fhir", "--inbox", str(inbox), "--url",
               peer.server.base_url, "--group", GROUP, "--full"]
    rng = random.Random(15)
    for _kill in range(5):
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        no_half_delivery(inbox)
        assert not list((inbox / PULL_FOLDER).glob("*.tmp"))
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    no_half_delivery(inbox)
    (folder,) = (inbox / "aauh").iterdir()
    assert data_bytes(folder) == data_bytes(reference.folder)
    assert not list((inbox / PULL_FOLDER).glob("work-*")), "work folders of killed pulls are cleared"


def test_retry_after_as_a_date_in_the_past_means_now(peer: BulkPeer, tmp_path: Path) -> None:
    peer.proxy.rate_limit("status", retry_after=-30, as_http_date=True)
    assert peer.pull(tmp_path / "inbox").written
    assert 0.0 in peer.waits


def test_an_expired_manifest_starts_again_and_error_files_are_kept_in_the_record(peer: BulkPeer,
                                                                                tmp_path: Path) -> None:
    peer.proxy.set_manifest_expires(http_date(-60))
    with pytest.raises(PullError, match="expired 4 times"):
        peer.pull(tmp_path / "a")
    assert len(peer.proxy.requests_to("kickoff")) == 4
    peer.proxy.reset()
    peer.proxy.add_error_file(["Observation/x: the value is not a number"])
    result = peer.pull(tmp_path / "b")
    assert result.written
    assert [e["diagnostics"] for e in result.record["received"]["error"]] == [
        "Observation/x: the value is not a number"]


def test_an_rs384_client(demo_clean: Generated, tmp_path: Path) -> None:
    with seeded_bulk_peer(tmp_path, demo_clean.folder("aauh"), alg="RS384") as rsa_peer:
        assert rsa_peer.credentials().algorithm == "RS384"
        result = rsa_peer.pull(tmp_path / "inbox")
    assert result.written and result.counts["Patient.ndjson"] > 0


@pytest.mark.skipif(not CHECKER.exists(), reason=f"the shared delivery checker ({CHECKER}) is not beside this "
                    "checkout; it exists only in the project's workspace, not in a user's clone")
def test_the_shared_checker_accepts_an_inbox_of_pulled_deliveries(peer: BulkPeer, demo_clean: Generated,
                                                                  tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("aauh", "rh"))
    peer.pull(inbox)
    with redcap_peer(demo_clean.folder("rh")) as redcap:
        pull_redcap(inbox, redcap.url, REDCAP_TOKEN)
    done = subprocess.run([sys.executable, str(CHECKER), str(inbox)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
