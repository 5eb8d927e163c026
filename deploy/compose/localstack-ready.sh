#!/bin/bash
# LocalStack ready.d hook (docker-compose.yml): create `login-queue` and load the 100 sample
# messages, one per line of data/sample-messages.jsonl, ten per SendMessageBatch call.
set -euo pipefail
url=$(awslocal sqs create-queue --queue-name login-queue --query QueueUrl --output text)
python3 - "$url" /etc/localstack/init/sample-messages.jsonl <<'PY'
import json, subprocess, sys
url, path = sys.argv[1], sys.argv[2]
bodies = [line.rstrip("\n") for line in open(path, encoding="utf-8") if line.strip()]
for start in range(0, len(bodies), 10):
    entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]
    subprocess.run(["awslocal", "sqs", "send-message-batch", "--queue-url", url,
                    "--entries", json.dumps(entries)], check=True, stdout=subprocess.DEVNULL)
print(f"login-queue: loaded {len(bodies)} sample messages")
PY
