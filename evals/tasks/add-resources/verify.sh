source "$TASK_DIR/../../lib.sh"
r() { jp deploy api "{.spec.template.spec.containers[0].resources.$1}"; }
[ "$(r requests.cpu)" = 100m ] || fail "requests.cpu is '$(r requests.cpu)'"
[ "$(r requests.memory)" = 128Mi ] || fail "requests.memory is '$(r requests.memory)'"
[ "$(r limits.cpu)" = 500m ] || fail "limits.cpu is '$(r limits.cpu)'"
[ "$(r limits.memory)" = 256Mi ] || fail "limits.memory is '$(r limits.memory)'"
wait_available api 1 15 || fail "api is not available after the change"
