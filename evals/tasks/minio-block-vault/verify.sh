source "$TASK_DIR/../../lib.sh"
user=$(bao kv get -field=root-user "secret/$VAULT_PATH/minio" 2>/dev/null) || fail "no root-user at secret/$VAULT_PATH/minio"
pass=$(bao kv get -field=root-password "secret/$VAULT_PATH/minio" 2>/dev/null) || fail "no root-password at secret/$VAULT_PATH/minio"
[ ${#user} -ge 16 ] || fail "root-user is ${#user} chars"
[ ${#pass} -ge 40 ] || fail "root-password is ${#pass} chars"
ku=$(jp secret minio-root '{.data.root-user}' | base64 -d) || fail "no Secret minio-root"
kp=$(jp secret minio-root '{.data.root-password}' | base64 -d)
[ "$ku" = "$user" ] || fail "Secret minio-root's root-user is not vault's"
[ "$kp" = "$pass" ] || fail "Secret minio-root's root-password is not vault's"
f=$(gitops_file clusters/dev/minio.yaml) || fail "clusters/dev/minio.yaml is not on main"
objs=$(echo "$f" | server_objects) || fail "clusters/dev/minio.yaml does not pass a server-side dry-run"
python3 - "$objs" <<'PY'
import json, sys
objs = {o["kind"]: o for o in json.loads(sys.argv[1])}
def fail(m): print("FAIL:", m, file=sys.stderr); sys.exit(1)
h = objs.get("HelmRelease") or fail("no HelmRelease")
c = h["spec"]["chart"]["spec"]
if c.get("chart") != "minio" or str(c.get("version")) != "5.4.0": fail(f"chart {c.get('chart')} {c.get('version')}, expected minio 5.4.0")
if h["spec"].get("values", {}).get("existingSecret") != "minio-root": fail("values.existingSecret is not minio-root")
if "HelmRepository" not in objs: fail("no HelmRepository")
print("MinIO: credentials in vault and in Secret minio-root, release on main")
PY
