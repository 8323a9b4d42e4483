#!/usr/bin/env bash
# Stop the private one-node test cluster started by start_cluster.sh: cancel its jobs, stop
# its munged, slurmctld and slurmd (by the pid files start_cluster.sh keeps, never by name)
# and what is left of its jobs. Pass --purge to delete its directory (config, state, logs).
exec bash "$(dirname "$0")/start_cluster.sh" --stop "$@"
