#!/usr/bin/env bash
# spectraldl launcher: set-up, demo, tests, and every job through the venv's spark-submit.
#
#   ./spark-submit.sh setup | demo | test [pytest args] | --help
#   ./spark-submit.sh [--master URL] [--conf KEY=VALUE ...] [--config FILE] [--env ENV] JOB [JOB ARGS]
#
# --conf spark.*=... goes to Spark; --conf other.key=value overrides a spectraldl setting (conf/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${SPECTRALDL_VENV:-$ROOT/.venv}"
CACHE="${SPECTRALDL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spectraldl}"
PY="${SPECTRALDL_PYTHON:-python3.11}"
HOROVOD_VERSION="0.28.1"

die() { echo "spark-submit.sh: $*" >&2; exit 2; }
info() { echo "spark-submit.sh: $*" >&2; }

usage() {
  cat <<EOF
usage: ./spark-submit.sh setup | demo | test [PYTEST ARGS] | --help
       ./spark-submit.sh [--master URL] [--conf KEY=VALUE ...] [--config FILE] [--env ENV] JOB [ARGS]

commands:
  setup   create $VENV with the pinned stack (Horovod built against TensorFlow, wheel cached in $CACHE)
  demo    generate a synthetic archive (SPECTRALDL_DEMO_N files, default 3000) and run the pipeline on it
          with the embedded model; prints the report's path (runs setup first if needed)
  test    run the test suite (runs setup first if needed)

wrapper options (before JOB):
  --master URL       Spark master (default local[*]); spark://, yarn, k8s:// ship the package
  --conf KEY=VALUE   spark.* settings go to Spark; any other dotted key overrides conf/ (repeatable)
  --config FILE      a TOML file layered over conf/defaults.toml and conf/<env>.toml
  --env ENV          config environment (default: local for local masters, cluster otherwise)
  The config's driver-launch settings (spark.driver.memory, spark.driver.extraJavaOptions...)
  are passed to spark-submit as --conf; SPECTRALDL_DRY_RUN=1 prints the command instead of running it.

jobs:
EOF
  for f in "$ROOT"/jobs/*.py; do
    [ -e "$f" ] || continue
    n="$(basename "$f" .py)"
    [ "$n" = "__init__" ] && continue
    printf '  %-10s %s\n' "$n" "$(sed -n '1p' "$f" | sed 's/^"""//; s/"""$//')"
  done
  echo
  echo "'./spark-submit.sh JOB --help' lists a job's arguments."
}

requirements_hash() {
  cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/setup.py" | sha256sum | cut -c1-16
}

check_tools() {
  local missing=()
  if ! command -v java >/dev/null 2>&1; then
    missing+=("Java 17 (apt-get install openjdk-17-jdk-headless)")
  elif ! java -version 2>&1 | grep -q 'version "17'; then
    missing+=("Java 17 (found: $(java -version 2>&1 | head -1))")
  fi
  command -v "$PY" >/dev/null 2>&1 || missing+=("Python 3.11 as $PY (or set SPECTRALDL_PYTHON)")
  command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || missing+=("a C++ compiler (apt-get install g++)")
  command -v cmake >/dev/null 2>&1 || missing+=("cmake (apt-get install cmake)")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "spark-submit.sh setup: missing prerequisites:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
  fi
}

setup() {
  local stamp="$VENV/.spectraldl-setup" want
  want="$(requirements_hash)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    info "setup: $VENV is up to date"
    return 0
  fi
  check_tools
  info "setup: creating $VENV"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local pip="$VENV/bin/pip"
  "$pip" install -q --disable-pip-version-check 'pip==24.3.1' 'wheel==0.45.1' 'setuptools<70'
  "$pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"
  # Horovod must be compiled against the installed TensorFlow; the wheel is cached outside the repo.
  mkdir -p "$CACHE/wheels"
  local tfv whl
  tfv="$("$VENV/bin/python" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)"
  whl="$(ls "$CACHE"/wheels/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -1 || true)"
  if [ -z "$whl" ] || [ "$(cat "$CACHE/wheels/horovod.tf-version" 2>/dev/null)" != "$tfv" ]; then
    info "setup: building Horovod $HOROVOD_VERSION against TensorFlow $tfv (Gloo, no MPI; a few minutes)"
    rm -f "$CACHE"/wheels/horovod-*.whl
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_MXNET=1 \
    HOROVOD_WITHOUT_PYTORCH=1 MAKEFLAGS="-j$(nproc)" \
      "$pip" wheel -q --disable-pip-version-check --no-build-isolation --no-deps \
        "horovod==$HOROVOD_VERSION" -w "$CACHE/wheels"
    echo "$tfv" > "$CACHE/wheels/horovod.tf-version"
  fi
  "$pip" install -q --disable-pip-version-check --no-build-isolation --find-links "$CACHE/wheels" \
    "horovod[spark]==$HOROVOD_VERSION" -c "$ROOT/requirements.txt"
  "$pip" install -q --disable-pip-version-check --no-deps --no-build-isolation --use-pep517 -e "$ROOT"
  TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" -c 'import horovod.tensorflow as h, pyspark, petastorm; assert h.gloo_built(), "Horovod without Gloo"'
  echo "$want" > "$stamp"
  info "setup: done ($VENV)"
}

ensure_setup() { [ -f "$VENV/.spectraldl-setup" ] || setup; }

export_runtime_env() {
  export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$VENV/bin/python}"
  export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$VENV/bin/python}"
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
  export SPECTRALDL_CONF_DIR="${SPECTRALDL_CONF_DIR:-$ROOT/conf}"
  export PATH="$VENV/bin:$PATH"
}

package_zip() {
  # The package (model, templates) and conf/ as one zip for --py-files on cluster masters: the same
  # archive 'python -m spectraldl --zip DIR' writes for users of an installed package.
  PYTHONPATH="$ROOT/lib" "$VENV/bin/python" -m spectraldl --zip "$ROOT/dist"
}

run_job() {
  local master="${SPECTRALDL_MASTER:-local[*]}" env="" config="" spark_conf=() sets=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --master) [ $# -ge 2 ] || die "--master needs a value"; master="$2"; shift 2 ;;
      --master=*) master="${1#*=}"; shift ;;
      --conf) [ $# -ge 2 ] || die "--conf needs KEY=VALUE"
              case "$2" in spark.*=*) spark_conf+=(--conf "$2") ;; *=*) sets+=(--set "$2") ;; *) die "--conf $2: expected KEY=VALUE" ;; esac
              shift 2 ;;
      --config) [ $# -ge 2 ] || die "--config needs a file"; config="$2"; shift 2 ;;
      --env) [ $# -ge 2 ] || die "--env needs a value"; env="$2"; shift 2 ;;
      -*) die "unknown wrapper option $1 (see --help)" ;;
      *) break ;;
    esac
  done
  [ $# -ge 1 ] || { usage >&2; exit 2; }
  local job="$1"; shift
  case "$job" in *[!a-z_]*|"") die "bad job name '$job'" ;; esac
  local script="$ROOT/jobs/$job.py"
  [ -f "$script" ] || die "no such job '$job' (see --help)"
  if [ -n "$config" ]; then
    [ -f "$config" ] || die "config file not found: $config"
    config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
  fi
  ensure_setup
  export_runtime_env
  local extra=()
  case "$master" in
    local*) [ -n "$env" ] || env=local ;;
    *) [ -n "$env" ] || env=cluster
       if [ -n "${SPECTRALDL_DRY_RUN:-}" ]; then extra+=(--py-files "$ROOT/dist/spectraldl.zip")  # printed, not built
       else extra+=(--py-files "$(package_zip)"); fi
       if [ -n "${SPECTRALDL_ENV_ARCHIVE:-}" ]; then
         # A venv-pack archive of this venv (see README: clusters) shipped to the executors.
         extra+=(--archives "$SPECTRALDL_ENV_ARCHIVE#environment")
         spark_conf+=(--conf "spark.pyspark.python=./environment/bin/python")
       fi ;;
  esac
  local jobargs=(--env "$env")
  [ -n "$config" ] && jobargs+=(--config "$config")
  # Settings the driver JVM reads as it starts (spark.driver.memory...) must be given to
  # spark-submit: the job's session builder comes too late for them. A --conf given here wins.
  # The config is read (and every setting checked) here, before a JVM starts: a bad setting
  # ends the run at once with one line naming it, exit 2.
  local given=" ${spark_conf[*]+${spark_conf[*]}} " kv java_opts="" launch
  launch="$(PYTHONPATH="$ROOT/lib" "$VENV/bin/python" -c \
           'import sys; from spectraldl.config import print_launch_conf; print_launch_conf(sys.argv[1:])' \
           "${jobargs[@]}" ${sets[@]+"${sets[@]}"})" || exit 2
  while IFS= read -r kv; do
    [ -n "$kv" ] || continue
    case "$given" in *" ${kv%%=*}="*) continue ;; esac
    case "$kv" in spark.driver.extraJavaOptions=*) java_opts="${kv#*=}" ;; *) spark_conf+=(--conf "$kv") ;; esac
  done <<< "$launch"
  case "$given" in
    *" spark.driver.extraJavaOptions="*) ;;
    *) spark_conf+=(--conf "spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:$ROOT/conf/log4j2.properties${java_opts:+ $java_opts}") ;;
  esac
  local cmdline=("$VENV/bin/spark-submit" --master "$master" ${spark_conf[@]+"${spark_conf[@]}"}
                 ${extra[@]+"${extra[@]}"} "$script" "${jobargs[@]}" ${sets[@]+"${sets[@]}"} "$@")
  if [ -n "${SPECTRALDL_DRY_RUN:-}" ]; then printf '%q ' "${cmdline[@]}"; echo; exit 0; fi
  exec "${cmdline[@]}"
}

cmd="${1:-}"
case "$cmd" in
  ""|-h|--help|help) usage ;;
  setup) setup ;;
  test)
    shift; ensure_setup; export_runtime_env
    cd "$ROOT" && exec "$VENV/bin/python" -m pytest tests "$@" ;;
  demo)
    # A synthetic LAMOST archive made on the spot, then the whole pipeline with the embedded model.
    shift; ensure_setup
    demo_dir="${SPECTRALDL_DEMO_DIR:-$ROOT/demo}"
    demo_n="${SPECTRALDL_DEMO_N:-3000}"
    if [ ! -f "$demo_dir/archive/truth.parquet" ]; then
      info "demo: generating $demo_n synthetic LAMOST files in $demo_dir/archive"
      "$ROOT/spark-submit.sh" synth --out "$demo_dir/archive" --n "$demo_n" --seed 1 --kind lamost
    fi
    info "demo: running the pipeline (ingest, score, explore, report) into $demo_dir/warehouse"
    exec "$ROOT/spark-submit.sh" pipeline --input "$demo_dir/archive" --warehouse "$demo_dir/warehouse" "$@" ;;
  *) run_job "$@" ;;
esac
