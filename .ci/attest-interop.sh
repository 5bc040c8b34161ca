#!/usr/bin/env bash
# Interoperability of Proctor's attestations with code that shares nothing with Proctor:
#   - the DSSE envelope verifies with securesystemslib's DSSE implementation (from PyPI), using
#     the public key PEM as pyca/cryptography reads it;
#   - the checkpoint parses and verifies as a C2SP signed note, and the inclusion proof as
#     RFC 9162, both by the small independent Python implementation below;
#   - `proctor verify` accepts the same directory, and refuses it once a file is changed.
#
# Checks two directories: one written by the `fixture` example of proctor-attest (a log of
# five entries, so the inclusion proof has several hashes; run with cargo, CARGO_TARGET_DIR as
# set by .ci/run), and one written by `proctor demo --out`. Needs PROCTOR_BIN (the release
# `proctor` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROCTOR_BIN:?set PROCTOR_BIN to the release proctor binary}"
if [ ! -x "$PROCTOR_BIN" ]; then
    echo "attest-interop: PROCTOR_BIN=$PROCTOR_BIN is not an executable" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dir="$work/attestation"

cargo run --release --quiet -p proctor-attest --example fixture -- "$dir"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check securesystemslib cryptography

cat >"$work/check.py" <<'PY'
"""Checks a Proctor attestation directory with securesystemslib and a C2SP/RFC 9162 reader."""
import base64
import hashlib
import json
import pathlib
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

d = pathlib.Path(sys.argv[1])
passed = 0


def ok(what):
    global passed
    passed += 1
    print(f"attest-interop: {what}: ok")


public = load_pem_public_key((d / "public-key.pem").read_bytes())
spki = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
keyid = hashlib.sha256(spki).hexdigest()  # Proctor's documented key id

# --- DSSE, by securesystemslib. ---------------------------------------------------------------
envelope_bytes = (d / "attestation.json").read_bytes()
assert not envelope_bytes.endswith(b"\n"), "attestation.json ends in a newline"
envelope = Envelope.from_dict(json.loads(envelope_bytes))
key = SSlibKey.from_crypto(public, keyid=keyid)
accepted = envelope.verify([key], 1)
assert list(accepted) == [keyid], accepted
assert envelope.payload_type == "application/vnd.in-toto+json"
ok("securesystemslib verifies the DSSE envelope")

statement = json.loads(envelope.payload)
assert statement["_type"] == "https://in-toto.io/Statement/v1"
subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
dataset = hashlib.sha256((d / "dataset.jsonl").read_bytes()).hexdigest()
assert subjects["dataset.jsonl"] == dataset, (subjects, dataset)
ok("the in-toto statement names the dataset by its sha256")

tampered = Envelope.from_dict(json.loads(envelope_bytes))
tampered.payload = envelope.payload.replace(b'"succeeded"', b'"failed"')
assert tampered.payload != envelope.payload
try:
    tampered.verify([key], 1)
    raise SystemExit("attest-interop: a changed payload verified")
except VerificationError:
    ok("securesystemslib rejects a changed payload")


# --- The checkpoint, as a C2SP signed note. ----------------------------------------------------
def open_note(note: bytes, name: str, raw_key: bytes) -> str:
    """Verifies the signature by (name, key) on a signed note; returns its text."""
    text = note.decode("utf-8")
    if any(c < " " and c != "\n" for c in text):
        raise ValueError("control character")
    split = text.rindex("\n\n")
    body, sigs = text[: split + 1], text[split + 2 :]
    if not sigs.endswith("\n"):
        raise ValueError("unterminated signature line")
    want = hashlib.sha256(name.encode() + b"\n\x01" + raw_key).digest()[:4]
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError(f"not a signature line: {line!r}")
        signer, blob = line[2:].split(" ")
        blob = base64.b64decode(blob, validate=True)
        if signer != name or blob[:4] != want:
            continue  # another key's signature: ignored, as the spec says
        public.verify(blob[4:], body.encode())  # raises InvalidSignature
        verified = True
    if not verified:
        raise ValueError("no signature by the known key")
    return body


note = (d / "checkpoint.txt").read_bytes()
origin = note.split(b"\n", 1)[0].decode()
body = open_note(note, origin, raw)
lines = body.split("\n")
assert len(lines) == 4 and lines[3] == "", lines
size = int(lines[1])
assert str(size) == lines[1]
root = base64.b64decode(lines[2], validate=True)
assert len(root) == 32
ok("the checkpoint verifies as a C2SP signed note")

for bad in (note.replace(f"\n{size}\n".encode(), f"\n{size + 1}\n".encode(), 1),
            note.replace(origin.encode(), b"x" + origin.encode())):
    try:
        open_note(bad, bad.split(b"\n", 1)[0].decode(), raw)
        raise SystemExit("attest-interop: a changed checkpoint verified")
    except (InvalidSignature, ValueError):
        pass
ok("a changed checkpoint does not verify")


# --- The inclusion proof, RFC 9162 §2.1.3.2. ---------------------------------------------------
def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


proof = json.loads((d / "inclusion-proof.json").read_text())
assert proof["tree_size"] == size and base64.b64decode(proof["root_hash"]) == root
fn, sn = proof["log_index"], size - 1
r = hashlib.sha256(b"\x00" + envelope_bytes).digest()
for p in (base64.b64decode(h, validate=True) for h in proof["hashes"]):
    assert sn != 0, "proof too long"
    if fn & 1 or fn == sn:
        r = node(p, r)
        while not fn & 1 and fn != 0:
            fn, sn = fn >> 1, sn >> 1
    else:
        r = node(r, p)
    fn, sn = fn >> 1, sn >> 1
assert sn == 0 and r == root, "the inclusion proof does not lead to the checkpoint's root"
assert statement["predicate"]["log_index"] == proof["log_index"]
ok("the envelope's bytes are in the checkpoint's tree")

print(f"attest-interop python: {passed} passed, 0 failed")
PY
"$work/venv/bin/python" "$work/check.py" "$dir"

# What `proctor demo --out` keeps, a real run of a real component, passes the same checks.
"$PROCTOR_BIN" demo --out "$work/demo" >/dev/null
"$work/venv/bin/python" "$work/check.py" "$work/demo"
"$PROCTOR_BIN" verify "$work/demo"

"$PROCTOR_BIN" verify "$dir"

# The same directory with one file changed must fail, with exit status 1.
printf '{"a": 0, "b": 0}\n' >"$dir/dataset.jsonl"
status=0
"$PROCTOR_BIN" verify "$dir" >"$work/changed.out" 2>/dev/null || status=$?
if [ "$status" -ne 1 ] || ! grep -q '^subjects: FAILED' "$work/changed.out"; then
    echo "attest-interop: proctor verify accepted a changed dataset (exit $status)" >&2
    cat "$work/changed.out" >&2
    exit 1
fi
echo "attest-interop: proctor verify: 2 passed, 0 failed"
