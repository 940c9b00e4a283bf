source "$TASK_DIR/../../lib.sh"
kubectl get service shop -n "$NAMESPACE" >/dev/null 2>&1 || fail "no Service shop"
[ "$(jp service shop '{.spec.type}')" = ClusterIP ] || fail "shop is not a ClusterIP Service"
[ "$(jp service shop '{.spec.ports[0].port}')" = 80 ] || fail "shop does not listen on 80"
[ "$(jp service shop '{.spec.ports[0].targetPort}')" = 8080 ] || fail "shop does not target 8080"
for _ in $(seq 20); do
  n=$(jp endpoints shop '{.subsets[*].addresses[*].ip}' 2>/dev/null | wc -w)
  [ "$n" -ge 2 ] && exit 0
  sleep 0.25
done
fail "Service shop has $n endpoints, expected 2"
