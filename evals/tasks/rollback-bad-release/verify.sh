source "$TASK_DIR/../../lib.sh"
img=$(jp deploy web '{.spec.template.spec.containers[0].image}')
[ "$img" = nginx:1.27.2 ] || fail "web runs $img, not the previous nginx:1.27.2"
rev=$(jp deploy web '{.metadata.annotations.deployment\.kubernetes\.io/revision}')
[ "$rev" = 3 ] || fail "web is at revision $rev; a rollback makes revision 3"
wait_available web 1 15 || fail "web is not available"
