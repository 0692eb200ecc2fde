"""Generates a catalog of N tables (default 10,000) of 20 columns, with descriptions, domains,
owners and tags, through Basin's own surfaces: datasets with `basin dataset create`, real Delta
tables and their descriptions with `basin sql -f` (CREATE TABLE and COMMENT ON, several
processes at once), and tags with the REST API (many requests in parallel). Deterministic: the same N gives the same catalog,
and the judged queries (queries.tsv) name tables planted in it.

    python3 bench/portal/generate.py --basin target/release/basin --data bench/data/portal/catalog_10000 --tables 10000
"""
import argparse, concurrent.futures, http.client, json, os, random, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urlparse

ADMIN_PASSWORD = "bench-admin-password"
VIEWER_PASSWORD = "viewer-password"
DATASETS_PER_DOMAIN = 5
LAYERS = ["source", "prepared", "semantic"]
DOMAINS = {
    "finance": ["invoice", "ledger_entry", "budget", "cost_center", "accrual", "expense", "tax_line", "credit_note", "receivable", "payable"],
    "sales": ["order", "quote", "opportunity", "lead", "deal", "discount", "price_list", "pipeline", "territory", "commission"],
    "marketing": ["campaign", "audience", "impression", "click", "conversion", "newsletter", "coupon", "landing_page", "segment_member", "ad_spend"],
    "logistics": ["shipment", "delivery", "route", "carrier", "pallet", "depot", "dispatch", "freight_cost", "pickup", "transit_time"],
    "hr": ["employee", "absence", "position", "salary_band", "training", "review", "vacancy", "applicant", "onboarding", "overtime"],
    "product": ["sku", "variant", "bundle", "feature_flag", "release", "category", "attribute", "bill_of_material", "lifecycle", "roadmap_item"],
    "support": ["ticket", "chat", "call", "escalation", "knowledge_article", "agent", "queue", "satisfaction", "callback", "macro"],
    "risk": ["exposure", "limit_breach", "counterparty", "collateral", "rating", "stress_test", "loss_event", "control_test", "incident", "policy_exception"],
    "supply": ["purchase_order", "vendor", "requisition", "goods_receipt", "lead_time", "forecast", "replenishment", "batch", "inspection", "scrap"],
    "web": ["page_view", "visit", "signup", "search_term", "cart", "checkout", "referrer", "device", "experiment", "banner"],
}
QUALIFIERS = ["daily", "monthly", "snapshot", "history", "raw", "clean", "agg", "by_region", "by_channel", "latest",
              "weekly", "yearly", "delta", "archive", "current", "staging", "summary", "detail", "audit", "v2"]
COLUMNS = ["id", "created_at", "updated_at", "amount", "currency", "region", "country", "status", "channel", "quantity",
           "unit_price", "valid_from", "valid_to", "source_system", "batch_id", "owner_team", "comment", "score",
           "is_active", "external_ref", "category_code", "net_value", "gross_value", "weight_kg", "duration_min",
           "priority", "language", "city", "postal_code", "segment"]
# Planted columns come last; the last EXTRA_MAX columns of every table are described too.
EXTRA_MAX = 1
CLASSIFICATION = ["public", "internal", "confidential"]
QUALITY = ["gold", "silver", "bronze"]
OWNERS = ["amy.chen", "bob.ortiz", "carla.weiss", "dan.okafor", "eva.novak", "femi.adeyemi", "gus.lindqvist"]

