"""Write the fuzz target's seed corpus (fuzz/seeds/): the take-home sample's first ten lines and
the shapes the pipeline takes off or splits (base64+gzip, SNS, EventBridge, arrays, NDJSON) plus
hostile bodies. Each seed's first byte is the target's selector: bit 0 aes-siv, bit 1 keep extra
fields, bit 2 `--envelope none`. Deterministic: rerun after changing it and commit the result; `regression-*` seeds (inputs
a fuzz run found) are kept.
Usage: python3 fuzz/make_seeds.py SAMPLE.jsonl   (e.g. /work/shared/data/takehome-first10.jsonl)"""

import base64
import gzip
import json
import os
import sys

HMAC, SIV, HMAC_EXTRA, SIV_EXTRA, RAW = "h", "i", "j", "k", "l"  # 0x68..0x6c


def gzip64(text, wrap=False):
    encoded = base64.b64encode(gzip.compress(text.encode(), 9, mtime=0)).decode()
    return "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + "\n" if wrap else encoded


def sns(text):
    return json.dumps({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                       "Message": text, "Timestamp": "2024-01-02T03:04:05.000Z"})


def eventbridge(login):
    return json.dumps({"version": "0", "id": "ev-1", "detail-type": "UserLogin", "source": "app.auth",
                       "time": "2024-01-02T03:04:05Z", "detail": login})


def deep(value, levels):
    for _ in range(levels):
        value = [value]
    return value


def main():
    lines = [l.strip() for l in open(sys.argv[1]) if l.strip()]
    logins = [json.loads(l) for l in lines]
    seeds = {}
    for i, line in enumerate(lines, 1):
        seeds[f"hmac-sample-{i}"] = HMAC + line
        seeds[f"siv-sample-{i}"] = SIV_EXTRA + line
    first = lines[0]
    seeds["raw-envelope-none"] = RAW + sns(first)
    seeds["gzip"] = HMAC + gzip64(first)
    seeds["gzip-wrapped-two-members"] = SIV + gzip64(first, wrap=True)
    seeds["gzip-trailing-bytes"] = HMAC + gzip64(first) + "AAAA"
    seeds["gzip-truncated"] = HMAC + gzip64(first)[:-12]
    seeds["sns"] = HMAC_EXTRA + sns(first)
    seeds["sns-gzip"] = HMAC + gzip64(sns(first))
    seeds["sns-array"] = SIV + sns(json.dumps(logins[:3]))
    seeds["eventbridge"] = SIV_EXTRA + eventbridge(logins[1])
    seeds["eventbridge-array"] = HMAC + eventbridge(logins[:2])
    seeds["array"] = HMAC + json.dumps(logins)
    seeds["array-mixed"] = SIV_EXTRA + json.dumps([logins[0], 7, None, {"ip": "1.2.3.4"}, logins[2]])
    seeds["array-empty"] = HMAC + "[]"
    seeds["ndjson"] = HMAC_EXTRA + "\n".join(lines[:4])
    seeds["ndjson-gzip"] = SIV + gzip64("\n".join(lines[:4]) + "\n")
    seeds["ndjson-bad-line"] = HMAC + lines[0] + "\n{\"ip\": \"10.9.8.7\", \"device_id\": \n" + lines[1]
    extra = dict(logins[3], extra={"ip": logins[3]["ip"], "note": "seen " + logins[3]["device_id"]})
    seeds["extra-fields"] = HMAC_EXTRA + json.dumps(extra)
    hostile = {
        "wrong-types": {"user_id": 1, "device_type": None, "ip": 3325256807, "device_id": ["593-47-5928"]},
        "pii-everywhere": {"IP": "199.172.111.135", "ipAddress": "2001:db8::51", "Device_ID": "593-47-5928",
                           "199.172.111.135": True, "note": "from 199.172.111.135 at \u0000 \u001b[31m"},
        "pii-in-json-string": {"user_id": json.dumps({"ip": "10.20.30.40", "device_id": "777-77-7777"}),
                               "device_type": "ios"},
        "bad-ip": dict(logins[4], ip="198.51.100.256"),
        "ip-port": dict(logins[4], ip="198.51.100.10:443"),
        "user-id-is-the-ip": dict(logins[5], user_id=logins[5]["ip"]),
        "long-user-id": dict(logins[6], user_id="u" * 129),
        "nul-user-id": dict(logins[6], user_id="a\u0000b"),
        "deep": {"a": deep({"ip": "10.1.2.3"}, 34)},
    }
    for name, body in hostile.items():
        seeds[name] = SIV_EXTRA + json.dumps(body)
    seeds["not-json"] = HMAC + "ip=199.172.111.135 device_id=593-47-5928"
    seeds["truncated-json"] = SIV + first[:60]
    seeds["json-string"] = HMAC + json.dumps(first)
    seeds["empty"] = HMAC
    seeds["whitespace"] = HMAC + " \n\t "
    seeds["duplicate-keys"] = HMAC + first[:-1] + ', "ip": "10.0.0.1"}'
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old.startswith("regression-"):  # inputs a fuzz run found: kept as they are
            continue
        os.remove(os.path.join(out, old))
    for name, body in seeds.items():
        with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
            f.write(body)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main()
