"""Layered config, the job CLI contract and the wrapper script."""
from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from conftest import ROOT
from spectraldl.cli import run
from spectraldl.config import ConfigError, load_config, parse_override


def test_layers_and_overrides(tmp_path):
    base = load_config("local")
    assert base["preprocess"]["n_points"] == 140 and base["_env"] == "local"
    assert base["spark"]["spark.ui.enabled"] == "false"
    cluster = load_config("cluster")
    assert cluster["ingest"]["paths_per_task"] == 5000 and cluster["spark"]["spark.executor.cores"] == "4"
    user = tmp_path / "user.toml"
    user.write_text('[preprocess]\nn_points = 200\nwindow_start = 6500\n[spark]\n"spark.x" = 3\n')
    cfg = load_config("local", user, ["preprocess.n_points=150", "spark.sql.shuffle.partitions=3"])
    assert cfg["preprocess"]["n_points"] == 150            # --set beats --config
    assert cfg["preprocess"]["window_start"] == 6500.0     # int accepted for a float setting
    assert cfg["spark"]["spark.x"] == "3" and cfg["spark"]["spark.sql.shuffle.partitions"] == "3"


@pytest.mark.parametrize("override, message", [
    ("preprocess.n_pionts=3", "unknown setting 'preprocess.n_pionts'"),
    ("preprocess.n_points=abc", "must be int"),
    ("preprocess=3", "is a section"),
    ("nonsense", "expected KEY=VALUE"),
])
def test_bad_overrides_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("local", None, [override])


def test_unknown_env_and_file():
    with pytest.raises(ConfigError, match="unknown environment"):
        load_config("nowhere")
    with pytest.raises(ConfigError, match="not found"):
        load_config("local", "/nonexistent.toml")


def test_parse_override_types():
    assert parse_override("a.b=true") == {"a": {"b": True}}
    assert parse_override("a.b=1.5") == {"a": {"b": 1.5}}
    assert parse_override("a.b=plain text") == {"a": {"b": "plain text"}}


def test_run_exit_codes(caplog):
    def add(p):
        p.add_argument("--x", type=int, required=True)

    def ok(ctx):
        return f"done x={ctx.args.x}"

    def broken(ctx):
        raise RuntimeError("boom")

    assert run("t", "doc", add, ok, ["--x", "1"]) == 0
    assert "done x=1" in caplog.records[-1].getMessage()   # the summary is the last log line
    assert run("t", "doc", add, broken, ["--x", "1"]) == 1
    assert run("t", "doc", add, ok, ["--x", "1", "--set", "bogus.key=1"]) == 2
    with pytest.raises(SystemExit) as e:
        run("t", "doc", add, ok, [])
    assert e.value.code == 2


def test_usage_problems_exit_2_and_bugs_exit_1_with_a_traceback(caplog, tmp_path):
    from spectraldl.errors import UsageError
    from spectraldl.labels import read_labels

    def add(p):
        pass

    def bad_input(ctx):
        read_labels(None, str(tmp_path / "missing.csv"))    # a library check of user input

    def numpy_bug(ctx):
        import numpy as np
        np.zeros(3).reshape(2, 2)                            # a ValueError that is a bug

    assert run("t", "doc", add, bad_input, []) == 2
    assert "bad arguments" in caplog.records[-1].getMessage() and "missing.csv" in caplog.records[-1].getMessage()
    assert run("t", "doc", add, numpy_bug, []) == 1
    assert caplog.records[-1].exc_info is not None          # logged with its traceback
    assert issubclass(UsageError, ValueError)               # callers catching ValueError still work


def test_wrapper_help_and_refusals():
    out = subprocess.run([str(ROOT / "spark-submit.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "setup" in out.stdout and "jobs:" in out.stdout
    bad = subprocess.run([str(ROOT / "spark-submit.sh"), "nosuchjob"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such job 'nosuchjob'" in bad.stderr
    bad = subprocess.run([str(ROOT / "spark-submit.sh"), "--bogus", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown wrapper option" in bad.stderr


def test_launch_time_settings_reach_the_jvm(spark):
    """Driver-JVM settings (``spark.driver.memory``, ``spark.driver.extraJavaOptions``) only work
    when given as the JVM starts: set on the session builder afterwards, Spark ignores them
    silently. conftest gives the shared session a JVM option and a Spark setting to look for."""
    jvm = spark.sparkContext._jvm
    assert jvm.java.lang.System.getProperty("spectraldl.launch.probe") == "yes"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    heap = jvm.java.lang.Runtime.getRuntime().maxMemory()
    assert 0.8 * 2**30 < heap <= 2**30  # conf/local.toml: 1g


def test_wrapper_passes_launch_settings_to_spark_submit(tmp_path):
    """The config's driver-launch settings become spark-submit options; an explicit --conf wins,
    and JVM options from a config file join the wrapper's log4j option."""
    env = {**os.environ, "SPECTRALDL_DRY_RUN": "1"}

    def cmd(*args):
        out = subprocess.run([str(ROOT / "spark-submit.sh"), *args], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return shlex.split(out.stdout)

    c = cmd("ingest", "--input", "x")
    assert c[c.index("spark.driver.memory=1g") - 1] == "--conf"  # conf/local.toml
    log4j = "-Dlog4j2.configurationFile=file:" + str(ROOT / "conf/log4j2.properties")
    assert f"spark.driver.extraJavaOptions={log4j} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC" in c  # the wrapper's + the config's
    c = cmd("--conf", "spark.driver.memory=2g", "ingest")
    assert "spark.driver.memory=2g" in c and "spark.driver.memory=1g" not in c
    f = tmp_path / "c.toml"
    f.write_text('[spark]\n"spark.driver.extraJavaOptions" = "-Xss4m"\n"spark.driver.memory" = "6g"\n')
    c = cmd("--config", str(f), "ingest")
    assert "spark.driver.memory=6g" in c
    assert [x for x in c if x.startswith("spark.driver.extraJavaOptions=")][0].endswith(" -Xss4m")
