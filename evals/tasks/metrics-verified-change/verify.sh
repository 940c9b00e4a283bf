source "$TASK_DIR/../../lib.sh"
[ "$(jp deploy web '{.spec.replicas}')" = 2 ] || fail "spec.replicas is $(jp deploy web '{.spec.replicas}'), not 2"
wait_available web 2 15 || fail "web does not have 2 available replicas"
# the error ratio was checked through bosun's metrics tool (the guard's audit log says so)
audit_has 'd.get("tool") == "metrics" and d.get("operation") == "check" and d.get("verdict") == "allow"' \
  || fail "no metrics check in the audit log: the error ratio was never checked"
