#!/usr/bin/env bash
# Reproduce the embedded default model (lib/spectraldl/models/default/):
# 13,000 synthetic Ondřejov spectra (seed 7) + the 29 real Ondřejov files with their labels ->
# trainset (the 22 cross-matched stars and BT CMi held out: split "holdout", an external test) ->
# CNN on 2 Horovod workers -> copied into the package (without optimizer state) with
# trainset-groups.csv (every star: split, spectra, synthetic/real) and holdout.txt.
#   scripts/train_default_model.sh [WORKDIR]      (about 4-5 minutes on 2 cores)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-/tmp/spectraldl-default-model}"
REAL="${SPECTRALDL_REAL_DATA:-$ROOT/../shared/data/real}"
S="$ROOT/spark-submit.sh"
DEST="${SPECTRALDL_MODEL_DEST:-$ROOT/lib/spectraldl/models/default}"   # elsewhere to compare a rerun
mkdir -p "$W"
[ -f "$W/ondrejov/labels.csv" ] || "$S" --master 'local[2]' synth --out "$W/ondrejov" --n 13000 --seed 7 --kind ondrejov
find "$W/ondrejov" -name '*.fit*' > "$W/paths.txt"
find "$REAL/ondrejov" -name '*.fits' -exec realpath {} \; >> "$W/paths.txt"
# synthetic labels + the real label file's rows for the real files (the synthetic ids reuse real-looking stems)
{ cat "$W/ondrejov/labels.csv"
  grep -F -f <(find "$REAL/ondrejov" -name '*.fits' -printf '/%f\n' | sed 's/\.fits$/,/') "$REAL/labels/ondrejov-dataset.csv"
} > "$W/labels.csv"
# the external test: the Ondřejov spectra of the 22 cross-matched stars and of BT CMi never reach train/val/test
{ echo "# held out of training and validation: the 22 cross-matched stars (Ondřejov file stems) and BT CMi"
  tail -n +2 "$REAL/labels/cross-matched-pairs.csv" | cut -d, -f1 | xargs -n1 basename | sed 's/\.fits$//'
  printf '%s\n' "BT CMi" bt-cmi-ondrejov samples_bt-cmi-ondrejov
} > "$W/holdout.txt"
rm -rf "$W/wh"
"$S" --master 'local[2]' trainset --input "$W/paths.txt" --labels "$W/labels.csv" --warehouse "$W/wh" \
  --holdout "$W/holdout.txt"
"$S" --master 'local[2]' --conf train.patience=6 train --warehouse "$W/wh" --arch cnn --num-proc 2 --epochs 40
"$ROOT/.venv/bin/python" - "$W/wh" "$DEST" "$(realpath "$REAL")" "$W/holdout.txt" <<'PY'
import json, shutil, sys
from pathlib import Path
import pandas as pd
import tensorflow as tf
wh = Path(sys.argv[1])
src = sorted(p for p in (wh / "models").iterdir() if (p / "model.json").is_file())[-1]
dst = Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
model = tf.keras.models.load_model(src / "model.keras", compile=False, safe_mode=True)
model.save(dst / "model.keras")  # loaded uncompiled: no optimizer state
for name in ("model.json", "metrics.json", "confusion_matrix.png", "pr_curves.png", "training_curves.png"):
    shutil.copy(src / name, dst / name)
shutil.copy(sys.argv[4], dst / "holdout.txt")
# what the model saw: every star (group) with its split, number of spectra and origin
run = sorted((wh / "trainset").glob("run-*"))[-1]
ts = pd.read_parquet(run, columns=["group", "split", "source_path"])
real = ts["source_path"].str.replace(r"^file:/*", "/", regex=True).str.startswith(sys.argv[3] + "/")
ts["source"] = real.map({True: "real", False: "synthetic"})
groups = (ts.groupby(["group", "split", "source"]).size().rename("n_spectra").reset_index()
          [["group", "split", "n_spectra", "source"]].sort_values(["source", "split", "group"]))
groups.to_csv(dst / "trainset-groups.csv", index=False)
print(groups[groups["source"] == "real"].to_string(index=False))
meta = json.loads((dst / "model.json").read_text())
print(f"installed {meta['version']} into {dst}")
PY
