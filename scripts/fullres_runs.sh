#!/bin/sh
# The full-resolution measurement behind docs/results/fullres.md (issue 20): the `make run`
# model (graphs/deepjscc_awgn.yaml, quick preset, trained on 32x32 crops at 10 dB, seed 0)
# scored on the bundled held-out photos (chelsea, coffee) as 32x32 grid crops, as whole
# images, and as whole images processed in 32x32 tiles, at short side 256 and at native
# resolution; both PSNR conventions in every table; one uint8-scored variant.
# Usage: sh scripts/fullres_runs.sh [OUT] [PRESET]   (default runs/fullres quick; one job at a time)
set -e
OUT=${1:-runs/fullres}
P=${2:-quick}
G=graphs/deepjscc_awgn.yaml
SF="nice -n 10 .venv/bin/semflow"
[ -f $OUT/train/checkpoints/last.pt ] || $SF run $G --preset $P --threads 1 --quiet --out $OUT/train
EV="$SF eval $G --preset $P --threads 1 --quiet --checkpoint $OUT/train/checkpoints/last.pt"
$EV --out $OUT/crops256                                                       # make run's table
$EV --set eval_whole=true --set eval_multiple=32 --out $OUT/whole256           # 2 x 256x384
$EV --set eval_whole=true --set eval_multiple=32 --set tile=32 --out $OUT/tiles256
$EV --set eval_whole=true --set eval_multiple=32 --set quantize=uint8 --out $OUT/whole256_uint8
$EV --set short_side=0 --out $OUT/crops_native                                # 328 crops
$EV --set short_side=0 --set eval_whole=true --set eval_multiple=32 --out $OUT/whole_native   # 288x448, 384x576
$EV --set short_side=0 --set eval_whole=true --set eval_multiple=32 --set tile=32 --out $OUT/tiles_native
