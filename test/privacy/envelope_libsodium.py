"""Independent implementation of the fedlora update envelope (docs/privacy-model.md) on libsodium
(C, through ctypes) and Python's hashlib/json, for test/privacy/envelope-libsodium.test.ts.

  python3 envelope_libsodium.py open  < {"envelope", "coordinatorSecretKey", "clientPublicKey"} (base64)
  python3 envelope_libsodium.py seal  < {"payload", "binding", "clientSecretKey", "coordinatorPublicKey"}

Prints one JSON object. Written from the byte table in the docs, not from privacy/envelope.ts.
"""
import base64
import ctypes
import ctypes.util
import hashlib
import json
import struct
import sys
import time

try:
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
except OSError:
    sys.exit("libsodium is not installed: apt-get install libsodium23 (Debian) to run this check")
assert lib.sodium_init() >= 0

MAGIC = b"FLUE"
DOMAIN = b"fedlora-update-envelope-v1\n"
b64d = base64.b64decode
b64e = lambda b: base64.b64encode(b).decode()


def buf(n):
    return ctypes.create_string_buffer(n)


def open_envelope(req):
    env = b64d(req["envelope"])
    assert env[:4] == MAGIC, "magic"
    assert env[4] == 1, "version"
    (h,) = struct.unpack_from("<I", env, 5)
    header_bytes = env[9 : 9 + h]
    (l,) = struct.unpack_from("<I", env, 9 + h)
    ciphertext = env[13 + h : 13 + h + l]
    signature = env[13 + h + l :]
    assert len(signature) == 64, "signature length"
    message = DOMAIN + hashlib.sha256(env[: 13 + h + l]).digest()
    pk = b64d(req["clientPublicKey"])
    verified = lib.crypto_sign_verify_detached(signature, message, ctypes.c_ulonglong(len(message)), pk) == 0
    header = json.loads(header_bytes.decode("utf-8"))
    plain = buf(len(ciphertext) - 16)
    opened = lib.crypto_box_open_easy(
        plain, ciphertext, ctypes.c_ulonglong(len(ciphertext)), b64d(header["nonce"]), b64d(header["ephemeralPublicKey"]), b64d(req["coordinatorSecretKey"])
    ) == 0
    inner = plain.raw
    return {
        "verified": verified,
        "opened": opened,
        "header": header,
        "headerHashMatches": opened and inner[:32] == hashlib.sha256(header_bytes).digest(),
        "payloadSha256": hashlib.sha256(inner[32:]).hexdigest() if opened else None,
    }


def seal_envelope(req):
    payload = b64d(req["payload"])
    eph_pk, eph_sk = buf(32), buf(32)
    lib.crypto_box_keypair(eph_pk, eph_sk)
    nonce = buf(24)
    lib.randombytes_buf(nonce, ctypes.c_size_t(24))
    b = req["binding"]
    header = {
        "jobId": b["jobId"], "round": b["round"], "attempt": b.get("attempt", 0), "clientId": b["clientId"],
        "nonce": b64e(nonce.raw), "ephemeralPublicKey": b64e(eph_pk.raw), "createdAt": int(time.time() * 1000),
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    inner = hashlib.sha256(header_bytes).digest() + payload
    ciphertext = buf(len(inner) + 16)
    assert lib.crypto_box_easy(ciphertext, inner, ctypes.c_ulonglong(len(inner)), nonce.raw, b64d(req["coordinatorPublicKey"]), eph_sk.raw) == 0
    body = MAGIC + bytes([1]) + struct.pack("<I", len(header_bytes)) + header_bytes + struct.pack("<I", len(ciphertext.raw)) + ciphertext.raw
    message = DOMAIN + hashlib.sha256(body).digest()
    sig = buf(64)
    assert lib.crypto_sign_detached(sig, None, message, ctypes.c_ulonglong(len(message)), b64d(req["clientSecretKey"])) == 0
    return {"envelope": b64e(body + sig.raw)}


req = json.load(sys.stdin)
print(json.dumps(open_envelope(req) if sys.argv[1] == "open" else seal_envelope(req)))
