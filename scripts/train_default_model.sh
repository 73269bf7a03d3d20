#!/usr/bin/env bash
# Reproduce the embedded default model (lib/spectraldl/models/default/):
# 13,000 synthetic Ondřejov spectra (seed 7) + the 29 real Ondřejov files with their labels ->
# trainset -> CNN on 2 Horovod workers -> copied into the package (without optimizer state).
#   scripts/train_default_model.sh [WORKDIR]      (about 5 minutes on 2 cores)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-/tmp/spectraldl-default-model}"
REAL="${SPECTRALDL_REAL_DATA:-$ROOT/../shared/data/real}"
S="$ROOT/spark-submit.sh"
mkdir -p "$W"
[ -f "$W/ondrejov/labels.csv" ] || "$S" --master 'local[2]' synth --out "$W/ondrejov" --n 13000 --seed 7 --kind ondrejov
find "$W/ondrejov" -name '*.fit*' > "$W/paths.txt"
find "$REAL/ondrejov" -name '*.fits' -exec realpath {} \; >> "$W/paths.txt"
# synthetic labels + the real label file's rows for the real files (the synthetic ids reuse real-looking stems)
{ cat "$W/ondrejov/labels.csv"
  grep -F -f <(find "$REAL/ondrejov" -name '*.fits' -printf '/%f\n' | sed 's/\.fits$/,/') "$REAL/labels/ondrejov-dataset.csv"
} > "$W/labels.csv"
rm -rf "$W/wh"
"$S" --master 'local[2]' trainset --input "$W/paths.txt" --labels "$W/labels.csv" --warehouse "$W/wh"
"$S" --master 'local[2]' --conf train.patience=6 train --warehouse "$W/wh" --arch cnn --num-proc 2 --epochs 40
"$ROOT/.venv/bin/python" - "$W/wh/models" "$ROOT/lib/spectraldl/models/default" <<'PY'
import json, shutil, sys
from pathlib import Path
import tensorflow as tf
src = sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "model.json").is_file())[-1]
dst = Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
model = tf.keras.models.load_model(src / "model.keras", compile=False, safe_mode=True)
model.save(dst / "model.keras")  # loaded uncompiled: no optimizer state
for name in ("model.json", "metrics.json", "confusion_matrix.png", "pr_curves.png", "training_curves.png"):
    shutil.copy(src / name, dst / name)
meta = json.loads((dst / "model.json").read_text())
print(f"installed {meta['version']} into {dst}")
PY
