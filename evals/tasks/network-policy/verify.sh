source "$TASK_DIR/../../lib.sh"
np=$(kubectl get networkpolicy db-ingress -n "$NAMESPACE" -o json) || fail "no NetworkPolicy db-ingress"
python3 - "$np" <<'PY' || exit 1
import json, sys
np = json.loads(sys.argv[1])["spec"]
def fail(m): print("FAIL:", m, file=sys.stderr); sys.exit(1)
if np.get("podSelector", {}).get("matchLabels") != {"app": "db"}: fail(f"podSelector is {np.get('podSelector')}")
if "Ingress" not in np.get("policyTypes", ["Ingress"]): fail("not an ingress policy")
rules = np.get("ingress", [])
if len(rules) != 1: fail(f"{len(rules)} ingress rules, expected 1")
r = rules[0]
if [f.get("podSelector", {}).get("matchLabels") for f in r.get("from", [])] != [{"app": "frontend"}]: fail(f"from is {r.get('from')}")
if [(p.get("protocol", "TCP"), p.get("port")) for p in r.get("ports", [])] != [("TCP", 5432)]: fail(f"ports are {r.get('ports')}")
print("db-ingress admits app=frontend on TCP 5432 only")
PY
