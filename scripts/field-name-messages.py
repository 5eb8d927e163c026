"""Queue valid logins that each carry never-seen top-level field names, for
scripts/measure-memory.sh --field-names: what grew the sink's memory of recorded names without bound.

Usage: python field-name-messages.py ENDPOINT QUEUE_NAME COUNT [NAMES_PER_MESSAGE]
Runs with the LocalStack venv's boto3; names are random letters (a name with a digit is counted as
`other` and never recorded, so letters are the worst case)."""

import json
import random
import string
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3


def body(i, names, rng):
    login = {"user_id": f"f{i}", "device_type": "ios", "ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
             "device_id": f"fd-{i}", "locale": "RU", "app_version": "2.3.0"}
    for _ in range(names):
        login["".join(rng.choice(string.ascii_lowercase) for _ in range(16))] = 1
    return json.dumps(login)


def main():
    endpoint, queue_name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    rng = random.Random(7)
    bodies = [body(i, names, rng) for i in range(count)]

    def send(start):
        entries = [{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies[start:start + 10])]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(0, count, 10)))
    print(f"queued {count} logins x {names} never-seen field names ({count * names:,} names)")


main()
