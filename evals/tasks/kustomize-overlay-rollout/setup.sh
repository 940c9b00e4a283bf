source "$TASK_DIR/../../lib.sh"
# the app as a kustomize base + dev overlay, pushed to the task's GitOps remote
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$GIT_REMOTE" "$work/repo"
cd "$work/repo"
mkdir -p apps/web/base apps/web/overlays/dev
cat > apps/web/base/kustomization.yaml <<YAML
resources: [configmap.yaml, service.yaml]
YAML
cat > apps/web/base/configmap.yaml <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: web-settings}
data: {log_level: info, replicas_hint: "1"}
YAML
cat > apps/web/base/service.yaml <<YAML
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
YAML
cat > apps/web/overlays/dev/kustomization.yaml <<YAML
namespace: $NAMESPACE
namePrefix: dev-
commonLabels: {env: dev}
resources: [../../base]
patches:
  - path: settings.yaml
YAML
cat > apps/web/overlays/dev/settings.yaml <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: web-settings}
data: {log_level: debug}
YAML
git add -A
git -c user.name=eval -c user.email=eval@bosun.invalid commit -qm "web: base + dev overlay"
git push -q origin HEAD:main
