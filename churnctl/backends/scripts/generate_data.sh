#!/usr/bin/env bash
# The v1 way to make data: generate synthetic churn users + events into OUT_DIR.
# Usage: generate_data.sh OUT_DIR [USERS] [DAYS] [SEED] [FORMAT] [extra generator flags...]
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUT_DIR [USERS] [DAYS] [SEED] [FORMAT] [--start D --paid-ratio R ...]" >&2
  exit 2
fi
out_dir=$1
users=${2:-2000}
days=${3:-120}
seed=${4:-42}
format=${5:-parquet}
shift $(( $# < 5 ? $# : 5 ))

mkdir -p "$out_dir"
exec "${PYTHON:-python3}" -m churnctl.domain.generator \
  --out "$out_dir" --users "$users" --days "$days" --seed "$seed" --format "$format" "$@"
