#!/bin/sh
# The seed-001 (Deep JSCBF) CPU runs behind docs/results/jscbf.md, one after the other
# (one long job at a time on a shared 2-core machine). Usage: sh scripts/jscbf_runs.sh L SEED [STEPS];
# sh scripts/jscbf_runs.sh lamp SEED: the Table I analogue (LAMP NMSE for L = 1..16 at 20 dB, 800 steps).
# Writes runs/jscbf_L<L>_s<SEED>/{jscbf,md_only,djscc}/ (metrics.json, train.csv, ...).
set -e
if [ "$1" = lamp ]; then
    for L in 1 2 4 8 16; do
        nice -n 10 .venv/bin/semflow run graphs/jscbf.yaml --preset quick --seed ${2:-0} --threads 1 \
            --set num_pilots=$L --set lamp_steps=800 --set pre_steps=0 --set steps=0 \
            --sweep "snr_db=[20]" --out runs/jscbf_lamp_s${2:-0}/L$L
    done
    exit 0
fi
L=${1:-4}; SEED=${2:-0}; STEPS=${3:-1000}
OUT=runs/jscbf_L${L}_s${SEED}
COMMON="--preset quick --seed $SEED --threads 1 --set num_pilots=$L --set lamp_steps=400 --set pre_steps=300 --set steps=$STEPS"
nice -n 10 .venv/bin/semflow run graphs/jscbf.yaml $COMMON --out $OUT/jscbf
nice -n 10 .venv/bin/semflow run graphs/jscbf_ablations/jscbf_md_only.yaml $COMMON --out $OUT/md_only
nice -n 10 .venv/bin/semflow run graphs/baselines/djscc_jscbf.yaml --preset quick --seed $SEED --threads 1 \
    --set num_pilots=$L --set lamp_steps=400 --set steps=$STEPS --out $OUT/djscc
