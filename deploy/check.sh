#!/usr/bin/env bash
# Static checks of the deployment files, runnable without Docker or a
# cluster: every YAML parses, the kustomizations render, the k8s copies of
# the demo registry and rules match examples/, Alertmanager's config and the
# rules pass amtool/promtool (when installed), the dashboard is JSON, and
# docker-compose.yml passes `docker compose config` (when the compose
# plugin is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

python3 - <<'PY' || fail=1
import glob, json, sys, yaml
files = ["docker-compose.yml"] + sorted(glob.glob("deploy/**/*.y*ml", recursive=True))
for f in files:
    try:
        list(yaml.safe_load_all(open(f)))
    except Exception as e:
        print(f"FAIL yaml {f}: {e}"); sys.exit(1)
for f in glob.glob("deploy/compose/grafana/dashboards/*.json"):
    json.load(open(f))
print(f"ok   {len(files)} YAML files parse, dashboards are JSON")
PY

if command -v kubectl >/dev/null; then
  kustomize() { kubectl kustomize "$@"; }
else
  kustomize() { go run sigs.k8s.io/kustomize/kustomize/v5@v5.5.0 build "$@"; }
fi
for k in deploy/k8s/base deploy/k8s/overlays/*/; do
  if out=$(kustomize "$k" 2>&1); then
    ok "kustomize $k: $(grep -c '^kind:' <<<"$out") objects"
  else
    bad "kustomize $k: $out"
  fi
done

# The base carries copies (kustomize reads files only below it), each with
# a header of comment lines ending in a lone '#'.
same() {
  if diff -q <(sed '1,/^#$/d' "$1") "$2" >/dev/null; then ok "$1 matches $2"; else bad "$1 differs from $2 (copy it again)"; fi
}
same deploy/k8s/base/registry.yaml examples/registry.yaml
same deploy/k8s/base/rules/demo/rules.yml examples/rules/demo/rules.yml

if command -v amtool >/dev/null; then
  amtool check-config deploy/compose/alertmanager/alertmanager.yml >/dev/null && ok "amtool check-config" || bad "amtool check-config"
fi
if command -v promtool >/dev/null; then
  promtool check rules deploy/k8s/base/rules/*/*.yml >/dev/null && ok "promtool check rules" || bad "promtool check rules"
fi
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q && ok "docker compose config" || bad "docker compose config"
else
  echo "skip docker compose config (no compose plugin)"
fi
exit $fail
