"""Writes seed corpora for the fuzz targets from the published vectors (read in place)."""
import base64, json, os, sys

vectors, http_dir, auth_dir = sys.argv[1:4]
os.makedirs(http_dir, exist_ok=True)
os.makedirs(auth_dir, exist_ok=True)
count = 0

def seed(directory, data):
    global count
    count += 1
    with open(os.path.join(directory, "seed-%05d" % count), "wb") as f:
        f.write(data)

for record in json.load(open(os.path.join(vectors, "llhttp/llhttp_cases.json")))["records"]:
    if record.get("input_base64"):
        seed(http_dir, base64.b64decode(record["input_base64"]))
for trophy in json.load(open(os.path.join(vectors, "http-garden/trophies_payloads.json")))["bugs"]:
    for payload in (trophy.get("payloads") or []):
        if payload.get("base64"):
            seed(http_dir, base64.b64decode(payload["base64"]))
attacks = json.load(open(os.path.join(vectors, "jwt-attacks/jwt_attack_cases.json")))
for case in attacks["cases"]:
    seed(auth_dir, b"\x01" + case["token"].encode())
seed(auth_dir, b"\x02" + json.dumps(attacks["verifier_config"]["keyset"]).encode())
for name in ["google-iap/google-auth-library-java/iap_keys.json", "google-iap/appengine-sidecars-nginx-iap/keys.jwk"]:
    seed(auth_dir, b"\x02" + open(os.path.join(vectors, name), "rb").read())
seed(auth_dir, b"\x00" + json.dumps(attacks["base_claims"]).encode())
seed(auth_dir, b"\x03example.com\n@example.org\nalice@example.net # comment\n\n")
print("seeds:", count)
