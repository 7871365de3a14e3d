#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# One process per GPU; without CUDA the processes train on CPU with gloo.
set -e
source "$(dirname "$0")/launch_common.sh"
need_args 2 "CONFIG NUM_PROCESSES [train.py options]" "$@"
CONFIG=$1
GPUS=$2
shift 2
torchrun_tool train.py "$GPUS" "$CONFIG" "$@"
