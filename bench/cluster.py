#!/usr/bin/env python3
"""Several nodes on one PostgreSQL database, under load.

  python3 bench/cluster.py e2e   [--sessions 2000] [--rounds 3]
      End to end on the built-in CRM, measured in one run, interleaved: SQLite (one node),
      PostgreSQL one node, PostgreSQL three nodes. Four-event call sessions posted one event
      per request from 16 client threads (spread over the nodes), then the time until every
      event is applied and every CRM write delivered.

  python3 bench/cluster.py chaos [--minutes 3] [--customers 150] [--rate 20]
      Three nodes under steady load (--rate sessions a second) with the Kustomer fake as the CRM; every 10-20 s one node
      is SIGKILLed and restarted a few seconds later, and the fake fails meanwhile (503 bursts,
      429 with Retry-After, answers slower than casebridge's timeout). Each session's events
      are posted to random nodes. Afterwards an oracle checks: every accepted event applied,
      one CRM person per customer, one record per customer and leaf queue (the rules append
      to the open record), every session on its group's record, nothing twice, no dead letter.

Needs a release build (cargo build --release) and a PostgreSQL server: --admin-url (default
$CASEBRIDGE_TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres) must be
allowed to create databases; each run gets a fresh one, dropped afterwards. psql is used for that.
"""
import argparse, json, os, random, re, signal, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.parse, urllib.request, concurrent.futures as cf
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def http(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, (json.loads(text) if text[:1] in (b"{", b"[") else text.decode())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Db:
    """A fresh PostgreSQL database for one run."""

    def __init__(self, admin):
        self.admin = admin
        self.name = f"cb_bench_{os.getpid()}_{random.randrange(1 << 30)}"
        self.psql(f'CREATE DATABASE "{self.name}"')
        u = urllib.parse.urlsplit(admin)
        self.url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + self.name, u.query, u.fragment))

    def psql(self, sql):
        subprocess.run(["psql", self.admin, "-q", "-c", sql], check=True, capture_output=True)

    def drop(self):
        try:
            self.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except subprocess.CalledProcessError:
            pass


class Node:
    """One `casebridge serve` process; restartable on the same database."""

    def __init__(self, binary, env, db_url=None, data_dir=None):
        self.binary, self.env, self.db_url, self.data_dir = binary, env, db_url, data_dir
        self.proc, self.base = None, None
        self.start()

    def start(self):
        args = [self.binary, "serve", "--bind", "127.0.0.1:0"]
        args += ["--database-url", self.db_url] if self.db_url else ["--data-dir", self.data_dir]
        env = dict(os.environ, RUST_LOG="warn", **self.env)
        env.pop("CASEBRIDGE_API_TOKEN", None)
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline()
        m = re.search(r"http://(\S+)", first)
        if not m:
            raise SystemExit(f"casebridge did not start: {first!r}")
        self.base = "http://" + m.group(1).rstrip("/")
        threading.Thread(target=lambda p=self.proc: [None for _ in p.stdout], daemon=True).start()
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if http("GET", self.base + "/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("casebridge never became ready")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.base = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def metric(base, name, label=""):
    _, text = http("GET", base + "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def drained(base):
    return metric(base, "casebridge_events_pending") == 0 and metric(base, "casebridge_outbox", 'state="pending"') == 0


def when(minutes_ago):
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def call_events(sid, phone, queue, start):
    t0 = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    at = lambda s: (t0 + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {"id": f"{sid}-1", "session_id": sid, "type": "session.created", "at": at(0),
         "data": {"channel": "voice", "session_type": "voice_inbound_ivr", "direction": "inbound",
                  "customer": {"phone": phone}, "queue_path": [queue]}},
        {"id": f"{sid}-2", "session_id": sid, "type": "session.assigned", "at": at(5), "data": {"agent": {"id": "ag-1"}}},
        {"id": f"{sid}-3", "session_id": sid, "type": "session.connected", "at": at(6)},
        {"id": f"{sid}-4", "session_id": sid, "type": "session.ended", "at": at(50), "data": {}},
    ]


# ---------------------------------------------------------------- e2e

def e2e_once(nodes, sessions, tag):
    evs = [e for i in range(sessions) for e in call_events(f"{tag}-{i}", f"+1415{5000000 + i:07d}", "Q", when(30))]
    bases = [n.base for n in nodes]
    t0 = time.time()
    with cf.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda ie: http("POST", bases[ie[0] % len(bases)] + "/v1/events", ie[1])[0], enumerate(evs)))
    t1 = time.time()
    assert all(c == 202 for c in codes), set(codes)
    while not drained(bases[0]):
        time.sleep(0.05)
    t2 = time.time()
    return len(evs) / (t1 - t0), sessions / (t2 - t0)


