source "$TASK_DIR/../../lib.sh"
c="$EVAL_WORKDIR/charts/hello"
mkdir -p "$c/templates"
cat > "$c/Chart.yaml" <<'Y'
apiVersion: v2
name: hello
version: 0.3.1
appVersion: "1.27.2"
Y
cat > "$c/values.yaml" <<'Y'
replicaCount: 1
image: nginx:1.27.2
resources:
  requests: {cpu: 10m, memory: 16Mi}
  limits: {cpu: 100m, memory: 64Mi}
Y
cat > "$c/templates/deployment.yaml" <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicaCount }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
        - name: hello
          image: {{ .Values.image }}
          resources: {{ toJson .Values.resources }}
Y
cat > "$c/templates/service.yaml" <<'Y'
apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80, targetPort: 80, protocol: TCP}]
Y
