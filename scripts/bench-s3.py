"""Objects for scripts/bench-s3.sh: N gzip'd NDJSON objects of M logins each in a fresh bucket of
LocalStack's S3, and the same logins as CSV rows (masked-shaped, as `psql \\copy` would load
them) for the physical-limit comparison. Usage: bench-s3.py ENDPOINT BUCKET OBJECTS LOGINS CSV"""
import csv
import gzip
import io
import json
import sys

import boto3

endpoint, bucket, objects, logins, csv_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket=bucket)
with open(csv_path, "w", newline="") as out:
    rows = csv.writer(out)
    for o in range(objects):
        text = io.StringIO()
        for i in range(logins):
            n = o * logins + i
            login = {"user_id": f"bench-{n}", "app_version": "2.3.0", "device_type": "android",
                     "ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "locale": "NZ",
                     "device_id": f"{n % 1000:03d}-{n % 97:02d}-{n:06d}"}
            text.write(json.dumps(login) + "\n")
            rows.writerow([login["user_id"], "android", f"k1:{n:044d}", f"k1:{n:044d}", "NZ",
                           "2.3.0", "2026-12-04", "2026-12-04T00:00:00Z"])
        s3.put_object(Bucket=bucket, Key=f"history/{o:04d}.ndjson.gz",
                      Body=gzip.compress(text.getvalue().encode(), 1))
print(f"{objects} objects of {logins} logins in s3://{bucket}/history/")
