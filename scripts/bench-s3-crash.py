"""Helper of scripts/bench-s3-crash.sh (issue 34): objects in LocalStack's S3, the same logins as
one SQS message each, and the books afterwards. Every login has a unique user_id (crash-<seq>), so
a login lost or landed twice shows by its id. Login n is bad (an impossible ip, quarantined as
invalid_fields) when n % 10,000 == 9,999. Objects are written streamed (gzip to a temporary file,
then a multipart upload): the generator never holds an object in memory.

  objects ENDPOINT BUCKET SPEC_JSON        40 uneven objects of 1,000,000 logins; writes the spec
  big ENDPOINT BUCKET LOGINS SPEC_JSON     one object of LOGINS logins (~1 GB for 3,300,000)
  send ENDPOINT QUEUE_URL SPEC_JSON        the same logins, one message each (SendMessageBatch of
                                           10, unsigned JSON protocol: the SQS stand-in)
  check DATABASE_URL SPEC_JSON             the books: rows, quarantine, duplicates, missing, the
                                           ledger against every expected chunk id; exit 1 unless exact
  clean ENDPOINT BUCKET                    delete the bucket and everything in it
"""
import gzip
import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
from boto3.s3.transfer import TransferConfig

CHUNK = 1000  # logins per chunk (src/pipeline/objects.rs LIMITS.max_logins; 1,000 lines of ~310 B stay under its 1 MiB)
UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004) AppleWebKit/537.36 "
      "(KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36")


def login(n):
    """Login n as one NDJSON line (~310 bytes; `user_agent` is an unknown field, dropped)."""
    ip = "300.1.2.3" if n % 10000 == 9999 else f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    return (f'{{"user_id": "crash-{n:08d}", "app_version": "2.3.0", "device_type": "android", '
            f'"ip": "{ip}", "locale": "NZ", "device_id": "{n % 1000:03d}-{n % 97:02d}-{n:07d}", '
            f'"user_agent": "{UA}"}}\n')


def s3_client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def put_object(s3, bucket, key, first, count):
    """Logins first..first+count as one gzip'd NDJSON object; returns (uncompressed, stored) bytes."""
    raw = 0
    with tempfile.NamedTemporaryFile(suffix=".ndjson.gz") as tmp:
        with gzip.GzipFile(fileobj=tmp, mode="wb", compresslevel=1) as gz:
            lines = []
            for n in range(first, first + count):
                lines.append(login(n))
                if len(lines) == 10000:
                    block = "".join(lines).encode()
                    raw += len(block)
                    gz.write(block)
                    lines = []
            block = "".join(lines).encode()
            raw += len(block)
            gz.write(block)
        tmp.flush()
        stored = tmp.tell()
        tmp.seek(0)
        s3.upload_fileobj(tmp, bucket, key, Config=TransferConfig(
            multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=2))
    return raw, stored


def write_spec(path, bucket, objects):
    total = sum(o["logins"] for o in objects)
    spec = {"bucket": bucket, "objects": objects, "logins": total,
            "bad": sum(1 for o in objects for n in range(o["first"], o["first"] + o["logins"])
                       if n % 10000 == 9999)}
    with open(path, "w") as f:
        json.dump(spec, f)
    return spec


def cmd_objects(endpoint, bucket, spec_path):
    # 4 big objects (two over 50 MB uncompressed) and 36 small ones of uneven sizes: 1,000,000.
    big = [200_000, 175_000, 90_000, 60_000]
    rng = random.Random(34)
    weights = [rng.uniform(0.2, 3.0) for _ in range(36)]
    rest = 1_000_000 - sum(big)
    small = [max(1, int(rest * w / sum(weights))) for w in weights]
    small[-1] += rest - sum(small)
    sizes = big[:2] + small[:18] + big[2:] + small[18:]  # big ones not all first in the listing
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    objects, first, started = [], 0, time.time()
    for i, count in enumerate(sizes):
        key = f"history/{i:04d}.ndjson.gz"
        raw, stored = put_object(s3, bucket, key, first, count)
        objects.append({"key": key, "first": first, "logins": count, "bytes": raw, "stored": stored})
        first += count
    spec = write_spec(spec_path, bucket, objects)
    over = sum(1 for o in objects if o["bytes"] > 50_000_000)
    print(f"{len(objects)} objects, {spec['logins']} logins ({spec['bad']} bad), "
          f"{sum(o['bytes'] for o in objects) / 1e6:.0f} MB uncompressed "
          f"({sum(o['stored'] for o in objects) / 1e6:.0f} MB gzip'd), {over} over 50 MB, "
          f"sizes {min(sizes)}..{max(sizes)} logins, written in {time.time() - started:.0f} s")


def cmd_big(endpoint, bucket, logins, spec_path):
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    started = time.time()
    key = "big/0000.ndjson.gz"
    raw, stored = put_object(s3, bucket, key, 0, logins)
    write_spec(spec_path, bucket, [{"key": key, "first": 0, "logins": logins, "bytes": raw,
                                    "stored": stored}])
    print(f"1 object of {logins} logins, {raw / 1e9:.2f} GB uncompressed ({stored / 1e6:.0f} MB "
          f"gzip'd), written and uploaded in {time.time() - started:.0f} s")


