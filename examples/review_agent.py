"""A review agent: works through one queue of Batch Server's curation API.

    export BATCHSERVER_VIEWER_URL=http://localhost:8001
    export BATCHSERVER_REVIEWER_TOKEN=rt-bs-…   # manage.py create_reviewer_token agent-1
    python examples/review_agent.py "queue name"

Claims the next item, judges it with a toy heuristic, submits, and repeats
until the queue has nothing left for it. Replace judge() with your model.
"""

import os
import sys
import time

import httpx


def call(http: httpx.Client, method: str, path: str, **kwargs) -> dict:
    while True:
        response = http.request(method, path, **kwargs)
        if response.status_code == 429:  # the token's rate limit: wait as told
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        if response.status_code >= 400:
            sys.exit(f"{method} {path}: {response.json()['error']['message']}")
        return response.json()


def judge(item: dict) -> dict:
    """A trivial heuristic: longer answers are better, cut-off ones are not."""
    if item["kind"] == "pairwise":
        a, b = (next(s["result"] for s in item["sides"] if s["side"] == x) for x in "ab")
        if len(a["response"]) == len(b["response"]):
            return {"outcome": "tie"}
        return {
            "outcome": "winner",
            "winner": "a" if len(a["response"]) > len(b["response"]) else "b",
        }
    result, fields = item["result"], item["fields"]
    quality = 0 if result["cut_off"] else min(100, 40 + len(result["response"]) // 10)
    verdict = {
        "star": quality >= 80,
        "quality": quality,
        "category": "excellent"
        if quality >= 80
        else "good"
        if quality >= 50
        else "needs_improvement",
        "tags": ["cut-off"] if result["cut_off"] else ["agent-reviewed"],
        "notes": f"{len(result['response'])} characters.",
    }
    return {name: value for name, value in verdict.items() if name in fields}


def main(queue_name: str) -> None:
    url = os.environ["BATCHSERVER_VIEWER_URL"].rstrip("/") + "/api/v1"
    token = os.environ["BATCHSERVER_REVIEWER_TOKEN"]
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        queues = call(http, "GET", "/queues")["data"]
        queue = next((q for q in queues if q["name"] == queue_name), None)
        if queue is None:
            sys.exit(f"No queue named {queue_name!r}; yours: {[q['name'] for q in queues]}")
        done = starred = 0
        while (item := call(http, "POST", f"/queues/{queue['id']}/claim")["item"]) is not None:
            verdict = judge(item)
            call(http, "POST", f"/queues/{queue['id']}/items/{item['id']}/submit", json=verdict)
            done, starred = done + 1, starred + bool(verdict.get("star"))
        mine = call(http, "GET", f"/queues/{queue['id']}")["mine"]
        print(f"{queue_name}: submitted {done} item(s), starred {starred}; in all {mine}.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
