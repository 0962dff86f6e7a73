#!/usr/bin/env python3
"""A token server for docker-registry's token auth, run by the tests on 127.0.0.1.

It plays Harbor's part: a robot account (its name has a `$`) authenticates with Basic auth
and gets an RS256 JWT granting what it asked for; requests without credentials get pull on
`public/*` only (anonymous tokens). The signing key and its self-signed certificate are made
at start; the certificate goes to --cert for the registry's rootcertbundle. Every token request
is logged as a JSON line (user, scopes, granted) to --log. The robot's password comes on stdin,
never in argv.

Usage: token_server.py --port-file F --cert F --log F --issuer I --service S --user U < password
"""
import argparse
import base64
import datetime
import http.server
import json
import os
import secrets
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgctl-test-token-issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--port-file", "--cert", "--log", "--issuer", "--service", "--user"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    password = sys.stdin.read()
    key, cert = make_key_and_cert()
    with open(args.cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    expected = "Basic " + base64.b64encode(f"{args.user}:{password}".encode()).decode()

    def sign(claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            authorization = self.headers.get("Authorization")
            if authorization is not None and authorization != expected:
                self.send_response(401)
                self.end_headers()
                self.log_request_json(None, query.get("scope", []), [], refused=True)
                return
            user = args.user if authorization else None
            access = []
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":", 2)
                wanted = actions.split(",")
                granted = wanted if user else [a for a in wanted if a == "pull" and name.startswith("public/")]
                if granted:
                    access.append({"type": kind, "name": name, "actions": granted})
            now = int(time.time())
            claims = {"iss": args.issuer, "sub": user or "", "aud": query.get("service", [args.service])[0],
                      "exp": now + 300, "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
            token = sign(claims)
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.log_request_json(user, query.get("scope", []), access, refused=False)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_request_json(self, user, scopes, access, refused):
            with open(args.log, "a") as f:
                f.write(json.dumps({"user": user, "scopes": scopes, "granted": access, "refused": refused}) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
