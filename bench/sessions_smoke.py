# End-to-end smoke figure: 500 four-event call sessions posted one event per request
# (16 client threads), then the time until all are settled. Usage: python3 bench/sessions_smoke.py [BASE_URL]
import json, time, urllib.request, concurrent.futures as cf
import sys
BASE=sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
def post(path, body, ct="application/json"):
    req=urllib.request.Request(BASE+path, data=body.encode(), headers={"Content-Type":ct}, method="POST")
    return json.loads(urllib.request.urlopen(req).read())
def session(i):
    sid=f"b{i}"; p=f"+1415{5000000+i:07d}"
    t="2026-11-20T10:00:%02dZ"
    evs=[{"id":f"{sid}-1","session_id":sid,"type":"session.created","at":t%0,"data":{"channel":"voice","session_type":"voice_inbound_ivr","direction":"inbound","customer":{"phone":p},"queue_path":["Q"]}},
         {"id":f"{sid}-2","session_id":sid,"type":"session.assigned","at":t%5,"data":{"agent":{"id":"a"}}},
         {"id":f"{sid}-3","session_id":sid,"type":"session.connected","at":t%6},
         {"id":f"{sid}-4","session_id":sid,"type":"session.ended","at":t%50,"data":{}}]
    return evs
# single-event POSTs, 16 threads
evs=[e for i in range(500) for e in session(i)]
t0=time.time()
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda e: post("/v1/events", json.dumps(e)), evs))
t1=time.time()
print(f"single-event POSTs: {len(evs)} events in {t1-t0:.2f}s = {len(evs)/(t1-t0):.0f} events/s accepted")
# wait until settled
last=evs[-1]["session_id"]
while True:
    r=post("/v1/events?wait=30", json.dumps(evs[-1]))
    if r.get("settled"): break
t2=time.time()
print(f"all 500 sessions settled {t2-t0:.2f}s after the first POST = {500/(t2-t0):.0f} sessions/s end to end")

# Batched: 4,000 sessions posted 100 sessions (400 events) per request, then time to settle.
evs=[e for i in range(10000, 14000) for e in session(i)]
t0=time.time()
for k in range(0, len(evs), 400):
    post("/v1/events", json.dumps(evs[k:k+400]))
t1=time.time()
while not post("/v1/events?wait=30", json.dumps(evs[-1])).get("settled"):
    pass
t2=time.time()
print(f"batched: {len(evs)} events accepted in {t1-t0:.2f}s = {len(evs)/(t1-t0):.0f} events/s; 4000 sessions settled in {t2-t0:.2f}s = {4000/(t2-t0):.0f} sessions/s")
