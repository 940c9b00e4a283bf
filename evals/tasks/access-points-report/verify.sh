source "$TASK_DIR/../../lib.sh"
host=$(kubectl get ingress web -n "$NAMESPACE" -o 'jsonpath={.spec.rules[0].host}' 2>/dev/null || true)
[ "$host" = "web.$NAMESPACE.example.test" ] || fail "Ingress web is missing or serves '$host'"
svc=$(kubectl get ingress web -n "$NAMESPACE" -o 'jsonpath={.spec.rules[0].http.paths[0].backend.service.name}')
[ "$svc" = web ] || fail "Ingress web routes to '$svc', not Service web"
wait_available web 1 30 || fail "deployment web is not available"
