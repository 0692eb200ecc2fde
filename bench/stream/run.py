"""Streamed records: `POST …/tables/{table}/records` of `basin serve` under sustained load.
P producer processes (2 by default) send batches of ~300-byte JSON events as NDJSON over
keep-alive connections for --seconds (600 by default), each request with an Idempotency-Key,
sleeping Retry-After and resending it on 429. A probe process sends one marker record every
--probe-interval seconds and polls `SELECT count(*) … WHERE event_id = <marker>` until it is
visible: ack → queryable latency. Then: records/s, MB/s, a count(*) that must equal the
acknowledged records, the server's peak RSS and, after a graceful shutdown (which commits the
buffer), the table's live data files from its Delta log: count, sizes, files under 8 MiB."""
import argparse, threading, http.client, json, os, platform, random, resource, shutil, subprocess, sys, time
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "concurrency"))
from run import ADMIN_PASSWORD, Server, call, ok, pct, sql  # noqa: E402

ROOT = Path("bench/data/stream")
RECORDS = "/api/v1/hubs/main/datasets/bench/tables/events/records"
TABLE = ("CREATE TABLE bench.events (event_id BIGINT NOT NULL, producer INT, ts TIMESTAMP, vehicle VARCHAR, "
         "kind VARCHAR, speed DOUBLE, lat DOUBLE, lon DOUBLE, battery INT, firmware VARCHAR, payload VARCHAR)")
TARGET_RPS, TARGET_P99_S, SMALL_FILE = 100_000, 1.0, 8 * 1024 * 1024
EVENT_BYTES = 300
KINDS = ["position"] * 8 + ["status", "door_open", "door_close", "charging", "fault"]


def basin(binary, data, *args):
    out = subprocess.run([binary, "--output", "json", *args], env=dict(os.environ, BASIN_DATA_DIR=str(data)),
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"basin {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def connect(url):
    u = urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=300)


def event_tail(rng, producer, kind=None):
    """An event but its leading `{"event_id":N,`, as one NDJSON line of about EVENT_BYTES."""
    t = time.time() - rng.random() * 3600
    rest = {"producer": producer,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z",
            "vehicle": f"VH-{rng.randrange(100_000):06d}", "kind": kind or rng.choice(KINDS),
            "speed": round(rng.uniform(0, 130), 2), "lat": round(rng.uniform(47, 55), 6),
            "lon": round(rng.uniform(5, 15), 6), "battery": rng.randrange(101),
            "firmware": f"{rng.randrange(1, 6)}.{rng.randrange(20)}.{rng.randrange(50)}", "payload": ""}
    room = EVENT_BYTES - len(json.dumps(rest, separators=(",", ":"))) - len('{"event_id":10000000,') + rng.randrange(-20, 21)
    words = []
    while len(";".join(words)) < room:
        words.append(rng.choice([f"odo={rng.randrange(10**6)}", f"temp={rng.uniform(-10, 40):.1f}",
                                 f"door={rng.choice(['open', 'closed'])}", f"driver=D{rng.randrange(10**4):04d}",
                                 f"route=R{rng.randrange(300)}", f"stop=S{rng.randrange(5000)}",
                                 f"rssi=-{rng.randrange(40, 110)}", f"sats={rng.randrange(4, 14)}",
                                 f"trip={rng.getrandbits(64):016x}"]))
    rest["payload"] = ";".join(words)
    return json.dumps(rest, separators=(",", ":"))[1:].encode() + b"\n"


