# Agent-facing latency: wrap-up (Log, one matching person, CRM write awaited) and status
# changes (CRM report and platform change), sequential, one client. Prints p50/p95/p99.
# Usage: python3 bench/agents_latency.py [BASE_URL]
import json, sys, time, urllib.request
BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, headers={"Content-Type": "application/json"}, method=method)
    return json.loads(urllib.request.urlopen(req).read())
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000
def report(name, xs):
    print(f"{name}: n={len(xs)} p50={pct(xs, .5):.1f} ms p95={pct(xs, .95):.1f} ms p99={pct(xs, .99):.1f} ms")
N = 300
call("POST", "/v1/dispositions", {"code": "bench", "label": "Bench"})
evs = []
for i in range(N):
    sid, t = f"w{i}", "2026-11-20T10:00:%02dZ"
    evs += [{"id": f"{sid}-1", "session_id": sid, "type": "session.created", "at": t % 0, "data": {"channel": "voice",
             "session_type": "voice_inbound_ivr", "direction": "inbound", "customer": {"phone": f"+1415{6000000 + i:07d}"}, "queue_path": ["Q"]}},
            {"id": f"{sid}-2", "session_id": sid, "type": "session.assigned", "at": t % 5, "data": {"agent": {"id": "bench-agent"}}},
            {"id": f"{sid}-3", "session_id": sid, "type": "session.ended", "at": t % 50, "data": {}}]
for k in range(0, len(evs), 300):
    call("POST", "/v1/events?wait=30", evs[k:k + 300])
lat = []
for i in range(N):
    t0 = time.perf_counter()
    r = call("POST", f"/v1/sessions/w{i}/wrapup", {"disposition": "bench", "notes": "n", "action": "log"})
    lat.append(time.perf_counter() - t0)
    assert r["crm_write"] == "done", r
report("wrap-up (Log, CRM write done)", lat)
call("PUT", "/v1/settings", {"agent_status": {"mode": "two_way", "platform_statuses": ["Available", "Away"],
     "crm_to_platform": {"Online": "Available", "Busy": "Away"}, "platform_to_crm": {"Available": "Online", "Away": "Busy"},
     "synced_teams": ["T"]}})
call("PUT", "/v1/agents/bench-agent", {"email": "bench@example.com"})
crm, plat = [], []
for i in range(N):
    t0 = time.perf_counter()
    call("POST", "/v1/crm/agent-status", {"email": "bench@example.com", "crm_status": "Busy" if i % 2 else "Online", "instance_id": "t", "team": "T"})
    crm.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    call("PUT", "/v1/agents/bench-agent/status", {"status": "Available" if i % 2 else "Away", "source": "agent"})
    plat.append(time.perf_counter() - t0)
report("CRM status report", crm)
report("platform status change (two-way push queued)", plat)