def e2e(args):
    binary = args.bin
    results = {"sqlite": [], "postgres, 1 node": [], "postgres, 3 nodes": []}
    env = {}
    for r in range(args.rounds):
        for setup in results:
            db, nodes, tmp = None, [], tempfile.mkdtemp(prefix="cb-bench-")
            try:
                if setup == "sqlite":
                    nodes = [Node(binary, env, data_dir=tmp)]
                else:
                    db = Db(args.admin_url)
                    n = 3 if "3" in setup else 1
                    nodes = [Node(binary, env, db_url=db.url) for _ in range(n)]
                    if n > 1:
                        deadline = time.time() + 30
                        while http("GET", nodes[0].base + "/v1/nodes")[1]["live"] < n and time.time() < deadline:
                            time.sleep(0.1)
                intake, e2e_rate = e2e_once(nodes, args.sessions, f"r{r}")
                results[setup].append((intake, e2e_rate))
                print(f"round {r + 1} {setup:18}: intake {intake:7.0f} events/s, end to end {e2e_rate:6.0f} sessions/s", flush=True)
            finally:
                for n in nodes:
                    n.stop()
                if db:
                    db.drop()
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.sessions} sessions each, {os.cpu_count()} CPUs:")
    print("| setup | intake (events/s) | end to end (sessions/s) |\n| --- | --- | --- |")
    for setup, rs in results.items():
        print(f"| {setup} | {statistics.median(r[0] for r in rs):.0f} | {statistics.median(r[1] for r in rs):.0f} |")


# ---------------------------------------------------------------- chaos

