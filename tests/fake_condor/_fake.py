"""Shared code of the stand-in HTCondor tools in this directory.

No HTCondor pool can run on the test machines, so the tests put these stand-ins for
condor_submit, condor_q and condor_history first on PATH. They print what the real tools
print (the submit summary line; ``-json`` lists of job ClassAds) and keep the "queue" in
JSON files under $FAKE_CONDOR_DIR, which the tests edit to move jobs between states.
condor_submit parses the submit description with HTCondor's own parser (the htcondor
wheel), so a description it accepts is one the real tool would read the same way.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path


def state_dir() -> Path:
    d = os.environ.get("FAKE_CONDOR_DIR")
    if not d:
        sys.exit("fake condor: FAKE_CONDOR_DIR is not set")
    return Path(d)


def load(name: str) -> list[dict]:
    p = state_dir() / name
    return json.loads(p.read_text()) if p.exists() else []


def save(name: str, ads: list[dict]) -> None:
    (state_dir() / name).write_text(json.dumps(ads, indent=1))


def submit(argv: list[str]) -> int:
    if os.environ.get("FAKE_CONDOR_FAIL"):
        print("ERROR: Failed to connect to local queue manager", file=sys.stderr)
        return 1
    import htcondor2

    path = Path(argv[-1])
    text = path.read_text()
    items = list(htcondor2.Submit(text).itemdata())
    counter = state_dir() / "next_cluster"
    cluster = int(counter.read_text()) if counter.exists() else 4711
    counter.write_text(str(cluster + 1))
    queue = load("queue.json")
    for proc, item in enumerate(items):
        queue.append(
            {
                "ClusterId": cluster,
                "ProcId": proc,
                "JobStatus": 1,
                "NumJobStarts": 0,
                "Args": f"{item['index']} {cluster}.{proc}",
                # a bundle's procs run in the submission directory (no jobdir item)
                "Iwd": item.get("jobdir", str(path.absolute().parent)),
            }
        )
    save("queue.json", queue)
    print("Submitting job(s)" + "." * len(items))
    print(f"{len(items)} job(s) submitted to cluster {cluster}.")
    return 0


def query(argv: list[str], table: str) -> int:
    constraint = argv[argv.index("-constraint") + 1] if "-constraint" in argv else ""
    clusters = {int(c) for c in re.findall(r"ClusterId\s*==\s*(\d+)", constraint)}
    ads = [ad for ad in load(table) if not clusters or ad["ClusterId"] in clusters]
    if "-json" in argv:
        if ads:  # like the real tools, nothing at all when no job matches
            print(json.dumps(ads, indent=1))
    else:
        for ad in ads:
            print(f"{ad['ClusterId']}.{ad['ProcId']} {ad['JobStatus']}")
    return 0
