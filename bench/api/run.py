"""Builds a catalog of N tables with policies, serves it with `basin serve`, and measures the API
under concurrent load from wrk (a separate process) and the planning time policies add."""
import argparse, http.client, json, os, platform, re, shutil, statistics, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path("bench/data/api")
ADMIN_PASSWORD = "bench-admin-password"
ALICE_PASSWORD = "alice-password"
DATASETS = 100
ROWS = 10_000
PLAN_SAMPLES = 500


def sh(binary, data, *args):
    proc = subprocess.run([binary, *args], env=dict(os.environ, BASIN_DATA_DIR=str(data)),
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"basin {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


class Server:
    """`basin serve` on a free loopback port, its log in the data dir."""

    def __init__(self, binary, data):
        self.log = open(data / "serve.log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0"],
            env=dict(os.environ, BASIN_DATA_DIR=str(data), BASIN_ADMIN_PASSWORD=ADMIN_PASSWORD),
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            if line.startswith("basin: listening on "):
                self.url = line.split()[-1]
                break
        else:
            sys.exit(f"basin serve did not start; see {data / 'serve.log'}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        u = urlparse(self.url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

    def call(self, method, path, body=None, token=None):
        headers = {}
        if body is not None:
            headers["content-type"] = "application/json"
            body = json.dumps(body)
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def ok(self, method, path, body=None, token=None):
        status, headers, data = self.call(method, path, body, token)
        if status >= 300:
            sys.exit(f"{method} {path} answered {status}: {data[:500]!r}")
        return json.loads(data) if data else None, headers

    def login(self, user, password):
        return self.ok("POST", "/api/v1/login", {"user": user, "password": password})[0]["token"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def shape(tables):
    """Datasets, tables per dataset, and the table the benchmark reads."""
    datasets = min(DATASETS, tables)
    per = tables // datasets
    return datasets, per, (f"d{datasets // 2:03}", f"t{per // 2:03}")


def build(binary, tables):
    """A data dir with `tables` tables in up to 100 datasets, users, roles and policies."""
    data = ROOT / f"catalog_{tables}"
    if (data / "ready").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    datasets, per, (td, tt) = shape(tables)
    started = time.perf_counter()
    for d in range(datasets):
        sh(binary, data, "dataset", "create", f"d{d:03}", "--layer", "prepared")
    ddl = data / "tables.sql"
    ddl.write_text("".join(
        f"CREATE TABLE d{d:03}.t{t:03} (id BIGINT, region VARCHAR, amount DOUBLE, email VARCHAR, note VARCHAR);\n"
        for d in range(datasets) for t in range(per) if (f"d{d:03}", f"t{t:03}") != (td, tt)))
    sh(binary, data, "sql", "-f", str(ddl))
    rows = data / "rows.csv"
    regions = ["eu", "us", "apac"]
    rows.write_text("id,region,amount,email,note\n" + "".join(
        f"{i},{regions[i % 3]},{(i * 7919) % 10000 / 100},user{i}@example.com,note {i}\n" for i in range(ROWS)))
    sh(binary, data, "ingest", f"{td}.{tt}", str(rows))
    print(f"  {tables} tables created in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    s = Server(binary, data)
    admin = s.login("admin", ADMIN_PASSWORD)
    s.ok("PUT", "/api/v1/tags/classification", {"allowed_values": ["public", "internal", "pii", "pci"]}, admin)
    s.ok("POST", "/api/v1/roles", {"name": "analyst", "description": "reads what it is granted"}, admin)
    s.ok("POST", "/api/v1/users", {"name": "alice", "password": ALICE_PASSWORD,
                                   "attributes": {"region": "eu"}, "roles": ["analyst"]}, admin)
    grants = []
    # A role per dataset with a member each: many grants that are not the analyst's.
    for d in range(datasets):
        s.ok("POST", "/api/v1/roles", {"name": f"r{d:03}", "description": ""}, admin)
        s.ok("POST", "/api/v1/users", {"name": f"u{d:03}", "password": f"password-{d:03}",
                                       "roles": [f"r{d:03}"]}, admin)
        grants.append({"privilege": "SELECT", "object": f"dataset main.d{d:03}", "grantee": f"r{d:03}"})
    # The analyst holds table grants on a tenth of the tables, and a tag grant.
    grants += [{"privilege": "SELECT", "object": f"table main.d{d:03}.t{t:03}", "grantee": "analyst"}
               for d in range(datasets) for t in range(per)
               if (d * per + t) % 10 == 0 and (f"d{d:03}", f"t{t:03}") != (td, tt)]
    grants.append({"privilege": "SELECT", "object": "tag classification=public", "grantee": "analyst"})
    # On the table read: four of five columns, a row filter and a mask.
    grants.append({"privilege": "SELECT", "object": f"table main.{td}.{tt}",
                   "columns": ["id", "region", "amount", "email"], "grantee": "analyst"})
    for g in grants:
        s.ok("POST", "/api/v1/grants", g, admin)
    for d in range(0, datasets, 10):
        if (f"d{d:03}", "t000") != (td, tt):
            s.ok("PUT", "/api/v1/tags", {"object": f"table main.d{d:03}.t000", "tags": ["classification=public"]}, admin)
    s.ok("PUT", "/api/v1/policies/row-filters", {"table": f"main.{td}.{tt}", "grantee": "analyst",
                                                 "expression": "region = user_attribute('region')"}, admin)
    s.ok("PUT", "/api/v1/policies/masks", {"table": f"main.{td}.{tt}", "column": "email",
                                           "grantee": "analyst", "mask": "keep_last(4)"}, admin)
    s.stop()
    (data / "ready").write_text(f"{len(grants)}\n")
    return data


def check_policy(s, admin, alice, sql):
    """The benchmark only means something if alice's view really is governed."""
    rows = s.ok("POST", "/api/v1/query", {"sql": sql}, alice)[0]["rows"]
    assert rows and all(set(r) == {"id", "email", "amount"} for r in rows), rows[:2]
    assert all(r["id"] % 3 == 0 and r["email"].startswith("*") for r in rows), rows[:2]
    full = s.ok("POST", "/api/v1/query", {"sql": sql}, admin)[0]["rows"]
    assert len(full) == 3 * len(rows), (len(full), len(rows))


def plan_times(s, tokens, sql):
    """Planning time (the server's `Server-Timing: plan`) and client latency in ms, per principal.
    Requests of the principals alternate, so that drift on the machine affects them alike."""
    times = {who: ([], []) for who in tokens}
    for i in range(PLAN_SAMPLES + 20):
        for who, token in tokens.items():
            started = time.perf_counter()
            status, headers, _ = s.call("POST", "/api/v1/query", {"sql": sql}, token)
            elapsed = (time.perf_counter() - started) * 1000
            assert status == 200, status
            if i >= 20:  # warm-up
                plan = float(re.search(r"plan;dur=([0-9.]+)", headers["server-timing"]).group(1))
                times[who][0].append(plan)
                times[who][1].append(elapsed)
    return times


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


PEERS = """
import glob, json, os, sys, time
import duckdb, duckdb_extension_delta, pyarrow.dataset as ds
from deltalake import DeltaTable
path, sql, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect()
con.execute(f"LOAD '{ext}'")
def timed(query):
    times = []
    for i in range(n + 20):
        started = time.perf_counter()
        query()
        if i >= 20:
            times.append((time.perf_counter() - started) * 1000)
    return times
print(json.dumps({
    "DuckDB delta_scan (in-process)": timed(lambda: con.execute(sql.replace("TABLE", f"delta_scan('{path}')")).fetchall()),
    "deltalake Python (in-process)": timed(lambda: DeltaTable(path).to_pyarrow_dataset().to_table(
        columns=["id", "email", "amount"], filter=ds.field("id") < 300)),
}), flush=True)
os._exit(0)  # DuckDB's delta extension aborts in its teardown at interpreter exit
"""


def peers(table_dir):
    """The same read by peers, in-process, opening the table for each query as Basin does."""
    sql = "SELECT id, email, amount FROM TABLE WHERE id < 300"
    out = subprocess.run([sys.executable, "-c", PEERS, str(table_dir.resolve()), sql, str(PLAN_SAMPLES)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"peers failed:\n{out.stderr}")
    return json.loads(out.stdout)


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(url, token, method, body, seconds, connections, scratch):
    script = scratch / "request.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += ['wrk.headers["Content-Type"] = "application/json"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    return rps, latency["50"], latency["99"], errors


def measure(binary, tables, seconds, connections):
    data = build(binary, tables)
    _, _, (td, tt) = shape(tables)
    sql = f"SELECT id, email, amount FROM {td}.{tt} WHERE id < 300"
    s = Server(binary, data)
    try:
        admin = s.login("admin", ADMIN_PASSWORD)
        alice = s.login("alice", ALICE_PASSWORD)
        check_policy(s, admin, alice, sql)
        table_path = f"/api/v1/hubs/main/datasets/{td}/tables/{tt}"
        detail = s.ok("GET", table_path, token=alice)[0]
        assert [c["name"] for c in detail["columns"]] == ["id", "region", "amount", "email"], detail
        plan = plan_times(s, {"admin": admin, "alice": alice}, sql)
        load = []
        for what, method, path, body in [("GET table", "GET", table_path, None),
                                         ("POST query", "POST", "/api/v1/query", {"sql": sql})]:
            for who, token in [("admin", admin), ("alice", alice)]:
                load.append((what, who) + wrk(s.url + path, token, method, body, seconds, connections, data))
        grants = int((data / "ready").read_text())
    finally:
        s.stop()
    return sql, grants, plan, load, peers(data / "hubs" / "main" / td / tt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--basin", required=True)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("tables", nargs="+", type=int)
    args = ap.parse_args()
    results = [(n,) + measure(args.basin, n, args.seconds, args.connections) for n in args.tables]

    cpu = platform.processor() or platform.machine()
    print(f"`basin serve` (release), SQLite catalog, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {cpu}. "
          f"Query: `{results[-1][1]}` on a {ROWS:,}-row table. admin: no policy applies; alice: column grant "
          f"(4 of 5 columns), row filter `region = user_attribute('region')`, `keep_last(4)` mask.\n")
    print(f"Load: wrk, 1 thread, {args.connections} connections, {args.seconds} s per line, on the same machine.\n")
    print("| tables | grants | request | principal | req/s | p50 ms | p99 ms | errors |")
    print("|---:|---:|---|---|---:|---:|---:|---:|")
    for n, _, grants, _, load, _ in results:
        for what, who, rps, p50, p99, errors in load:
            print(f"| {n:,} | {grants:,} | {what} | {who} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} |")
    print(f"\nPlanning time of the query (`Server-Timing: plan`: names, policy, DataFusion plans), "
          f"{PLAN_SAMPLES} sequential requests each, the two principals alternating:\n")
    print("| tables | principal | plan p50 ms | plan p99 ms | request p50 ms | policy overhead (p50) |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, _, _, plan, _, _ in results:
        base = statistics.median(plan["admin"][0])
        for who, (plans, totals) in plan.items():
            overhead = "—" if who == "admin" else f"{statistics.median(plans) - base:+.3f} ms"
            print(f"| {n:,} | {who} | {statistics.median(plans):.3f} | {pct(plans, 99):.3f} | "
                  f"{statistics.median(totals):.3f} | {overhead} |")

    n, _, _, plan, _, peer = results[-1]
    print(f"\nThe same read, one request at a time ({n:,} tables): Basin over HTTP (token check, policy, "
          f"audit record, JSON) next to peers reading the Delta table in-process:\n")
    print("| reader | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    for who, (_, totals) in plan.items():
        print(f"| Basin POST /api/v1/query as {who} | {statistics.median(totals):.2f} | {pct(totals, 99):.2f} |")
    for name, times in peer.items():
        print(f"| {name} | {statistics.median(times):.2f} | {pct(times, 99):.2f} |")


if __name__ == "__main__":
    main()

