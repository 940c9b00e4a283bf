# Shared helpers for task scripts: `source "$TASK_DIR/../../lib.sh"`.
# bosun eval sets NAMESPACE, KUBECONFIG, VAULT_ADDR/VAULT_TOKEN (and BAO_*), VAULT_PATH,
# GIT_REMOTE, EVAL_WORKDIR, TASK_DIR and BOSUN_EVAL_AUDIT_DIR for every script.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# deployment NAME IMAGE REPLICAS [LABEL]: a Deployment with requests/limits, pinned image.
deployment() {
  local name=$1 image=$2 replicas=$3 app=${4:-$1}
  kubectl apply -n "$NAMESPACE" -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $name, labels: {app: $app}}
spec:
  replicas: $replicas
  selector: {matchLabels: {app: $app}}
  template:
    metadata: {labels: {app: $app}}
    spec:
      containers:
        - name: $name
          image: $image
          resources:
            requests: {cpu: 10m, memory: 16Mi}
            limits: {cpu: 100m, memory: 64Mi}
YAML
}

# wait_available NAME N [SECONDS]: until the deployment reports N available replicas.
wait_available() {
  local name=$1 want=$2 secs=${3:-30} got
  for _ in $(seq $((secs * 4))); do
    got=$(kubectl get deploy "$name" -n "$NAMESPACE" -o jsonpath='{.status.availableReplicas}' 2>/dev/null || true)
    [ "${got:-0}" = "$want" ] && return 0
    sleep 0.25
  done
  echo "deployment $name has ${got:-0} available replicas, not $want" >&2
  return 1
}

# wait_pod_reason SELECTOR REASON [SECONDS]: until a pod matching SELECTOR reports a container
# waiting with REASON (e.g. ImagePullBackOff), as the stand-in kubelet does shortly after creation.
wait_pod_reason() {
  local sel=$1 reason=$2 secs=${3:-15}
  for _ in $(seq $((secs * 4))); do
    kubectl get pods -n "$NAMESPACE" -l "$sel" \
      -o jsonpath='{.items[*].status.containerStatuses[*].state.waiting.reason}' 2>/dev/null | grep -q "$reason" && return 0
    sleep 0.25
  done
  echo "no pod matching $sel reports $reason" >&2
  return 1
}

# jp KIND NAME JSONPATH: one field of an object in the namespace.
jp() { kubectl get "$1" "$2" -n "$NAMESPACE" -o jsonpath="$3"; }

# audit_has JQ-LIKE-PYTHON-EXPR: true when a guard decision in this run's audit log matches.
# The audit log is written by bosun's guard, not by the model; before the agent runs there is none.
audit_has() {
  python3 - "$1" <<'PY'
import glob, json, os, sys
expr = sys.argv[1]
d = os.environ.get("BOSUN_EVAL_AUDIT_DIR", "")
for f in glob.glob(os.path.join(d, "*.audit.jsonl")):
    for line in open(f):
        r = json.loads(line).get("record", {})
        if r.get("event") != "decided":
            continue
        dec = r.get("decision", {})
        if eval(expr, {}, {"d": dec, "args": r.get("arguments", "")}):
            sys.exit(0)
sys.exit(1)
PY
}

# gitops_file PATH: print a file from the tip of main in the run's GitOps remote.
gitops_file() {
  git --git-dir="$GIT_REMOTE" show "main:$1" 2>/dev/null
}

# server_objects: the YAML documents on stdin, checked by a server-side dry-run (nothing is
# persisted), printed as one JSON list of the objects the API server would store.
server_objects() {
  kubectl apply --dry-run=server -n "$NAMESPACE" -f - -o json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d.get("items", [d]) if d.get("kind") == "List" else [d]))'
}