def cmd_send(endpoint, queue_url, spec_path):
    """Every login of the spec as one message, 10 per SendMessageBatch, 4 connections."""
    with open(spec_path) as f:
        spec = json.load(f)
    url = urllib.parse.urlsplit(endpoint)
    ranges = [(o["first"], o["first"] + o["logins"]) for o in spec["objects"]]
    numbers = [n for a, b in ranges for n in range(a, b)]
    threads, errors, started = 4, [], time.time()

    def worker(part):
        try:
            send_part(part)
        except Exception as e:  # noqa: BLE001 (any failure fails the run)
            errors.append(repr(e))

    def send_part(part):
        conn = http.client.HTTPConnection(url.hostname, url.port)
        for i in range(0, len(part), 10):
            entries = [{"Id": str(k), "MessageBody": login(n).rstrip("\n")}
                       for k, n in enumerate(part[i:i + 10])]
            body = json.dumps({"QueueUrl": queue_url, "Entries": entries})
            conn.request("POST", "/", body, {"X-Amz-Target": "AmazonSQS.SendMessageBatch",
                                             "Content-Type": "application/x-amz-json-1.0"})
            reply = conn.getresponse()
            data = reply.read()
            if reply.status != 200 or b'"Failed":[{' in data.replace(b" ", b""):
                errors.append(data[:200])
                return

    step = (len(numbers) + threads - 1) // threads
    pool = [threading.Thread(target=worker, args=(numbers[t * step:(t + 1) * step],))
            for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        sys.exit(f"sending failed: {errors[0]!r}")
    print(f"sent {len(numbers)} messages (one login each) in {time.time() - started:.0f} s")


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-qAt", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", url,
                          "-c", sql], check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def chunk_id(bucket, key, etag, first):
    """src/source/s3/mod.rs chunk_id: bucket, key, version id (none), ETag, each length-prefixed."""
    h = hashlib.sha256()
    for part in (bucket, key, "", etag):
        b = part.encode()
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return f"s3:{h.hexdigest()[:32]}:{first}"


def cmd_check(db_url, spec_path, endpoint=None):
    with open(spec_path) as f:
        spec = json.load(f)
    total, bad = spec["logins"], spec["bad"]
    [[rows, row_ids]] = psql(db_url, "SELECT count(*), count(DISTINCT user_id) FROM user_logins")
    [[quarantined, q_ids]] = psql(db_url, "SELECT count(*), count(DISTINCT user_id) FROM quarantined_messages")
    [[both_ids]] = psql(db_url, "SELECT count(DISTINCT u) FROM (SELECT user_id u FROM user_logins "
                                "UNION ALL SELECT user_id FROM quarantined_messages) x")
    [[strangers]] = psql(db_url, "SELECT count(*) FROM (SELECT user_id u FROM user_logins UNION ALL "
                                 "SELECT user_id FROM quarantined_messages) x WHERE u NOT LIKE 'crash-%'")
    reasons = psql(db_url, "SELECT reason_code, count(*) FROM quarantined_messages GROUP BY 1 ORDER BY 1")
    rows, row_ids, quarantined, q_ids, both_ids, strangers = map(
        int, (rows, row_ids, quarantined, q_ids, both_ids, strangers))
    duplicates = (rows - row_ids) + (quarantined - q_ids)
    missing = total - both_ids
    ok = (rows + quarantined == total and rows == total - bad and duplicates == 0 and missing == 0
          and strangers == 0)
    print(f"rows {rows} (expected {total - bad}), quarantined {quarantined} (expected {bad}: "
          f"{', '.join(f'{r} {n}' for r, n in reasons) or 'none'}), rows + quarantined "
          f"{rows + quarantined} of {total}; duplicates {duplicates}, missing {missing}")
    if endpoint:  # the S3 path: the ledger holds exactly the chunk ids of every object
        s3 = s3_client(endpoint)
        expected = set()
        for o in spec["objects"]:
            etag = s3.head_object(Bucket=spec["bucket"], Key=o["key"])["ETag"].strip('"')
            expected |= {chunk_id(spec["bucket"], o["key"], etag, first)
                         for first in range(1, o["logins"] + 1, CHUNK)}
        ledger = {r[0] for r in psql(db_url, "SELECT message_id FROM processed_messages "
                                             "WHERE message_id LIKE 's3:%'")}
        lost, extra = len(expected - ledger), len(ledger - expected)
        print(f"ledger: {len(ledger)} chunk ids (expected {len(expected)}); missing {lost}, "
              f"unexpected {extra}")
        ok = ok and lost == 0 and extra == 0
    print("exact" if ok else "NOT EXACT")
    sys.exit(0 if ok else 1)


def cmd_clean(endpoint, bucket):
    s3 = s3_client(endpoint)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "objects":
        cmd_objects(*args)
    elif command == "big":
        cmd_big(args[0], args[1], int(args[2]), args[3])
    elif command == "send":
        cmd_send(*args)
    elif command == "check":
        cmd_check(*args)
    elif command == "clean":
        cmd_clean(*args)
    else:
        sys.exit(__doc__)
