"""Runs each loader as its own process on the same CSV and reports time and peak memory."""
import argparse, os, platform, resource, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path("bench/data/ingest")

def generate(path: Path, size_mb: int, fmt: str = "csv") -> int:
    """A CSV (or NDJSON) of mixed ints, floats, strings and timestamps, made by DuckDB (fast,
    reproducible); the same rows in both formats, about `size_mb` of CSV."""
    import duckdb
    rows = size_mb * 1024 * 1024 // 100  # about 100 bytes a CSV row
    marker = path.with_name(path.name + ".rows")
    if path.exists() and marker.exists() and int(marker.read_text()) == rows:
        return rows
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"""
        COPY (
          SELECT i AS id,
                 (i * 7919) % 100000 AS customer_id,
                 round(((i * 104729) % 1000000) / 100.0, 2) AS amount,
                 ((i * 31) % 1000) / 7.0 AS score,
                 'status_' || (i % 7) AS status,
                 md5(i::VARCHAR) AS token,
                 TIMESTAMP '2024-01-01' + to_seconds(i % 31536000) AS created_at
          FROM range({rows}) t(i)
        ) TO '{path}' ({"HEADER, DELIMITER ','" if fmt == "csv" else "FORMAT json"})
    """)
    marker.write_text(str(rows))
    return rows

DUCKDB = """
import duckdb, sys
read = "read_csv" if sys.argv[1].endswith(".csv") else "read_json"
duckdb.sql(f"COPY (SELECT * FROM {read}('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet)")
"""

DELTALAKE = """
import sys, pyarrow.csv as csv, pyarrow.json as json
from deltalake import write_deltalake
reader = csv.open_csv(sys.argv[1]) if sys.argv[1].endswith(".csv") else json.open_json(sys.argv[1])
write_deltalake(sys.argv[2], reader, mode="overwrite")
"""

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--basin", required=True)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--format", choices=["csv", "ndjson"], default="csv")
    args = ap.parse_args()
    csv = ROOT / f"orders_{args.size_mb}mb.{args.format}"
    rows = generate(csv, args.size_mb, args.format)
    size_mb = csv.stat().st_size / 1e6
    out = ROOT / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    basin_env = dict(os.environ, BASIN_DATA_DIR=str(out / "basin"))
    subprocess.run([args.basin, "dataset", "create", "bench", "--layer", "source"], env=basin_env, check=True, capture_output=True)
    # Each tool runs under its own wrapper process, whose RUSAGE_CHILDREN peak is that tool's alone.
    results = []
    for name, argv, env in [
        ("basin ingest", [args.basin, "ingest", "bench.orders", str(csv)], basin_env),
        ("duckdb COPY to parquet", [sys.executable, "-c", DUCKDB, str(csv), str(out / "duckdb.parquet")], None),
        ("deltalake write_deltalake", [sys.executable, "-c", DELTALAKE, str(csv), str(out / "deltalake")], None),
    ]:
        wrapped = [sys.executable, __file__, "--child"] + argv
        proc = subprocess.run(wrapped, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
        elapsed, peak = map(float, proc.stdout.strip().splitlines()[-1].split())
        results.append((name, elapsed, peak))

    cpu = platform.processor() or platform.machine()
    print(f"Ingest of {size_mb:,.0f} MB {args.format.upper()} ({rows:,} rows, 7 columns: ints, floats, strings, timestamp); "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {cpu}\n")
    print("| tool | seconds | MB/s | rows/s | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, elapsed, peak in results:
        print(f"| {name} | {elapsed:.1f} | {size_mb / elapsed:.0f} | {rows / elapsed:,.0f} | {peak:.0f} |")

def child():
    argv = sys.argv[2:]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{proc.stdout}\n{proc.stderr}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{elapsed} {peak_mib}")

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child()
    else:
        main()
