#!/usr/bin/env bash
# The pipeline example end to end, in its own data directory (examples/pipeline/data): two
# sources load the drops into dataset `source`, then the project builds `prepared` and
# `semantic` and exports the daily sales. Run it again after adding a day under drops/orders:
# only the new file is loaded, and the models recompute only what it changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${BASIN:-}" ]; then run=("$BASIN"); else run=(cargo run --quiet --release --); fi
basin() { "${run[@]}" --data-dir "$here/data" "$@"; }

basin dataset show source >/dev/null 2>&1 ||
  basin dataset create source --layer source --description "Files as the shop drops them"
basin source show customers >/dev/null 2>&1 ||
  basin source add customers --table source.customers --path "$here/drops/customers" --pattern '*.csv'
basin source show orders >/dev/null 2>&1 ||
  basin source add orders --table source.orders --path "$here/drops/orders" \
    --pattern 'year=*/month=*/day=*/*.csv'
basin source run customers
basin source run orders
basin plan "$here/project"
basin apply "$here/project"
# New files since the last apply: each model recomputes only what they changed.
basin model run prepared.orders --downstream
basin sql "SELECT * FROM semantic.daily_sales ORDER BY ordered_on, country"
find "$here/data/exports" -path '*/daily_sales/*' -name '*.parquet' | sort
