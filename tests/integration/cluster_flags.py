"""What the cluster test's replicas and its single-server reference share: the same server
flags, and one way to ask for a greedy completion."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

LLMASOS = shutil.which("llmasos", path=str(Path(sys.executable).parent)) or "llmasos"
FLAGS = ["--threads", "1", "--num-slots", "4", "--max-running", "4", "--context-length", "1024"]
MAX_TOKENS = 12


def completion(url: str, prompt: str) -> dict[str, Any]:
    """A greedy completion: its text, status, the replica that served it and its cached
    prompt tokens."""
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
    reply = httpx.post(f"{url}/v1/completions", json=body, timeout=600)
    answer: dict[str, Any] = {
        "status": reply.status_code,
        "replica": reply.headers.get("x-llmasos-replica"),
    }
    if reply.is_success:
        data = reply.json()
        answer["text"] = data["choices"][0]["text"]
        details = data["usage"].get("prompt_tokens_details") or {}
        answer["cached_tokens"] = details.get("cached_tokens", 0)
    else:
        answer["error"] = reply.text[:500]
    return answer


def streamed(url: str, prompt: str) -> dict[str, Any]:
    """The same greedy completion streamed: its status, the text of its chunks joined, the
    ids of its chunks, its error events and whether it ended with [DONE]."""
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}
    answer: dict[str, Any] = {"text": "", "ids": [], "errors": [], "done": False}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=600) as reply:
        answer["status"] = reply.status_code
        for line in reply.iter_lines():
            if line == "data: [DONE]":
                answer["done"] = True
            elif line.startswith("data: {"):
                data = json.loads(line[6:])
                if "error" in data:
                    answer["errors"].append(data["error"])
                    continue
                answer["ids"].append(data["id"])
                answer["text"] += "".join(c.get("text", "") for c in data["choices"])
    return answer


def signal_through_front(url: str, prompt: str) -> dict[str, Any]:
    """A long streamed completion whose process is looked up and killed through the front by
    its pid (the pid names the replica holding it); what each step answered."""
    body = {"prompt": prompt, "max_tokens": 400, "temperature": 0, "stream": True}
    seen: dict[str, Any] = {}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=600) as reply:
        seen["replica"] = reply.headers.get("x-llmasos-replica")
        for line in reply.iter_lines():
            if not line.startswith("data: {"):
                continue
            if "pid" not in seen:
                seen["pid"] = int(json.loads(line[6:])["id"].rsplit("-", 1)[1])
                info = httpx.get(f"{url}/v1/processes/{seen['pid']}", timeout=60)
                seen["lookup"] = [info.status_code, info.json().get("pid")]
                listed = httpx.get(f"{url}/v1/processes", timeout=60).json()["data"]
                seen["listed"] = seen["pid"] in [p["pid"] for p in listed]
                kill = {"signal": "kill"}
                answer = httpx.post(
                    f"{url}/v1/processes/{seen['pid']}/signal", json=kill, timeout=60
                )
                seen["kill"] = answer.status_code
            seen["last"] = line
    return seen


def run_batch(url: str, prompts: list[str]) -> dict[str, Any]:
    """A completions batch of `prompts` through the front: its end state and each line's
    status and text, by custom_id (line-0, line-1, ...)."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    lines = [
        {"custom_id": f"line-{i}", "method": "POST", "url": "/v1/completions",
         "body": {"prompt": p, "max_tokens": MAX_TOKENS, "temperature": 0}}
        for i, p in enumerate(prompts)
    ]  # fmt: skip
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file_id = client.files.create(file=("batch.jsonl", data), purpose="batch").id
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 600
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        if time.monotonic() > deadline:
            return {"status": f"still {batch.status} after 600 s", "answers": {}}
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    rows = []
    if batch.output_file_id:
        rows = [json.loads(r) for r in client.files.content(batch.output_file_id).text.splitlines()]
    answers = {}
    for row in rows:
        reply = row["response"]
        choices = reply["body"].get("choices") or [{}]
        answers[row["custom_id"]] = [reply["status_code"], choices[0].get("text", reply["body"])]
    return {"status": batch.status, "rows": len(rows), "answers": answers}


def spawned(url: str, prompt: str) -> dict[str, Any]:
    """A greedy process started through POST /v1/processes, waited for: its pid and text."""
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
    pid = httpx.post(f"{url}/v1/processes", json=body, timeout=600).json()["pid"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        info = httpx.get(f"{url}/v1/processes/{pid}", timeout=60).json()
        if info.get("result"):
            return {"pid": pid, "text": info["text"]}
        time.sleep(0.2)
    return {"pid": pid, "text": None}


def reports(url: str, replica_urls: list[str]) -> dict[str, Any]:
    """GET /v1/stats, /v1/memory and /v1/processes through the front, and each replica's own,
    at one quiet moment; and what `llmasos top` shows through the front."""
    paths = ("/v1/stats", "/v1/memory", "/v1/processes")
    seen: dict[str, Any] = {
        "front": {p: httpx.get(url + p, timeout=60).json() for p in paths},
        "replicas": [{p: httpx.get(r + p, timeout=60).json() for p in paths} for r in replica_urls],
    }
    shown = subprocess.run([LLMASOS, "top", "--iterations", "1", "--url", url],
                           capture_output=True, text=True, check=False)  # fmt: skip
    seen["top"] = shown.stdout + shown.stderr
    return seen


def stored_everywhere(url: str, replica_urls: list[str]) -> dict[str, Any]:
    """A file uploaded through the front, then read back from each replica directly: what it
    held and what each replica answered."""
    data = b'{"note": "kept by the storage service, not by a replica"}\n'
    upload = httpx.post(f"{url}/v1/files", files={"file": ("notes.jsonl", data)},
                        data={"purpose": "batch"}, timeout=60)  # fmt: skip
    file_id = upload.json()["id"]
    reads = [httpx.get(f"{r}/v1/files/{file_id}/content", timeout=60) for r in replica_urls]
    return {"id": file_id, "sent": data.decode(), "read": [[r.status_code, r.text] for r in reads]}
