source "$TASK_DIR/../../lib.sh"
# the Services exist already: web (ClusterIP, for the Ingress) and web-nodeport (NodePort), both
# selecting app=web; an unrelated LoadBalancer selects other pods
kubectl apply -n "$NAMESPACE" -f - <<YAML
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: billing}
spec:
  type: LoadBalancer
  selector: {app: billing}
  ports: [{port: 443, targetPort: 8443, protocol: TCP}]
YAML
