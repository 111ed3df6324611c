"""The job store survives a torn last line; a restarted supervisor neither loses nor repeats an
export that was running (it finds the version the export published, or queues it again)."""

from __future__ import annotations

import json
import shutil

from serving.config import JobsSection
from serving.jobs.store import EVENTS_FILE, JobStore
from serving.jobs.supervisor import JobSupervisor


def test_a_torn_last_event_is_cut_off_and_the_job_keeps_its_last_complete_state(tmp_path):
    store = JobStore(tmp_path)
    job = store.create("train", name="a")
    store.update(job.id, "started", state="running", attempts=1)
    log = tmp_path / job.id / EVENTS_FILE
    complete = log.read_bytes()
    with open(log, "ab") as handle:  # a SIGKILL inside write(): half a line
        handle.write(b'{"sequence": 3, "at": 1.0, "mess')
    again = JobStore(tmp_path)
    assert again.get(job.id).state == "running" and again.get(job.id).attempts == 1
    assert log.read_bytes() == complete  # the torn line is gone, so the next append starts clean
    again.update(job.id, "step 1", step=1)
    assert [json.loads(x)["sequence"] for x in log.read_text().splitlines()] == [1, 2, 3]


def test_a_folder_without_a_complete_first_event_is_not_a_job(tmp_path):
    (tmp_path / "0001-train").mkdir()  # the gateway died before acknowledging it
    (tmp_path / ".staging-abc").mkdir()
    store = JobStore(tmp_path)
    assert store.jobs() == [] and not (tmp_path / ".staging-abc").exists()
    assert store.create("train").id == "0001-train"  # the unacknowledged folder was cleared away


def _publish_trained(models_dir, pack, name: str, version: int, run_dir) -> None:
    """A version whose card says it was trained in ``run_dir`` (a copy of a pack card, re-labelled)."""
    folder = models_dir / name / str(version)
    shutil.copytree(pack / "resemblyzer-ge2e" / "1", folder)
    card = json.loads((folder / "card.json").read_text())
    card.update(name=name, version=version)
    card["provenance"] = {"kind": "training", "run": str(run_dir), "step": 3, "recipe": "trainer: {steps: 3}"}
    (folder / "card.json").write_text(json.dumps(card))


def test_an_export_running_at_a_crash_is_recovered_once(models_dir, tmp_path):
    models, run_dir = tmp_path / "models", tmp_path / "run"
    run_dir.mkdir()
    store = JobStore(tmp_path / "jobs")
    published = store.create("export", run_dir=str(run_dir))
    store.update(published.id, "started", state="running", attempts=1, published_before=[])
    unpublished = store.create("export", run_dir=str(run_dir))
    store.update(unpublished.id, "started", state="running", attempts=1, published_before=[["tiny", 1]])
    _publish_trained(models, models_dir, "tiny", 1, run_dir)

    JobSupervisor(tmp_path / "jobs", JobsSection(devices="cpu"), models).recover()
    again = JobStore(tmp_path / "jobs")
    done = again.get(published.id)
    assert (done.state, done.model_name, done.model_version) == ("succeeded", "tiny", 1)
    # The second export had already seen v1 before it started: it published nothing, so it runs again.
    assert again.get(unpublished.id).state == "queued" and again.get(unpublished.id).model_name == ""


def test_an_activation_running_at_a_crash_is_settled_from_the_active_file(tmp_path):
    from serving.config import load_config
    from serving.gallery import generations as gens
    from serving.services.model_activation import settle

    config = load_config(overrides={"paths.var": str(tmp_path / "var")})
    root = tmp_path / "var" / "galleries" / "speaker"
    root.mkdir(parents=True)
    store = JobStore(tmp_path / "var" / "jobs")
    swapped = store.create("activate", state="running", modality="speaker", model_name="new", model_version=2)
    not_swapped = store.create("activate", state="running", modality="speaker", model_name="other", model_version=1)
    old = gens.Generation(".", "old", 1, 256)
    gens.write_state(root, gens.State(gens.Generation("gen-0002", "new", 2, 192), old))  # the swap was reached

    JobSupervisor(
        tmp_path / "var" / "jobs", JobsSection(devices="cpu"), tmp_path, lambda j: settle(config, j)
    ).recover()
    again = JobStore(tmp_path / "var" / "jobs")
    assert again.get(swapped.id).state == "succeeded"
    left = again.get(not_swapped.id)
    assert left.state == "failed" and "new v2 is still active" in left.error
