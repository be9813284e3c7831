#!/usr/bin/env python3
"""Agents' wrap-ups while calls keep coming: `casebridge loadgen` sends 600 sessions/s for 20 s
to a running server while this script posts a wrap-up (log, disposition `sale`) for every
ended session it finds, one at a time, and prints how many answered 200 and how fast.

    ./target/release/casebridge serve --bind 127.0.0.1:18093 --data-dir "$(mktemp -d)" &
    python3 bench/wrapup_under_load.py http://127.0.0.1:18093 ./target/release/casebridge
"""
import json, sys, time, urllib.request, urllib.error, subprocess
base = sys.argv[1]
def req(method, path, body=None):
    r = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                               headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
req("POST", "/v1/dispositions", {"code": "sale", "label": "Sale"})
lg = subprocess.Popen([sys.argv[2], "loadgen", "--url", base, "--rate", "600", "--duration", "20", "--connections", "64"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
time.sleep(3)
lat = []; bad = []
deadline = time.time() + 15
done = set()
while time.time() < deadline:
    st, sessions = req("GET", "/v1/sessions?limit=50&state=ended")
    items = sessions.get("sessions", sessions.get("items", [])) if isinstance(sessions, dict) else sessions
    for s in items or []:
        sid = s.get("id") if isinstance(s, dict) else None
        if not sid or sid in done: continue
        done.add(sid)
        t = time.perf_counter()
        st, out = req("POST", f"/v1/sessions/{sid}/wrapup", {"action": "log", "disposition": "sale", "notes": "load"})
        lat.append(time.perf_counter() - t)
        if st != 200: bad.append((st, str(out)[:200]))
        if len(done) % 20 == 0: break
print(lg.communicate()[0].strip().splitlines()[-6:])
lat.sort()
print(f"wrap-ups {len(lat)}, refused {len(bad)}, p50 {lat[len(lat)//2]*1e3:.0f} ms, max {lat[-1]*1e3:.0f} ms" if lat else "no wrap-ups")
print(bad[:5])
