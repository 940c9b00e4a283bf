source "$TASK_DIR/../../lib.sh"
st=$(helm status hello -n "$NAMESPACE" -o json 2>/dev/null) || fail "no Helm release hello in $NAMESPACE"
echo "$st" | python3 -c 'import json,sys; s=json.load(sys.stdin)["info"]["status"]; sys.exit(0 if s=="deployed" else print("FAIL: release status", s) or 1)' || exit 1
[ "$(jp deploy hello '{.spec.replicas}')" = 2 ] || fail "hello has $(jp deploy hello '{.spec.replicas}') replicas, not 2"
wait_available hello 2 15 || fail "hello is not available"
