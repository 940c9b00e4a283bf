source "$TASK_DIR/../../lib.sh"
state="$EVAL_WORKDIR/infra/terraform.tfstate"
[ -s "$state" ] || fail "no terraform state in $EVAL_WORKDIR/infra: nothing was applied"
python3 - "$state" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
def fail(m): print("FAIL:", m, file=sys.stderr); sys.exit(1)
out = s.get("outputs", {}).get("network", {}).get("value")
if out != "platform-dev-net": fail(f"output network is {out!r}, not 'platform-dev-net'")
res = [r for r in s.get("resources", []) if r.get("type") == "terraform_data" and r.get("name") == "network"]
if not res: fail("terraform_data.network is not in the state")
print("terraform_data.network applied; network = platform-dev-net")
PY
