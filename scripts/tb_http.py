#!/usr/bin/env python3
"""Asks a real TensorBoard server what its dashboards would show for LOGDIR.

Starts `tensorboard --logdir LOGDIR` on 127.0.0.1 on a free port, waits until it has loaded
EXPECTED_GROUPS HParams session groups (or 90 s pass), queries its HTTP API (runs, scalar
tags, text and image tags, the HParams experiment and session groups), stops the server by its PID and
prints one JSON object.

usage: tb_http.py LOGDIR EXPECTED_GROUPS
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def main():
    logdir, expected = sys.argv[1], int(sys.argv[2])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return json.loads(r.read())

    def post(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    try:
        deadline = time.time() + 90
        experiment, groups = None, {"sessionGroups": []}
        while time.time() < deadline:
            try:
                experiment = post("/data/plugin/hparams/experiment", {"experimentName": ""})
                cols = [{"hparam": h["name"], "includeInResult": True}
                        for h in experiment.get("hparamInfos", [])]
                cols += [{"metric": m["name"], "includeInResult": True}
                         for m in experiment.get("metricInfos", [])]
                groups = post("/data/plugin/hparams/session_groups", {
                    "experimentName": "",
                    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                        "STATUS_RUNNING"],
                    "colParams": cols,
                    "aggregationType": "AGGREGATION_AVG",
                    "startIndex": 0,
                    "sliceSize": 1000,
                })
                loaded = all(len(v.get("metricValues", [])) > 0 for v in groups.get("sessionGroups", []))
                if len(groups.get("sessionGroups", [])) >= expected and loaded:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        print(json.dumps({
            "port": port,
            "runs": get("/data/runs"),
            "scalar_tags": get("/data/plugin/scalars/tags"),
            "text_tags": get("/data/plugin/text/tags"),
            "image_tags": get("/data/plugin/images/tags"),
            "experiment": experiment,
            "session_groups": groups,
        }))
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