def send(conn, token, body, key, deadline):
    """POSTs one request of records until it is answered 200, with the same Idempotency-Key:
    sleeping Retry-After on 429, resending on a lost connection. Returns (answer, 429s, seconds
    slept); answer is None if the request was still refused at `deadline` (nothing accepted)."""
    headers = {"content-type": "application/x-ndjson", "authorization": f"Bearer {token}", "idempotency-key": key}
    throttled, slept, lost = 0, 0.0, 0
    while True:
        try:
            conn.request("POST", RECORDS, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError) as e:
            conn.close()  # the next request reconnects
            lost += 1
            if lost > 30:
                sys.exit(f"POST {RECORDS}: connection lost {lost} times: {e!r}")
            time.sleep(1)
            continue
        if resp.status == 200:
            return json.loads(data), throttled, slept
        if resp.status != 429:
            sys.exit(f"POST {RECORDS} answered {resp.status}: {data[:500]!r}")
        if time.time() >= deadline:
            return None, throttled, slept
        try:
            wait = max(float(resp.getheader("retry-after", "1")), 0.05)
        except ValueError:
            wait = 1.0
        throttled, slept = throttled + 1, slept + wait
        time.sleep(wait)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_signal():
    """Tells the parent this child is ready, then waits for the common start time."""
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    return start, cpu_seconds()


def producer(cfg):
    """Producer k of n sends event ids k, k + n, k + 2n, …; the lines are made before the start,
    so that building a batch is one join."""
    k, n, batch, token = cfg["k"], cfg["producers"], cfg["batch"], cfg["token"]
    rng = random.Random(k)
    tails = [event_tail(rng, k) for _ in range(8192)]
    conn = connect(cfg["url"])
    start, cpu0 = start_signal()
    deadline = start + cfg["seconds"]
    j = accepted = sent = throttled = refused = 0
    slept, end, reasons, per_second, latencies = 0.0, start, [], [], []
    while time.time() < deadline:
        body = b"".join([b'{"event_id":%d,%s' % (k + n * i, tails[i % len(tails)]) for i in range(j, j + batch)])
        t = time.perf_counter()
        answer, th, sl = send(conn, token, body, f"{cfg['run']}-p{k}-{j}", deadline)
        throttled, slept = throttled + th, slept + sl
        if answer is None:
            break
        end = time.time()
        latencies.append((time.perf_counter() - t) * 1000)
        j += batch
        accepted, sent, refused = accepted + answer["accepted"], sent + len(body), refused + len(answer["refused"])
        reasons += answer["refused"][:3 - len(reasons)]
        second = int(end - start)
        per_second += [0] * (second + 1 - len(per_second))
        per_second[second] += answer["accepted"]
    return dict(accepted=accepted, bytes=sent, refused=refused, reasons=reasons, throttled=throttled, slept=slept,
                per_second=per_second, latencies=latencies, end=end, cpu=cpu_seconds() - cpu0)


def probe(cfg):
    """One marker record (kind 'probe', event ids -1, -2, …) every `interval` s; after its 200,
    polls SQL until it is counted (latency measured to the answer that counts it)."""
    token, rng = cfg["token"], random.Random(-1)
    ingest, query = connect(cfg["url"]), connect(cfg["url"])
    start, cpu0 = start_signal()
    deadline = start + cfg["seconds"]
    latencies, acked, lost, i = [], 0, 0, 0
    while time.time() < deadline:
        i += 1
        sent = time.perf_counter()
        body = b'{"event_id":%d,%s' % (-i, event_tail(rng, -1, "probe"))
        answer, *_ = send(ingest, token, body, f"{cfg['run']}-probe-{i}", deadline)
        if answer is None:
            break
        at, acked = time.perf_counter(), acked + answer["accepted"]
        while True:
            status, data = call(query, "POST", "/api/v1/query",
                                {"sql": f"SELECT count(*) AS n FROM bench.events WHERE event_id = {-i}"}, token)
            if status == 200 and json.loads(data)["rows"][0]["n"] > 0:
                latencies.append(time.perf_counter() - at)
                break
            if status not in (200, 503):  # 503: no free query slot
                sys.exit(f"probe query answered {status}: {data[:500]!r}")
            if time.perf_counter() - at > 30:
                lost += 1
                break
            time.sleep(cfg["poll"])
        time.sleep(max(0.0, sent + cfg["interval"] - time.perf_counter()))
    return dict(accepted=acked, latencies=latencies, lost=lost, cpu=cpu_seconds() - cpu0)


