source "$TASK_DIR/../../lib.sh"
lvl=$(kubectl get configmap dev-web-settings -n "$NAMESPACE" -o 'jsonpath={.data.log_level}' 2>/dev/null || true)
[ "$lvl" = debug ] || fail "ConfigMap dev-web-settings has log_level '$lvl', not the overlay's debug"
env=$(kubectl get service dev-web -n "$NAMESPACE" -o 'jsonpath={.metadata.labels.env}' 2>/dev/null || true)
[ "$env" = dev ] || fail "Service dev-web is missing or lacks the overlay's env=dev label"
