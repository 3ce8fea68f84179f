#!/bin/sh
# The seed-001 (Deep JSCBF) CPU runs behind docs/results/jscbf.md, one after the other
# (one long job at a time on a shared 2-core machine). Usage: sh scripts/jscbf_runs.sh L SEED [STEPS]
# Writes runs/jscbf_L<L>_s<SEED>/{jscbf,md_only,djscc}/ (metrics.json, train.csv, ...).
set -e
L=${1:-4}; SEED=${2:-0}; STEPS=${3:-1000}
OUT=runs/jscbf_L${L}_s${SEED}
COMMON="--preset quick --seed $SEED --threads 1 --set num_pilots=$L --set lamp_steps=400 --set pre_steps=300 --set steps=$STEPS"
nice -n 10 .venv/bin/semflow run graphs/jscbf.yaml $COMMON --out $OUT/jscbf
nice -n 10 .venv/bin/semflow run graphs/jscbf_ablations/jscbf_md_only.yaml $COMMON --out $OUT/md_only
nice -n 10 .venv/bin/semflow run graphs/baselines/djscc_jscbf.yaml --preset quick --seed $SEED --threads 1 \
    --set num_pilots=$L --set lamp_steps=400 --set steps=$STEPS --out $OUT/djscc
