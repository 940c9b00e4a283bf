source "$TASK_DIR/../../lib.sh"
[ "$(jp deploy web '{.spec.replicas}')" = 3 ] || fail "spec.replicas is $(jp deploy web '{.spec.replicas}'), not 3"
wait_available web 3 15 || fail "web does not have 3 available replicas"
echo "web runs 3 available replicas"
