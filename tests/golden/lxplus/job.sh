#!/bin/bash
# Job script rendered by gridsearch for site lxplus (condor): each task runs one job
# of the campaign. The task index picks the job directory from jobs.txt beside this script
# ("INDEX DIR" per line); every value below is quoted for the shell.
set -u
SUBMIT_DIR='/CAMPAIGNS/my "scan" it'"'"'s/submit/20260101-000000-lxplus-abcd'
# HTCondor passes the campaign index and "ClusterId.ProcId" as arguments.
TASK_INDEX="${1:?usage: job.sh TASK_INDEX SCHEDULER_JOB_ID}"
export HEPAE_SCHEDULER_JOB_ID="${2:-unknown}"
export HEPAE_THREADS=2
JOB_DIR=$(awk -v i="$TASK_INDEX" '$1 == i { sub(/^[0-9]+ /, ""); print; exit }' "$SUBMIT_DIR/jobs.txt")
if [ -z "$JOB_DIR" ] || [ ! -d "$JOB_DIR" ]; then
    echo "gridsearch: no job directory for task index $TASK_INDEX in $SUBMIT_DIR/jobs.txt" >&2
    exit 2
fi
cd "$JOB_DIR" || exit 2
exec >>job.log 2>&1
echo "=== gridsearch: $(date -u +%Y-%m-%dT%H:%M:%SZ) task $HEPAE_SCHEDULER_JOB_ID on $(hostname) in $JOB_DIR"

setup_failed() {
    echo "gridsearch: environment setup failed: $1"
    exit 2
}
# Site init scripts and module systems use unset variables freely.
set +u
# The job runs in the background so that this shell can pass on the scheduler's signals
# (walltime warning, preemption, eviction): the job then checkpoints and exits 75. It
# starts with USR1 and TERM ignored and handles them once it is ready; until it exits, a
# signal received here is passed on again every second, so that one arriving while the
# job starts up is not lost.
child=0
pending=""
forward() {
    echo "gridsearch: received SIG$1, passing it to the job (pid $child)"
    pending=$1
    [ "$child" -ne 0 ] && kill -s "$1" "$child" 2>/dev/null
}
trap '' USR1 TERM
python3 -m hepae_core.job "$JOB_DIR" &
child=$!
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do
    sleep 1 &
    wait $! 2>/dev/null
    if [ -n "$pending" ] && [ "$pending" != INT ]; then
        kill -s "$pending" "$child" 2>/dev/null
    fi
done
if [ "$rc" -gt 128 ]; then
    # `wait` was ended by a signal: the job's own exit status comes now.
    wait "$child"
    status=$?
    [ "$status" -ne 127 ] && rc=$status
fi
echo "=== gridsearch: $(date -u +%Y-%m-%dT%H:%M:%SZ) job exited with $rc"
exit "$rc"
