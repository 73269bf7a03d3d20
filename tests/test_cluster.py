"""A standalone Spark cluster on 127.0.0.1 (a master and a worker started here) runs the pipeline
through spark-submit.sh exactly as on a real cluster: package zip via --py-files, conf/cluster.toml.
Two successive runs: the second does no ingest or scoring work and says so; new files alone next."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REAL, ROOT

pytestmark = pytest.mark.realdata
import pyspark  # noqa: E402

SPARK_HOME = Path(pyspark.__file__).resolve().parent
FILES = ["podondra_bt-spectraldl/bt-cmi-lamost.fits", "LiangJunC_PyLASP/3703110.fits",
         "podondra_spectraml/spec-55916-B5591606_sp01-001.fits", "ChenfaZheng_LAMOST-SBC/101008.fits"]
MORE = ["podondra_bt-spectraldl/spec-56284-GAC122S02V2_sp14-183.fits", "LiangJunC_PyLASP/3706009.fits"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(tmp / "logs"), "SPARK_WORKER_DIR": str(tmp / "work")}
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    cls = str(SPARK_HOME / "bin/spark-class")
    master = subprocess.Popen([cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                               "--webui-port", str(free_port())], env=env, stdout=open(tmp / "master.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    worker = subprocess.Popen([cls, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "2",
                               "--memory", "3g", "--webui-port", str(free_port()), "--work-dir", str(tmp / "work")],
                              env=env, stdout=open(tmp / "worker.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline and "Successfully registered with master" not in (tmp / "worker.log").read_text():
        time.sleep(0.5)
    assert "Successfully registered with master" in (tmp / "worker.log").read_text(), (tmp / "worker.log").read_text()[-2000:]
    yield url, tmp
    for p in (worker, master):
        os.killpg(p.pid, 15)
        p.wait(timeout=30)


def pipeline(url, archive, wh, *extra):
    cmd = [str(ROOT / "spark-submit.sh"), "--master", url, "--conf", "spark.executor.memory=1g",
           "--conf", "spark.executor.cores=2", "--conf", "spark.cores.max=2", "--conf", "pipeline.explore=false",
           "pipeline", "--input", str(archive), "--warehouse", str(wh), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_pipeline_on_standalone_cluster(cluster):
    url, tmp = cluster
    archive, wh = tmp / "archive", tmp / "wh"
    for f in FILES:
        (archive / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / "lamost" / f, archive / f)
    first = pipeline(url, archive, wh)
    assert "files seen 4 = skipped 0 + ingested 4 + rejected 0" in first and "scored 4" in first
    report = Path(first.rsplit("report ", 1)[1].split(" (")[0])
    assert report.is_file() and (report.parent / "catalogue.vot").is_file()
    assert "bt-cmi" in (report.parent / "catalogue.csv").read_text() or \
        "LAMOST J075703.80+025653.6" in (report.parent / "catalogue.csv").read_text()   # BT CMi is a candidate
    apps = list((tmp / "work").glob("app-*"))
    assert apps, "no executor ran on the standalone worker"
    second = pipeline(url, archive, wh)
    assert "skipped 4 + ingested 0" in second and "scored 0" in second and "nothing new" in second
    for f in MORE:
        (archive / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / "lamost" / f, archive / f)
    third = pipeline(url, archive, wh)
    assert "files seen 6 = skipped 4 + ingested 2" in third and "scored 2 (skipped 4)" in third
    dry = subprocess.run([str(ROOT / "spark-submit.sh"), "--master", "local[1]", "pipeline", "--input", str(archive),
                          "--warehouse", str(wh), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert "6 files found" in dry.stdout and "0 new" in dry.stdout