def chaos(args):
    binary = args.bin
    fake = subprocess.Popen([binary, "fake-crm", "kustomer", "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    fake_base = re.search(r"http://(\S+)", fake.stdout.readline()).group(0)
    threading.Thread(target=lambda: [None for _ in fake.stdout], daemon=True).start()
    db = Db(args.admin_url)
    env = {"CASEBRIDGE_RETRY_BASE_MS": "200", "CASEBRIDGE_CRM_TIMEOUT_MS": "2000", "CASEBRIDGE_LEASE_MS": str(args.lease_ms)}
    nodes = [Node(binary, env, db_url=db.url) for _ in range(3)]
    lock = threading.Lock()
    stop = threading.Event()
    accepted = {}  # session -> set of accepted event ids
    groups = {}  # session -> (customer, queue)
    stats = {"posted": 0, "refused": 0, "kills": 0, "faults": 0}
    try:
        # The fake's org-wide limit (1,000 a minute, as Kustomer's default) would make this a
        # test of waiting for its reset: raise it.
        http("POST", fake_base + "/__fake/kustomer/limits", {"org_per_minute": 100000})
        st, v = http("PUT", nodes[0].base + "/v1/settings", {
            "crm": {"kind": "kustomer", "base_url": fake_base, "credentials": {"api_key": "fake-api-key"}},
            "records": {"append_to_open_in_leaf_queue": True},
        })
        assert st == 200, v
        for n in nodes[1:]:
            deadline = time.time() + 30
            while http("GET", n.base + "/v1/settings")[1]["crm"]["kind"] != "kustomer":
                assert time.time() < deadline, "settings never reached every node"
                time.sleep(0.1)

        def live_bases():
            with lock:
                return [n.base for n in nodes if n.base]

        def post_event(e):
            # Refused or unreachable: the contact center sends it again, to another node.
            for _ in range(200):
                bases = live_bases()
                if not bases:
                    time.sleep(0.1)
                    continue
                try:
                    st, _ = http("POST", random.choice(bases) + "/v1/events", e, timeout=10)
                except OSError:
                    st = 0
                if st == 202:
                    with lock:
                        accepted.setdefault(e["session_id"], set()).add(e["id"])
                        stats["posted"] += 1
                    return
                with lock:
                    stats["refused"] += 1
                time.sleep(0.05)
            raise SystemExit(f"event {e['id']} never accepted")

        def client(k):
            i = 0
            while not stop.is_set():
                c = random.randrange(args.customers)
                q = random.choice(["Support", "Sales"])
                sid = f"c{k}-{i}"
                i += 1
                with lock:
                    groups[sid] = (c, q)
                started = time.time()
                for e in call_events(sid, f"+1415{6000000 + c:07d}", q, when(30)):
                    post_event(e)
                # About --rate sessions a second from all clients together.
                time.sleep(max(0.0, random.uniform(0.5, 1.5) * args.clients / args.rate - (time.time() - started)))

        def chaos_monkey():
            while not stop.wait(random.uniform(10, 20)):
                victim = random.randrange(3)
                with lock:
                    nodes[victim].kill()
                    stats["kills"] += 1
                print(f"  {time.strftime('%H:%M:%S')} SIGKILL node {victim}", flush=True)
                time.sleep(random.uniform(2, 5))
                nodes[victim].start()
                print(f"  {time.strftime('%H:%M:%S')} node {victim} back", flush=True)

        def faults():
            menu = [{"status": 503, "count": 20}, {"status": 429, "count": 2, "retry_after_s": 2},
                    {"status": 200, "count": 3, "latency_ms": 2500, "path_contains": "/conversations"}]
            while not stop.wait(random.uniform(8, 15)):
                f = random.choice(menu)
                http("POST", fake_base + "/__fake/faults", f)
                stats["faults"] += 1

        workers = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        workers += [threading.Thread(target=chaos_monkey), threading.Thread(target=faults)]
        t0 = time.time()
        for w in workers:
            w.start()
        while time.time() - t0 < args.minutes * 60:
            time.sleep(5)
            print(f"  {time.strftime('%H:%M:%S')} {stats['posted']} events accepted, {stats['refused']} refused/unreachable", flush=True)
        stop.set()
        for w in workers:
            w.join()
        for n in nodes:
            if not n.base:
                n.start()
        print(f"load over after {time.time() - t0:.0f} s: {len(groups)} sessions, {stats}; draining", flush=True)
        deadline = time.time() + 600
        while not drained(nodes[0].base):
            assert time.time() < deadline, "never drained"
            time.sleep(5)
            b = nodes[0].base
            ev, wr = metric(b, "casebridge_events_pending"), metric(b, "casebridge_outbox", 'state="pending"')
            print(f"  {time.strftime('%H:%M:%S')} events pending {ev:.0f}, writes pending {wr:.0f}", flush=True)
        print(f"drained {time.time() - t0:.0f} s after the start; checking", flush=True)
        problems = oracle(nodes[0].base, fake_base, accepted, groups)
        for p in problems[:20]:
            print("  PROBLEM:", p)
        takeovers = sum(metric(n.base, "casebridge_lease_takeovers_total") for n in nodes)
        print(f"oracle: {'clean' if not problems else f'{len(problems)} problems'}; sessions {len(groups)}, "
              f"events {sum(len(v) for v in accepted.values())}, kills {stats['kills']}, faults {stats['faults']}, "
              f"takeovers seen by the live nodes {takeovers:.0f}")
        return 1 if problems else 0
    finally:
        stop.set()
        for n in nodes:
            n.stop()
        fake.terminate()
        db.drop()


def oracle(base, fake_base, accepted, groups):
    problems = []
    st, dead = http("GET", base + "/v1/outbox?state=dead")
    if dead.get("writes"):
        problems.append(f"{len(dead['writes'])} dead letters")
    record_of_group = {}
    with cf.ThreadPoolExecutor(16) as ex:
        sessions = dict(zip(groups, ex.map(lambda s: http("GET", f"{base}/v1/sessions/{s}")[1], groups)))
    for sid, v in sessions.items():
        if not isinstance(v, dict):
            problems.append(f"session {sid} missing: {v}")
            continue
        applied = sum(1 for e in v["timeline"] if e["kind"] == "event")
        if applied != len(accepted.get(sid, ())):
            problems.append(f"session {sid}: {applied} events applied, {len(accepted.get(sid, ()))} accepted")
        if v["state"] != "ended" or not v.get("record_id"):
            lines = "; ".join(f"{e['kind']}: {e['summary']}" for e in v["timeline"])
            problems.append(f"session {sid} not finished: state {v['state']}, record {v.get('record_id')}, "
                            f"outcome {v.get('record_outcome')}: {lines}")
            continue
        g = groups[sid]
        if record_of_group.setdefault(g, v["record_id"]) != v["record_id"]:
            problems.append(f"customer {g[0]} in {g[1]}: records {record_of_group[g]} and {v['record_id']}")
    _, people = http("GET", fake_base + "/__fake/objects/customer")
    _, convs = http("GET", fake_base + "/__fake/objects/conversation")
    people = people if isinstance(people, list) else people.get("objects", people)
    convs = convs if isinstance(convs, list) else convs.get("objects", convs)
    customers = {c for c, _ in groups.values()}
    if len(people) != len(customers):
        problems.append(f"{len(people)} CRM people for {len(customers)} customers")
    if len(convs) != len(record_of_group):
        problems.append(f"{len(convs)} CRM records for {len(record_of_group)} customer/queue groups")
    ext = [c.get("externalId") for c in convs]
    if len(set(ext)) != len(ext):
        problems.append("a record created twice under one key")
    ids = {c.get("id") for c in convs}
    missing = [r for r in record_of_group.values() if r not in ids]
    if missing:
        problems.append(f"{len(missing)} sessions' records not in the CRM")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["e2e", "chaos"])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/casebridge"))
    ap.add_argument("--admin-url", default=os.environ.get("CASEBRIDGE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--customers", type=int, default=150)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rate", type=float, default=20, help="sessions a second, all clients together")
    ap.add_argument("--lease-ms", type=int, default=5000)
    args = ap.parse_args()
    sys.exit(e2e(args) if args.mode == "e2e" else chaos(args))


if __name__ == "__main__":
    main()
