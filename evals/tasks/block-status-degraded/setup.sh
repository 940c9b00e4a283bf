source "$TASK_DIR/../../lib.sh"
# what Flux and the minio chart would have created: a Ready HelmRelease, the workload, services
kubectl apply -n "$NAMESPACE" -f - <<YAML
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: minio}
spec:
  interval: 10m
  chart: {spec: {chart: minio, version: 5.4.0, sourceRef: {kind: HelmRepository, name: minio}}}
---
apiVersion: v1
kind: Service
metadata: {name: minio}
spec: {selector: {app: minio}, ports: [{port: 9000, targetPort: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: minio-console}
spec: {selector: {app: minio}, ports: [{port: 9001, targetPort: 9001}]}
YAML
kubectl patch helmrelease minio -n "$NAMESPACE" --subresource=status --type=merge -p \
  '{"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": "Helm install succeeded", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}'
deployment minio quay.io/minio/minio:RELEASE.2099-01-01T00-00-00Z 1
# wait until the stand-in kubelet has reported the pull failure
wait_pod_reason app=minio ImagePullBackOff
