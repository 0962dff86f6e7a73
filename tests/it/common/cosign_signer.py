#!/usr/bin/python3
"""An independent cosign signer for the tests, written from cosign's published formats with pyca
cryptography (none of imgctl's code): ECDSA P-256 keys, the classic layout (sha256-<hex>.sig tag,
simple-signing layers, signature in the dev.cosignproject.cosign/signature annotation) and the
sigstore bundle v0.3 layout (DSSE envelope with an in-toto statement, attached as an OCI 1.1
referrer and listed in the sha256-<hex> fallback index). Pushes over the distribution API with
Basic auth; the password comes from $SIGNER_PASSWORD, never argv.

  cosign_signer.py keygen PREFIX                      -> PREFIX.key, PREFIX.pub
  cosign_signer.py --registry A --user U image REPO TAG   -> prints the digest
  cosign_signer.py --registry A --user U classic REPO DIGEST --key K [--key K2] [--signed-digest D] [--tamper] [--sig-repo R]
  cosign_signer.py --registry A --user U bundle REPO DIGEST --key K [--signed-digest D] [--tamper]

cosign's encrypted key files (go-securesystemslib `encrypted`: scrypt with hashlib, NaCl secretbox
with PyNaCl, PKCS#8 inside), the passphrase from $SIGNER_PASSPHRASE, never argv:

  cosign_signer.py keygen-encrypted PREFIX            -> PREFIX.key (ENCRYPTED SIGSTORE PRIVATE KEY), PREFIX.pub
  cosign_signer.py decrypt-key KEY                    -> the key's fingerprint (sha256 of its SPKI), its scalar (hex)

and a verifier of both layouts, written from the same formats (exit 1 unless one signature is good):

  cosign_signer.py --registry A --user U verify REPO DIGEST --pub PUB --layout classic|bundle [--sig-repo R]
      -> one line per signature that verifies with PUB and names DIGEST: "ok <where> <identity>"
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import traceback
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, addr, user):
        self.addr = addr
        token = base64.b64encode(f"{user}:{os.environ['SIGNER_PASSWORD']}".encode()).decode()
        self.auth = "Basic " + token

    def request(self, method, url, data=None, headers=None):
        if not url.startswith("http"):
            url = f"http://{self.addr}{url}"
        headers = dict(headers or {})
        headers["Authorization"] = self.auth
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        return urllib.request.urlopen(req)

    def blob(self, repo, data):
        digest = sha256(data)
        start = self.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"")
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.addr}{location}"
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"})
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo, ref, document, media_type=OCI_MANIFEST):
        data = json.dumps(document, separators=(",", ":")).encode()
        self.request("PUT", f"/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type})
        return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}

    def blob_bytes(self, repo, digest):
        return self.request("GET", f"/v2/{repo}/blobs/{digest}").read()

    def get(self, repo, ref, accept):
        try:
            return self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept}).read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


def load_key(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"ENCRYPTED SIGSTORE PRIVATE KEY" in data or b"ENCRYPTED COSIGN PRIVATE KEY" in data:
        return decrypt_key(data, os.environ["SIGNER_PASSPHRASE"].encode())
    return serialization.load_pem_private_key(data, password=None)


def pem_body(data):
    lines = [l for l in data.decode().splitlines() if l and not l.startswith("-----")]
    return base64.b64decode("".join(lines))


# go-securesystemslib encrypted: the parameter sets it decrypts.
SCRYPT_PARAMS = [{"N": 32768, "r": 8, "p": 1}, {"N": 65536, "r": 8, "p": 1}, {"N": 131072, "r": 8, "p": 1}]


def decrypt_key(data, passphrase):
    import nacl.secret
    document = json.loads(pem_body(data))
    assert document["kdf"]["name"] == "scrypt", document["kdf"]["name"]
    assert document["cipher"]["name"] == "nacl/secretbox", document["cipher"]["name"]
    params = document["kdf"]["params"]
    assert params in SCRYPT_PARAMS, params
    salt = base64.b64decode(document["kdf"]["salt"])
    assert len(salt) == 32, len(salt)
    key = hashlib.scrypt(passphrase, salt=salt, n=params["N"], r=params["r"], p=params["p"],
                         maxmem=256 * 1024 * 1024, dklen=32)
    nonce = base64.b64decode(document["cipher"]["nonce"])
    # NaCl's secretbox: the Poly1305 tag first, then the ciphertext (what PyNaCl decrypts).
    der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(document["ciphertext"]), nonce)
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private.curve, ec.SECP256R1), private.curve
    return private


def fingerprint(public):
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def keygen_encrypted(prefix):
    """What `cosign generate-key-pair` writes, with cosign's older scrypt cost (N=32768)."""
    import nacl.secret
    import nacl.utils
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt = os.urandom(32)
    box_key = hashlib.scrypt(os.environ["SIGNER_PASSPHRASE"].encode(), salt=salt, n=32768, r=8, p=1,
                             maxmem=256 * 1024 * 1024, dklen=32)
    nonce = nacl.utils.random(24)
    ciphertext = nacl.secret.SecretBox(box_key).encrypt(der, nonce).ciphertext
    document = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                        "salt": base64.b64encode(salt).decode()},
                "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
                "ciphertext": base64.b64encode(ciphertext).decode()}
    body = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
    text = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    text += "".join(body[i:i + 64] + "\n" for i in range(0, len(body), 64))
    text += "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    fd = os.open(prefix + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    with open(prefix + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    print(fingerprint(key.public_key()))


