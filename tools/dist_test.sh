#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
set -e
source "$(dirname "$0")/launch_common.sh"
need_args 3 "CONFIG CHECKPOINT NUM_PROCESSES [test.py options]" "$@"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
torchrun_tool test.py "$GPUS" "$CONFIG" "$CHECKPOINT" "$@"
