#!/usr/bin/env bash
# A single-node Slurm on this machine, for the Slurm tests and for trying `--backend slurm`
# without a cluster: Debian's munge, slurmctld, slurmd and client, started without systemd.
#
#   scripts/slurm-local.sh start [--gpus N]   # installs (apt, as root) when needed, configures, starts
#   scripts/slurm-local.sh stop               # cancels every job, stops the daemons
#   scripts/slurm-local.sh status             # exit 0 when the node answers and is idle or busy
#
# One node, `localhost`, in partition `debug` (the default), with the machine's CPUs and 90%
# of its memory. `--gpus N` adds N fake GPUs (character devices under /var/lib/assay-slurm) as
# generic resources, so that `--gres=gpu:1` tasks each get their own CUDA_VISIBLE_DEVICES.
# Needs root. Everything it writes lives under /etc/slurm, /etc/munge (the key),
# /var/lib/assay-slurm and /run/munge.
set -euo pipefail

STATE=/var/lib/assay-slurm
CONF=/etc/slurm/slurm.conf

die() {
    echo "slurm-local: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts daemons)"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get"
    local packages="munge slurmctld slurmd slurm-client"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages >/dev/null \
        || { apt-get update >/dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages >/dev/null; } \
        || die "cannot install $packages"
}

# Waits up to $2 seconds (in tenths) for the command $1 to succeed.
wait_for() {
    local tries=$(($2 * 10))
    for _ in $(seq "$tries"); do
        if eval "$1" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

write_config() {
    local gpus="$1"
    local cpus memory
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n1)
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
    memory=$((memory * 9 / 10))
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
    chown -R slurm:slurm "$STATE"
    local gres_node="" gres_types=""
    if [ "$gpus" -gt 0 ]; then
        gres_types="GresTypes=gpu"
        gres_node="Gres=gpu:$gpus"
        mkdir -p "$STATE/gpu"
        : >/etc/slurm/gres.conf
        for i in $(seq 0 $((gpus - 1))); do
            [ -c "$STATE/gpu/gpu$i" ] || mknod "$STATE/gpu/gpu$i" c 1 3
            echo "NodeName=localhost Name=gpu File=$STATE/gpu/gpu$i" >>/etc/slurm/gres.conf
        done
    else
        rm -f /etc/slurm/gres.conf
    fi
    cat >"$CONF" <<EOF
# Written by assay's scripts/slurm-local.sh: one node, no systemd, no cgroups, no accounting.
ClusterName=assay-local
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=300
$gres_types
NodeName=localhost CPUs=$cpus RealMemory=$memory $gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if pgrep -x munged >/dev/null; then
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- munged --force
    wait_for "munge -n | unmunge" 10 || die "munged did not start"
}

node_ready() {
    sinfo -h -n localhost -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

start() {
    local gpus=0
    while [ $# -gt 0 ]; do
        case "$1" in
        --gpus) gpus="$2"; shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    need_root
    install_packages
    if node_ready; then
        local have
        have=$(sinfo -h -o '%G' | sed -n 's/.*gpu:\([0-9]*\).*/\1/p' | head -n1)
        if [ "${have:-0}" = "$gpus" ]; then
            echo "slurm-local: already running"
            return
        fi
        echo "slurm-local: running with ${have:-0} GPU(s), restarting with $gpus"
        stop
    fi
    write_config "$gpus"
    start_munge
    rm -f "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
    pgrep -x slurmctld >/dev/null || slurmctld
    wait_for "scontrol ping | grep -q UP" 20 || die "slurmctld did not answer; see $STATE/log/slurmctld.log"
    pgrep -x slurmd >/dev/null || slurmd -N localhost
    if ! wait_for node_ready 20; then
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        wait_for node_ready 10 || die "the node is not idle: $(sinfo -h -o '%t %E'); see $STATE/log/"
    fi
    echo "slurm-local: node localhost up ($(sinfo -h -o '%c CPUs, %m MB, gres %G'))"
}

stop() {
    need_root
    if command -v scancel >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
        scancel --full --quiet -u "$(id -un)" 2>/dev/null || true
        scancel --quiet --state=PENDING 2>/dev/null || true
        scancel --quiet --state=RUNNING 2>/dev/null || true
    fi
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    wait_for "! pgrep -x slurmd && ! pgrep -x slurmctld" 10 || true
    rm -f "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
    echo "slurm-local: stopped"
}

case "${1:-}" in
start) shift; start "$@" ;;
stop) stop ;;
status) node_ready ;;
*) die "usage: scripts/slurm-local.sh start [--gpus N] | stop | status" ;;
esac
