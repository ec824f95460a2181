#!/usr/bin/env python3
"""cosign interop for the signing e2e tests, written against Python's `cryptography` package
and the plain OCI distribution HTTP API, so cargo-ebpf's signatures are checked by code that
shares nothing with it (and the tamper cases are made the way an attacker would: over HTTP).

  cosign_interop.py verify   REGISTRY REPO DIGEST PUB      read sha256-<hex>.sig, verify with PUB
  cosign_interop.py sign     REGISTRY REPO DIGEST OUTPUB   sign DIGEST with a new key, upload
  cosign_interop.py copy-sig REGISTRY REPO FROM TO         put FROM's signatures on TO's tag
  cosign_interop.py edit     REGISTRY REPO DIGEST          change the signed payload, keep the sig
  cosign_interop.py verify-att REGISTRY REPO DIGEST PUB    read sha256-<hex>.att, verify the DSSE
                                                          envelope with PUB, print the builder
  cosign_interop.py edit-att REGISTRY REPO DIGEST          change the attested builder, keep the sig
  cosign_interop.py copy-att REGISTRY REPO FROM TO         put FROM's attestations on TO's tag
  cosign_interop.py cosign-key PREFIX PASSWORD             write PREFIX.key in cosign's encrypted
                                                          format (scrypt + NaCl secretbox) and PREFIX.pub

Exits non-zero with a message on any failure. Talks only to REGISTRY (127.0.0.1:PORT).
"""

import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SLSA = "https://slsa.dev/provenance/v1"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sig_tag(digest):
    return digest.replace("sha256:", "sha256-") + ".sig"


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as resp:
        return resp.read(), resp.headers


