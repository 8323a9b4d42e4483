#!/usr/bin/env bash
# Start a real one-node Slurm cluster on this machine (Debian packages slurmctld, slurmd,
# slurm-client and munge; must run as root). Idempotent: when a node already answers,
# it says so and leaves the cluster alone. State, spool, pid and log files live in a
# fresh temporary directory whose path is kept in /run/hepae-slurm/dir for stop_cluster.sh;
# the daemons' pids are kept in /run/hepae-slurm/*.pid: only those processes are ever
# stopped (never daemons found by name).
#
#   tests/slurm/start_cluster.sh            # start (or reuse) and wait until the node is idle
#   HEPAE_SLURM_TIMEOUT=90 tests/slurm/start_cluster.sh
#
# CI installs the packages with:
#   apt-get update && apt-get install -y slurmctld slurmd slurm-client munge
set -euo pipefail

TIMEOUT=${HEPAE_SLURM_TIMEOUT:-60}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
RUN=/run/hepae-slurm
MARK="# Written by tests/slurm/start_cluster.sh"

say() { echo "start_cluster: $*"; }
die() { echo "start_cluster: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged run as root here)"
for exe in munged slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$exe" >/dev/null || die "'$exe' not found: apt-get install -y slurmctld slurmd slurm-client munge"
done

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n1 | tr -d '*~#' || true; }

state=$(node_state)
recorded=$(cat "$RUN/dir" 2>/dev/null || true)
case "$state" in
    idle|mixed|allocated|completing)
        # Reuse it, unless its state directory was cleaned away under it.
        if [ -n "$recorded" ] && [ -d "$recorded/spool" ]; then
            say "already running (node $state, state in $recorded)"; exit 0
        fi
        say "a cluster answers but its state directory is gone: restarting it" ;;
esac

# munge: authentication between the clients and the daemons.
if ! (munge -n 2>/dev/null | unmunge >/dev/null 2>&1); then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    munged --force
    for _ in $(seq 50); do (munge -n | unmunge >/dev/null 2>&1) && break; sleep 0.1; done
    (munge -n | unmunge >/dev/null 2>&1) || die "munged did not start"
    say "munged started"
fi

# Stop a daemon this script started, by its pid file, never by name: other slurmd or
# slurmctld processes on this machine are not ours. The pid must still be that daemon
# (/proc/PID/comm), not a process that got the number since.
stop_pidfile() {
    local pidf=$1 name=$2 pid
    [ -f "$pidf" ] || return 0
    pid=$(cat "$pidf" 2>/dev/null || true)
    case "$pid" in ''|*[!0-9]*) return 0 ;; esac
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        say "stopped $name (pid $pid) of the previous test cluster"
    fi
    rm -f "$pidf"
}

# A previous cluster whose daemons died (or whose state dir was removed): stop what is
# left of it and start afresh in a new directory. Its pids are in $RUN (copied there at
# start, so they survive the removal of its state directory) and in its own directory.
for daemon in slurmd slurmctld; do
    stop_pidfile "$RUN/$daemon.pid" "$daemon"
    [ -n "$recorded" ] && stop_pidfile "$recorded/$daemon.pid" "$daemon"
done
sleep 0.5

# Never overwrite a slurm.conf this script did not write (a real cluster's, say).
if [ -f "$CONF" ] && ! grep -q "^$MARK" "$CONF" && [ -z "${HEPAE_SLURM_FORCE:-}" ]; then
    die "$CONF exists and was not written by this script; move it away or set HEPAE_SLURM_FORCE=1"
fi

DIR=$(mktemp -d /tmp/hepae-slurm.XXXXXX)
mkdir -p "$DIR/state" "$DIR/spool" "$RUN"
echo "$DIR" > "$RUN/dir"
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)

mkdir -p "$(dirname "$CONF")"
cat > "$CONF" <<CONFEOF
$MARK: a one-node test cluster (state in $DIR).
ClusterName=hepae
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
MaxArraySize=10001
KillWait=10
NodeName=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONFEOF

slurmctld
slurmd
# Keep the daemons' pids where the next start (and stop_cluster.sh) finds them.
for daemon in slurmctld slurmd; do
    for _ in $(seq 50); do [ -s "$DIR/$daemon.pid" ] && break; sleep 0.1; done
    cp "$DIR/$daemon.pid" "$RUN/$daemon.pid" 2>/dev/null || say "warning: no pid file for $daemon"
done
say "slurmctld and slurmd started (config $CONF, state in $DIR)"

deadline=$((SECONDS + TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
    state=$(node_state)
    case "$state" in
        idle|mixed|allocated)
            say "node localhost is $state"; sinfo; exit 0 ;;
        down|drained|draining|drain)
            scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
echo "start_cluster: node not idle after ${TIMEOUT}s (state '${state}'); logs:" >&2
tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
exit 1
