source "$TASK_DIR/../../lib.sh"
catalog="$TASK_DIR/../../../blocks/kong.md"
f=$(gitops_file clusters/dev/kong.yaml) || fail "clusters/dev/kong.yaml is not on main in the GitOps repo"
objs=$(echo "$f" | server_objects) || fail "clusters/dev/kong.yaml does not pass a server-side dry-run"
python3 - "$objs" "$catalog" <<'PY'
import json, re, sys
objs = {o["kind"]: o for o in json.loads(sys.argv[1])}
text = open(sys.argv[2]).read()
repo = re.search(r"repository:\s*(\S+)", text).group(1)
version = re.search(r"chart:\s*\n(?:\s+\w+:.*\n)*?\s+version:\s*(\S+)", text).group(1)
def fail(m): print("FAIL:", m, file=sys.stderr); sys.exit(1)
r, h = objs.get("HelmRepository"), objs.get("HelmRelease")
if not r: fail("no HelmRepository")
if r["spec"].get("url", "").rstrip("/") != repo.rstrip("/"): fail(f"HelmRepository url {r['spec'].get('url')} is not the catalog's {repo}")
if not h: fail("no HelmRelease")
c = h["spec"].get("chart", {}).get("spec", {})
if c.get("chart") != "kong": fail(f"chart is {c.get('chart')}")
if str(c.get("version")) != version: fail(f"chart version {c.get('version')} is not the catalog's {version}")
if c.get("sourceRef", {}).get("name") != r["metadata"]["name"]: fail("the HelmRelease does not use the HelmRepository")
print(f"kong {version} from {repo} is on main")
PY