# Tables planted for the judged queries: (dataset index in its domain, name, description,
# extra columns as (name, description)).
PLANTED = {
    "finance": [(0, "general_ledger", "Double-entry bookkeeping lines of the general ledger", []),
                (1, "payouts", "Money paid out to partners", [("iban", "International bank account number of the payee")]),
                (2, "exchange_rates", "Daily FX rates per currency pair", [])],
    "marketing": [(3, "customer_churn_scores", "Predicted probability that a customer cancels within 90 days", []),
                  (1, "net_promoter_survey", "NPS answers from the quarterly survey", [])],
    "logistics": [(0, "warehouse_stock_levels", "Units on hand per warehouse and article", []),
                  (2, "parcel_shipments", "Parcels handed to carriers", [("shipment_tracking_number", "The carrier's tracking code")])],
    "hr": [(0, "employee_headcount", "Heads per department at month end", []),
           (1, "payroll_runs", "Monthly payroll runs and their totals", [])],
    "risk": [(4, "fraud_alerts", "Transactions flagged as suspicious by the rules engine", []),
             (0, "erasure_requests", "GDPR right-to-erasure requests and when they were fulfilled", [])],
    "web": [(1, "clickstream_events", "Raw clickstream of the web shop, one row per browser event", [])],
    "supply": [(2, "supplier_contracts", "Framework agreements with suppliers", []),
               (3, "scope3_emissions", "Carbon emissions of suppliers (scope 3)", [])],
    "support": [(1, "ticket_sla_breaches", "Tickets answered after their service-level deadline", [])],
    "product": [(4, "product_returns_rate", "Share of units sent back, per article and month", [])],
}
# A dataset of its own, found by its name or its owner.
PLANTED_DATASETS = {("risk", 2): ("treasury", "ada.lovelace", "Liquidity and cash positions")}


def dataset_names():
    """(domain, index, name, layer, owner, description) of every dataset."""
    out = []
    for d, (domain, _) in enumerate(DOMAINS.items()):
        for i in range(DATASETS_PER_DOMAIN):
            planted = PLANTED_DATASETS.get((domain, i))
            name = planted[0] if planted else f"{domain}_{LAYERS[i % 3]}_{i}"
            owner = planted[1] if planted else OWNERS[(d + i) % len(OWNERS)]
            description = planted[2] if planted else f"{domain.capitalize()} data, {LAYERS[i % 3]} layer, part {i}"
            out.append((domain, i, name, LAYERS[i % 3], owner, description))
    return out


