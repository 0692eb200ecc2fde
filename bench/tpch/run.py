"""TPC-H: the 22 queries through `basin serve`'s `POST /api/v1/query`, against DuckDB on the
generated Parquet files and plain DataFusion on the Parquet files of Basin's own tables (so the
difference to DataFusion is Basin's planning, governance and serving). Each engine runs in its own
process: one warm-up run, then the median of --runs. Answers are checked against DuckDB's."""
import argparse, json, math, os, platform, re, shutil, statistics, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "concurrency"))
from run import ADMIN_PASSWORD, Server, call, ok  # noqa: E402

TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]
QUERIES = Path(__file__).resolve().parent / "queries"


def basin(binary, data, *args):
    out = subprocess.run([binary, "--output", "json", *args], env=dict(os.environ, BASIN_DATA_DIR=str(data)),
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"basin {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def generate(parquet, scale):
    marker = parquet / ".done"
    if marker.exists():
        return
    shutil.rmtree(parquet, ignore_errors=True)
    parquet.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(["tpchgen-cli", "parquet", "-s", scale, "-o", str(parquet), "--quiet"], check=True)
    print(f"generated SF {scale} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    marker.touch()


def load(binary, data, parquet, reuse):
    """Loads every table with `basin ingest` (one process, one commit each); returns the timings."""
    marker = data / "loaded.json"
    if reuse and marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    basin(binary, data, "dataset", "create", "tpch", "--layer", "source")
    loads = []
    for t in TABLES:
        file = parquet / f"{t}.parquet"
        started = time.perf_counter()
        basin(binary, data, "ingest", f"tpch.{t}", str(file))
        loads.append({"table": t, "seconds": time.perf_counter() - started, "bytes": file.stat().st_size})
        print(f"  loaded {t}: {loads[-1]['seconds']:.1f} s", file=sys.stderr)
    marker.write_text(json.dumps(loads))
    return loads


def basin_parquet_dir(binary, data, table):
    """The directory of a Basin table's Parquet files. DataFusion's listing table skips
    `_delta_log` (hidden directories), and a freshly loaded table has no removed files yet:
    check that every file in the directory is live."""
    shown = json.loads(basin(binary, data, "table", "show", f"tpch.{table}"))
    path = Path(shown["location"].removeprefix("file://"))
    files = [f for f in path.rglob("*.parquet") if "_delta_log" not in f.parts]
    assert len(files) == shown["files"], (table, len(files), shown["files"])
    return str(path)


def norm(v):
    """Comparable JSON values: decimals as floats, dates as ISO strings."""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if type(v).__name__ == "Decimal":
        return float(v)
    return v


def timed(run_once, runs):
    """One warm-up, then `runs` timed runs: (median ms, all ms, the last answer)."""
    run_once()
    times, answer = [], None
    for _ in range(runs):
        started = time.perf_counter()
        answer = run_once()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times, answer


def child(engine, spec_file):
    """Runs in its own process: sets up `engine` on spec["tables"] and times every query."""
    spec = json.loads(Path(spec_file).read_text())
    if engine == "duckdb":
        import duckdb
        con = duckdb.connect()
        con.execute("CREATE SCHEMA tpch")
        for t, path in spec["tables"].items():
            con.execute(f"CREATE VIEW tpch.{t} AS SELECT * FROM read_parquet('{path}')")

        def query(text):
            cur = con.execute(text)
            return [d[0] for d in cur.description], cur.fetchall()
    else:
        from datafusion import SessionContext
        ctx = SessionContext()
        ctx.sql("CREATE SCHEMA tpch").collect()
        for t, path in spec["tables"].items():
            ctx.register_parquet(f"tpch.{t}", path)

        def query(text):
            table = ctx.sql(text).to_arrow_table()
            return table.column_names, [tuple(r.values()) for r in table.to_pylist()]
    out = {}
    for name, text in spec["queries"].items():
        try:
            ms, times, (columns, rows) = timed(lambda: query(text), spec["runs"])
            out[name] = {"ms": ms, "times": times, "columns": columns, "rows": [[norm(v) for v in r] for r in rows]}
        except Exception as e:  # a failing query is a result, not the end of the run
            out[name] = {"error": str(e)}
        print(f"  {engine} {name}: {out[name].get('ms', out[name].get('error'))}", file=sys.stderr)
    print(json.dumps(out))


def run_engine(engine, tables, queries, runs, root):
    spec = root / f"{engine}.spec.json"
    spec.write_text(json.dumps({"tables": tables, "queries": queries, "runs": runs}))
    proc = subprocess.run([sys.executable, __file__, "--child", engine, str(spec)], stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"{engine} failed")
    return json.loads(proc.stdout)


def run_basin(binary, data, queries, runs):
    # `basin serve` without --max-concurrent-queries gives a query half the machine's memory
    # shared by 2 × cores slots; the Server helper asks for 256 slots (its benchmark's clients),
    # which would shrink that to a few MiB, so set what a default server gives.
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    os.environ.setdefault("BASIN_MEMORY_LIMIT", f"{memory // 2 // (2 * os.cpu_count()) >> 20}MiB")
    # No compaction pass while the queries run.
    os.environ["BASIN_MAINTENANCE_INTERVAL_SECS"] = "0"
    s = Server(binary, data)
    out = {}
    try:
        conn = s.connect()
        token = ok(conn, "POST", "/api/v1/login", {"user": "admin", "password": ADMIN_PASSWORD})["token"]

        def query(text):
            status, body = call(conn, "POST", "/api/v1/query", {"sql": text}, token)
            answer = json.loads(body)
            # An error after the first rows comes as the body's last record, with status 200.
            if status >= 300 or answer.get("error"):
                raise RuntimeError(f"{status}: {answer.get('error', answer)}")
            columns = [c["name"] if isinstance(c, dict) else c for c in answer["columns"]]
            return columns, [[r.get(c) for c in columns] for r in answer["rows"]]

        for name, text in queries.items():
            try:
                ms, times, (columns, rows) = timed(lambda: query(text), runs)
                out[name] = {"ms": ms, "times": times, "columns": columns, "rows": rows}
            except RuntimeError as e:
                out[name] = {"error": str(e)}
            print(f"  basin {name}: {out[name].get('ms', out[name].get('error'))}", file=sys.stderr)
    finally:
        s.stop()
    return out


def same(a, b):
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        try:
            a, b = float(a), float(b)
        except (TypeError, ValueError):
            return False
        # DataFusion's AVG of a DECIMAL is a DECIMAL truncated to scale 6 (DuckDB's is a DOUBLE).
        return math.isclose(a, b, rel_tol=1e-6) or abs(a - b) <= 1e-6
    return a == b


def check(got, want):
    """'ok', or what differs from DuckDB's answer."""
    if "error" in got:
        return "error"
    if "error" in want:
        return "no reference"
    g, w = got["rows"], want["rows"]
    if len(g) != len(w) or (w and len(g[0]) != len(w[0])):
        return f"MISMATCH: {len(g)} rows × {len(g[0]) if g else 0} columns, DuckDB {len(w)} × {len(w[0]) if w else 0}"

    def first_difference(g, w):
        for i, (gr, wr) in enumerate(zip(g, w)):
            for c, (x, y) in enumerate(zip(gr, wr)):
                if not same(x, y):
                    return f"row {i + 1} {want['columns'][c]}: {x!r}, DuckDB {y!r}"

    diff = first_difference(g, w)
    if diff is None:
        return "ok"
    # Rows that tie on the ORDER BY keys may come in any order.
    key = lambda r: [f"{v:.2f}" if isinstance(v, (int, float)) else str(v) for v in r]
    if first_difference(sorted(g, key=key), sorted(w, key=key)) is None:
        return "ok (ties in another order)"
    return f"MISMATCH {diff}"


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--basin", required=True)
    ap.add_argument("--scale", default="1", help="TPC-H scale factor (fractions such as 0.1 work)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per query, after one warm-up")
    ap.add_argument("--reuse", action="store_true", help="keep an already loaded Basin data dir")
    ap.add_argument("--queries", help="comma-separated subset, e.g. 1,6,18")
    a = ap.parse_args()
    root = Path(f"bench/data/tpch/sf{a.scale}")
    parquet, data = root / "parquet", root / "basin"
    wanted = {int(q) for q in a.queries.split(",")} if a.queries else set(range(1, 23))
    queries = {f"q{n:02}": (QUERIES / f"q{n:02}.sql").read_text() for n in sorted(wanted)}

    generate(parquet, a.scale)
    loads = load(a.basin, data, parquet, a.reuse)
    results = {"basin": run_basin(a.basin, data, queries, a.runs)}
    results["duckdb"] = run_engine("duckdb", {t: str((parquet / f"{t}.parquet").resolve()) for t in TABLES},
                                   queries, a.runs, root)
    results["datafusion"] = run_engine("datafusion", {t: basin_parquet_dir(a.basin, data, t) for t in TABLES},
                                       queries, a.runs, root)

    import datafusion, duckdb
    versions = {"basin": subprocess.run([a.basin, "--version"], capture_output=True, text=True).stdout.strip(),
                "duckdb": duckdb.__version__, "datafusion": datafusion.__version__}
    engines = ["basin", "duckdb", "datafusion"]
    checks = {q: {e: check(results[e][q], results["duckdb"][q]) for e in ("basin", "datafusion")} for q in queries}
    print(f"\nTPC-H SF {a.scale}; {versions['basin']} (`basin serve`, `POST /api/v1/query`, JSON), DuckDB "
          f"{versions['duckdb']} (Python, generated Parquet), DataFusion {versions['datafusion']} (Python, Basin's "
          f"Parquet files); {os.cpu_count()} cores, {platform.machine()}, {time.strftime('%Y-%m-%d')}. "
          f"Median of {a.runs} runs after one warm-up; answers checked against DuckDB's.\n")
    print("| query | Basin ms | DuckDB ms | DataFusion ms | Basin answer | DataFusion answer |")
    print("|---|---:|---:|---:|---|---|")
    fmt = lambda r: f"{r['ms']:,.0f}" if "ms" in r else "error"
    for q in queries:
        print(f"| {q} | {' | '.join(fmt(results[e][q]) for e in engines)} | {checks[q]['basin']} | {checks[q]['datafusion']} |")
    common = [q for q in queries if all("ms" in results[e][q] for e in engines)]
    if common:
        g = {e: geomean([results[e][q]["ms"] for q in common]) for e in engines}
        print(f"| geometric mean ({len(common)} queries) | {g['basin']:,.0f} | {g['duckdb']:,.0f} | {g['datafusion']:,.0f} | | |")
        print(f"\nBasin / DuckDB: {g['basin'] / g['duckdb']:.2f}×; Basin / DataFusion: {g['basin'] / g['datafusion']:.2f}× "
              "(geometric means).")
    for e in ("basin", "datafusion"):
        for q in queries:
            if "error" in results[e][q]:
                print(f"\n{e} {q} failed: {results[e][q]['error']}")

    print("\n`basin ingest` of the generated Parquet files (one process and one commit per table):\n")
    print("| table | seconds | MB | MB/s |")
    print("|---|---:|---:|---:|")
    for l in loads:
        print(f"| {l['table']} | {l['seconds']:.1f} | {l['bytes'] / 1e6:,.1f} | {l['bytes'] / 1e6 / l['seconds']:,.0f} |")
    total_s, total_b = sum(l["seconds"] for l in loads), sum(l["bytes"] for l in loads)
    print(f"| all | {total_s:.1f} | {total_b / 1e6:,.1f} | {total_b / 1e6 / total_s:,.0f} |")

    for e in engines:  # the answers are checked; keep their sizes, not their rows
        for r in results[e].values():
            r["row_count"] = len(r.pop("rows", []))
    (root / "results.json").write_text(json.dumps(
        {"scale": a.scale, "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "machine": platform.machine(),
         "versions": versions, "load": loads, "queries": results, "checks": checks}, indent=1))


if __name__ == "__main__":
    main()
