# The update cannot succeed (the image does not exist); done right, bosun's verification gate
# catches it and rolls it back: revision 1 (1.27.2) → 2 (1.28.0) → 3 (1.27.2 again).
source "$TASK_DIR/../../lib.sh"
rev=$(jp deploy web '{.metadata.annotations.deployment\.kubernetes\.io/revision}')
[ "$rev" = 3 ] || fail "web is at revision $rev: the failed update was not rolled back (expected revision 3)"
img=$(jp deploy web '{.spec.template.spec.containers[0].image}')
[ "$img" = nginx:1.27.2 ] || fail "web runs $img after the rollback, not nginx:1.27.2"
wait_available web 1 15 || fail "web is not available after the rollback"
