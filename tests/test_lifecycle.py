"""The job lifecycle (spectraldl.lifecycle): locks, pinned manifests and retention, summaries on
failure, empty inputs, setting checks, progress, and the pipeline with --train, through the jobs'
own entry points (jobs/*.py) on synthetic archives."""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from spectraldl.cli import run
from spectraldl.config import ConfigError, load_config
from spectraldl.config_check import unchecked_keys
from spectraldl.lifecycle import JobRun, recorded_grid, task_count
from spectraldl.warehouse import Warehouse


def run_job(name: str, *argv: str) -> int:
    """A job's exit code, run through its own entry point (jobs/<name>.py) in this process."""
    spec = importlib.util.spec_from_file_location(f"job_{name}", ROOT / "jobs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return run(name, mod.__doc__, mod.add_arguments, mod.main, list(argv))


def summaries(wh: Path, job: str) -> list[dict]:
    """The run summaries of ``job``, oldest first (by start time: run ids of one second sort by
    their random part)."""
    runs = [json.loads(Path(p).read_text()) for p in glob.glob(str(wh / "runs" / f"{job}-*.json"))]
    return sorted(runs, key=lambda s: s["started"])


@pytest.fixture(scope="module")
def ondrejov(spark, tmp_path_factory) -> Path:
    """A small synthetic Ondřejov archive with its labels.csv."""
    from spectraldl.synth.job import run_synth
    out = tmp_path_factory.mktemp("synth-ondrejov")
    run_synth(spark, str(out), 150, 3, "ondrejov", load_config("local"))
    return out


def copy_archive(src: Path, dst: Path, n: int | None = None) -> Path:
    files = sorted(p for p in src.rglob("*") if p.is_file() and ".fit" in p.name)[:n]
    for p in files:
        target = dst / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    return dst


# -- settings -------------------------------------------------------------------------------------
def test_every_setting_has_a_range_rule():
    assert unchecked_keys(load_config("local")) == []


@pytest.mark.parametrize("override, key, allowed", [
    ("ingest.paths_per_task=0", "ingest.paths_per_task", ">= 1"),
    ("trainset.fractions=[0.7, 0.2, 0.2]", "trainset.fractions", "summing to 1"),
    ("trainset.fractions=[1.5, -0.25, -0.25]", "trainset.fractions", "each in [0, 1]"),
    ("preprocess.window_start=6600.0", "preprocess.window_start", "window_start < core_start"),
    ("preprocess.window_stop=12000.0", "preprocess.window_stop", "in [3690, 9100]"),
    ("score.rows_per_task=-5", "score.rows_per_task", ">= 1"),
    ("train.learning_rate=0.0", "train.learning_rate", "> 0"),
    ("ingest.spectra_writer=\"fast\"", "ingest.spectra_writer", "one of 'auto', 'spark'"),
    ("ingest.accept_formats=[\"lamost_lrs_image\", \"sdss\"]", "ingest.accept_formats", "reader format ids"),
    ("warehouse.retention_hours=-1.0", "warehouse.retention_hours", ">= 0"),
])
def test_bad_settings_are_refused_naming_the_key_and_range(override, key, allowed):
    with pytest.raises(ConfigError) as exc:
        load_config("local", overrides=[override])
    assert str(exc.value).startswith(key) and allowed in str(exc.value)


def test_bad_setting_exits_2_before_spark_starts(monkeypatch, tmp_path, caplog):
    from spectraldl.cli import JobContext

    def no_spark(self):
        raise AssertionError("Spark was asked for")
    monkeypatch.setattr(JobContext, "spark", no_spark)
    assert run_job("ingest", "--input", str(tmp_path), "--warehouse", str(tmp_path / "w"),
                   "--set", "ingest.paths_per_task=0") == 2
    assert "ingest.paths_per_task = 0: must be >= 1" in caplog.text
    assert not (tmp_path / "w").exists()


def test_wrapper_refuses_a_bad_setting_without_a_jvm(tmp_path):
    t0 = time.time()
    p = subprocess.run([str(ROOT / "spark-submit.sh"), "--conf", "ingest.paths_per_task=0", "ingest",
                        "--input", str(tmp_path), "--warehouse", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=60)
    seconds = time.time() - t0
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["bad configuration: ingest.paths_per_task = 0: must be >= 1"]
    assert seconds < 10 and not (tmp_path / "w").exists()


def test_a_wrapper_option_after_the_job_is_refused_not_mistaken(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # "--conf" must not pass for an abbreviation of "--config"
        run_job("ingest", "--input", str(tmp_path), "--warehouse", str(tmp_path / "w"), "--conf", "ingest.rows_per_file=5")
    assert exc.value.code == 2 and "unrecognized arguments: --conf" in capsys.readouterr().err


def test_task_count_is_whole_waves_never_more_than_items():
    assert task_count(0, 10, 4) == 1
    assert task_count(7, 5000, 8) == 7
    assert task_count(10_001, 5000, 2) == 4            # two waves of two tasks
    assert task_count(1000, 1, 2, max_waves=2) == 4    # listing: at most two waves
    with pytest.raises(ValueError):
        task_count(10, 0, 2)


# -- retention and pinned readers ----------------------------------------------------------------
def _manifest(wh: Warehouse, seq: int, dirs: list[str], committed: str) -> None:
    (Path(wh.root) / "_state").mkdir(parents=True, exist_ok=True)
    doc = {"seq": seq, "tables": {"spectra": dirs}, "runs": [], "committed": committed}
    (Path(wh.root) / "_state" / f"manifest-{seq:09d}.json").write_text(json.dumps(doc))
    for d in dirs:
        (Path(wh.root) / "spectra" / d).mkdir(parents=True, exist_ok=True)


def test_cleanup_keeps_what_a_recently_superseded_manifest_lists(tmp_path):
    wh = Warehouse(str(tmp_path))
    _manifest(wh, 1, ["a"], "2020-01-01T00:00:00.000000Z")
    _manifest(wh, 2, ["b"], "2020-01-02T00:00:00.000000Z")                 # a: superseded long ago
    from spectraldl.warehouse import utc_now
    _manifest(wh, 3, ["c"], utc_now())                                       # b: superseded just now
    (tmp_path / "spectra" / "interrupted").mkdir()                           # never in a manifest
    removed = wh.garbage_collect(retention_hours=24)
    assert sorted(removed) == ["spectra/a", "spectra/interrupted"]
    assert sorted(os.listdir(tmp_path / "spectra")) == ["b", "c"]
    assert wh.garbage_collect(retention_hours=0) == ["spectra/b"]


@pytest.mark.parametrize("retention, survives", [(24.0, True), (0.0, False)])
def test_a_report_finishes_on_its_files_while_an_ingest_commits(spark, tmp_path, synth_archive, monkeypatch,
                                                                retention, survives):
    """A report pins the manifest at its start; an ingest that replaces rows (changed files) and
    cleans up commits while the report runs. With the retention the report finishes with the
    counts it started from; without it (retention 0) the files go from under it."""
    from spectraldl.ingest import run_ingest
    from spectraldl.report import build, plots
    from spectraldl.score import run_score
    arc = copy_archive(synth_archive, tmp_path / "arc", 20)
    cfg = load_config("local", overrides=[f"warehouse.retention_hours={retention}", "report.examples_per_class=2"])
    wh = tmp_path / "wh"
    run_ingest(spark, str(arc), str(wh), cfg)
    run_score(spark, str(wh), cfg)
    before = Warehouse(str(wh)).read_table(spark, "spectra").count()
    changed = sorted(arc.rglob("*.fits*"))[:5]
    real_counts_plot = plots.counts_plot

    def counts_plot_during_an_ingest(by_class, path):
        for p in changed:  # five files change: their rows are rewritten, the old directory superseded
            os.utime(p, (time.time() + 100, time.time() + 100))
        s = run_ingest(spark, str(arc), str(wh), cfg)
        assert s["replaced"] == 5
        real_counts_plot(by_class, path)
    monkeypatch.setattr(plots, "counts_plot", counts_plot_during_an_ingest)
    if survives:
        rep = build.run_report(spark, str(wh), cfg)
        assert rep["status"] == "ok" and rep["scored"] == before
        assert len(glob.glob(os.path.join(os.path.dirname(rep["report"]), "spec-*.png"))) >= 2
    else:
        with pytest.raises(Exception, match="(?i)does not exist|not found|FileNotFound"):
            build.run_report(spark, str(wh), cfg)
        assert summaries(wh, "report")[-1]["status"] == "failed"


def test_train_reads_the_training_set_it_started_from(spark, tmp_path, ondrejov, monkeypatch):
    """A trainset rebuild commits while a train run prepares its data: the train run reads the
    rows of its pinned manifest; its failure (injected after the read) leaves a failed summary."""
    from spectraldl import train
    from spectraldl.trainset import run_trainset
    cfg = load_config("local")
    wh = tmp_path / "wh"
    run_trainset(spark, str(ondrejov), str(ondrejov / "labels.csv"), str(wh), cfg)
    old_rows = Warehouse(str(wh)).read_table(spark, "trainset").count()
    few = copy_archive(ondrejov, tmp_path / "few", 40)
    real_prepare = train.prepare_data
    seen = {}

    def prepare_during_a_rebuild(run, vdir, opts):
        run_trainset(spark, str(few), str(ondrejov / "labels.csv"), str(wh), cfg)
        data = real_prepare(run, vdir, opts)
        seen["n"] = sum(data["n"].values())
        raise RuntimeError("stop after the read (test)")
    monkeypatch.setattr(train, "prepare_data", prepare_during_a_rebuild)
    with pytest.raises(RuntimeError, match="stop after the read"):
        train.run_train(spark, str(wh), cfg, arch="mlp", num_proc=1, epochs=1)
    assert Warehouse(str(wh)).read_table(spark, "trainset").count() < old_rows    # the rebuild committed
    assert seen["n"] == old_rows                                                   # train read its own
    s = summaries(wh, "train")[-1]
    assert s["status"] == "failed" and "stop after the read" in s["error"]


# -- failures, locks, empty inputs ---------------------------------------------------------------
def test_every_jobs_failure_leaves_a_summary(spark, tmp_path, synth_archive, monkeypatch):
    from spectraldl import explore
    from spectraldl.ingest import run_ingest
    from spectraldl.report import build
    from spectraldl.score import run_score
    arc = copy_archive(synth_archive, tmp_path / "arc", 8)
    wh, w = tmp_path / "wh", str(tmp_path / "wh")
    cfg = load_config("local")
    with pytest.raises(RuntimeError):
        run_ingest(spark, str(arc), w, cfg, fail_after="staged")
    run_ingest(spark, str(arc), w, cfg)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nivo://x/nothing-here,0\n")
    assert run_job("trainset", "--input", str(arc), "--labels", str(labels), "--warehouse", w) == 1
    assert run_job("score", "--warehouse", w, "--model", str(tmp_path / "no-model")) == 1
    assert run_job("train", "--warehouse", w, "--epochs", "1") == 1          # no training set
    run_score(spark, w, cfg)

    def boom(*a, **k):
        raise RuntimeError("injected")
    monkeypatch.setattr(explore, "_embed", boom)
    assert run_job("explore", "--warehouse", w) == 1
    monkeypatch.setattr(build, "_report_body", boom)
    assert run_job("report", "--warehouse", w) == 1
    monkeypatch.setattr("spectraldl.score.run_score", boom)
    assert run_job("pipeline", "--input", str(arc), "--warehouse", w, "--set", "pipeline.explore=false") == 1
    for job, error in (("ingest", "fail_after=staged"), ("trainset", "EmptyTrainset"), ("score", "ModelError"),
                       ("train", "no training set"), ("explore", "injected"), ("report", "injected"),
                       ("pipeline", "injected")):
        failed = [s for s in summaries(wh, job) if s["status"] == "failed"]
        assert len(failed) == 1 and error in failed[0]["error"], (job, summaries(wh, job))
        assert failed[0]["finished"] and failed[0]["run_id"]
    assert [s["status"] for s in summaries(wh, "ingest")].count("ok") == 2       # the pipeline's stage too
    assert not os.path.exists(wh / "_state" / "lock") and os.listdir(wh / "_staging") == []


def test_a_locked_warehouse_refuses_every_writing_job_and_break_lock_works(spark, tmp_path, synth_archive, ondrejov,
                                                                            caplog):
    from spectraldl.ingest import run_ingest
    arc = copy_archive(synth_archive, tmp_path / "arc", 6)
    w = str(tmp_path / "wh")
    cfg = load_config("local")
    run_ingest(spark, str(arc), w, cfg)
    wh = Warehouse(w)
    small = ["--set", "train.threads=1", "--set", "train.batch_size=32", "--set", "pipeline.explore=false"]
    jobs = {
        "ingest": ["--input", str(arc), "--warehouse", w],
        "trainset": ["--input", str(ondrejov), "--labels", str(ondrejov / "labels.csv"), "--warehouse", w],
        "score": ["--warehouse", w],
        "train": ["--warehouse", w, "--arch", "mlp", "--num-proc", "1", "--epochs", "1", *small],
        "pipeline": ["--input", str(arc), "--warehouse", w, *small],
    }
    for job, argv in jobs.items():
        wh.acquire_lock("other-run", "ingest")  # held by this (live) process: not stale
        caplog.clear()
        assert run_job(job, *argv) == 1, job
        assert "is locked by ingest run other-run" in caplog.text and "--break-lock" in caplog.text
        refused = [s for s in summaries(Path(w), job) if s["status"] == "failed"]
        assert len(refused) == 1 and refused[0]["error"].startswith("LockedError"), job
        assert run_job(job, *argv, "--break-lock") == 0, (job, caplog.text[-2000:])
        assert "breaking the lock of run other-run" in caplog.text
        assert not os.path.exists(os.path.join(w, "_state", "lock")), job
    models = [d for d in glob.glob(os.path.join(w, "models", "*")) if os.path.isfile(os.path.join(d, "model.json"))]
    assert len(models) == 1  # train published its version


def test_a_pipeline_whose_every_file_is_rejected_exits_0_with_a_report_saying_so(spark, tmp_path, caplog):
    arc = tmp_path / "arc"
    arc.mkdir()
    for i in range(4):
        (arc / f"spec-{i}.fits").write_bytes(b"<html>not a FITS file</html>")
    w = tmp_path / "wh"
    assert run_job("pipeline", "--input", str(arc), "--warehouse", str(w)) == 0
    assert "rejected 4" in caplog.text
    html = Path(glob.glob(str(w / "reports" / "*" / "index.html"))[-1]).read_text()
    assert "every file was rejected" in html and "not_fits 4" in html
    assert summaries(w, "score")[-1]["nothing_to_do"].startswith("the spectra table is empty")
    assert summaries(w, "report")[-1]["status"] == "ok"
    cat = pd.read_csv(glob.glob(str(w / "reports" / "*" / "catalogue.csv"))[-1])
    assert len(cat) == 0 and "designation" in cat.columns
    assert run_job("score", "--warehouse", str(w)) == 0           # on its own too
    assert "nothing to do (the spectra table is empty" in caplog.text


# -- progress and grids ---------------------------------------------------------------------------
def test_progress_lines_come_from_spark_on_long_stages(spark, tmp_path):
    cfg = load_config("local", overrides=["logging.progress_seconds=1.0"])

    def slow(it):
        time.sleep(1.5)
        yield sum(1 for _ in it)
    with JobRun(spark, "explore", str(tmp_path / "w"), cfg) as run:
        run.describe("sleep over 40 files in 4 tasks")
        assert spark.sparkContext.parallelize(range(40), 4).mapPartitions(slow).sum() == 40
        lines = run.progress_lines
    assert lines, "no progress line"
    assert all(line.startswith(f"explore {run.run_id}: sleep over 40 files in 4 tasks: ") for line in lines)
    assert any("/4 tasks" in line and "tasks/s" in line and ("left" in line) for line in lines)
    assert any("files" in line.split(": ")[-1] for line in lines)


def test_readers_take_the_grid_recorded_with_the_vectors(spark, tmp_path, synth_archive):
    from spectraldl.explore import run_explore
    from spectraldl.ingest import run_ingest
    from spectraldl.preprocess import PreprocessSettings
    arc = copy_archive(synth_archive, tmp_path / "arc", 36)
    w = str(tmp_path / "wh")
    made = load_config("local", overrides=["preprocess.n_points=24", "preprocess.window_stop=6700.0"])
    run_ingest(spark, str(arc), w, made)
    m = Warehouse(w).manifest()
    pid = PreprocessSettings.from_config(made["preprocess"]).fingerprint()
    grid = recorded_grid(m, pid, 24)
    assert len(grid) == 24 and grid[0] == 6519.0 and grid[-1] == 6700.0
    s = run_explore(spark, w, load_config("local"))  # today's config says 140 points, 30 components
    assert s["status"] == "ok" and s["rows"]["archive"] > 30 and s["pca_components"] == 24


def test_pipeline_with_train_end_to_end(spark, tmp_path, synth_archive, ondrejov):
    """``pipeline --train``: trainset and train under the pipeline's lock, then the archive scored
    with the new model and a report written."""
    w = tmp_path / "wh"
    assert run_job("pipeline", "--input", str(synth_archive), "--warehouse", str(w), "--train",
                   "--set", f"pipeline.train_input={ondrejov}", "--set", f"pipeline.train_labels={ondrejov / 'labels.csv'}",
                   "--set", "train.arch=\"mlp\"", "--set", "train.epochs=2", "--set", "train.threads=1",
                   "--set", "train.batch_size=32", "--set", "pipeline.explore=false") == 0
    p = summaries(w, "pipeline")[-1]
    assert p["status"] == "ok" and sorted(p["stages"]) == ["ingest", "report", "score", "train", "trainset"]
    version = p["model_version"]
    assert (w / "models" / version / "model.json").is_file()
    for job in ("trainset", "train", "ingest", "score", "report"):
        s = summaries(w, job)[-1]
        assert s["status"] == "ok" and s["parent_run"] == f"pipeline-{p['run_id']}", job
    score = summaries(w, "score")[-1]
    assert score["model_version"] == version and score["scored"] == p["ingested"] > 40
    assert Path(p["report"]).is_file() and version in Path(p["report"]).read_text()
    assert not (w / "_state" / "lock").exists()
    print(f"pipeline --train on {p['seen']} LAMOST + 150 Ondřejov synthetic files: {p['seconds']:.1f} s")


def test_documented_job_options_through_the_entry_points(spark, tmp_path, synth_archive, caplog):
    """--retry-rejects, --rescore, --model-version and --top as a user types them."""
    arc = copy_archive(synth_archive, tmp_path / "arc", 10)
    (arc / "junk.fits").write_bytes(b"not a FITS file")
    w = str(tmp_path / "wh")
    assert run_job("ingest", "--input", str(arc), "--warehouse", w) == 0
    assert run_job("ingest", "--input", str(arc), "--warehouse", w, "--retry-rejects") == 0
    s = summaries(tmp_path / "wh", "ingest")
    assert s[0]["rejected_by_reason"]["not_fits"] == 1 and s[0]["ingested"] >= 9
    assert s[1]["skipped"] == s[0]["ingested"] and s[1]["rejected"] == 1          # only the reject parsed again
    assert run_job("score", "--warehouse", w) == 0
    assert run_job("score", "--warehouse", w) == 0                                # nothing new
    assert summaries(tmp_path / "wh", "score")[-1]["nothing_to_do"].startswith("all ")
    assert run_job("score", "--warehouse", w, "--rescore") == 0
    rescored = summaries(tmp_path / "wh", "score")[-1]
    assert rescored["scored"] == s[0]["ingested"] and not rescored.get("nothing_to_do")
    version = rescored["model_version"]
    caplog.clear()
    assert run_job("report", "--warehouse", w, "--top", "3", "--model-version", version) == 0
    rep = summaries(tmp_path / "wh", "report")[-1]
    assert rep["model_version"] == version and rep["inputs"]["top"] == 3 and rep["scored"] == s[0]["ingested"]


def test_demo_command(tmp_path):
    """``./spark-submit.sh demo``: a synthetic archive and the whole pipeline with the embedded model."""
    env = {**os.environ, "SPECTRALDL_DEMO_DIR": str(tmp_path / "demo"), "SPECTRALDL_DEMO_N": "60"}
    p = subprocess.run([str(ROOT / "spark-submit.sh"), "demo"], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    last = [line for line in (p.stdout + p.stderr).splitlines() if " INFO spectraldl: pipeline " in line][-1]
    assert "files seen 60 = skipped 0 + ingested" in last and last.endswith("s)") and "index.html" in last
    assert glob.glob(str(tmp_path / "demo" / "warehouse" / "reports" / "*" / "index.html"))
