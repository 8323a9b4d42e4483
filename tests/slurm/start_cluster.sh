#!/usr/bin/env bash
# Start a private one-node Slurm cluster on this machine (Debian packages slurmctld, slurmd,
# slurm-client and munge; must run as root), or stop it again. Everything it needs lives in
# a fresh temporary directory DIR: its own munged (key, socket), slurm.conf, state, spool,
# pid and log files; its daemons listen on free ports of their own. No system file is
# written (/etc/slurm, /etc/munge, /run/munge stay as they are) and a Slurm or munge already
# running on the machine is neither used nor disturbed. Clients find the cluster with
# SLURM_CONF=DIR/slurm.conf; the path of DIR is kept in $RUN/dir (/run/hepae-slurm/dir).
#
#   tests/slurm/start_cluster.sh            # start (or reuse) and wait until the node is idle
#   HEPAE_SLURM_TIMEOUT=90 tests/slurm/start_cluster.sh
#   tests/slurm/start_cluster.sh --stop [--purge]   # what stop_cluster.sh runs
#   export SLURM_CONF=$(cat /run/hepae-slurm/dir)/slurm.conf; sinfo
#
# Idempotent: when the recorded cluster answers, it says "already running" and leaves it
# alone. Only processes this script started are ever stopped, by their pid files (never
# by name), plus the processes of the jobs that ran on it (found by this cluster's
# SLURM_CONF in their environment).
#
# CI installs the packages with:
#   apt-get update && apt-get install -y slurmctld slurmd slurm-client munge
set -euo pipefail

TIMEOUT=${HEPAE_SLURM_TIMEOUT:-60}
RUN=${HEPAE_SLURM_RUN:-/run/hepae-slurm}

say() { echo "start_cluster: $*"; }
die() { echo "start_cluster: error: $*" >&2; exit 1; }

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
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        say "stopped $name (pid $pid)"
    fi
    rm -f "$pidf"
}

# The processes of jobs that ran on the cluster of $1 (slurmstepd and the job's own
# processes): their environment names that cluster's slurm.conf, which no other
# process's does (this script and its callers excepted).
job_pids() {
    local conf="SLURM_CONF=$1/slurm.conf" p pid env
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] || [ "$pid" = "$PPID" ] && continue
        env=$( { tr '\0' '\n' < "$p/environ"; } 2>/dev/null ) || continue
        if grep -qxF "$conf" <<< "$env"; then
            if [ "$( { cat "$p/comm"; } 2>/dev/null)" = slurmstepd ] \
                || grep -q '^SLURM_JOB_ID=' <<< "$env"; then
                echo "$pid"
            fi
        fi
    done
}

# Stop the cluster of directory $1: cancel its jobs, stop its daemons and what is left of
# its jobs. Safe to call on a half-started or long-dead cluster.
stop_dir() {
    local dir=$1 pids
    [ -d "$dir" ] || return 0
    if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.pid" ]; then
        SLURM_CONF="$dir/slurm.conf" scancel --full --quiet --user=root >/dev/null 2>&1 || true
        for _ in $(seq 150); do
            [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pidfile "$dir/slurmd.pid" slurmd
    stop_pidfile "$dir/slurmctld.pid" slurmctld
    pids=$(job_pids "$dir")
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        say "stopped job processes left by the cluster: $(echo $pids)"
    fi
    stop_pidfile "$dir/munged.pid" munged
}

if [ "${1:-}" = "--stop" ]; then
    recorded=$(cat "$RUN/dir" 2>/dev/null || true)
    if [ -z "$recorded" ]; then say "no cluster recorded in $RUN/dir"; exit 0; fi
    stop_dir "$recorded"
    rm -f "$RUN/dir"
    rmdir "$RUN" 2>/dev/null || true
    if [ "${2:-}" = "--purge" ]; then rm -rf "$recorded"; say "removed $recorded"; fi
    say "stopped the cluster of $recorded"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged run as root here)"
for exe in munged mungekey munge slurmctld slurmd sinfo sbatch scontrol scancel squeue; do
    command -v "$exe" >/dev/null || die "'$exe' not found: apt-get install -y slurmctld slurmd slurm-client munge"
done

node_state() {
    SLURM_CONF="$1/slurm.conf" sinfo -h -N -o '%T' 2>/dev/null | head -n1 | tr -d '*~#' || true
}

recorded=$(cat "$RUN/dir" 2>/dev/null || true)
if [ -n "$recorded" ] && [ -f "$recorded/slurm.conf" ]; then
    state=$(node_state "$recorded")
    case "$state" in
        idle|mixed|allocated|completing)
            say "already running (node $state, SLURM_CONF=$recorded/slurm.conf)"; exit 0 ;;
    esac
fi
if [ -n "$recorded" ]; then
    # A previous cluster that died or was killed: stop what is left of it, start afresh.
    say "the cluster of $recorded does not answer: stopping what is left of it"
    stop_dir "$recorded"
    rm -rf "$recorded"
fi

# A TCP port nobody listens on (or connects from): /proc/net/tcp* list them in hex.
port_in_use() {
    grep -qi ":$(printf '%04X' "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        [ "$p" != "${1:-}" ] && ! port_in_use "$p" && { echo "$p"; return 0; }
    done
    die "no free TCP port found"
}

DIR=$(mktemp -d /tmp/hepae-slurm.XXXXXX)
chmod 755 "$DIR"  # munged wants its socket's directory searchable by everyone
mkdir -p "$DIR/state" "$DIR/spool" "$RUN"
echo "$DIR" > "$RUN/dir"
failed() {
    echo "start_cluster: error: $*; logs:" >&2
    tail -n 20 "$DIR"/*.log >&2 2>/dev/null || true
    stop_dir "$DIR"
    rm -f "$RUN/dir"
    exit 1
}

# munge: authentication between the clients and the daemons, with a key of its own.
mungekey --create --keyfile="$DIR/munge.key" >/dev/null || failed "mungekey could not create a key"
munged --force --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed" \
    || failed "munged did not start"
munge_ok() { munge -n -S "$DIR/munge.socket" | unmunge -S "$DIR/munge.socket" >/dev/null 2>&1; }
for _ in $(seq 100); do munge_ok && break; sleep 0.1; done
munge_ok || failed "munged does not answer on $DIR/munge.socket"

CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port "$CTLD_PORT")
export SLURM_CONF="$DIR/slurm.conf"
cat > "$SLURM_CONF" <<CONFEOF
# Written by tests/slurm/start_cluster.sh: a private one-node test cluster.
ClusterName=hepae
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.socket
CredType=cred/munge
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
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
MaxArraySize=10001
KillWait=10
NodeName=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONFEOF

slurmctld -f "$SLURM_CONF" || failed "slurmctld did not start"
slurmd -f "$SLURM_CONF" || failed "slurmd did not start"
say "munged, slurmctld and slurmd started (SLURM_CONF=$SLURM_CONF)"

deadline=$((SECONDS + TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
    state=$(node_state "$DIR")
    case "$state" in
        idle|mixed|allocated)
            say "node localhost is $state"; sinfo; exit 0 ;;
        down|drained|draining|drain)
            scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
failed "node not idle after ${TIMEOUT}s (state '${state:-}')"
