"""Starts `basin serve` on a fresh data dir and measures concurrent writers: for 1, 8 and 64
clients (each its own HTTP connection, one request at a time), small INSERTs into one table,
INSERTs into a table per client, and `UPDATE … SET n = n + 1` of one row. Counts the Delta
versions each run created and checks that the tables hold exactly the acknowledged writes."""
import argparse, http.client, json, os, platform, shutil, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path("bench/data/concurrency")
ADMIN_PASSWORD = "bench-admin-password"
ROWS_PER_INSERT = 5


class Server:
    """`basin serve` on a free loopback port, its log in the data dir."""

    def __init__(self, binary, data):
        self.log = open(data / "serve.log", "w")
        self.proc = subprocess.Popen(
            # Every client's statement runs at once (the default admits twice the cores).
            [binary, "serve", "--listen", "127.0.0.1:0", "--max-concurrent-queries", "256"],
            env=dict(os.environ, BASIN_DATA_DIR=str(data), BASIN_ADMIN_PASSWORD=ADMIN_PASSWORD),
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            if line.startswith("basin: listening on "):
                self.url = line.split()[-1]
                break
        else:
            sys.exit(f"basin serve did not start; see {data / 'serve.log'}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def connect(self):
        u = urlparse(self.url)
        return http.client.HTTPConnection(u.hostname, u.port, timeout=300)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def call(conn, method, path, body=None, token=None):
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def ok(conn, method, path, body=None, token=None):
    status, data = call(conn, method, path, body, token)
    if status >= 300:
        sys.exit(f"{method} {path} answered {status}: {data[:500]!r}")
    return json.loads(data) if data else None


def sql(conn, token, text):
    return ok(conn, "POST", "/api/v1/query", {"sql": text}, token)["rows"]


def version(conn, token, table):
    return ok(conn, "GET", f"/api/v1/hubs/main/datasets/bench/tables/{table}", token=token)["stats"]["version"]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def run(s, token, clients, seconds, statement):
    """`clients` threads send `statement(client, i)` until `seconds` have passed; returns the
    elapsed time, latencies (ms) of the 200s, and the failures (status, text)."""
    latencies, failures, lock = [], [], threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(c):
        conn = s.connect()
        mine, bad, i = [], [], 0
        start.wait()
        while time.perf_counter() < stop_at[0]:
            t = time.perf_counter()
            status, data = call(conn, "POST", "/api/v1/query", {"sql": statement(c, i)}, token)
            if status == 200:
                mine.append((time.perf_counter() - t) * 1000)
            else:
                bad.append((status, data[:300]))
            i += 1
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    return time.perf_counter() - began, latencies, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--basin", required=True)
    ap.add_argument("--profile", default="release")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", default="1,8,64")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    data = ROOT / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = dict(os.environ, BASIN_DATA_DIR=str(data))
    subprocess.run([args.basin, "dataset", "create", "bench", "--layer", "source"], env=env, check=True,
                   capture_output=True)
    s = Server(args.basin, data)
    results = []
    try:
        conn = s.connect()
        token = ok(conn, "POST", "/api/v1/login", {"user": "admin", "password": ADMIN_PASSWORD})["token"]
        values = lambda c, i: ", ".join(f"({c}, {i}, {r}, 'note {c}-{i}-{r}')" for r in range(ROWS_PER_INSERT))
        for n in counts:
            # A fresh table per run, so every run starts from a short history.
            one = f"one_{n}"
            sql(conn, token, f"CREATE TABLE bench.{one} (client BIGINT, seq BIGINT, r BIGINT, note VARCHAR)")
            many = [f"many_{n}_{c}" for c in range(n)]
            for t in many:
                sql(conn, token, f"CREATE TABLE bench.{t} (client BIGINT, seq BIGINT, r BIGINT, note VARCHAR)")
            counter = f"counter_{n}"
            sql(conn, token, f"CREATE TABLE bench.{counter} (id BIGINT, n BIGINT)")
            sql(conn, token, f"INSERT INTO bench.{counter} VALUES (1, 0)")
            for what, tables, statement, rows_per in [
                ("INSERT, one table", [one],
                 lambda c, i: f"INSERT INTO bench.{one} VALUES {values(c, i)}", ROWS_PER_INSERT),
                ("INSERT, a table per client", many,
                 lambda c, i: f"INSERT INTO bench.{many[c]} VALUES {values(c, i)}", ROWS_PER_INSERT),
                ("UPDATE one row", [counter],
                 lambda c, i: f"UPDATE bench.{counter} SET n = n + 1 WHERE id = 1", 1),
            ]:
                before = sum(version(conn, token, t) for t in tables)
                elapsed, latencies, failures = run(s, token, n, args.seconds, statement)
                versions = sum(version(conn, token, t) for t in tables) - before
                # The tables hold exactly the acknowledged writes.
                if rows_per == 1:
                    stored = sql(conn, token, f"SELECT n FROM bench.{counter}")[0]["n"]
                else:
                    stored = sum(sql(conn, token, f"SELECT count(*) AS c FROM bench.{t}")[0]["c"]
                                 for t in tables) // ROWS_PER_INSERT
                assert stored == len(latencies), (what, n, stored, len(latencies))
                results.append((what, n, elapsed, len(latencies), rows_per, versions, latencies, failures))
                print(f"  {what}, {n} clients: {len(latencies) / elapsed:.1f} req/s, "
                      f"{versions} versions, {len(failures)} failures", file=sys.stderr)
    finally:
        s.stop()
    print(f"`basin serve` ({args.profile} build), SQLite catalog, local disk, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}. Each client: one HTTP "
          f"connection, one request at a time, for {args.seconds:g} s; an INSERT adds {ROWS_PER_INSERT} rows.\n")
    print("| workload | clients | requests/s | rows/s | commits (versions)/s | requests per version | p50 ms | p99 ms | failures |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = {}
    for what, n, elapsed, done, rows_per, versions, latencies, failures in results:
        rps = done / elapsed
        base.setdefault(what, rps)
        print(f"| {what} | {n} | {rps:,.1f} | {rps * rows_per:,.0f} | {versions / elapsed:,.1f} | "
              f"{done / max(versions, 1):.1f} | {pct(latencies, 50):.1f} | {pct(latencies, 99):.1f} | {len(failures)} |")
    print()
    for what, n, elapsed, done, *_ in results:
        if n != counts[0]:
            print(f"- {what}, {n} clients: {done / elapsed / base[what]:.1f}× the rows/s of {counts[0]} client(s)")
    failed = [f for r in results for f in r[7]]
    if failed:
        print("\nFailures (first 5):", *failed[:5], sep="\n")


if __name__ == "__main__":
    main()
