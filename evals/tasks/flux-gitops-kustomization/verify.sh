source "$TASK_DIR/../../lib.sh"
f=$(gitops_file clusters/dev/apps.yaml) || fail "clusters/dev/apps.yaml is not on main in the GitOps repo"
objs=$(echo "$f" | server_objects) || fail "clusters/dev/apps.yaml does not pass a server-side dry-run"
python3 - "$objs" <<'PY'
import json, sys
objs = {o["kind"]: o for o in json.loads(sys.argv[1])}
def fail(m): print("FAIL:", m, file=sys.stderr); sys.exit(1)
g, k = objs.get("GitRepository"), objs.get("Kustomization")
if not g or g["metadata"]["name"] != "apps": fail("no GitRepository apps")
if g["spec"].get("url") != "https://git.example.com/platform/apps.git": fail(f"url is {g['spec'].get('url')}")
if g["spec"].get("ref", {}).get("branch") != "main": fail("GitRepository does not track main")
if g["spec"].get("interval") != "5m": fail(f"interval is {g['spec'].get('interval')}")
if not k or k["metadata"]["name"] != "apps": fail("no Kustomization apps")
if k["spec"].get("sourceRef", {}).get("name") != "apps" or k["spec"]["sourceRef"].get("kind") != "GitRepository": fail(f"sourceRef is {k['spec'].get('sourceRef')}")
if k["spec"].get("path") not in ("./deploy/dev", "deploy/dev"): fail(f"path is {k['spec'].get('path')}")
if k["spec"].get("prune") is not True: fail("prune is not on")
print("GitRepository + Kustomization apps are on main and valid")
PY
