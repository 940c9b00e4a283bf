source "$TASK_DIR/../../lib.sh"
[ "$(jp deploy checkout '{.spec.replicas}')" = 4 ] || fail "checkout has $(jp deploy checkout '{.spec.replicas}') replicas, not 4"
wait_available checkout 4 15 || fail "checkout does not have 4 available replicas"
