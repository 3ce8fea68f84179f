#!/bin/bash
# Data-parallel semflow training on several nodes with torchrun (docs/scale-out.md).
# Submit with: sbatch scripts/slurm_torchrun.sh   (edit the graph, preset and sizes below)
#SBATCH --job-name=semflow-dp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one torchrun launcher per node
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
set -euo pipefail
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
# the graph's batch is the global batch over nodes x processes per node
srun .venv/bin/torchrun \
    --nnodes "$SLURM_JOB_NUM_NODES" --nproc-per-node 4 \
    --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head:29500" \
    -m flowgraph run graphs/deepjscc_awgn.yaml --preset paper --device cuda \
    --out "runs/deepjscc_awgn-paper-$SLURM_JOB_ID"
