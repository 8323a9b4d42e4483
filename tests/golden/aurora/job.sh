#!/bin/bash
#SBATCH --job-name=hepae-20260101-000000-aurora-abcd
#SBATCH --array=0-2
#SBATCH --output=logs/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --time=12:00:00
#SBATCH --cpus-per-task=1
#SBATCH --account=lu2026-2-12
#SBATCH --partition=hep
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
# Job script rendered by gridsearch for site aurora (slurm): each task runs one job
# of the campaign. The task index picks the job directory from jobs.txt beside this script
# ("INDEX DIR" per line); every value below is quoted for the shell.
set -u
SUBMIT_DIR='/CAMPAIGNS/my "scan" it'"'"'s/submit/20260101-000000-aurora-abcd'
# Array task -> campaign index: this chunk's array indices start at 0.
TASK_INDEX=$(( SLURM_ARRAY_TASK_ID + 0 ))
export HEPAE_SCHEDULER_JOB_ID="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
export HEPAE_THREADS="${SLURM_CPUS_PER_TASK:-1}"
JOB_DIR=$(awk -v i="$TASK_INDEX" '$1 == i { sub(/^[0-9]+ /, ""); print; exit }' "$SUBMIT_DIR/jobs.txt")
if [ -z "$JOB_DIR" ] || [ ! -d "$JOB_DIR" ]; then
    echo "gridsearch: no job directory for task index $TASK_INDEX in $SUBMIT_DIR/jobs.txt" >&2
    exit 2
fi
cd "$JOB_DIR" || exit 2
exec >>job.log 2>&1
echo "=== gridsearch: $(date -u +%Y-%m-%dT%H:%M:%SZ) task $HEPAE_SCHEDULER_JOB_ID on $(hostname) in $JOB_DIR"

# The environment on this node cannot run the job: say so in job.log and in state.json
# (state failed, error_kind bad_environment; written atomically, and only while no other
# process holds the job dir's lock), then exit 78.
# A job dir that is already done keeps its state: a done job is never demoted.
already_done() {
    [ -f state.json ] && grep -Eq '"state": *"done"' state.json
}
bad_environment() {
    local why host now
    why=$(printf '%s' "$1" | tr '\n\t\r' '   ' | tr -d '\000-\037"\\' | cut -c1-400)
    host=$(hostname)
    now=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
    echo "gridsearch: bad environment on $host: $why"
    if ! already_done && { ! command -v flock >/dev/null 2>&1 || flock -n .lock true 2>/dev/null; }; then
        printf '{"state": "failed", "error_kind": "bad_environment", "exit_code": %d, "reason": "%s", "host": "%s", "updated": "%s", "scheduler_job_id": "%s"}\n' \
            78 "$why" "$host" "$now" "$HEPAE_SCHEDULER_JOB_ID" > .state.json.env.tmp \
            && mv -f .state.json.env.tmp state.json
    fi
    exit 78
}
setup_failed() {
    bad_environment "environment setup failed: $1"
}
# Site init scripts and module systems use unset variables freely.
set +u
# A walltime warning or preemption signal arriving before the job runs is kept and
# passed on once it does.
pending=""
trap 'pending=USR1' USR1
trap 'pending=TERM' TERM
type module >/dev/null 2>&1 || . /etc/profile >/dev/null 2>&1 || true
module purge || setup_failed "module purge"
module load GCCcore/12.3.0 || setup_failed 'module load GCCcore/12.3.0'
module load Python/3.11.3 || setup_failed 'module load Python/3.11.3'
# The node's python must import the package before the job starts (a module system's
# python3 without it would die with a bare ModuleNotFoundError).
HEPAE_PYTHON=/VENV/bin/python
if ! import_error=$("$HEPAE_PYTHON" -c 'import hepae_core' 2>&1); then
    bad_environment "$HEPAE_PYTHON cannot import hepae_core ($(printf '%s' "$import_error" | tail -n 1)); set python, env.venv or env.conda in the site profile, or submit from the environment that has the package"
fi
# The job runs in the background so that this shell can pass on the scheduler's signals
# (walltime warning, preemption, eviction): the job then checkpoints and exits 75. It
# starts with USR1 and TERM ignored and handles them once it is ready; until it exits, a
# signal received here is passed on again every second, so that one arriving while the
# job starts up is not lost.
child=0
forward() {
    echo "gridsearch: received SIG$1, passing it to the job (pid $child)"
    pending=$1
    [ "$child" -ne 0 ] && kill -s "$1" "$child" 2>/dev/null
}
trap '' USR1 TERM
/VENV/bin/python -m hepae_core.job "$JOB_DIR" &
child=$!
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT
if [ -n "$pending" ]; then
    forward "$pending"  # it came during the checks: pass it on until the job handles it
    rc=255
else
    wait "$child"
    rc=$?
fi
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
