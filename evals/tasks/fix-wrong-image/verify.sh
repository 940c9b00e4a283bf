source "$TASK_DIR/../../lib.sh"
img=$(jp deploy web '{.spec.template.spec.containers[0].image}')
[ "$img" = nginx:1.27.2 ] || fail "web runs $img, not nginx:1.27.2"
wait_available web 1 15 || fail "web is not available"