def proc_status(pid, field):
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu(pid):
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_files(location):
    """The table's live data files (path → bytes) in the order they were added, replayed from
    the JSON commits of its Delta log (a new table keeps all of them)."""
    live = {}
    for commit in sorted((location / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "add" in action:
                live[unquote(action["add"]["path"])] = action["add"]["size"]
            elif "remove" in action:
                live.pop(unquote(action["remove"]["path"]), None)
    return live


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--basin", required=True)
    ap.add_argument("--profile", default="release")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--probe-interval", type=float, default=0.5)
    args = ap.parse_args()
    data = ROOT / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    basin(args.basin, data, "dataset", "create", "bench", "--layer", "source")
    # No compaction by the maintainer during the run: the files counted are the stream's own.
    os.environ["BASIN_MAINTENANCE_INTERVAL_SECS"] = "0"
    s = Server(args.basin, data)
    children = []
    try:
        conn = s.connect()
        token = ok(conn, "POST", "/api/v1/login", {"user": "admin", "password": ADMIN_PASSWORD})["token"]
        sql(conn, token, TABLE)
        cfg = dict(url=s.url, token=token, run=os.urandom(4).hex(), seconds=args.seconds, producers=args.producers,
                   batch=args.batch, interval=args.probe_interval, poll=0.02)
        for role, k in [("producer", k) for k in range(args.producers)] + [("probe", None)]:
            c = subprocess.Popen([sys.executable, __file__, "--child", role], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            c.stdin.write(json.dumps(dict(cfg, k=k)) + "\n")
            c.stdin.flush()
            children.append(c)
        for c in children:
            if c.stdout.readline().strip() != "ready":
                sys.exit("a producer or the probe did not start")
        start = time.time() + 0.2
        for c in children:
            c.stdin.write(f"{start}\n")
            c.stdin.flush()
        cpu0, shown = proc_cpu(s.proc.pid), time.time()
        # Each child's report is read as it comes: a report larger than the pipe's buffer
        # would otherwise block the child, and this loop would wait for it for ever.
        reports = [None] * len(children)
        def collect(i, c):
            reports[i] = c.stdout.read()
        readers = [threading.Thread(target=collect, args=(i, c), daemon=True) for i, c in enumerate(children)]
        for r in readers:
            r.start()
        while any(c.poll() is None for c in children):
            if any(c.returncode for c in children):
                sys.exit("a producer or the probe failed (see above)")
            if time.time() - shown >= 60:
                shown = time.time()
                print(f"  {shown - start:.0f} s: server RSS {proc_status(s.proc.pid, 'VmRSS'):,.0f} MiB", file=sys.stderr)
            time.sleep(0.5)
        if any(c.returncode for c in children):
            sys.exit("a producer or the probe failed (see above)")
        for r in readers:
            r.join()
        *made, probed = [json.loads(r) for r in reports]
        server_cpu = proc_cpu(s.proc.pid) - cpu0
        conn = s.connect()  # the first one may have been closed while idle
        counted = sql(conn, token, "SELECT count(*) AS n FROM bench.events")[0]["n"]
        peak = proc_status(s.proc.pid, "VmHWM")
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
        stopping = time.perf_counter()
        s.stop()
        shutdown = time.perf_counter() - stopping
    committed = json.loads(basin(args.basin, data, "sql", "SELECT count(*) AS n FROM bench.events"))[0]["n"]
    location = Path(json.loads(basin(args.basin, data, "table", "show", "bench.events"))["location"].removeprefix("file://"))
    live = live_files(location)
    on_disk = [f for f in location.rglob("*.parquet") if "_delta_log" not in f.parts]
    sizes = list(live.values())
    small = [b for b in sizes[:-1] if b < SMALL_FILE]

    duration = max(args.seconds, max(m["end"] for m in made) - start)  # to the last ack
    records = sum(m["accepted"] for m in made)
    acked = records + probed["accepted"]
    rps, mbps = records / duration, sum(m["bytes"] for m in made) / 1e6 / duration
    per_second = [sum(m["per_second"][i] for m in made if i < len(m["per_second"])) for i in range(int(args.seconds))]
    slowest = min((sum(per_second[i:i + 10]) / 10 for i in range(len(per_second) - 9)), default=float("nan"))
    batch_ms = [x for m in made for x in m["latencies"]]
    lat = probed["latencies"]
    p99 = pct(lat, 99)
    mib = lambda b: b / 2**20
    print(f"`basin serve` ({args.profile} build), local disk, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"{platform.processor() or platform.machine()}. {args.producers} producer processes, batches of "
          f"{args.batch:,} NDJSON records (~{sum(m['bytes'] for m in made) / max(records, 1):.0f} bytes each), "
          f"{duration:.0f} s; a probe record every {args.probe_interval:g} s, polled with SQL every 20 ms.\n")
    print("| measure | result | target |")
    print("|---|---:|---:|")
    print(f"| records/s sustained (acknowledged / s) | {rps:,.0f} | ≥ {TARGET_RPS:,} |")
    print(f"| records/s, slowest 10 s | {slowest:,.0f} | |")
    print(f"| JSON MB/s | {mbps:.1f} | |")
    print(f"| records acknowledged | {acked:,} | |")
    print(f"| batch ack ms p50 / p99 | {pct(batch_ms, 50):.0f} / {pct(batch_ms, 99):.0f} | |")
    print(f"| 429 answers (s waited) | {sum(m['throttled'] for m in made):,} ({sum(m['slept'] for m in made):.0f} s) | |")
    print(f"| ack → queryable p50 ms | {pct(lat, 50) * 1000:.0f} | |")
    print(f"| ack → queryable p99 ms | {p99 * 1000:.0f} | ≤ {TARGET_P99_S * 1000:,.0f} |")
    print(f"| ack → queryable max ms | {max(lat, default=float('nan')) * 1000:.0f} | |")
    print(f"| probes (not visible within 30 s) | {len(lat) + probed['lost']:,} ({probed['lost']}) | |")
    print(f"| data files | {len(sizes):,} | |")
    print(f"| average / smallest file MiB | {mib(sum(sizes) / max(len(sizes), 1)):.1f} / {mib(min(sizes, default=0)):.1f} | |")
    print(f"| files < 8 MiB, newest excluded | {len(small)} | 0 |")
    print(f"| server peak RSS MiB (VmHWM) | {peak:,.0f} | |")
    print(f"| CPU cores used: server / producers / probe | {server_cpu / duration:.2f} / "
          f"{sum(m['cpu'] for m in made) / duration:.2f} / {probed['cpu'] / duration:.2f} | |")
    print(f"| graceful shutdown s | {shutdown:.1f} | |")
    print()
    print(f"- records/s: {'met' if rps >= TARGET_RPS else f'missed by {TARGET_RPS - rps:,.0f} ({1 - rps / TARGET_RPS:.0%})'}")
    print("- p99 ack → queryable: " + ("met" if p99 <= TARGET_P99_S else f"missed by {(p99 - TARGET_P99_S) * 1000:,.0f} ms"
                                          if lat else "missed: no probe became visible"))
    print("- files: " + ("met" if not small else f"missed: {len(small)} of {len(sizes)} files under 8 MiB "
                                                 f"besides the newest (smallest {mib(min(small)):.1f} MiB)"))
    busy = [m["cpu"] / duration for m in made]
    if max(busy) >= 0.9:
        print(f"- the producers were CPU-bound ({', '.join(f'{b:.0%}' for b in busy)} of a core each): "
              "the load generator, not the server, may be the limit")
    if counted != acked:
        print(f"\nFAIL: SELECT count(*) answered {counted:,}, but {acked:,} records were acknowledged")
    if committed != acked:
        print(f"\nFAIL: after the graceful shutdown the table holds {committed:,} rows, {acked:,} were acknowledged")
    if any(m["refused"] for m in made):
        print(f"\nFAIL: {sum(m['refused'] for m in made):,} records refused, e.g.", *[r for m in made for r in m["reasons"]][:3])
    if len(on_disk) != len(live):
        print(f"\nNote: {len(on_disk)} Parquet files on disk, {len(live)} live in the Delta log (counted above)")


def child(role):
    cfg = json.loads(sys.stdin.readline())
    print(json.dumps(producer(cfg) if role == "producer" else probe(cfg)), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
