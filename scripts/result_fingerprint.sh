#!/usr/bin/env bash
# sha256 of metrics.json of three short toy trainings (MROVSeg, OVSeg, MGCA) at one thread, run on the
# package in SRC_ROOT (a clone or a worktree at any commit): a refactor that changes no result gives the
# same three hashes on both sides (issue 21).
#   scripts/result_fingerprint.sh <src_root> <out_dir> [python]
set -euo pipefail
SRC=$(cd "$1" && pwd); OUT=$2; PY=${3:-python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$SRC/src WANDB_MODE=disabled
cd "$SRC"
common="trainer.enable_progress_bar=false logger=csv data.num_val=8 data.num_test=32"
$PY -m mrovseg.train $common trainer.max_steps=40 trainer.val_check_interval=40 hydra.run.dir=$OUT/default > $OUT/default.log 2>&1
$PY -m mrovseg.train experiment=ovseg_toy $common trainer.max_steps=40 module.proposal_steps=20 \
    trainer.val_check_interval=40 hydra.run.dir=$OUT/ovseg > $OUT/ovseg.log 2>&1
$PY -m mrovseg.train experiment=mgca_toy $common trainer.max_steps=20 trainer.val_check_interval=20 \
    hydra.run.dir=$OUT/mgca > $OUT/mgca.log 2>&1
sha256sum $OUT/*/metrics.json
