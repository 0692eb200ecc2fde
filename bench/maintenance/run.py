"""Compaction benchmark. Creates `lake.events (id BIGINT, value DOUBLE)` in Basin, appends N
small files (1,024 rows each) to it with the Python `deltalake` package (another Delta writer, in
one commit), copies the table, then through `basin serve`: a full-scan query (median of 5),
`POST …/optimize`, the query again. The copy is compacted by `deltalake`'s `optimize.compact()`
in this process for comparison."""
import argparse, json, os, platform, random, shutil, statistics, subprocess, sys, time
from pathlib import Path

import pyarrow as pa
import deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "concurrency"))
from run import ADMIN_PASSWORD, Server, ok, sql  # noqa: E402

ROOT = Path("bench/data/maintenance")
ROWS_PER_FILE = 1024  # the writer's batch: one batch per file
QUERY = "SELECT count(*) AS n, sum(value) AS total, min(id) AS lo, max(id) AS hi FROM lake.events"


def basin(binary, data, *args):
    out = subprocess.run([binary, "--output", "json", *args], env=dict(os.environ, BASIN_DATA_DIR=str(data)),
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"basin {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def small_files(location, files):
    rng = random.Random(7)
    schema = pa.schema([("id", pa.int64()), ("value", pa.float64())])

    def batches():
        for f in range(files):
            start = f * ROWS_PER_FILE
            yield pa.record_batch([pa.array(range(start, start + ROWS_PER_FILE), pa.int64()),
                                   pa.array([rng.random() for _ in range(ROWS_PER_FILE)], pa.float64())], schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    deltalake.write_deltalake(location, reader, mode="append", target_file_size=1)


def timed_query(conn, token, rounds=5):
    times, rows = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        rows = sql(conn, token, QUERY)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--basin", required=True)
    p.add_argument("--profile", default="release")
    p.add_argument("--files", type=int, default=10_000)
    a = p.parse_args()
    data = ROOT / f"files_{a.files}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    basin(a.basin, data, "dataset", "create", "lake", "--layer", "source")
    basin(a.basin, data, "sql", "CREATE TABLE lake.events (id BIGINT, value DOUBLE)")
    location = json.loads(basin(a.basin, data, "table", "show", "lake.events"))["location"]
    path = location.removeprefix("file://")
    started = time.perf_counter()
    small_files(path, a.files)
    written = time.perf_counter() - started
    files_before = len(deltalake.DeltaTable(path).file_uris())
    size = sum(f.stat().st_size for f in Path(path).glob("*.parquet"))
    copy = data / "copy"
    shutil.copytree(path, copy)
    print(f"{files_before} files, {size / 1e6:.0f} MB, written in {written:.0f} s", file=sys.stderr)

    s = Server(a.basin, data)
    try:
        conn = s.connect()
        token = ok(conn, "POST", "/api/v1/login", {"user": "admin", "password": ADMIN_PASSWORD})["token"]
        before_ms, before = timed_query(conn, token)
        started = time.perf_counter()
        run = ok(conn, "POST", "/api/v1/hubs/main/datasets/lake/tables/events/optimize", {}, token)
        basin_s = time.perf_counter() - started
        after_ms, after = timed_query(conn, token)
    finally:
        s.stop()
    (b,), (c,) = before, after
    assert (b["n"], b["lo"], b["hi"]) == (c["n"], c["lo"], c["hi"]) and abs(b["total"] - c["total"]) < 1e-6 * abs(b["total"]), (b, c)

    started = time.perf_counter()
    metrics = deltalake.DeltaTable(str(copy)).optimize.compact()
    peer_s = time.perf_counter() - started
    removed = metrics["filesRemoved"]
    peer_bytes = (json.loads(removed) if isinstance(removed, str) else removed)["totalSize"]
    peer_files = len(deltalake.DeltaTable(str(copy)).file_uris())

    mb = run["bytes_rewritten"] / 1e6
    print(f"\nCompaction of {files_before:,} small files ({size / 1e6:.0f} MB, {files_before * ROWS_PER_FILE:,} rows); "
          f"{a.profile} build, {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    print("| tool | time s | MB/s | files after |")
    print("|---|---:|---:|---:|")
    print(f"| Basin `POST …/optimize` | {basin_s:.1f} | {mb / basin_s:.0f} | {run['files_after']} |")
    print(f"| Python deltalake {deltalake.__version__} `optimize.compact()` | {peer_s:.1f} | "
          f"{peer_bytes / 1e6 / peer_s:.0f} | {peer_files} |")
    print(f"\nFull scan (`{QUERY}`) through `POST /api/v1/query`, median of 5: "
          f"{before_ms:.0f} ms before, {after_ms:.0f} ms after ({before_ms / after_ms:.1f}× faster).")


if __name__ == "__main__":
    main()
