"""hello-python: an F2S function in command-line mode (standard library only).

Reads the request body from the file named by argv[1] (input.json for JSON bodies) and
prints a JSON answer: a greeting for {"name": ...}, what was received, and word counts
for {"text": ...}. Diagnostics go to stderr, which the fizzlet logs.
"""

import json
import os
import sys


def main(path: str) -> int:
    with open(path, "rb") as f:
        raw = f.read()
    data = None
    if path.endswith(".json") and raw.strip():
        data = json.loads(raw)
    name = data.get("name") if isinstance(data, dict) else None
    text = data.get("text") if isinstance(data, dict) else None
    if isinstance(data, dict) and data.get("fail"):
        print(f"asked to fail: {data['fail']}", file=sys.stderr)
        return 3
    answer = {
        "greeting": f"Hello, {name or 'world'}!",
        "input": data,
        "inputFile": os.path.basename(path),
        "inputBytes": len(raw),
        "method": os.environ.get("F2S_METHOD"),
        "path": os.environ.get("F2S_PATH"),
        "query": os.environ.get("F2S_QUERY"),
        "contentType": os.environ.get("F2S_CONTENT_TYPE"),
        "requestId": os.environ.get("F2S_REQUEST_ID"),
    }
    if isinstance(text, str):
        words = text.split()
        answer["words"] = len(words)
        answer["longest"] = max(words, key=len) if words else None
    print(f"handled request {answer['requestId']}", file=sys.stderr)
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: start.sh <input file>", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
