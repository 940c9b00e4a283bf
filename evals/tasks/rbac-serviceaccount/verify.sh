source "$TASK_DIR/../../lib.sh"
sa="system:serviceaccount:$NAMESPACE:ci-deployer"
can() { kubectl auth can-i "$1" "$2" -n "$3" --as="$sa" 2>/dev/null || true; }
kubectl get serviceaccount ci-deployer -n "$NAMESPACE" >/dev/null || fail "no ServiceAccount ci-deployer"
for v in get list watch patch; do [ "$(can $v deployments "$NAMESPACE")" = yes ] || fail "ci-deployer cannot $v deployments"; done
[ "$(can delete deployments "$NAMESPACE")" = no ] || fail "ci-deployer may delete deployments"
[ "$(can get secrets "$NAMESPACE")" = no ] || fail "ci-deployer may read secrets"
[ "$(can patch deployments default)" = no ] || fail "ci-deployer may patch deployments outside its namespace"
echo "ci-deployer: get/list/watch/patch deployments in $NAMESPACE only"
