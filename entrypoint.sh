#!/usr/bin/env bash
# Tasklane process roles. Every mode ends in `exec`, so the process it starts receives the
# signals (SIGTERM from an orchestrator, Ctrl-C) directly and shuts down cleanly.
# Run it inside the project environment: `uv run ./entrypoint.sh MODE` (or in an image
# whose PATH holds the environment's bin/).
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat >&2 <<'USAGE'
usage: entrypoint.sh MODE [ARGS]

modes:
  api              apply migrations (unless MIGRATION_ENABLED=false), then serve the API
                   with gunicorn (gevent workers)
  worker PROFILE   a Celery worker for a profile from app/queues.py:
                     cpu  prefork on dataset
                     io   gevent on generation,mail,ops_trace
                     all  every queue in one gevent worker (small installs)
  beat             Celery beat on RedBeat (periodic jobs; run one or more, one leads)
  flower           Flower, the Celery monitor, behind basic auth (FLOWER_BASIC_AUTH, FLOWER_PORT)
  migrate          apply database migrations and exit
  dev              API + one worker per profile + beat on embedded defaults, one terminal

environment (all optional):
  REDIS_URL        the broker; unset, a process attaches to the running `dev` stack's Redis
  MIGRATION_ENABLED (true)  API_CONTROL_SOCKET (instance/gunicorn.ctl)
  API_BIND (0.0.0.0:5001)  API_WORKERS (2)  API_TIMEOUT (60)
  WORKER_QUEUES  WORKER_POOL  WORKER_CONCURRENCY   override the profile's defaults
  WORKER_AUTOSCALE (max,min)  WORKER_MAX_TASKS_PER_CHILD  WORKER_MAX_MEMORY_PER_CHILD (KiB)
  WORKER_NAME (PROFILE@%h)  LOG_LEVEL (INFO)
  FLOWER_BASIC_AUTH (user:password, required)  FLOWER_PORT (5555)  FLOWER_MAX_TASKS (10000)
USAGE
}

queue_cli() {
  python -c 'import sys; from app.queues import main; sys.exit(main(sys.argv[1:]))' "$@"
}

mode="${1:-}"
[ $# -gt 0 ] && shift

case "$mode" in
  api)
    # Many replicas: set MIGRATION_ENABLED=false on them and run the upgrade once (`migrate`).
    if [ "${MIGRATION_ENABLED:-true}" = "true" ]; then
      flask --app app db upgrade
    fi
    export TASKLANE_ROLE=api
    mkdir -p instance
    # gunicorn's default control socket is one path per user for every gunicorn on the host;
    # this checkout's lives in its own instance folder.
    exec gunicorn \
      --control-socket "${API_CONTROL_SOCKET:-instance/gunicorn.ctl}" \
      --config python:app.gunicorn_conf \
      --worker-class gevent \
      --workers "${API_WORKERS:-2}" \
      --bind "${API_BIND:-0.0.0.0:5001}" \
      --timeout "${API_TIMEOUT:-60}" \
      --access-logfile - \
      app.wsgi:application
    ;;
  worker)
    export TASKLANE_ROLE=worker
    profile="${1:-}"
    if [ -z "$profile" ]; then
      echo "entrypoint.sh worker: name a profile (cpu, io or all)" >&2
      usage
      exit 64
    fi
    if ! defaults="$(queue_cli profile "$profile")"; then
      exit 64
    fi
    read -r pool concurrency prefetch queues <<<"$defaults"
    pool="${WORKER_POOL:-$pool}"
    args=(
      -A app.celery worker
      --pool "$pool"
      --queues "${WORKER_QUEUES:-$queues}"
      --hostname "${WORKER_NAME:-$profile@%h}"
      --prefetch-multiplier "${WORKER_PREFETCH_MULTIPLIER:-$prefetch}"
      --loglevel "${LOG_LEVEL:-INFO}"
    )
    if [ -n "${WORKER_AUTOSCALE:-}" ]; then
      args+=(--autoscale "$WORKER_AUTOSCALE")
    else
      args+=(--concurrency "${WORKER_CONCURRENCY:-$concurrency}")
    fi
    # Hand each prefork child one job at a time, never a backlog behind a long job.
    [ "$pool" = "prefork" ] && args+=(-O fair)
    [ -n "${WORKER_MAX_TASKS_PER_CHILD:-}" ] && args+=(--max-tasks-per-child "$WORKER_MAX_TASKS_PER_CHILD")
    [ -n "${WORKER_MAX_MEMORY_PER_CHILD:-}" ] && args+=(--max-memory-per-child "$WORKER_MAX_MEMORY_PER_CHILD")
    exec celery "${args[@]}"
    ;;
  beat)
    export TASKLANE_ROLE=beat
    # RedBeat keeps the schedule and the leader lock in Redis: no local schedule file.
    exec celery -A app.celery beat --loglevel "${LOG_LEVEL:-INFO}"
    ;;
  migrate)
    exec flask --app app db upgrade
    ;;
  flower)
    # Read through Settings, so .env works as for every other setting; Flower can revoke
    # tasks and stop workers, so it never starts without a password.
    read -r basic_auth port < <(python -c 'from config import load_settings as l; s = l(); a = s.dashboard.flower_basic_auth; print(a.get_secret_value() if a else "-", s.dashboard.flower_port)')
    if [ "$basic_auth" = "-" ]; then
      echo "entrypoint.sh flower: set FLOWER_BASIC_AUTH=user:password (Flower is never started without auth)" >&2
      exit 64
    fi
    exec celery -A app.celery flower \
      --port="$port" \
      --basic-auth="$basic_auth" \
      --max-tasks="${FLOWER_MAX_TASKS:-10000}" \
      --loglevel="${LOG_LEVEL:-INFO}" "$@"
    ;;
  dev)
    exec python -m app.dev "$@"
    ;;
  -h|--help|help)
    usage
    exit 0
    ;;
  *)
    [ -n "$mode" ] && echo "entrypoint.sh: unknown mode '$mode'" >&2
    usage
    exit 64
    ;;
esac