def get_manifest(reg, repo, tag):
    body, _ = http("GET", f"http://{reg}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST})
    return json.loads(body)


def get_blob(reg, repo, digest):
    body, _ = http("GET", f"http://{reg}/v2/{repo}/blobs/{digest}")
    if sha256(body) != digest:
        sys.exit(f"blob {digest} does not hash to its digest")
    return body


def put_blob(reg, repo, data):
    digest = sha256(data)
    _, headers = http("POST", f"http://{reg}/v2/{repo}/blobs/uploads/", data=b"")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"http://{reg}{location}"
    sep = "&" if "?" in location else "?"
    http("PUT", f"{location}{sep}digest={digest}", data=data,
         headers={"Content-Type": "application/octet-stream"})
    return {"mediaType": SIMPLESIGNING, "digest": digest, "size": len(data)}


def put_manifest(reg, repo, tag, layers):
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
    cfg = put_blob(reg, repo, config)
    cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": cfg, "layers": layers}
    http("PUT", f"http://{reg}/v2/{repo}/manifests/{tag}", data=json.dumps(manifest).encode(),
         headers={"Content-Type": MANIFEST})


def verify(reg, repo, digest, pub_path):
    with open(pub_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    manifest = get_manifest(reg, repo, sig_tag(digest))
    for layer in manifest["layers"]:
        if layer["mediaType"] != SIMPLESIGNING:
            continue
        payload = get_blob(reg, repo, layer["digest"])
        sig = base64.b64decode(layer["annotations"][SIG_ANNOTATION])
        try:
            key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        doc = json.loads(payload)
        critical = doc["critical"]
        assert critical["type"] == "cosign container image signature", critical
        assert critical["image"]["docker-manifest-digest"] == digest, critical
        assert critical["identity"]["docker-reference"] == f"{reg}/{repo}", critical
        print(f"verified {digest}")
        return
    sys.exit(f"no signature of {digest} verifies with {pub_path}")


def sign(reg, repo, digest, out_pub):
    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps({"critical": {"identity": {"docker-reference": f"{reg}/{repo}"},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    layer = put_blob(reg, repo, payload)
    layer["annotations"] = {SIG_ANNOTATION: base64.b64encode(sig).decode()}
    put_manifest(reg, repo, sig_tag(digest), [layer])
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(out_pub, "wb") as f:
        f.write(pem)
    print(f"signed {digest}")


def copy_sig(reg, repo, src, dst):
    manifest = get_manifest(reg, repo, sig_tag(src))
    put_manifest(reg, repo, sig_tag(dst), manifest["layers"])


def edit(reg, repo, digest):
    manifest = get_manifest(reg, repo, sig_tag(digest))
    layers = []
    for layer in manifest["layers"]:
        payload = json.loads(get_blob(reg, repo, layer["digest"]))
        payload["critical"]["identity"]["docker-reference"] += "-edited"
        new = put_blob(reg, repo, json.dumps(payload).encode())
        new["annotations"] = layer["annotations"]
        layers.append(new)
    put_manifest(reg, repo, sig_tag(digest), layers)


def att_tag(digest):
    return digest.replace("sha256:", "sha256-") + ".att"


def pae(payload_type, body):
    """DSSE's pre-authentication encoding, written from the DSSE spec."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def verify_att(reg, repo, digest, pub_path):
    with open(pub_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    manifest = get_manifest(reg, repo, att_tag(digest))
    for layer in manifest["layers"]:
        if layer["mediaType"] != DSSE or layer["annotations"].get("predicateType") != SLSA:
            continue
        envelope = json.loads(get_blob(reg, repo, layer["digest"]))
        body = base64.b64decode(envelope["payload"])
        for s in envelope["signatures"]:
            try:
                key.verify(base64.b64decode(s["sig"]), pae(envelope["payloadType"], body),
                           ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            statement = json.loads(body)
            assert statement["_type"] == "https://in-toto.io/Statement/v1", statement
            assert statement["predicateType"] == SLSA, statement
            hexes = [sub["digest"]["sha256"] for sub in statement["subject"]]
            assert digest.removeprefix("sha256:") in hexes, statement["subject"]
            print(statement["predicate"]["runDetails"]["builder"]["id"])
            return
    sys.exit(f"no provenance attestation of {digest} verifies with {pub_path}")


def edit_att(reg, repo, digest):
    manifest = get_manifest(reg, repo, att_tag(digest))
    layers = []
    for layer in manifest["layers"]:
        envelope = json.loads(get_blob(reg, repo, layer["digest"]))
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["runDetails"]["builder"]["id"] = "host:trusted-ci"
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        new = put_blob(reg, repo, json.dumps(envelope).encode())
        new["mediaType"] = layer["mediaType"]
        new["annotations"] = layer["annotations"]
        layers.append(new)
    put_manifest(reg, repo, att_tag(digest), layers)


def copy_att(reg, repo, src, dst):
    manifest = get_manifest(reg, repo, att_tag(src))
    put_manifest(reg, repo, att_tag(dst), manifest["layers"])


def cosign_key(prefix, password):
    """A key file as `cosign generate-key-pair` writes it, built from its documented format."""
    import os
    from nacl.secret import SecretBox

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    kek = hashlib.scrypt(password.encode(), salt=salt, n=32768, r=8, p=1, dklen=32,
                         maxmem=64 << 20)
    sealed = SecretBox(kek).encrypt(der, nonce).ciphertext
    b64 = lambda b: base64.b64encode(b).decode()
    doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
           "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(sealed)}
    body = b64(json.dumps(doc).encode())
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    label = "ENCRYPTED SIGSTORE PRIVATE KEY"
    with open(prefix + ".key", "w") as f:
        f.write(f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n")
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(prefix + ".pub", "wb") as f:
        f.write(pem)


def main(argv):
    commands = {"verify": verify, "sign": sign, "copy-sig": copy_sig, "edit": edit,
                "verify-att": verify_att, "edit-att": edit_att, "copy-att": copy_att,
                "cosign-key": cosign_key}
    if len(argv) < 2 or argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[argv[1]](*argv[2:])
    except urllib.error.HTTPError as e:
        sys.exit(f"HTTP {e.code} from {e.url}: {e.read()[:300]!r}")


if __name__ == "__main__":
    main(sys.argv)
