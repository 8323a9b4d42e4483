#!/usr/bin/env bash
# Stop the one-node test cluster started by start_cluster.sh (munged is left running:
# it is harmless and other tools may use it). Pass --purge to delete its state directory.
set -uo pipefail
RUN=/run/hepae-slurm
[ -f "$RUN/dir" ] || { echo "stop_cluster: no cluster recorded in $RUN/dir"; exit 0; }
DIR=$(cat "$RUN/dir")
# Only the processes start_cluster.sh started, by their pid files, and only while the pid
# still belongs to that daemon.
for daemon in slurmd slurmctld; do
    for pidf in "$RUN/$daemon.pid" "$DIR/$daemon.pid"; do
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf" 2>/dev/null || true)
        case "$pid" in ''|*[!0-9]*) continue ;; esac
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$daemon" ]; then
            kill "$pid" 2>/dev/null && echo "stop_cluster: stopped pid $pid ($daemon)"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
    rm -f "$RUN/$daemon.pid"
done
rm -f "$RUN/dir"
if [ "${1:-}" = "--purge" ]; then rm -rf "$DIR"; echo "stop_cluster: removed $DIR"; fi
exit 0