def verifies(public, signature, message):
    try:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def verify(reg, repo, digest, pub_path, layout, sig_repo):
    """Reads signatures where cosign puts them and checks them with pyca: exit 1 unless one is good."""
    with open(pub_path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    good = []
    if layout == "classic":
        sig_repo = sig_repo or repo
        raw = reg.get(sig_repo, digest.replace(":", "-") + ".sig", OCI_MANIFEST)
        manifest = json.loads(raw) if raw else {"layers": []}
        for layer in manifest["layers"]:
            if layer["mediaType"] != SIMPLE_SIGNING:
                continue
            payload = reg.blob_bytes(sig_repo, layer["digest"])
            assert sha256(payload) == layer["digest"], "payload digest"
            signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
            document = json.loads(payload)
            critical = document["critical"]
            if (verifies(public, signature, payload) and critical["type"] == "cosign container image signature"
                    and critical["image"]["docker-manifest-digest"] == digest):
                good.append(f"ok {layer['digest']} {critical['identity']['docker-reference']}")
    else:
        raw = reg.get(repo, digest.replace(":", "-"), OCI_INDEX)
        index = json.loads(raw) if raw else {"manifests": []}
        spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for entry in index["manifests"]:
            if entry.get("artifactType") != BUNDLE:
                continue
            referrer = json.loads(reg.get(repo, entry["digest"], OCI_MANIFEST))
            assert referrer["subject"]["digest"] == digest, "the referrer's subject"
            layer = referrer["layers"][0]
            document = json.loads(reg.blob_bytes(repo, layer["digest"]))
            assert document["mediaType"] == BUNDLE, document["mediaType"]
            hint = document["verificationMaterial"]["publicKey"]["hint"]
            envelope = document["dsseEnvelope"]
            statement = base64.b64decode(envelope["payload"])
            message = pae(envelope["payloadType"], statement)
            subjects = json.loads(statement)["subject"]
            for sig in envelope["signatures"]:
                if (verifies(public, base64.b64decode(sig["sig"]), message)
                        and envelope["payloadType"] == "application/vnd.in-toto+json"
                        and any(s["digest"].get("sha256") == digest.split(":")[1] for s in subjects)
                        and hint == base64.b64encode(hashlib.sha256(spki).digest()).decode()):
                    good.append(f"ok {entry['digest']} -")
    for line in good:
        print(line)
    return 0 if good else 1


def sign(key, message):
    # ECDSA P-256 over SHA-256, ASN.1 DER: what cosign's ECDSA signer produces.
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def keygen(prefix):
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(prefix + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    with open(prefix + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def image(reg, repo, tag):
    layer = reg.blob(repo, os.urandom(64))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode()
    config = reg.blob(repo, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}
    print(reg.manifest(repo, tag, manifest)["digest"])


def classic(reg, repo, digest, keys, signed_digest, tamper, sig_repo):
    """cosign's simple-signing payload (sigstore/sigstore pkg/signature/payload), one layer per key."""
    sig_repo = sig_repo or repo
    payload = json.dumps({
        "critical": {
            "identity": {"docker-reference": f"{reg.addr}/{repo}"},
            "image": {"docker-manifest-digest": signed_digest or digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }).encode()
    layers = []
    for path in keys:
        signature = base64.b64encode(sign(load_key(path), payload)).decode()
        body = payload.replace(b'"optional": null', b'"optional": {"note": "changed"}') if tamper else payload
        blob = reg.blob(sig_repo, body)
        layers.append({"mediaType": SIMPLE_SIGNING, **blob,
                       "annotations": {"dev.cosignproject.cosign/signature": signature}})
    config = reg.blob(sig_repo, json.dumps({"architecture": "", "os": "", "config": {},
                                            "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config}, "layers": layers}
    tag = digest.replace(":", "-") + ".sig"
    print(reg.manifest(sig_repo, tag, manifest)["digest"])
    print(layers[0]["digest"])


def pae(payload_type, payload):
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def bundle(reg, repo, digest, key_path, signed_digest, tamper):
    """A sigstore bundle v0.3 with a DSSE envelope, as `cosign sign` writes with the new bundle format."""
    key = load_key(key_path)
    statement = json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"{reg.addr}/{repo}", "digest": {"sha256": (signed_digest or digest).split(":")[1]}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }).encode()
    signature = sign(key, pae("application/vnd.in-toto+json", statement))
    if tamper:
        statement = statement.replace(b'"predicate": {}', b'"predicate": {"note": "changed"}')
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    document = {
        "mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": base64.b64encode(hashlib.sha256(spki).digest()).decode()},
                                 "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                         "payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}]},
    }
    layer = reg.blob(repo, json.dumps(document).encode())
    empty = reg.blob(repo, b"{}")
    subject = reg.get(repo, digest, OCI_MANIFEST)
    referrer = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
                "config": {"mediaType": EMPTY, **empty},
                "layers": [{"mediaType": BUNDLE, **layer}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(subject)},
                "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                                "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}}
    data = json.dumps(referrer, separators=(",", ":")).encode()
    descriptor = reg.manifest(repo, sha256(data), referrer)
    # distribution 2.8 has no referrers API: the OCI fallback tag lists the referrers.
    tag = digest.replace(":", "-")
    existing = reg.get(repo, tag, OCI_INDEX)
    index = json.loads(existing) if existing else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    index["manifests"].append({**descriptor, "artifactType": BUNDLE})
    reg.manifest(repo, tag, index, OCI_INDEX)
    print(descriptor["digest"])
    print(layer["digest"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry")
    parser.add_argument("--user")
    parser.add_argument("command", choices=["keygen", "keygen-encrypted", "decrypt-key", "image", "classic", "bundle",
                                            "verify"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--key", action="append", default=[])
    parser.add_argument("--signed-digest")
    parser.add_argument("--tamper", action="store_true")
    parser.add_argument("--sig-repo")
    parser.add_argument("--pub")
    parser.add_argument("--layout", choices=["classic", "bundle"])
    a = parser.parse_args()
    if a.command == "keygen":
        return keygen(a.args[0])
    if a.command == "keygen-encrypted":
        return keygen_encrypted(a.args[0])
    if a.command == "decrypt-key":
        with open(a.args[0], "rb") as f:
            private = decrypt_key(f.read(), os.environ["SIGNER_PASSPHRASE"].encode())
        print(fingerprint(private.public_key()))
        # For the tests' leak checks: the private scalar, which nothing imgctl writes may hold.
        print(private.private_numbers().private_value.to_bytes(32, "big").hex())
        return 0
    reg = Registry(a.registry, a.user)
    if a.command == "image":
        return image(reg, a.args[0], a.args[1])
    if a.command == "verify":
        return verify(reg, a.args[0], a.args[1], a.pub, a.layout, a.sig_repo)
    if a.command == "classic":
        return classic(reg, a.args[0], a.args[1], a.key, a.signed_digest, a.tamper, a.sig_repo)
    return bundle(reg, a.args[0], a.args[1], a.key[0], a.signed_digest, a.tamper)


if __name__ == "__main__":
    # A crash is exit 3, never 1: 1 is verify's "no signature verifies", which a test reads as
    # a refusal.
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(3)