def tables(n):
    """(dataset, table, description, tags, [(column, description)]) of n tables, planted ones included."""
    rng = random.Random(42)
    datasets = dataset_names()
    per = n // len(datasets)
    out = []
    for domain, i, ds, layer, _, _ in datasets:
        planted = [(name, desc, extra) for (j, name, desc, extra) in PLANTED.get(domain, []) if j == i]
        names = []
        entities = DOMAINS[domain]
        k = 0
        while len(names) < per - len(planted):
            e = entities[k % len(entities)]
            q = QUALIFIERS[(k // len(entities)) % len(QUALIFIERS)]
            suffix = k // (len(entities) * len(QUALIFIERS))
            names.append(f"{e}s_{q}" + (f"_{suffix}" if suffix else ""))
            k += 1
        rows = [(name, f"{name.split('_')[0].capitalize()} records of {domain}, {layer} layer", []) for name in names]
        rows += planted
        for name, desc, extra in rows:
            cols = rng.sample(COLUMNS, 20 - len(extra))
            cols = [(c, f"The {c.replace('_', ' ')} of the {name.replace('_', ' ')}") for c in cols] + extra
            tags = [f"classification={rng.choice(CLASSIFICATION)}", f"quality={rng.choice(QUALITY)}"]
            out.append((ds, name, desc, tags, cols))
    return out


def sql_type(column):
    if column in ("amount", "unit_price", "net_value", "gross_value", "weight_kg", "score"):
        return "DOUBLE"
    if column in ("quantity", "duration_min", "priority", "batch_id", "id"):
        return "BIGINT"
    if column == "is_active":
        return "BOOLEAN"
    return "VARCHAR"


def quoted(text):
    return "'" + text.replace("'", "''") + "'"


def statements(ds, t, description, cols):
    """CREATE TABLE, and COMMENT ON the table and on its first five (and planted) columns."""
    sql = f"CREATE TABLE {ds}.{t} ({', '.join(column_ddl(c) for c, _ in cols)});\n"
    sql += f"COMMENT ON TABLE {ds}.{t} IS {quoted(description)};\n"
    for k, (c, text) in enumerate(cols):
        if k < 5 or k >= 20 - EXTRA_MAX:
            sql += f"COMMENT ON COLUMN {ds}.{t}.{c} IS {quoted(text)};\n"
    return sql


def column_ddl(column):
    return f"{column} {sql_type(column)}"


def basin(binary, data, *args, env=None):
    proc = subprocess.run([binary, *args], env=dict(os.environ, BASIN_DATA_DIR=str(data), **(env or {})),
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"basin {' '.join(args[:4])} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


class Server:
    """`basin serve` on a free loopback port, its log in the data dir."""

    def __init__(self, binary, data):
        self.log = open(data / "serve.log", "a")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0"],
            env=dict(os.environ, BASIN_DATA_DIR=str(data), BASIN_ADMIN_PASSWORD=ADMIN_PASSWORD),
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            if line.startswith("basin: listening on "):
                self.url = urlparse(line.split()[-1])
                break
        else:
            sys.exit(f"basin serve did not start; see {data / 'serve.log'}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.local = threading.local()

    def conn(self):
        if not hasattr(self.local, "conn"):
            self.local.conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=300)
        return self.local.conn

    def call(self, method, path, body=None, token=None):
        headers = {}
        if body is not None:
            headers["content-type"] = "application/json"
            body = json.dumps(body)
        if token:
            headers["authorization"] = f"Bearer {token}"
        c = self.conn()
        c.request(method, path, body=body, headers=headers)
        resp = c.getresponse()
        return resp.status, resp.read()

    def ok(self, method, path, body=None, token=None):
        status, data = self.call(method, path, body, token)
        if status >= 300:
            sys.exit(f"{method} {path} answered {status}: {data[:500]!r}")
        return json.loads(data) if data else None

    def login(self, user, password):
        return self.ok("POST", "/api/v1/login", {"user": user, "password": password})["token"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def generate(binary, data, n, workers=8):
    """Builds the catalog in `data` (kept: a second call with a ready catalog does nothing)."""
    if (data / "ready").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for domain, _, name, layer, owner, description in dataset_names():
        basin(binary, data, "dataset", "create", name, "--layer", layer, "--domain", domain,
              "--owner", owner, "--description", description)
    all_tables = tables(n)
    # Real Delta tables and their descriptions through the SQL surface (CREATE TABLE, COMMENT ON:
    # the table and its first columns described), in a few processes at once.
    procs = []
    chunks = 4
    for c in range(chunks):
        ddl = data / f"tables_{c}.sql"
        ddl.write_text("".join(
            statements(ds, t, desc, cols)
            for k, (ds, t, desc, _, cols) in enumerate(all_tables) if k % chunks == c))
        procs.append(subprocess.Popen([binary, "sql", "-f", str(ddl)], env=dict(os.environ, BASIN_DATA_DIR=str(data)),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(f"creating tables failed:\n{err[-2000:]}")
    created = time.perf_counter()
    print(f"  {len(all_tables)} tables created and described in {created - started:.0f} s", file=sys.stderr)

    # Tags through REST, many requests at once: every tenth table, and the planted ones.
    s = Server(binary, data)
    try:
        admin = s.login("admin", ADMIN_PASSWORD)
        s.ok("PUT", "/api/v1/tags/classification", {"allowed_values": CLASSIFICATION}, admin)
        s.ok("PUT", "/api/v1/tags/quality", {"allowed_values": QUALITY}, admin)
        planted = {name for rows in PLANTED.values() for _, name, _, _ in rows}

        def tag(item):
            ds, t, _, tags, _ = item
            s.ok("PUT", "/api/v1/tags", {"object": f"table main.{ds}.{t}", "tags": tags}, admin)

        tagged = [x for k, x in enumerate(all_tables) if k % 10 == 0 or x[1] in planted]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(tag, tagged))
        # A viewer who reads two domains and sees the other datasets (USAGE) without their tables.
        s.ok("POST", "/api/v1/users", {"name": "viewer", "password": VIEWER_PASSWORD}, admin)
        for domain, _, name, *_ in dataset_names():
            privilege = "SELECT" if domain in ("finance", "marketing") else "USAGE"
            s.ok("POST", "/api/v1/grants", {"privilege": privilege, "object": f"dataset main.{name}", "grantee": "viewer"}, admin)
    finally:
        s.stop()
    print(f"  {len(tagged)} tables tagged in {time.perf_counter() - created:.0f} s", file=sys.stderr)
    (data / "ready").write_text(f"{len(all_tables)}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--basin", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--tables", type=int, default=10_000)
    a = p.parse_args()
    generate(a.basin, a.data, a.tables)


if __name__ == "__main__":
    main()
