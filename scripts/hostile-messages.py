"""Queue the message shapes that could cost memory, for scripts/measure-memory.sh --hostile:
gzip bombs (64 MiB of spaces in ~65 KiB), JSON arrays of 1,001 logins (over the default cap),
base64+gzip arrays of ~300,000 tiny elements that decompress to just under 1 MiB (over the cap,
and the largest body quarantine ever scrubs) and valid arrays of 1,000 logins.

Usage: python hostile-messages.py ENDPOINT QUEUE_NAME COUNT  (COUNT of each shape)
Runs with the LocalStack venv's boto3; prints how many of each it sent."""

import base64
import gzip
import json
import sys

import boto3


def login(i):
    return {"user_id": f"h{i}", "device_type": "ios", "ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "device_id": f"{i % 1000:03}-{i % 100:02}-{i % 10000:04}", "locale": "RU", "app_version": "2.3.0"}


def gzip64(text):
    return base64.b64encode(gzip.compress(text.encode(), 9)).decode()


def main():
    endpoint, queue_name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    bomb = gzip64(" " * (64 << 20))
    over_cap = json.dumps([login(i) for i in range(1001)])
    tiny = gzip64("[" + ",".join(["{}"] * 300_000) + "]")
    valid = [json.dumps([login(n * 1000 + i) for i in range(1000)]) for n in range(count)]
    shapes = {"gzip bomb": [bomb] * count, "array of 1,001": [over_cap] * count,
              "gzip array of 300,000": [tiny] * count, "array of 1,000 valid": valid}
    for name, bodies in shapes.items():
        assert all(len(b) < 256 << 10 for b in bodies), name
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        print(f"queued {len(bodies)} x {name} ({len(bodies[0]):,} bytes each)")


main()
