#!/usr/bin/env bash
# The v1 way to make the built-in synthetic churn data: users + events tables in OUT_DIR.
#
# usage: generate_data.sh OUT_DIR [USERS] [DAYS] [SEED] [FORMAT] [GENERATOR OPTIONS...]
#   USERS=2000 DAYS=120 SEED=42 FORMAT=parquet|csv; anything after FORMAT (for example
#   --start 2025-01-01 --paid-ratio 0.35 --churn-rate 0.35 --drift 0.2) goes to the generator.
#   PYTHON picks the interpreter (default python3); it must be able to import churnctl.
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '4,7s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi

out_dir="$1"
users="${2:-2000}"
days="${3:-120}"
seed="${4:-42}"
format="${5:-parquet}"
shift $(( $# < 5 ? $# : 5 ))

for value in "$users" "$days" "$seed"; do
  if [[ ! "$value" =~ ^[0-9]+$ ]]; then
    echo "generate_data.sh: USERS, DAYS and SEED must be whole numbers, got '$value'" >&2
    exit 2
  fi
done
case "$format" in
  parquet | csv) ;;
  *) echo "generate_data.sh: FORMAT must be parquet or csv, got '$format'" >&2; exit 2 ;;
esac

exec "${PYTHON:-python3}" -m churnctl.domain.generator \
  --out "$out_dir" --users "$users" --days "$days" --seed "$seed" --format "$format" "$@"
