"""Portal benchmark: a catalog of N tables × 20 columns (generate.py), served by `basin serve`;
latency of GET /api/v1/search (p50/p99) for an administrator and for a user who sees a fifth of
the catalog, search quality on the judged queries of queries.tsv (precision@1, MRR@10), and the
server time of the portal's pages for a signed-in browser, and search right after a change."""
import argparse, platform, random, re, statistics, sys, time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).parent))
import generate  # noqa: E402

ROOT = Path("bench/data/portal")


def judged():
    for line in (Path(__file__).parent / "queries.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            query, expected = line.split("\t")
            yield query, expected


def search(s, token, query, limit=10):
    started = time.perf_counter()
    status, data = s.call("GET", f"/api/v1/search?q={quote(query)}&limit={limit}", token=token)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200, (status, data[:300])
    import json
    return json.loads(data), elapsed


def portal_signin(s, user, password):
    """Signs in through the portal's form, as a browser does; returns the session cookie."""
    c = s.conn()
    c.request("GET", "/signin")
    r = c.getresponse()
    page = r.read().decode()
    signin_cookie = r.getheader("set-cookie").split(";")[0]
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    form = f"_csrf={quote(csrf)}&user={quote(user)}&password={quote(password)}"
    c.request("POST", "/signin", body=form, headers={
        "content-type": "application/x-www-form-urlencoded", "cookie": signin_cookie})
    r = c.getresponse()
    r.read()
    cookies = [h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie"]
    session = [c for c in cookies if c.startswith("basin_session=")]
    assert r.status in (302, 303) and session, (r.status, cookies)
    return session[0]


def page(s, cookie, path):
    c = s.conn()
    started = time.perf_counter()
    c.request("GET", path, headers={"cookie": cookie})
    r = c.getresponse()
    body = r.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert r.status == 200, (path, r.status, body[:300])
    return elapsed


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--basin", required=True)
    p.add_argument("--tables", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=20, help="times each judged query is timed per user")
    p.add_argument("--label", default="release build")
    a = p.parse_args()
    data = ROOT / f"catalog_{a.tables}"
    generate.generate(a.basin, data, a.tables)

    s = generate.Server(a.basin, data)
    try:
        admin = s.login("admin", generate.ADMIN_PASSWORD)
        viewer = s.login("viewer", generate.VIEWER_PASSWORD)
        queries = list(judged())
        # The first search builds the index.
        _, build_ms = search(s, admin, "warm up")
        # Quality, as the administrator (who sees every expected hit).
        hits1, rr, misses = 0, 0.0, []
        for query, expected in queries:
            answer, _ = search(s, admin, query)
            names = [h["name"] for h in answer["hits"]]
            rank = names.index(expected) + 1 if expected in names else None
            hits1 += rank == 1
            rr += 1 / rank if rank else 0
            if rank != 1:
                misses.append(f"{query!r}: expected {expected} at {rank}, first {names[:3]}")
        # Latency, both users alternating.
        times = {"admin": [], "viewer": []}
        totals = {"admin": [], "viewer": []}
        for who, token in (("admin", admin), ("viewer", viewer)):
            search(s, token, "warm up")  # decides what the user sees, once per index
        for _ in range(a.rounds):
            for query, _ in queries:
                for who, token in (("admin", admin), ("viewer", viewer)):
                    answer, ms = search(s, token, query, limit=20)
                    times[who].append(ms)
                    totals[who].append(answer["total"])
        # Portal pages for both users, on tables spread over the catalog (the viewer's tables
        # from the datasets it reads).
        readable = {name for domain, _, name, *_ in generate.dataset_names() if domain in ("finance", "marketing")}
        everything = generate.tables(a.tables)
        samples = {
            "admin": random.Random(7).sample(everything, 50),
            "viewer": random.Random(7).sample([t for t in everything if t[0] in readable], 50),
        }
        pages = {}
        for who, password in (("admin", generate.ADMIN_PASSWORD), ("viewer", generate.VIEWER_PASSWORD)):
            cookie = portal_signin(s, who, password)
            sample = samples[who]
            for path in ("/", "/hubs/main", "/search?q=warm", f"/hubs/main/{sample[0][0]}",
                         f"/hubs/main/{sample[0][0]}/{sample[0][1]}"):
                page(s, cookie, path)
            for name in ("home page", "hub page", "search page", "dataset page", "table page"):
                pages[(name, who)] = []
            for _ in range(max(1, a.rounds // 10)):
                for (query, _), (ds, t, *_rest) in zip(queries * 2, sample):
                    pages[("home page", who)].append(page(s, cookie, "/"))
                    pages[("hub page", who)].append(page(s, cookie, "/hubs/main"))
                    pages[("search page", who)].append(page(s, cookie, f"/search?q={quote(query)}"))
                    pages[("dataset page", who)].append(page(s, cookie, f"/hubs/main/{ds}"))
                    pages[("table page", who)].append(page(s, cookie, f"/hubs/main/{ds}/{t}"))
        # A search right after a change of a description: answered from the previous index
        # while the new one builds (stale), then from the new one.
        after_change, rebuilds, stale_answers = [], [], 0
        for k in range(10):
            ds, t, *_rest = samples["admin"][k]
            s.ok("POST", "/api/v1/query", {"sql": f"COMMENT ON TABLE {ds}.{t} IS 'changed {k}'"}, admin)
            changed = time.perf_counter()
            answer, ms = search(s, admin, queries[k][0])
            after_change.append(ms)
            stale_answers += answer["stale"]
            while answer["stale"]:
                time.sleep(0.05)
                answer, _ = search(s, admin, queries[k][0])
            rebuilds.append((time.perf_counter() - changed) * 1000)
        for ds, t, description, *_rest in samples["admin"][:10]:  # as generated, for later runs
            s.ok("POST", "/api/v1/query", {"sql": f"COMMENT ON TABLE {ds}.{t} IS {generate.quoted(description)}"}, admin)
    finally:
        s.stop()

    print(f"\nPortal search over {a.tables:,} tables × 20 columns ({a.tables * 21 + 50:,} searchable objects); "
          f"{a.label}, {platform.machine()}, {time.strftime('%Y-%m-%d')}\n")
    print("| user | sees | requests | p50 ms | p99 ms | max ms | median hits |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for who, sees in (("admin", "everything"), ("viewer", "2 of 10 domains")):
        t = times[who]
        print(f"| {who} | {sees} | {len(t)} | {pct(t, 50):.1f} | {pct(t, 99):.1f} | {max(t):.1f} | "
              f"{statistics.median(totals[who]):.0f} |")
    print("\n| portal page | user | requests | p50 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, who), t in pages.items():
        print(f"| {name} | {who} | {len(t)} | {pct(t, 50):.1f} | {pct(t, 99):.1f} | {max(t):.1f} |")
    print(f"\nSearch right after a change (10 changes): p50 {pct(after_change, 50):.1f} ms, "
          f"max {max(after_change):.1f} ms; {stale_answers} of 10 answered from the previous index; "
          f"the new index was in place {pct(rebuilds, 50):.0f} ms (p50) / {max(rebuilds):.0f} ms (max) after the change.")
    print(f"\nFirst search (builds the index): {build_ms:.0f} ms.")
    print(f"Quality on {len(queries)} judged queries (queries.tsv): precision@1 {hits1 / len(queries):.2f}, "
          f"MRR@10 {rr / len(queries):.2f}.")
    for m in misses:
        print(f"- miss: {m}")


if __name__ == "__main__":
    main()
