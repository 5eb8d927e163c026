# Independent computation of login-etl's masks from their documented construction.
import hmac, hashlib, base64
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
keys = {"bare32": ("k1", bytes(range(32))), "id64": ("prod-2026", bytes([0xA5]*64))}
dom = {"ip": b"login-etl/v1/ip", "device_id": b"login-etl/v1/device_id", "ip_network": b"login-etl/v1/ip-network"}
vals = [("ip","10.0.0.1"),("ip","2001:db8::1"),("device_id","593-47-5928"),("device_id","é😀")]
for form,(kid,key) in keys.items():
    for f,v in vals:
        m = hmac.new(key, dom[f]+b"\0"+v.encode(), hashlib.sha256).hexdigest()
        print("hmac", form, f, v, f"{kid}:{m}")
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"login-etl aes-siv v1").derive(key)
    for f,v in vals:
        ct = AESSIV(okm).encrypt(v.encode(), [dom[f]])
        print("siv", form, f, v, f"{kid}:" + base64.urlsafe_b64encode(ct).decode().rstrip("="))
    fp = hmac.new(key, b"login-etl/v1/fingerprint"+b"\0"+b"user"+b"\0"+b"u-42", hashlib.sha256).digest()[:8].hex()
    print("fingerprint", form, "user_id", "u-42", f"{kid}:{fp}")
for f,v in vals:
    print("sha256", "-", f, v, hashlib.sha256(v.encode()).hexdigest())
