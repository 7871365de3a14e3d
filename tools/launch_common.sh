# Shared by tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh: source it, do not run it.
#
#   torchrun_tool TOOL NUM_PROCESSES ARGS...   python -m torch.distributed.run on this machine
#       (multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT), then tools/TOOL ARGS... --launcher pytorch
#   srun_tool TOOL PARTITION JOB_NAME ARGS...  srun (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS),
#       then tools/TOOL ARGS... --launcher slurm
#   need_args COUNT USAGE "$@"                 exit 2 with the usage line when fewer than COUNT args
AI4RS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$AI4RS_ROOT${PYTHONPATH:+:$PYTHONPATH}"

need_args() {
    local count=$1 usage=$2
    shift 2
    if [ "$#" -lt "$count" ]; then
        echo "usage: bash $0 $usage" >&2
        exit 2
    fi
}

torchrun_tool() {
    local tool=$1 nproc=$2
    shift 2
    python -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$nproc" \
        --master_port="${PORT:-29500}" \
        "$AI4RS_ROOT/tools/$tool" "$@" --launcher pytorch
}

srun_tool() {
    local tool=$1 partition=$2 job_name=$3
    shift 3
    local gpus=${GPUS:-8} gpus_per_node=${GPUS_PER_NODE:-8}
    # SRUN_ARGS is split into words on purpose (several srun options in one variable)
    # shellcheck disable=SC2086
    srun -p "$partition" \
        --job-name="$job_name" \
        --gres=gpu:"$gpus_per_node" \
        --ntasks="$gpus" \
        --ntasks-per-node="$gpus_per_node" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        python -u "$AI4RS_ROOT/tools/$tool" "$@" --launcher slurm
}
