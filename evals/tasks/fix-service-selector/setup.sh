source "$TASK_DIR/../../lib.sh"
deployment web nginx:1.27.2 2
kubectl apply -n "$NAMESPACE" -f - <<YAML
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: webapp}
  ports: [{port: 80, targetPort: 80}]
YAML
wait_available web 2
